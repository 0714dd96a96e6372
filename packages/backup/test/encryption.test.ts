import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decrypt, encrypt } from '../src/encryption.js';
import { backupManager, fileStorage, isOmsBackupError } from '../src/index.js';
import { memorySource } from './fixtures/memory-source.js';

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'oms-backup-enc-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function* from(...chunks: Buffer[]) {
  for (const c of chunks) yield c;
}
async function collect(src: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of src) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}
const codeOf = async (p: Promise<unknown>) => {
  try {
    await p;
  } catch (e) {
    if (isOmsBackupError(e)) return e.code;
    throw e;
  }
  throw new Error('expected a rejection');
};

describe('chunked AES-256-GCM', () => {
  const key = randomBytes(32);
  const plain = randomBytes(5000);

  it('round-trips any chunking, including empty input', async () => {
    for (const size of [1024, 1500, 5000, 8192]) {
      const sealed = await collect(encrypt(from(plain.subarray(0, 7), plain.subarray(7)), key, 'f', size));
      expect((await collect(decrypt(from(sealed), key, 'f'))).equals(plain)).toBe(true);
    }
    const empty = await collect(encrypt(from(), key, 'f', 1024));
    expect((await collect(decrypt(from(empty), key, 'f'))).length).toBe(0);
  });

  it('rejects a flipped bit, a truncation, a dropped chunk, another file name and a wrong key', async () => {
    const sealed = await collect(encrypt(from(plain), key, 'f', 1024));
    const flipped = Buffer.from(sealed);
    flipped[100] = (flipped[100] as number) ^ 1;
    const frame = 1 + 4 + 12 + 1024 + 16;
    const dropped = Buffer.concat([sealed.subarray(0, 8), sealed.subarray(8 + frame)]);
    const cases: [Buffer, Buffer, string][] = [
      [flipped, key, 'f'],
      [sealed.subarray(0, sealed.length - 1), key, 'f'],
      [sealed.subarray(0, 8 + 2 * frame), key, 'f'],
      [dropped, key, 'f'],
      [sealed, key, 'g'],
      [sealed, randomBytes(32), 'f'],
    ];
    for (const [bytes, k, name] of cases) {
      expect(await codeOf(collect(decrypt(from(bytes), k, name)))).toBe('ERR_OMS_BACKUP_DECRYPT');
    }
  });
});

describe('encrypted backups', () => {
  const key = randomBytes(32);
  const setup = () => {
    const dir = tmp();
    const make = (k: Buffer) =>
      backupManager({
        source: memorySource(),
        storage: fileStorage(dir),
        encryption: { key: k, keyId: 'k1' },
      });
    return { dir, backups: make(key), make };
  };

  it('stores no plaintext and verifies with the right key', async () => {
    const { dir, backups } = setup();
    const m = await backups.create();
    expect(m.encryption).toMatchObject({ algorithm: 'aes-256-gcm', keyId: 'k1' });
    const stored = readFileSync(join(dir, m.id, 'archive.json'));
    expect(stored.includes(Buffer.from('"a"'))).toBe(false);
    expect(readFileSync(join(dir, m.id, 'manifest.json'), 'utf8')).not.toContain(key.toString('base64'));
    await backups.verify(m.id);
  });

  it('a wrong key fails verify and restore with ERR_OMS_BACKUP_DECRYPT', async () => {
    const { backups, make } = setup();
    const m = await backups.create();
    const wrong = make(randomBytes(32));
    expect(await codeOf(wrong.verify(m.id))).toBe('ERR_OMS_BACKUP_DECRYPT');
    expect(await codeOf(wrong.restore(m.id))).toBe('ERR_OMS_BACKUP_DECRYPT');
  });

  it('tampering that also fixes the manifest SHA-256 still fails authentication', async () => {
    const { dir, backups } = setup();
    const m = await backups.create();
    const file = join(dir, m.id, 'archive.json');
    const bytes = readFileSync(file);
    bytes[bytes.length - 20] = (bytes[bytes.length - 20] as number) ^ 0x80;
    writeFileSync(file, bytes);
    const { createHash } = await import('node:crypto');
    const mf = JSON.parse(readFileSync(join(dir, m.id, 'manifest.json'), 'utf8'));
    mf.files[0].sha256 = createHash('sha256').update(bytes).digest('hex');
    mf.sha256 = mf.files[0].sha256;
    writeFileSync(join(dir, m.id, 'manifest.json'), JSON.stringify(mf));
    expect(await codeOf(backups.verify(m.id))).toBe('ERR_OMS_BACKUP_DECRYPT');
    expect(await codeOf(backups.restore(m.id))).toBe('ERR_OMS_BACKUP_DECRYPT');
  });

  it('rotates the key by re-wrapping: the new key verifies, the old one no longer does', async () => {
    const { backups, make } = setup();
    const m = await backups.create();
    const next = randomBytes(32);
    const archiveSha = m.sha256;
    const rewrapped = await backups.rewrap(m.id, { key: next, keyId: 'k2' });
    expect(rewrapped.encryption?.keyId).toBe('k2');
    expect(rewrapped.sha256).toBe(archiveSha);
    await make(next).verify(m.id);
    expect(await codeOf(backups.verify(m.id))).toBe('ERR_OMS_BACKUP_DECRYPT');
  });

  it('an encrypted backup without a key fails with a message naming the key id', async () => {
    const { dir, backups } = setup();
    const m = await backups.create();
    const plain = backupManager({ source: memorySource(), storage: fileStorage(dir) });
    await expect(plain.verify(m.id)).rejects.toThrow(/encrypted \(key id "k1"\)/);
  });
});
