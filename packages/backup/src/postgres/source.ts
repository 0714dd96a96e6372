import { tmpdir } from 'node:os';
import type { BackupSource } from '../types.js';
import { invalid, v } from '../validate.js';
import { parseConn } from './conninfo.js';
import { dumpDatabase, type PgConfig } from './dump.js';
import { restoreInto, verifyInto } from './restore.js';

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
  const cfg: PgConfig = {
    conn,
    format,
    jobs,
    base: opts.tmpDir ?? tmpdir(),
    pgDumpPath: opts.pgDumpPath,
    pgRestorePath: opts.pgRestorePath,
  };
  return {
    kind: 'postgres',
    dump: (ctx) => dumpDatabase(cfg, ctx),
    verify: (ctx, scratch) => verifyInto(cfg, ctx, scratch),
    restore: (ctx, target) => restoreInto(cfg, ctx, target),
  };
}
