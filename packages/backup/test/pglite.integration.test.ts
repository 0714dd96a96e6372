import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tableChecksums } from '../src/checksums.js';
import { backupManager, fileStorage, isOmsBackupError } from '../src/index.js';
import { pgliteSource } from '../src/pglite/index.js';

// Each PGlite instance (the clone, the scratch, the target) is a WASM PostgreSQL starting up: seconds of CPU each,
// many more on a loaded 2-core machine. The bound is for a stuck test, not a speed claim.
const HEAVY = 300_000;
const dir = mkdtempSync(join(tmpdir(), 'oms-backup-pglite-'));
const live = new PGlite();
const opened: PGlite[] = [live];
afterAll(async () => {
  for (const db of opened) await db.close().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});

const queries = async (db: PGlite) => {
  const q = async (sql: string) => (await db.query(sql)).rows;
  return [
    await q(`select count(*)::int as n, sum(balance)::text as total from customers where 'vip' = any(tags)`),
    await q(`select prefs->>'lang' as lang, count(*)::int as n from customers group by 1`),
    await q(`select count(*)::int as n from events where at >= '2026-01-01'`),
    await q(`select md5(avatar) as h from customers where id = 7`),
  ];
};

beforeAll(async () => {
  await live.exec(`
    create sequence order_no start 1000;
    create table customers (id bigint primary key, name text not null, tags text[], balance numeric(14, 4),
                            created_at timestamptz not null, avatar bytea, prefs jsonb);
    create table events (id bigserial, at timestamptz not null, kind text, body jsonb) partition by range (at);
    create table events_2025 partition of events for values from ('2025-01-01') to ('2026-01-01');
    create table events_2026 partition of events for values from ('2026-01-01') to ('2027-01-01');
    insert into customers
      select g, 'customer ' || g, array['t' || (g % 7), 'vip'], (g * 12.3456)::numeric(14, 4),
             timestamptz '2025-06-01 12:00:00+02' + g * interval '1 minute', decode(md5(g::text), 'hex'),
             jsonb_build_object('lang', 'en', 'n', g)
      from generate_series(1, 3000) g;
    insert into events (at, kind, body)
      select timestamptz '2025-11-01' + g * interval '17 minutes', 'k' || (g % 5), jsonb_build_object('i', g)
      from generate_series(1, 3000) g;
    select nextval('order_no') from generate_series(1, 5);
  `);
}, HEAVY);

describe('pgliteSource', () => {
  it(
    'creates, verifies into a fresh PGlite and restores, checksums matching; the live database stays writable',
    async () => {
      const backups = backupManager({ source: pgliteSource({ db: live }), storage: fileStorage(dir) });
      const m = await backups.create();
      expect(m.source).toBe('pglite');
      expect(m.format).toBe('plain');
      const names = m.tables.map((t) => `${t.kind}:${t.name}`);
      expect(names).toEqual(
        expect.arrayContaining([
          'table:customers',
          'table:events_2025',
          'table:events_2026',
          'sequence:order_no',
        ]),
      );
      expect(m.tables.find((t) => t.name === 'customers')?.rows).toBe(3000);

      // The pitfall: pg_dump leaves its instance read-only. The live database must take writes after a backup.
      await live.exec(`insert into customers values (99999, 'after', null, 0, now(), null, null)`);
      await live.exec(`delete from customers where id = 99999`);

      const r = await backups.verify(m.id);
      expect(r.tables).toEqual(m.tables);

      const target = new PGlite();
      opened.push(target);
      await backups.restore(m.id, { target });
      expect(await tableChecksums(target)).toEqual(m.tables);
      // Unqualified names resolve in the restored session: search_path was reset after the dump's own ''.
      expect(await queries(target)).toEqual(await queries(live));
      // A clone starts like a crash-recovered copy: a sequence may be ahead of the live one (up to 32 values, as after
      // a crash), never behind, so restored ids never repeat.
      const seq = async (db: PGlite) =>
        (await db.query<{ v: number }>('select last_value::int as v from order_no')).rows[0]?.v ?? 0;
      expect(await seq(target)).toBeGreaterThanOrEqual(await seq(live));
      await target.exec(`insert into customers values (100000, 'new', null, 0, now(), null, null)`);
      await expect(backups.restore(m.id, { target })).rejects.toMatchObject({
        code: 'ERR_OMS_BACKUP_TARGET_NOT_EMPTY',
      });
    },
    HEAVY,
  );

  it(
    'a flipped byte fails verify with ERR_OMS_BACKUP_CORRUPT and restore refuses',
    async () => {
      const backups = backupManager({ source: pgliteSource({ db: live }), storage: fileStorage(dir) });
      const m = await backups.create();
      const file = join(dir, m.id, 'dump.sql');
      const bytes = readFileSync(file);
      bytes[200] = (bytes[200] as number) ^ 1;
      writeFileSync(file, bytes);
      const code = await backups.verify(m.id).then(
        () => 'resolved',
        (e: unknown) => (isOmsBackupError(e) ? e.code : String(e)),
      );
      expect(code).toBe('ERR_OMS_BACKUP_CORRUPT');
      const target = new PGlite();
      opened.push(target);
      await expect(backups.restore(m.id, { target })).rejects.toMatchObject({
        code: 'ERR_OMS_BACKUP_CORRUPT',
      });
      expect(await tableChecksums(target)).toEqual([]);
    },
    HEAVY,
  );
});
