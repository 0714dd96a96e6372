import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { tableChecksums } from '../checksums.js';
import { abortError, OmsBackupError } from '../errors.js';
import type {
  BackupSource,
  DumpContext,
  DumpInfo,
  RestoreContext,
  RestoreTarget,
  TableChecksum,
} from '../types.js';
import { invalid, v } from '../validate.js';
import { findTool, toolMajor } from './binaries.js';
import { type ConnInfo, parseConn, toolEnv } from './conninfo.js';
import { runTool } from './tool.js';

/**
 * Options of `postgresSource`.
 *
 * @example
 * import type { PostgresSourceOptions } from '@oms/backup/postgres';
 * const o: PostgresSourceOptions = { connectionString: 'postgres://app@localhost/app', format: 'directory', jobs: 4 };
 */
export interface PostgresSourceOptions {
  /** A postgres:// URL. Its password reaches pg_dump through PGPASSWORD, never argv; .pgpass works too. */
  connectionString: string;
  /** `custom` (default; one streamed file) or `directory` (several files, dumped and restored with `jobs`). */
  format?: 'custom' | 'directory';
  /** Parallel jobs for the directory format. Default 2. */
  jobs?: number;
  /** Path of pg_dump. Default: the newest /usr/lib/postgresql/<major>/bin/pg_dump, then PATH. */
  pgDumpPath?: string;
  /** Path of pg_restore, found the same way. */
  pgRestorePath?: string;
  /** Scratch directory for the directory format. Default the OS temp dir. */
  tmpDir?: string;
}

const ARCHIVE = 'archive.dump';

async function connect(c: ConnInfo, signal: AbortSignal): Promise<pg.Client> {
  let mod: typeof import('pg');
  try {
    mod = await import('pg');
  } catch (e) {
    throw new OmsBackupError(
      'ERR_OMS_BACKUP_MISSING_PEER',
      "postgresSource needs the 'pg' package: npm i pg",
      false,
      { cause: e },
    );
  }
  const Client = (mod.default ?? mod).Client;
  const client = new Client({ connectionString: c.url, connectionTimeoutMillis: 30_000 });
  client.on('error', () => {});
  const onAbort = () => void client.end().catch(() => {});
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    await client.connect();
  } catch (e) {
    await client.end().catch(() => {});
    if (signal.aborted) throw abortError(signal, 'connecting');
    throw new OmsBackupError(
      'ERR_OMS_BACKUP_CONNECTION',
      `cannot connect to ${c.safeUrl}: ${(e as Error).message}. Check host, port, database, user and password (PGPASSWORD or ~/.pgpass)`,
      true,
      { cause: e },
    );
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
  return client;
}

/** Runs `fn` on a fresh connection; aborting the signal ends the connection, which fails the query. */
async function withClient<T>(
  c: ConnInfo,
  signal: AbortSignal,
  fn: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const client = await connect(c, signal);
  const onAbort = () => void client.end().catch(() => {});
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    return await fn(client);
  } catch (e) {
    if (signal.aborted) throw abortError(signal, 'the query');
    throw e;
  } finally {
    signal.removeEventListener('abort', onAbort);
    await client.end().catch(() => {});
  }
}

const q = (s: string) => `"${s.replace(/"/g, '""')}"`;

/**
 * Backs up a PostgreSQL database with `pg_dump` as a child process. The archive streams straight to storage, and
 * row counts and content checksums are computed in SQL inside the dump's exported snapshot, so they describe
 * exactly what the archive holds. `verify` and `restore` use `pg_restore`.
 *
 * @example
 * import { backupManager, fileStorage } from '@oms/backup';
 * import { postgresSource } from '@oms/backup/postgres';
 * const backups = backupManager({
 *   source: postgresSource({ connectionString: 'postgres://app@localhost:5432/app' }),
 *   storage: fileStorage('/var/backups/app'),
 * });
 */
