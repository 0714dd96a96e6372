import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { canonical, tableChecksums } from '../checksums.js';
import { OmsBackupError } from '../errors.js';
import type { RestoreContext, RestoreTarget, TableChecksum } from '../types.js';
import { invalid } from '../validate.js';
import { findTool } from './binaries.js';
import { quoteIdent as q, withClient } from './client.js';
import { type ConnInfo, parseConn, toolEnv } from './conninfo.js';
import { ARCHIVE, type PgConfig } from './dump.js';
import { SettledTables } from './settled.js';
import { runTool } from './tool.js';

/** pg_restore of the backup into `target`; `onLine` hears its stderr lines (with `--verbose` in `flags`). */
async function pgRestore(
  cfg: PgConfig,
  ctx: RestoreContext,
  target: ConnInfo,
  flags: string[],
  onLine?: (line: string) => boolean,
): Promise<void> {
  const { signal, manifest } = ctx;
  const bin = findTool('pg_restore', cfg.pgRestorePath);
  const env = toolEnv(target);
  const code = 'ERR_OMS_BACKUP_RESTORE_FAILED';
  const common = ['--no-password', '--exit-on-error', `--dbname=${target.safeUrl}`, ...flags];
  if (manifest.format === 'custom') {
    const run = runTool(bin, ['--format=custom', ...common], {
      env,
      signal,
      code,
      stdin: ctx.read(ARCHIVE),
      ...(onLine ? { onLine } : {}),
    });
    await run.done;
    return;
  }
  const dir = await mkdtemp(join(cfg.base, 'oms-restore-'));
  try {
    for (const f of manifest.files) {
      await pipeline(ctx.read(f.name), createWriteStream(join(dir, f.name)), { signal });
    }
    const run = runTool(bin, ['--format=directory', `--jobs=${cfg.jobs}`, ...common, dir], {
      env,
      signal,
      code,
    });
    await run.done;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Restores into a fresh scratch database and returns its checksums. A custom-format restore (serial) runs without
 * --single-transaction (the scratch database is dropped whatever happens), so each table can be hashed as soon
 * as its data is in while pg_restore goes on with the rest: the hashing overlaps the restore instead of following
 * it. The checksums are the same either way; tables not hashed early are hashed after the restore.
 */
export async function verifyInto(
  cfg: PgConfig,
  ctx: RestoreContext,
  scratch: { scratchUrl?: string },
): Promise<TableChecksum[]> {
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
    // Nothing else writes to the scratch database, so a second connection can hash tables at the same time.
    return await withClient(target, signal, (c) =>
      withClient(target, signal, async (helper) => {
        await canonical(c);
        await canonical(helper);
        // A directory-format restore runs --jobs in parallel, where "the next item started" says nothing about
        // the previous one: its tables are all hashed after it.
        const serial = ctx.manifest.format === 'custom';
        const early = new SettledTables([c, helper]);
        const flags = ['--no-owner', '--no-privileges', ...(serial ? ['--verbose'] : [])];
        try {
          await pgRestore(cfg, ctx, target, flags, serial ? (l) => early.line(l) : undefined);
        } finally {
          await early.drain();
        }
        return tableChecksums(c, { helpers: [helper], settled: early.settled });
      }),
    );
  } finally {
    // Drop even after an abort: a scratch database must never be left behind.
    await withClient(admin, new AbortController().signal, (c) =>
      c.query(`drop database if exists ${q(name)} with (force)`),
    ).catch(() => {});
  }
}

const USER_OBJECTS = `select count(*)::int as n from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
 where c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
   and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_%'`;

/** Restores into the target in one transaction; refuses a non-empty target unless `clean`. */
export async function restoreInto(cfg: PgConfig, ctx: RestoreContext, t: RestoreTarget): Promise<void> {
  if (t.targetUrl === undefined)
    throw invalid('restore needs { targetUrl }: a postgres:// URL of the target database');
  const target = parseConn('targetUrl', t.targetUrl);
  if (!t.clean) {
    const objects = await withClient(target, ctx.signal, async (c) => {
      return ((await c.query(USER_OBJECTS)).rows[0] as { n: number }).n;
    });
    if (objects > 0) {
      throw new OmsBackupError(
        'ERR_OMS_BACKUP_TARGET_NOT_EMPTY',
        `${target.safeUrl} already holds ${objects} tables, views or sequences: restore into an empty database, or pass clean: true to drop what the backup recreates`,
      );
    }
  }
  const single = ctx.manifest.format === 'custom' ? ['--single-transaction'] : [];
  await pgRestore(cfg, ctx, target, [...single, ...(t.clean ? ['--clean', '--if-exists'] : [])]);
}
