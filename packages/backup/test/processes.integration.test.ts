import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { forkWorkers, until, usePostgres } from '@oms/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backupManager, fileStorage } from '../src/index.js';
import { postgresSource } from '../src/postgres/index.js';
import { fakeTool } from './fixtures/tools.js';

const db = usePostgres();
// Real pg_dump/pg_restore runs and child processes on a loaded 2-core machine; the bound is for a stuck test.
const HEAVY = 300_000;
const script = fileURLToPath(new URL('./fixtures/run.mjs', import.meta.url));
const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'oms-backup-proc-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function run(args: string[]): {
  child: ChildProcess;
  done: Promise<{ code: number | null; out: string; err: string }>;
} {
  // A script held open by a timer that should have been unref'd is killed here, and its null exit code fails the test.
  const child = spawn(process.execPath, [script, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 120_000,
  });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d) => {
    out += d;
  });
  child.stderr?.on('data', (d) => {
    err += d;
  });
  const done = new Promise<{ code: number | null; out: string; err: string }>((resolve) =>
    child.on('close', (code) => resolve({ code, out, err })),
  );
  return { child, done };
}

const files = (dir: string) => (existsSync(dir) ? (readdirSync(dir, { recursive: true }) as string[]) : []);

beforeAll(async () => {
  await db
    .pool({ max: 1 })
    .query(
      'create table t (id int primary key, v text); insert into t select g, md5(g::text) from generate_series(1, 2000) g',
    );
}, HEAVY);

describe('in a bare script (nothing else alive)', () => {
  it(
    'await create() and verify() settle and the process exits 0',
    async () => {
      const dir = tmp();
      const c = await run(['create', dir, db.url]).done;
      expect(c.err).toBe('');
      expect(c.code).toBe(0);
      expect(JSON.parse(c.out).id).toMatch(/^\d{8}T\d{9}Z-[0-9a-f]{8}$/);
      const v = await run(['verify', dir, db.url]).done;
      expect(v.err).toBe('');
      expect(v.code).toBe(0);
      expect(JSON.parse(v.out)).toMatchObject({ tables: 1 });
    },
    HEAVY,
  );

  it(
    'a schedule never holds the process open',
    async () => {
      const dir = tmp();
      const r = await run(['schedule', dir, db.url]).done;
      expect(r.code).toBe(0);
      expect(r.out).toBe('scheduled');
    },
    HEAVY,
  );
});

describe('crash mid-backup', () => {
  it(
    'SIGKILL during create leaves no listed backup and no manifest; the next run succeeds',
    async () => {
      const tool = fakeTool(
        'if [ "$1" = "--version" ]; then exec "$REAL" --version; fi\necho $$ > "$DIR/pid"\nhead -c 500000 /dev/urandom\nexec sleep 60',
      );
      dirs.push(tool.dir);
      const dir = tmp();
      const r = run(['create', dir, db.url, tool.path]);
      await until(() => files(dir).some((f) => f.includes('.tmp-')), {
        timeoutMs: 60_000,
        what: 'the archive temp file',
      });
      r.child.kill('SIGKILL');
      const exit = await r.done;
      expect(exit.code).toBeNull();
      try {
        process.kill(Number(readFileSync(join(tool.dir, 'pid'), 'utf8')), 'SIGKILL');
      } catch {}
      expect(files(dir).some((f) => f.endsWith('manifest.json'))).toBe(false);
      const backups = backupManager({
        source: postgresSource({ connectionString: db.url }),
        storage: fileStorage(dir),
      });
      expect(await backups.list()).toEqual([]);
      const m = await backups.create();
      expect((await backups.list()).map((b) => b.id)).toEqual([m.id]);
      await backups.verify(m.id, { scratchUrl: db.url });

      // Once the leftovers are older than incompleteAfterMs, prune removes them and keeps the complete backup.
      const crashed = files(dir).find((f) => f.includes('.tmp-')) as string;
      const old = new Date(Date.now() - 3_600_000);
      utimesSync(join(dir, crashed), old, old);
      const later = backupManager({
        source: postgresSource({ connectionString: db.url }),
        storage: fileStorage(dir),
        clock: { now: () => Date.now() + 3_600_000, setTimeout, clearTimeout },
        retention: { keepLast: 5, incompleteAfterMs: 600_000 },
      });
      // A crash between the archive's rename and the manifest's leaves a complete archive without a manifest.
      const m2 = await backups.create();
      rmSync(join(dir, m2.id, 'manifest.json'));
      expect((await backups.list()).map((b) => b.id)).toEqual([m.id]);
      const dry = await later.prune({ dryRun: true });
      expect(dry.incomplete).toEqual([{ id: m2.id }]);
      expect(files(dir).some((f) => f.includes('.tmp-'))).toBe(true);
      expect(crashed).toBeDefined();
      const plan = await later.prune();
      expect(plan.keep.map((k) => k.id)).toEqual([m.id]);
      expect(files(dir).filter((f) => !f.startsWith(m.id))).toEqual([]);
    },
    HEAVY,
  );
});

describe('two schedulers in two processes with a shared lock', () => {
  it(
    'run at most one backup per period between them',
    async () => {
      const dir = tmp();
      const everyMs = 4_000;
      const results = await forkWorkers<
        { url: string; dir: string; everyMs: number; runMs: number },
        { created: number; skipped: number }
      >(2, fileURLToPath(new URL('./fixtures/scheduler-worker.ts', import.meta.url)), {
        url: db.url,
        dir,
        everyMs,
        runMs: 4 * everyMs,
      });
      const backups = backupManager({
        source: postgresSource({ connectionString: db.url }),
        storage: fileStorage(dir),
      });
      const list = await backups.list();
      const perPeriod = new Map<number, number>();
      for (const m of list) {
        const p = Math.floor(Date.parse(m.time) / everyMs);
        perPeriod.set(p, (perPeriod.get(p) ?? 0) + 1);
      }
      expect(
        [...perPeriod.values()].every((n) => n === 1),
        `backups per period: ${JSON.stringify([...perPeriod])}`,
      ).toBe(true);
      expect(results.reduce((n, r) => n + r.created, 0)).toBe(list.length);
      expect(list.length).toBeGreaterThanOrEqual(2);
      // The other instance saw the lock taken or the period done at least once.
      expect(results.reduce((n, r) => n + r.skipped, 0)).toBeGreaterThan(0);
    },
    HEAVY,
  );
});
