import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { until, usePostgres } from '@oms/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backupManager, fileStorage, isOmsBackupError, type OmsBackupError } from '../src/index.js';
import { postgresSource } from '../src/postgres/index.js';
import { fakeTool } from './fixtures/tools.js';

const db = usePostgres();
const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'oms-backup-test-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function rejection(p: Promise<unknown>): Promise<OmsBackupError> {
  try {
    await p;
  } catch (e) {
    if (isOmsBackupError(e)) return e;
    throw e;
  }
  throw new Error('expected a rejection');
}

function filesUnder(dir: string): string[] {
  return existsSync(dir) ? (readdirSync(dir, { recursive: true }) as string[]) : [];
}

beforeAll(async () => {
  await db
    .pool({ max: 1 })
    .query('create table t (id int primary key, v text); insert into t values (1, $$a$$)');
});

describe('bad input gets a typed OmsBackupError with an actionable message', () => {
  it('a connection string that is not a postgres:// URL fails at construction', () => {
    expect(() => postgresSource({ connectionString: 'mysql://x@localhost/db' })).toThrow(
      expect.objectContaining({
        code: 'ERR_OMS_BACKUP_INVALID_OPTION',
        message: expect.stringMatching(/postgres:\/\//),
      }),
    );
  });

  it('an unreachable server: ERR_OMS_BACKUP_CONNECTION, the URL shown without its password', async () => {
    const dir = tmp();
    const backups = backupManager({
      source: postgresSource({ connectionString: 'postgres://postgres:hunter2@127.0.0.1:1/nope' }),
      storage: fileStorage(dir),
    });
    const e = await rejection(backups.create());
    expect(e.code).toBe('ERR_OMS_BACKUP_CONNECTION');
    expect(e.message).toMatch(/127\.0\.0\.1:1/);
    expect(e.message).not.toMatch(/hunter2/);
    expect(await backups.list()).toEqual([]);
    expect(filesUnder(dir)).toEqual([]);
  });

  it('a missing pg_dump: ERR_OMS_BACKUP_BINARY_NOT_FOUND naming the path and the package', async () => {
    const backups = backupManager({
      source: postgresSource({ connectionString: db.url, pgDumpPath: '/nonexistent/bin/pg_dump' }),
      storage: fileStorage(tmp()),
    });
    const e = await rejection(backups.create());
    expect(e.code).toBe('ERR_OMS_BACKUP_BINARY_NOT_FOUND');
    expect(e.message).toMatch(/\/nonexistent\/bin\/pg_dump.*postgresql-client/);
  });

  it('a pg_dump older than the server: ERR_OMS_BACKUP_VERSION_MISMATCH naming both majors', async () => {
    const tool = fakeTool('echo "pg_dump (PostgreSQL) 9.6.24"');
    dirs.push(tool.dir);
    const backups = backupManager({
      source: postgresSource({ connectionString: db.url, pgDumpPath: tool.path }),
      storage: fileStorage(tmp()),
    });
    const e = await rejection(backups.create());
    expect(e.code).toBe('ERR_OMS_BACKUP_VERSION_MISMATCH');
    expect(e.message).toMatch(/pg_dump 9 .*older than the server \(PostgreSQL \d+\)/);
    expect(await backups.list()).toEqual([]);
  });

  it('an unwritable directory: ERR_OMS_BACKUP_STORAGE, and the dump is stopped', async () => {
    const file = join(tmp(), 'not-a-dir');
    writeFileSync(file, 'x');
    const backups = backupManager({
      source: postgresSource({ connectionString: db.url }),
      storage: fileStorage(join(file, 'backups')),
    });
    const e = await rejection(backups.create());
    expect(e.code).toBe('ERR_OMS_BACKUP_STORAGE');
    expect(e.message).toMatch(/writable/);
  });

  it('an unknown backup id: ERR_OMS_BACKUP_NOT_FOUND for get, verify, restore', async () => {
    const backups = backupManager({
      source: postgresSource({ connectionString: db.url }),
      storage: fileStorage(tmp()),
    });
    for (const call of [
      () => backups.get('20990101T000000000Z-deadbeef'),
      () => backups.verify('20990101T000000000Z-deadbeef', { scratchUrl: db.url }),
      () => backups.restore('../../etc', { targetUrl: db.url }),
    ]) {
      const e = await rejection(call());
      expect(e.code).toBe('ERR_OMS_BACKUP_NOT_FOUND');
      expect(e.message).toMatch(/list/);
    }
  });

  it('bad manager options fail at construction', () => {
    const source = postgresSource({ connectionString: db.url });
    const storage = fileStorage(tmp());
    const bad = [
      { source, storage, rpoMs: -1 },
      { source, storage, encryption: { key: Buffer.alloc(16) } },
      { source, storage, retention: { daily: 1.5 } },
      { source, storage, retention: { daily: 1, timeZone: 'Mars/Olympus' } },
      { source, storage, lock: {} },
    ];
    for (const o of bad) {
      expect(() => backupManager(o as never)).toThrow(
        expect.objectContaining({ code: 'ERR_OMS_BACKUP_INVALID_OPTION' }),
      );
    }
  });
});

describe('postgresSource', () => {
  it('passes the password to pg_dump through PGPASSWORD, never argv', async () => {
    const role = `oms_pw_${randomBytes(3).toString('hex')}`;
    const secret = `S3cret-${randomBytes(4).toString('hex')}`;
    const admin = db.pool({ max: 1 });
    await admin.query(`create role ${role} login superuser password '${secret}'`);
    try {
      const tool = fakeTool(
        'printf "%s\\n" "$@" >> "$DIR/argv"\n[ -n "$PGPASSWORD" ] && echo yes > "$DIR/env"\nexec "$REAL" "$@"',
      );
      dirs.push(tool.dir);
      const u = new URL(db.url);
      u.username = role;
      u.password = secret;
      const backups = backupManager({
        source: postgresSource({ connectionString: u.toString(), pgDumpPath: tool.path }),
        storage: fileStorage(tmp()),
      });
      const m = await backups.create();
      expect(m.tables.map((t) => t.name)).toEqual(['t']);
      const argv = readFileSync(join(tool.dir, 'argv'), 'utf8');
      expect(argv).toMatch(/--snapshot=/);
      expect(argv).toMatch(new RegExp(`--dbname=postgres(ql)?://${role}@`));
      expect(argv).not.toContain(secret);
      expect(readFileSync(join(tool.dir, 'env'), 'utf8').trim()).toBe('yes');
      expect(JSON.stringify(m)).not.toContain(secret);
    } finally {
      await admin.query(`drop role ${role}`);
    }
  });

  it('abort kills pg_dump and leaves no partial artifact', async () => {
    const tool = fakeTool(
      'if [ "$1" = "--version" ]; then exec "$REAL" --version; fi\necho $$ > "$DIR/pid"\nhead -c 300000 /dev/urandom\nexec sleep 60',
    );
    dirs.push(tool.dir);
    const dir = tmp();
    const backups = backupManager({
      source: postgresSource({ connectionString: db.url, pgDumpPath: tool.path }),
      storage: fileStorage(dir),
    });
    const ac = new AbortController();
    const p = rejection(backups.create({ signal: ac.signal }));
    // the temp file can exist before the tool has started: wait for both
    await until(() => filesUnder(dir).some((f) => f.includes('.tmp-')) && existsSync(join(tool.dir, 'pid')), {
      timeoutMs: 30_000,
      what: 'the archive temp file and pg_dump to start',
    });
    const pid = Number(readFileSync(join(tool.dir, 'pid'), 'utf8'));
    ac.abort();
    const e = await p;
    expect(e.code).toBe('ERR_OMS_BACKUP_ABORTED');
    expect(filesUnder(dir)).toEqual([]);
    await until(
      () => {
        try {
          process.kill(pid, 0);
          return false;
        } catch {
          return true;
        }
      },
      { timeoutMs: 10_000, what: 'pg_dump to be killed' },
    );
    expect(await backups.list()).toEqual([]);
  });

  it('abort during verify kills pg_restore, drops the scratch database and records nothing', async () => {
    const tool = fakeTool(
      'printf "%s\\n" "$@" > "$DIR/argv"\necho $$ > "$DIR/pid"\nexec sleep 60',
      'pg_restore',
    );
    dirs.push(tool.dir);
    const backups = backupManager({
      source: postgresSource({ connectionString: db.url, pgRestorePath: tool.path }),
      storage: fileStorage(tmp()),
    });
    const m = await backups.create();
    const ac = new AbortController();
    const p = rejection(backups.verify(m.id, { scratchUrl: db.url, signal: ac.signal }));
    await until(() => existsSync(join(tool.dir, 'pid')), { timeoutMs: 60_000, what: 'pg_restore to start' });
    const scratch = /oms_backup_verify_[0-9a-f]+/.exec(readFileSync(join(tool.dir, 'argv'), 'utf8'))?.[0];
    expect(scratch).toBeDefined();
    ac.abort();
    expect((await p).code).toBe('ERR_OMS_BACKUP_ABORTED');
    const left = await db.pool({ max: 1 }).query('select 1 from pg_database where datname = $1', [scratch]);
    expect(left.rowCount).toBe(0);
    expect((await backups.get(m.id)).verification).toBeUndefined();
  });

  it('a backup whose archive file is missing fails verify with ERR_OMS_BACKUP_CORRUPT', async () => {
    const dir = tmp();
    const backups = backupManager({
      source: postgresSource({ connectionString: db.url }),
      storage: fileStorage(dir),
    });
    const m = await backups.create();
    rmSync(join(dir, m.id, 'archive.dump'));
    const e = await rejection(backups.verify(m.id, { scratchUrl: db.url }));
    expect(e.code).toBe('ERR_OMS_BACKUP_CORRUPT');
    expect(e.message).toMatch(/archive\.dump is missing/);
  });

  it('verify without scratchUrl is an invalid option, not a failed backup', async () => {
    const backups = backupManager({
      source: postgresSource({ connectionString: db.url }),
      storage: fileStorage(tmp()),
    });
    const m = await backups.create();
    const e = await rejection(backups.verify(m.id));
    expect(e.code).toBe('ERR_OMS_BACKUP_INVALID_OPTION');
    expect((await backups.get(m.id)).verification).toBeUndefined();
  });
});
