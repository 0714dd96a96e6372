import { createHash } from 'node:crypto';
import { decrypt, encrypt, type KeyConfig, unwrapKey } from './encryption.js';
import { isOmsBackupError, OmsBackupError, throwIfAborted } from './errors.js';
import { MANIFEST } from './manifest.js';
import type { ArtifactFile, BackupStorage, Manifest, RestoreContext } from './types.js';
import { invalid } from './validate.js';

/** Passes chunks through, telling `see` about each: hashing and counting on the way to storage. */
async function* tap(
  src: AsyncIterable<Uint8Array>,
  see: (c: Uint8Array) => void,
): AsyncGenerator<Uint8Array> {
  for await (const c of src) {
    see(c);
    yield c;
  }
}

/** Stored writes of at least this size: a pipe from pg_dump delivers 4 KB pieces, each a write and a hash call. */
const WRITE_BYTES = 1024 * 1024;

/**
 * Copies chunks into pieces of `bytes` (the last one shorter), so storage, hashing and encryption see few large
 * writes. Copying rather than joining lets each small chunk go at once instead of living until the piece is full.
 */
export async function* coalesce(src: AsyncIterable<Uint8Array>, bytes: number): AsyncGenerator<Uint8Array> {
  let piece = Buffer.allocUnsafe(bytes);
  let n = 0;
  for await (const c of src) {
    let at = 0;
    while (at < c.byteLength) {
      const k = Math.min(bytes - n, c.byteLength - at);
      piece.set(c.subarray(at, at + k), n);
      n += k;
      at += k;
      if (n === bytes) {
        yield piece;
        piece = Buffer.allocUnsafe(bytes);
        n = 0;
      }
    }
  }
  if (n > 0) yield piece.subarray(0, n);
}

/**
 * Streams one artifact of backup `id` into storage, encrypted when there is a data key, and records its stored
 * size and SHA-256 in `files`. `seen` hears the size of every stored chunk (progress).
 */
export async function storeArtifact(
  a: {
    storage: BackupStorage;
    id: string;
    key: { config: KeyConfig; dataKey: Buffer } | undefined;
    files: ArtifactFile[];
    signal: AbortSignal;
    seen: (bytes: number) => void;
  },
  name: string,
  body: AsyncIterable<Uint8Array>,
): Promise<void> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name) || name === MANIFEST) {
    throw invalid(`artifact name ${JSON.stringify(name)} is not allowed`);
  }
  const hash = createHash('sha256');
  let bytes = 0;
  const plain = coalesce(body, WRITE_BYTES);
  const stored = a.key ? encrypt(plain, a.key.dataKey, name, a.key.config.chunkBytes) : plain;
  await a.storage.put(
    `${a.id}/${name}`,
    tap(stored, (c) => {
      hash.update(c);
      bytes += c.byteLength;
      a.seen(c.byteLength);
    }),
    { signal: a.signal },
  );
  a.files.push({ name, bytes, sha256: hash.digest('hex') });
}

/**
 * Reads every stored file end to end before anything is restored: the SHA-256 of each against the manifest,
 * then (when encrypted) every chunk's authentication tag. Nothing reaches a database before both passed.
 */
async function checkArchive(
  storage: BackupStorage,
  m: Manifest,
  dataKey: Buffer | undefined,
  signal: AbortSignal,
): Promise<void> {
  for (const f of m.files) {
    const hash = createHash('sha256');
    let bytes = 0;
    const stored = await storage.get(`${m.id}/${f.name}`, { signal }).catch((e: unknown) => {
      if (!isOmsBackupError(e) || e.code !== 'ERR_OMS_BACKUP_NOT_FOUND') throw e;
      throw new OmsBackupError(
        'ERR_OMS_BACKUP_CORRUPT',
        `backup ${m.id} is incomplete: ${f.name} is missing from storage; it is not restored`,
        false,
        { cause: e },
      );
    });
    for await (const c of stored) {
      throwIfAborted(signal, 'reading the archive');
      hash.update(c);
      bytes += c.byteLength;
    }
    const sha = hash.digest('hex');
    if (bytes !== f.bytes || sha !== f.sha256) {
      throw new OmsBackupError(
        'ERR_OMS_BACKUP_CORRUPT',
        `backup ${m.id} is corrupt: ${f.name} has ${bytes} bytes and SHA-256 ${sha.slice(0, 12)}…, the manifest says ${f.bytes} bytes and ${f.sha256.slice(0, 12)}…; it is not restored`,
      );
    }
  }
  if (!dataKey) return;
  for (const f of m.files) {
    for await (const _ of decrypt(await storage.get(`${m.id}/${f.name}`, { signal }), dataKey, f.name)) {
      throwIfAborted(signal, 'reading the archive');
    }
  }
}

/** Unwraps the data key, checks the whole archive, then hands out readers of the plain files. */
export async function restoreContext(
  storage: BackupStorage,
  key: KeyConfig | undefined,
  m: Manifest,
  signal: AbortSignal,
): Promise<RestoreContext> {
  const dataKey = m.encryption ? unwrapKey(key, m.id, m.encryption) : undefined;
  await checkArchive(storage, m, dataKey, signal);
  return {
    signal,
    manifest: m,
    async *read(name) {
      const src = await storage.get(`${m.id}/${name}`, { signal });
      yield* dataKey ? decrypt(src, dataKey, name) : src;
    },
  };
}
