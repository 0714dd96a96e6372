import { Readable } from 'node:stream';
import { tableChecksums } from '../checksums.js';
import { OmsBackupError, throwIfAborted } from '../errors.js';
import type {
  BackupSource,
  DumpContext,
  DumpInfo,
  RestoreContext,
  RestoreTarget,
  SqlDatabase,
  TableChecksum,
} from '../types.js';
import { invalid } from '../validate.js';

/**
 * The part of a PGlite instance the source uses; `PGlite` from `@electric-sql/pglite` fits.
 *
 * @example
 * import { PGlite } from '@electric-sql/pglite';
 * import type { PGliteLike } from '@oms/backup/pglite';
 * const db: PGliteLike = new PGlite();
 */
export interface PGliteLike {
  query(sql: string): Promise<{ rows: unknown[] }>;
  exec(sql: string): Promise<unknown>;
  clone(): Promise<unknown>;
  close(): Promise<void>;
}

/**
 * Options of `pgliteSource`.
 *
 * @example
 * import { PGlite } from '@electric-sql/pglite';
 * import type { PgliteSourceOptions } from '@oms/backup/pglite';
 * const o: PgliteSourceOptions = { db: new PGlite() };
 */
export interface PgliteSourceOptions {
  /** The live database. It is never dumped in place: the dump runs on a `clone()`. */
  db: PGliteLike;
  /**
   * Makes the empty database `verify` restores into. Default: a fresh in-memory `new PGlite()`; pass one with the
   * same extensions when the database uses any.
   */
  scratch?: () => Promise<PGliteLike>;
}

const FILE = 'dump.sql';

async function peer<T>(name: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (e) {
    throw new OmsBackupError(
      'ERR_OMS_BACKUP_MISSING_PEER',
      `pgliteSource needs '${name}': npm i ${name}`,
      false,
      {
        cause: e,
      },
    );
  }
}

async function text(src: AsyncIterable<Uint8Array>, signal: AbortSignal): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of src) {
    throwIfAborted(signal, 'reading the dump');
    parts.push(Buffer.from(c));
  }
  return Buffer.concat(parts).toString('utf8');
}

const USER_OBJECTS = `select count(*)::int as n from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
  where c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
    and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_%'`;

/** The dump sets search_path to '' for itself; a restored session needs the usual one back. */
const RESET = `select pg_catalog.set_config('search_path', '"$user", public', false)`;

async function load(target: SqlDatabase, sql: string): Promise<void> {
  if (typeof target.exec !== 'function')
    throw invalid('the restore target must have exec(sql), like a PGlite instance');
  try {
    await target.exec(sql);
  } catch (e) {
    throw new OmsBackupError(
      'ERR_OMS_BACKUP_RESTORE_FAILED',
      `the SQL dump did not load: ${(e as Error).message}`,
      false,
      {
        cause: e,
      },
    );
  } finally {
    await target.query(RESET).catch(() => {});
  }
}

/** Checksums, then PGlite's pg_dump, on a clone of the live instance. */
async function dump(live: PGliteLike, ctx: DumpContext): Promise<DumpInfo> {
  const { pgDump } = await peer(
    '@electric-sql/pglite-tools',
    () => import('@electric-sql/pglite-tools/pg_dump'),
  );
  throwIfAborted(ctx.signal, 'create');
  const copy = (await live.clone()) as PGliteLike;
  let file: Blob;
  let tables: TableChecksum[];
  let info: { version: string; db: string };
  try {
    // Checksums first: pg_dump leaves its instance in a read-only transaction with an empty search_path.
    tables = await tableChecksums(copy);
    info = (await copy.query("select current_setting('server_version') as version, current_database() as db"))
      .rows[0] as { version: string; db: string };
    throwIfAborted(ctx.signal, 'create');
    file = await pgDump({ pg: copy as never });
  } catch (e) {
    throw e instanceof OmsBackupError
      ? e
      : new OmsBackupError(
          'ERR_OMS_BACKUP_DUMP_FAILED',
          `PGlite pg_dump failed: ${(e as Error).message}`,
          false,
          {
            cause: e,
          },
        );
  } finally {
    await copy.close().catch(() => {});
  }
  await ctx.write(
    FILE,
    Readable.fromWeb(file.stream() as import('node:stream/web').ReadableStream<Uint8Array>),
  );
  return { database: info.db, serverVersion: info.version, format: 'plain', tables };
}

async function verify(scratch: () => Promise<PGliteLike>, ctx: RestoreContext): Promise<TableChecksum[]> {
  const sql = await text(ctx.read(FILE), ctx.signal);
  const fresh = await scratch();
  try {
    await load(fresh, sql);
    throwIfAborted(ctx.signal, 'verify');
    return await tableChecksums(fresh);
  } finally {
    await fresh.close().catch(() => {});
  }
}

async function restore(ctx: RestoreContext, t: RestoreTarget): Promise<void> {
  if (t.target === undefined)
    throw invalid('restore from a PGlite backup needs { target }: a PGlite instance');
  if (t.clean) {
    throw invalid('clean is not supported for PGlite backups: restore into a fresh PGlite instance instead');
  }
  const n = ((await t.target.query(USER_OBJECTS)).rows[0] as { n: number }).n;
  if (n > 0) {
    throw new OmsBackupError(
      'ERR_OMS_BACKUP_TARGET_NOT_EMPTY',
      `the target already holds ${n} tables, views or sequences: restore into a fresh PGlite instance`,
    );
  }
  await load(t.target, await text(ctx.read(FILE), ctx.signal));
}

/**
 * Backs up an embedded PGlite database with PGlite's own pg_dump build (`@electric-sql/pglite-tools`). The dump
 * and the checksums run on a `clone()` of the database, so the live instance is never left in the read-only
 * transaction pg_dump ends in; `verify` restores into a fresh in-memory PGlite and compares the same checksums.
 *
 * @example
 * import { PGlite } from '@electric-sql/pglite';
 * import { backupManager, fileStorage } from '@oms/backup';
 * import { pgliteSource } from '@oms/backup/pglite';
 * const db = new PGlite();
 * const backups = backupManager({ source: pgliteSource({ db }), storage: fileStorage('./backups') });
 * const m = await backups.create();
 * await backups.verify(m.id);
 */
export function pgliteSource(opts: PgliteSourceOptions): BackupSource {
  const db = opts?.db as Partial<PGliteLike> | undefined;
  if (
    !db ||
    typeof db.clone !== 'function' ||
    typeof db.query !== 'function' ||
    typeof db.exec !== 'function'
  ) {
    throw invalid('pgliteSource needs { db }: a PGlite instance (with query, exec and clone)');
  }
  const live = opts.db;
  const scratch =
    opts.scratch ??
    (async () => {
      const { PGlite } = await peer('@electric-sql/pglite', () => import('@electric-sql/pglite'));
      return new PGlite() as unknown as PGliteLike;
    });

  return {
    kind: 'pglite',
    dump: (ctx) => dump(live, ctx),
    verify: (ctx) => verify(scratch, ctx),
    restore,
  };
}
