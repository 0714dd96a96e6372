import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { OmsBackupError } from './errors.js';
import type { EncryptionOptions, ManifestEncryption } from './types.js';
import { invalid, v } from './validate.js';

const MAGIC = Buffer.from('OMSBKP1\n');
const IV = 12;
const TAG = 16;
const HEAD = 1 + 4 + IV; // flag, ciphertext length, iv
export const DEFAULT_CHUNK = 64 * 1024;

/** A checked copy of the user's key options; the key bytes never reach a message. */
export interface KeyConfig {
  readonly key: Buffer;
  readonly keyId: string;
  readonly chunkBytes: number;
}

export function checkEncryption(
  o: EncryptionOptions | undefined,
  name = 'encryption',
): KeyConfig | undefined {
  if (o === undefined) return undefined;
  if (typeof o !== 'object' || o === null) throw invalid(`${name} must be an object with a 32-byte key`);
  if (!(o.key instanceof Uint8Array) || o.key.byteLength !== 32) {
    const len = o.key instanceof Uint8Array ? `${o.key.byteLength} bytes` : typeof o.key;
    throw invalid(`${name}.key must be 32 bytes (a Uint8Array/Buffer, e.g. randomBytes(32)); got ${len}`);
  }
  const keyId = o.keyId === undefined ? 'default' : v.key(`${name}.keyId`, o.keyId, 128);
  const chunkBytes =
    o.chunkBytes === undefined
      ? DEFAULT_CHUNK
      : v.integer(`${name}.chunkBytes`, o.chunkBytes, { min: 1024, max: 16 * 1024 * 1024 });
  return { key: Buffer.from(o.key), keyId, chunkBytes };
}

const aadKey = (id: string) => Buffer.from(`oms-backup:key:${id}`);

/** Wraps a fresh data key for backup `id`; the id is authenticated, so a wrapped key cannot move to another backup. */
export function wrapKey(cfg: KeyConfig, id: string, dataKey: Buffer): ManifestEncryption {
  const iv = randomBytes(IV);
  const c = createCipheriv('aes-256-gcm', cfg.key, iv);
  c.setAAD(aadKey(id));
  const ct = Buffer.concat([c.update(dataKey), c.final()]);
  return {
    algorithm: 'aes-256-gcm',
    keyId: cfg.keyId,
    wrappedKey: Buffer.concat([iv, ct, c.getAuthTag()]).toString('base64'),
    chunkBytes: cfg.chunkBytes,
  };
}

export function unwrapKey(cfg: KeyConfig | undefined, id: string, enc: ManifestEncryption): Buffer {
  if (!cfg) {
    throw new OmsBackupError(
      'ERR_OMS_BACKUP_DECRYPT',
      `backup ${id} is encrypted (key id ${JSON.stringify(enc.keyId)}): pass the key as encryption.key`,
    );
  }
  const raw = Buffer.from(enc.wrappedKey, 'base64');
  try {
    const d = createDecipheriv('aes-256-gcm', cfg.key, raw.subarray(0, IV));
    d.setAAD(aadKey(id));
    d.setAuthTag(raw.subarray(raw.length - TAG));
    return Buffer.concat([d.update(raw.subarray(IV, raw.length - TAG)), d.final()]);
  } catch (e) {
    throw new OmsBackupError(
      'ERR_OMS_BACKUP_DECRYPT',
      `backup ${id} cannot be decrypted with the given key (it was encrypted with key id ${JSON.stringify(enc.keyId)}): wrong key, or the manifest was altered`,
      false,
      { cause: e },
    );
  }
}

const aadChunk = (file: string, index: number, last: boolean) =>
  Buffer.from(`oms-backup:chunk:${file}:${index}:${last ? 1 : 0}`);

/** Rechunks a stream into exact `size` pieces (the last may be shorter), one chunk of look-ahead for `last`. */
async function* rechunk(source: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let have = 0;
  for await (const c of source) {
    parts.push(Buffer.from(c.buffer, c.byteOffset, c.byteLength));
    have += c.byteLength;
    while (have >= size) {
      const all = Buffer.concat(parts, have);
      yield all.subarray(0, size);
      parts = [all.subarray(size)];
      have -= size;
    }
  }
  yield Buffer.concat(parts, have);
}

/**
 * AES-256-GCM in authenticated chunks: each frame's AAD names the file, its index and whether it is the last, so
 * a flipped bit, a reordered, dropped or truncated frame, or a frame from another file fails to decrypt.
 */
export async function* encrypt(
  source: AsyncIterable<Uint8Array>,
  dataKey: Buffer,
  file: string,
  chunkBytes: number,
): AsyncGenerator<Buffer> {
  yield MAGIC;
  let index = 0;
  let pending: Buffer | undefined;
  const frame = (plain: Buffer, last: boolean): Buffer => {
    const iv = randomBytes(IV);
    const c = createCipheriv('aes-256-gcm', dataKey, iv);
    c.setAAD(aadChunk(file, index++, last));
    const ct = Buffer.concat([c.update(plain), c.final()]);
    const head = Buffer.alloc(5);
    head.writeUInt8(last ? 1 : 0, 0);
    head.writeUInt32BE(ct.length, 1);
    return Buffer.concat([head, iv, ct, c.getAuthTag()]);
  };
  for await (const piece of rechunk(source, chunkBytes)) {
    if (pending !== undefined) yield frame(pending, false);
    pending = piece;
  }
  yield frame(pending ?? Buffer.alloc(0), true);
}

const tampered = (file: string, why: string, cause?: unknown) =>
  new OmsBackupError(
    'ERR_OMS_BACKUP_DECRYPT',
    `${file} failed authentication (${why}): the archive was altered or truncated, or the key is wrong; it is not restored`,
    false,
    { cause },
  );

/** Decrypts what {@link encrypt} wrote; yields a chunk's plaintext only after its tag checked out. */
export async function* decrypt(
  source: AsyncIterable<Uint8Array>,
  dataKey: Buffer,
  file: string,
): AsyncGenerator<Buffer> {
  let buf = Buffer.alloc(0);
  let index = 0;
  let sawMagic = false;
  let done = false;
  for await (const c of source) {
    buf = buf.length === 0 ? Buffer.from(c) : Buffer.concat([buf, c]);
    if (!sawMagic) {
      if (buf.length < MAGIC.length) continue;
      if (!buf.subarray(0, MAGIC.length).equals(MAGIC)) throw tampered(file, 'bad header');
      buf = buf.subarray(MAGIC.length);
      sawMagic = true;
    }
    while (buf.length >= HEAD) {
      if (done) throw tampered(file, 'data after the last chunk');
      const last = buf.readUInt8(0) === 1;
      const len = buf.readUInt32BE(1);
      if (buf.length < HEAD + len + TAG) break;
      const iv = buf.subarray(5, HEAD);
      const ct = buf.subarray(HEAD, HEAD + len);
      const tag = buf.subarray(HEAD + len, HEAD + len + TAG);
      let plain: Buffer;
      try {
        const d = createDecipheriv('aes-256-gcm', dataKey, iv);
        d.setAAD(aadChunk(file, index++, last));
        d.setAuthTag(tag);
        plain = Buffer.concat([d.update(ct), d.final()]);
      } catch (e) {
        throw tampered(file, `chunk ${index - 1}`, e);
      }
      buf = buf.subarray(HEAD + len + TAG);
      if (last) done = true;
      if (plain.length > 0) yield plain;
    }
  }
  if (!sawMagic || !done || buf.length > 0) throw tampered(file, 'truncated');
}
