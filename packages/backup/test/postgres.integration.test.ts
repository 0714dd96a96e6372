import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { usePostgres } from '@oms/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tableChecksums } from '../src/checksums.js';
import { backupManager, fileStorage, isOmsBackupError } from '../src/index.js';
import { postgresSource } from '../src/postgres/index.js';
import { freshDatabase } from './fixtures/databases.js';
import { appQueries, seed } from './fixtures/seed.js';

const db = usePostgres();
// Dumps and restores of a 20 MB database on a loaded 2-core machine; the bound is for a stuck test, not speed.
const HEAVY = 300_000;
const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'oms-backup-test-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function checksumsOf(url: string) {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await tableChecksums(c);
  } finally {
    await c.end();
  }
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

beforeAll(async () => {
  const pool = db.pool({ max: 1 });
  await seed(pool, 30_000);
  const size = Number((await pool.query('select pg_database_size(current_database()) as b')).rows[0].b);
  // The round trip is meant to move a database of about 20 MB, not a toy.
  expect(size).toBeGreaterThan(18 * 2 ** 20);
}, HEAVY);

describe.each(['custom', 'directory'] as const)('postgresSource (%s format)', (format) => {
  it('creates, verifies and restores a database with every kind of data, checksums matching', async () => {
    const backups = backupManager({
      source: postgresSource({ connectionString: db.url, format, jobs: 2 }),
      storage: fileStorage(tmp()),
    });
    const m = await backups.create();
    expect(m.format).toBe(format);
    expect(m.database).toMatch(/^oms_t_/);
    expect(m.bytes).toBeGreaterThan(0);
    expect(m.sha256).toMatch(/^[0-9a-f]{64}$/);
    const byName = Object.fromEntries(m.tables.map((t) => [`${t.schema}.${t.name}`, t]));
    expect(byName['public.customers']?.rows).toBe(30_000);
    expect(byName['public.events_2025']?.rows).toBeGreaterThan(0);
    expect(byName['public.events_2026']?.rows).toBeGreaterThan(0);
    expect(byName['Billing.Invoice']?.rows).toBe(500);
    expect(byName['public.order_no']?.kind).toBe('sequence');
    expect(byName['pg_catalog.pg_largeobject']?.rows).toBe(3);
    expect(m.tables).toEqual(await checksumsOf(db.url));

    const r = await backups.verify(m.id, { scratchUrl: db.url });
    expect(r.tables).toEqual(m.tables);
    const after = await backups.get(m.id);
    expect(after.verification).toMatchObject({ ok: true });

    const target = await freshDatabase(db.url);
    try {
      await backups.restore(m.id, { targetUrl: target.url });
      expect(await checksumsOf(target.url)).toEqual(m.tables);
      const restored = new pg.Pool({ connectionString: target.url, max: 1 });
      try {
        expect(await appQueries(restored)).toEqual(await appQueries(db.pool({ max: 1 })));
      } finally {
        await restored.end();
      }
      // A second restore over the now non-empty database is refused unless clean is set.
      expect(await codeOf(backups.restore(m.id, { targetUrl: target.url }))).toBe(
        'ERR_OMS_BACKUP_TARGET_NOT_EMPTY',
      );
      await backups.restore(m.id, { targetUrl: target.url, clean: true });
      expect(await checksumsOf(target.url)).toEqual(m.tables);
    } finally {
      await target.drop();
    }
    expect((await backups.list()).map((b) => b.id)).toEqual([m.id]);
  });
});

describe('corruption', () => {
  let dir: string;
  let backups: ReturnType<typeof backupManager>;
  let id: string;
  beforeAll(async () => {
    dir = tmp();
    backups = backupManager({
      source: postgresSource({ connectionString: db.url }),
      storage: fileStorage(dir),
    });
    id = (await backups.create()).id;
  }, HEAVY);

  it(
    'detects one flipped byte by SHA-256: verify fails and restore refuses without touching the target',
    async () => {
      const file = join(dir, id, 'archive.dump');
      const good = readFileSync(file);
      const bad = Buffer.from(good);
      bad[Math.floor(bad.length / 2)] = (bad[Math.floor(bad.length / 2)] as number) ^ 0x01;
      writeFileSync(file, bad);
      try {
        expect(await codeOf(backups.verify(id, { scratchUrl: db.url }))).toBe('ERR_OMS_BACKUP_CORRUPT');
        expect((await backups.get(id)).verification).toMatchObject({
          ok: false,
          code: 'ERR_OMS_BACKUP_CORRUPT',
        });
        const target = await freshDatabase(db.url);
        try {
          expect(await codeOf(backups.restore(id, { targetUrl: target.url }))).toBe('ERR_OMS_BACKUP_CORRUPT');
          expect(await checksumsOf(target.url)).toEqual([]);
        } finally {
          await target.drop();
        }
      } finally {
        writeFileSync(file, good);
      }
      await backups.verify(id, { scratchUrl: db.url });
    },
    HEAVY,
  );

  it(
    'an encrypted backup verifies with its key; the wrong key fails verify and restore with ERR_OMS_BACKUP_DECRYPT',
    async () => {
      const edir = tmp();
      const key = randomBytes(32);
      const make = (k: Buffer) =>
        backupManager({
          source: postgresSource({ connectionString: db.url, format: 'directory' }),
          storage: fileStorage(edir),
          encryption: { key: k },
        });
      const m = await make(key).create();
      expect(m.files.length).toBeGreaterThan(1);
      await make(key).verify(m.id, { scratchUrl: db.url });
      const wrong = make(randomBytes(32));
      expect(await codeOf(wrong.verify(m.id, { scratchUrl: db.url }))).toBe('ERR_OMS_BACKUP_DECRYPT');
      const target = await freshDatabase(db.url);
      try {
        expect(await codeOf(wrong.restore(m.id, { targetUrl: target.url }))).toBe('ERR_OMS_BACKUP_DECRYPT');
        expect(await checksumsOf(target.url)).toEqual([]);
        await make(key).restore(m.id, { targetUrl: target.url });
        expect(await checksumsOf(target.url)).toEqual(m.tables);
      } finally {
        await target.drop();
      }
    },
    HEAVY,
  );

  it(
    'detects a truncated archive',
    async () => {
      const file = join(dir, id, 'archive.dump');
      const good = readFileSync(file);
      writeFileSync(file, good.subarray(0, good.length - 100));
      try {
        expect(await codeOf(backups.verify(id, { scratchUrl: db.url }))).toBe('ERR_OMS_BACKUP_CORRUPT');
        const target = await freshDatabase(db.url);
        try {
          expect(await codeOf(backups.restore(id, { targetUrl: target.url }))).toBe('ERR_OMS_BACKUP_CORRUPT');
        } finally {
          await target.drop();
        }
      } finally {
        writeFileSync(file, good);
      }
    },
    HEAVY,
  );

  it(
    'fails verify with ERR_OMS_BACKUP_VERIFY_MISMATCH when the restored data differs from the manifest',
    async () => {
      const file = join(dir, id, 'manifest.json');
      const good = readFileSync(file, 'utf8');
      const m = JSON.parse(good);
      const t = m.tables.find((x: { name: string }) => x.name === 'customers');
      t.rows += 1;
      writeFileSync(file, JSON.stringify(m));
      try {
        expect(await codeOf(backups.verify(id, { scratchUrl: db.url }))).toBe(
          'ERR_OMS_BACKUP_VERIFY_MISMATCH',
        );
      } finally {
        writeFileSync(file, good);
      }
    },
    HEAVY,
  );
});