export function postgresSource(opts: PostgresSourceOptions): BackupSource {
  if (typeof opts !== 'object' || opts === null) throw invalid('postgresSource needs { connectionString }');
  const conn = parseConn('connectionString', opts.connectionString);
  const format = opts.format ?? 'custom';
  if (format !== 'custom' && format !== 'directory') {
    throw invalid(`format must be 'custom' or 'directory' (got ${JSON.stringify(format)})`);
  }
  const jobs = opts.jobs === undefined ? 2 : v.integer('jobs', opts.jobs, { min: 1, max: 64 });
  const base = opts.tmpDir ?? tmpdir();

  async function dump(ctx: DumpContext): Promise<DumpInfo> {
    const { signal } = ctx;
    const pgDump = findTool('pg_dump', opts.pgDumpPath);
    const dumpMajor = await toolMajor(pgDump, signal);
    return withClient(conn, signal, async (client) => {
      const info = (
        await client.query(
          "select current_setting('server_version_num')::int as num, current_setting('server_version') as version, current_database() as db",
        )
      ).rows[0] as { num: number; version: string; db: string };
      const serverMajor = Math.floor(info.num / 10_000);
      if (dumpMajor < serverMajor) {
        throw new OmsBackupError(
          'ERR_OMS_BACKUP_VERSION_MISMATCH',
          `pg_dump ${dumpMajor} (${pgDump}) is older than the server (PostgreSQL ${serverMajor}); pg_dump cannot dump a newer server. Install postgresql-client-${serverMajor} or pass pgDumpPath`,
        );
      }
      // The checksums run in the transaction that exported the snapshot pg_dump uses: both see the same data.
      await client.query('begin isolation level repeatable read read only');
      const snapshot = (await client.query('select pg_catalog.pg_export_snapshot() as s')).rows[0]
        .s as string;
      // A checksum query that fails ends the snapshot's transaction, so pg_dump then fails too: its error is the
      // cause to report, not pg_dump's "could not import the requested snapshot".
      let sumsError: { e: unknown } | undefined;
      const sums = tableChecksums(client, { inTransaction: true });
      sums.catch((e: unknown) => {
        sumsError = { e };
      });
      const args = [
        `--format=${format}`,
        `--snapshot=${snapshot}`,
        '--no-password',
        `--dbname=${conn.safeUrl}`,
      ];
      const env = toolEnv(conn);
      try {
        await runDump(args, env);
      } catch (e) {
        // The failed query is seen here before pg_dump, a separate process, fails on its consequence.
        throw sumsError ? sumsError.e : e;
      }
      const tables = await sums;
      await client.query('commit');
      return { database: info.db, serverVersion: info.version, format, tables };
    });

    async function runDump(args: string[], env: NodeJS.ProcessEnv): Promise<void> {
      if (format === 'custom') {
        const run = runTool(pgDump, args, { env, signal, code: 'ERR_OMS_BACKUP_DUMP_FAILED', stdout: true });
        const stored = ctx.write(ARCHIVE, run.stdout as AsyncIterable<Uint8Array>);
        stored.catch(() => run.kill());
        // Wait for both, so nothing is still being written when the manager cleans up after a failure. A storage
        // failure is the cause when there is one (the tool was killed because of it).
        const [put, tool] = await Promise.allSettled([stored, run.done]);
        if (put.status === 'rejected') throw put.reason;
        if (tool.status === 'rejected') throw tool.reason;
      } else {
        const dir = await mkdtemp(join(base, 'oms-backup-'));
        try {
          const out = join(dir, 'dump');
          const run = runTool(pgDump, [...args, `--jobs=${jobs}`, `--file=${out}`], {
            env,
            signal,
            code: 'ERR_OMS_BACKUP_DUMP_FAILED',
          });
          await run.done;
          for (const name of (await readdir(out)).sort()) {
            await ctx.write(name, createReadStream(join(out, name)));
          }
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      }
    }
  }

  async function pgRestore(ctx: RestoreContext, target: ConnInfo, flags: string[]): Promise<void> {
    const { signal, manifest } = ctx;
    const bin = findTool('pg_restore', opts.pgRestorePath);
    const env = toolEnv(target);
    const common = ['--no-password', '--exit-on-error', `--dbname=${target.safeUrl}`, ...flags];
    if (manifest.format === 'custom') {
      const run = runTool(bin, ['--format=custom', '--single-transaction', ...common], {
        env,
        signal,
        code: 'ERR_OMS_BACKUP_RESTORE_FAILED',
        stdin: ctx.read(ARCHIVE),
      });
      await run.done;
      return;
    }
    const dir = await mkdtemp(join(base, 'oms-restore-'));
    try {
      for (const f of manifest.files) {
        await pipeline(ctx.read(f.name), createWriteStream(join(dir, f.name)), { signal });
      }
      const run = runTool(bin, ['--format=directory', `--jobs=${jobs}`, ...common, dir], {
        env,
        signal,
        code: 'ERR_OMS_BACKUP_RESTORE_FAILED',
      });
      await run.done;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  async function verify(ctx: RestoreContext, scratch: { scratchUrl?: string }): Promise<TableChecksum[]> {
    if (scratch.scratchUrl === undefined) {
      throw invalid(
        'verify needs { scratchUrl }: a postgres:// URL of a database on a server where this role may create databases',
      );
    }
    const admin = parseConn('scratchUrl', scratch.scratchUrl);
    const name = `oms_backup_verify_${randomBytes(6).toString('hex')}`;
    const { signal } = ctx;
    await withClient(admin, signal, (c) => c.query(`create database ${q(name)} template template0`));
    try {
      const target = admin.withDatabase(name);
      await pgRestore(ctx, target, ['--no-owner', '--no-privileges']);
      // Nothing else writes to the scratch database, so a second connection can hash tables at the same time.
      return await withClient(target, signal, (c) =>
        withClient(target, signal, (helper) => tableChecksums(c, { helpers: [helper] })),
      );
    } finally {
      // Drop even after an abort: a scratch database must never be left behind.
      await withClient(admin, new AbortController().signal, (c) =>
        c.query(`drop database if exists ${q(name)} with (force)`),
      ).catch(() => {});
    }
  }

  async function restore(ctx: RestoreContext, t: RestoreTarget): Promise<void> {
    if (t.targetUrl === undefined)
      throw invalid('restore needs { targetUrl }: a postgres:// URL of the target database');
    const target = parseConn('targetUrl', t.targetUrl);
    if (!t.clean) {
      const objects = await withClient(target, ctx.signal, async (c) => {
        const r = await c.query(
          `select count(*)::int as n from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
           where c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
             and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_%'`,
        );
        return (r.rows[0] as { n: number }).n;
      });
      if (objects > 0) {
        throw new OmsBackupError(
          'ERR_OMS_BACKUP_TARGET_NOT_EMPTY',
          `${target.safeUrl} already holds ${objects} tables, views or sequences: restore into an empty database, or pass clean: true to drop what the backup recreates`,
        );
      }
    }
    await pgRestore(ctx, target, t.clean ? ['--clean', '--if-exists'] : []);
  }

  return { kind: 'postgres', dump, verify, restore };
}
