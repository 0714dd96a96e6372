import { createReadStream } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { tableChecksums } from '../checksums.js';
import { OmsBackupError } from '../errors.js';
import type { DumpContext, DumpInfo } from '../types.js';
import { findTool, toolMajor } from './binaries.js';
import { withClient } from './client.js';
import { type ConnInfo, toolEnv } from './conninfo.js';
import { runTool } from './tool.js';

/** What postgresSource settled at construction: where, how, and with which tools. */
export interface PgConfig {
  readonly conn: ConnInfo;
  readonly format: 'custom' | 'directory';
  readonly jobs: number;
  /** Scratch directory for the directory format. */
  readonly base: string;
  readonly pgDumpPath: string | undefined;
  readonly pgRestorePath: string | undefined;
}

/** The one file of a custom-format backup. */
export const ARCHIVE = 'archive.dump';

/**
 * pg_dump in the snapshot of a transaction that computes the checksums at the same time, so both describe the
 * same data.
 */
export async function dumpDatabase(cfg: PgConfig, ctx: DumpContext): Promise<DumpInfo> {
  const { signal } = ctx;
  const pgDump = findTool('pg_dump', cfg.pgDumpPath);
  // The version probe (a process start) runs while the connection comes up.
  const major = toolMajor(pgDump, signal);
  major.catch(() => {});
  // A tool that does not start or report its version is the first thing to fix, before a connection error.
  const fail = async (e: unknown): Promise<never> => {
    await major;
    throw e;
  };
  return withClient(cfg.conn, signal, async (client) => {
    const info = (
      await client.query(
        "select current_setting('server_version_num')::int as num, current_setting('server_version') as version, current_database() as db",
      )
    ).rows[0] as { num: number; version: string; db: string };
    const dumpMajor = await major;
    const serverMajor = Math.floor(info.num / 10_000);
    if (dumpMajor < serverMajor) {
      throw new OmsBackupError(
        'ERR_OMS_BACKUP_VERSION_MISMATCH',
        `pg_dump ${dumpMajor} (${pgDump}) is older than the server (PostgreSQL ${serverMajor}); pg_dump cannot dump a newer server. Install postgresql-client-${serverMajor} or pass pgDumpPath`,
      );
    }
    // The checksums run in the transaction that exported the snapshot pg_dump uses: both see the same data.
    await client.query('begin isolation level repeatable read read only');
    const snapshot = (await client.query('select pg_catalog.pg_export_snapshot() as s')).rows[0].s as string;
    // A checksum query that fails ends the snapshot's transaction, so pg_dump then fails too: its error is the
    // cause to report, not pg_dump's "could not import the requested snapshot".
    let sumsError: { e: unknown } | undefined;
    const sums = tableChecksums(client, { inTransaction: true });
    sums.catch((e: unknown) => {
      sumsError = { e };
    });
    const args = [
      `--format=${cfg.format}`,
      `--snapshot=${snapshot}`,
      '--no-password',
      `--dbname=${cfg.conn.safeUrl}`,
    ];
    try {
      await runDump(cfg, ctx, pgDump, args);
    } catch (e) {
      // The failed query is seen here before pg_dump, a separate process, fails on its consequence.
      throw sumsError ? sumsError.e : e;
    }
    const tables = await sums;
    await client.query('commit');
    return { database: info.db, serverVersion: info.version, format: cfg.format, tables };
  }).catch(fail);
}

async function runDump(cfg: PgConfig, ctx: DumpContext, pgDump: string, args: string[]): Promise<void> {
  const { signal } = ctx;
  const env = toolEnv(cfg.conn);
  if (cfg.format === 'custom') {
    const run = runTool(pgDump, args, { env, signal, code: 'ERR_OMS_BACKUP_DUMP_FAILED', stdout: true });
    const stored = ctx.write(ARCHIVE, run.stdout as AsyncIterable<Uint8Array>);
    stored.catch(() => run.kill());
    // Wait for both, so nothing is still being written when the manager cleans up after a failure. A storage
    // failure is the cause when there is one (the tool was killed because of it).
    const [put, tool] = await Promise.allSettled([stored, run.done]);
    if (put.status === 'rejected') throw put.reason;
    if (tool.status === 'rejected') throw tool.reason;
    return;
  }
  const dir = await mkdtemp(join(cfg.base, 'oms-backup-'));
  try {
    const out = join(dir, 'dump');
    const run = runTool(pgDump, [...args, `--jobs=${cfg.jobs}`, `--file=${out}`], {
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
