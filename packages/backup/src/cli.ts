#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { isOmsBackupError, OmsBackupError } from './errors.js';
import { fileStorage } from './file-storage.js';
import { backupManager } from './manager.js';
import { postgresSource } from './postgres/index.js';
import type { BackupManager, BackupStatus, EncryptionOptions, Manifest, RetentionPolicy } from './types.js';
import { VERSION } from './version.js';

const HELP = `oms-backup ${VERSION}: PostgreSQL backups with verified restores

Usage: oms-backup <command> [options]

Commands:
  create              dump the database into the backup directory
  list                complete backups, newest first
  verify [id]         restore a backup (default: the newest) into a scratch database and compare checksums
  restore <id>        restore a backup into --target-url (an empty database, or pass --clean)
  prune [--dry-run]   apply the retention policy (--keep-last, --daily, ...)
  status              newest backup, last verify, RPO and measured RTO

Options:
  --dir <path>          backup directory                    (env OMS_BACKUP_DIR)
  --url <url>           database to back up, postgres://... (env OMS_BACKUP_DATABASE_URL, DATABASE_URL)
  --scratch-url <url>   database on a server where verify may create a scratch database (default: --url)
  --target-url <url>    restore target
  --clean               restore over existing objects
  --format <f>          custom (default) or directory
  --jobs <n>            parallel jobs for the directory format
  --key-file <path>     32-byte encryption key: raw, hex or base64  (env OMS_BACKUP_KEY: hex or base64)
  --key-id <id>         names the key in manifests
  --keep-last <n> --daily <n> --weekly <n> --monthly <n> --yearly <n> --min-age-ms <ms> --time-zone <tz>
  --rpo-ms <ms>         recovery point objective for status
  --dry-run             prune: only print the plan
  --json                machine-readable output on stdout
  -h, --help            this help

Passwords go to pg_dump through PGPASSWORD, never its argv; none is ever printed.
Exit codes: 0 success; 1 the operation failed; 2 bad usage or option; 3 status: RPO breached or last verify failed.`;

class Usage extends Error {}

const OPTIONS = {
  dir: { type: 'string' },
  url: { type: 'string' },
  'scratch-url': { type: 'string' },
  'target-url': { type: 'string' },
  clean: { type: 'boolean' },
  format: { type: 'string' },
  jobs: { type: 'string' },
  'key-file': { type: 'string' },
  'key-id': { type: 'string' },
  'keep-last': { type: 'string' },
  daily: { type: 'string' },
  weekly: { type: 'string' },
  monthly: { type: 'string' },
  yearly: { type: 'string' },
  'min-age-ms': { type: 'string' },
  'time-zone': { type: 'string' },
  'rpo-ms': { type: 'string' },
  'dry-run': { type: 'boolean' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

function num(name: string, s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const n = Number(s);
  if (s.trim() === '' || !Number.isFinite(n))
    throw new Usage(`--${name} must be a number (got ${JSON.stringify(s)})`);
  return n;
}

/** A key as raw 32 bytes, 64 hex characters or base64; the message never echoes it. */
function decodeKey(raw: Buffer, where: string): Uint8Array {
  if (raw.length === 32) return raw;
  const text = raw.toString('utf8').trim();
  const bytes = /^[0-9a-fA-F]{64}$/.test(text) ? Buffer.from(text, 'hex') : Buffer.from(text, 'base64');
  if (bytes.length !== 32)
    throw new Usage(`${where} must hold a 32-byte key (raw, 64 hex characters or base64)`);
  return bytes;
}

function encryptionOf(o: Values): EncryptionOptions | undefined {
  let key: Uint8Array | undefined;
  if (o['key-file'] !== undefined)
    key = decodeKey(readFileSync(o['key-file']), `--key-file ${o['key-file']}`);
  else if (process.env.OMS_BACKUP_KEY)
    key = decodeKey(Buffer.from(process.env.OMS_BACKUP_KEY), 'OMS_BACKUP_KEY');
  if (!key) return undefined;
  return { key, ...(o['key-id'] === undefined ? {} : { keyId: o['key-id'] }) };
}

function retentionOf(o: Values): RetentionPolicy | undefined {
  const r: RetentionPolicy = {};
  const set = (k: keyof RetentionPolicy, flag: string) => {
    const n = num(flag, o[flag as keyof Values] as string | undefined);
    if (n !== undefined) (r as Record<string, number>)[k] = n;
  };
  set('keepLast', 'keep-last');
  set('daily', 'daily');
  set('weekly', 'weekly');
  set('monthly', 'monthly');
  set('yearly', 'yearly');
  set('minAgeMs', 'min-age-ms');
  if (o['time-zone'] !== undefined) r.timeZone = o['time-zone'];
  return Object.keys(r).length > 0 ? r : undefined;
}

function managerOf(o: Values): BackupManager {
  const dir = o.dir ?? process.env.OMS_BACKUP_DIR;
  if (!dir) throw new Usage('--dir (or OMS_BACKUP_DIR) is required: the backup directory');
  const url = o.url ?? process.env.OMS_BACKUP_DATABASE_URL ?? process.env.DATABASE_URL;
  if (!url) throw new Usage('--url (or OMS_BACKUP_DATABASE_URL / DATABASE_URL) is required: the database');
  const format = o.format;
  if (format !== undefined && format !== 'custom' && format !== 'directory') {
    throw new Usage(`--format must be custom or directory (got ${JSON.stringify(format)})`);
  }
  const jobs = num('jobs', o.jobs);
  const encryption = encryptionOf(o);
  const retention = retentionOf(o);
  const rpoMs = num('rpo-ms', o['rpo-ms']);
  return backupManager({
    source: postgresSource({
      connectionString: url,
      ...(format === undefined ? {} : { format }),
      ...(jobs === undefined ? {} : { jobs }),
    }),
    storage: fileStorage(dir),
    ...(encryption ? { encryption } : {}),
    ...(retention ? { retention } : {}),
    ...(rpoMs === undefined ? {} : { rpoMs }),
  });
}

const mb = (b: number) => `${(b / 1_048_576).toFixed(1)} MB`;

function line(m: Manifest): string {
  const verified = m.verification
    ? m.verification.ok
      ? 'verified'
      : `verify failed (${m.verification.code})`
    : 'not verified';
  return `${m.id}  ${m.time}  ${mb(m.bytes).padStart(10)}  ${m.database}  ${m.encryption ? 'encrypted  ' : ''}${verified}`;
}

/** Bytes and rate on stderr while a TTY watches; scripts get nothing but the result. */
function progress(backups: BackupManager, enabled: boolean): () => void {
  if (!enabled) return () => {};
  const t0 = Date.now();
  let last = 0;
  const off = backups.on('progress', (e) => {
    const now = Date.now();
    if (now - last < 200) return;
    last = now;
    const rate = e.bytes / Math.max(0.001, (now - t0) / 1000);
    process.stderr.write(`\r${mb(e.bytes)} stored, ${mb(rate)}/s   `);
  });
  return () => {
    off();
    if (last > 0) process.stderr.write('\n');
  };
}

/** The status as lines for a person: newest, last verified or failed, RTO and whether the RPO is met. */
function statusText(s: BackupStatus): string {
  return [
    `backups: ${s.backups}`,
    `newest: ${s.lastSuccess ? `${s.lastSuccess.id} (${Math.round(s.ageMs / 1000)} s old)` : 'none'}`,
    `last verified: ${s.lastVerified ? `${s.lastVerified.id} at ${s.lastVerified.at}` : 'never'}`,
    ...(s.lastVerifyFailed
      ? [`last verify FAILED: ${s.lastVerifyFailed.id} (${s.lastVerifyFailed.code})`]
      : []),
    ...(s.rtoMs === undefined ? [] : [`measured RTO: ${(s.rtoMs / 1000).toFixed(1)} s`]),
    ...(s.rpoMs === undefined ? [] : [`RPO ${s.rpoMs / 1000} s: ${s.rpoBreached ? 'BREACHED' : 'met'}`]),
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const { values: o, positionals } = parseArgs({
    args: argv,
    options: OPTIONS,
    allowPositionals: true,
    strict: true,
  });
  const [command, ...rest] = positionals;
  if (o.help || command === undefined || command === 'help') {
    process.stdout.write(`${HELP}\n`);
    return command === undefined && !o.help ? 2 : 0;
  }
  const out = (json: unknown, text: string) =>
    process.stdout.write(
      o.json ? `${JSON.stringify(json, (_k, v) => (v === Infinity ? null : v), 2)}\n` : `${text}\n`,
    );
  const backups = managerOf(o);
  try {
    switch (command) {
      case 'create': {
        const stop = progress(backups, !o.json && process.stderr.isTTY === true);
        const m = await backups.create().finally(stop);
        out(m, `created ${m.id}: ${mb(m.bytes)}, ${m.tables.length} tables, sha256 ${m.sha256}`);
        return 0;
      }
      case 'list': {
        const list = await backups.list();
        out(list, list.length === 0 ? 'no backups' : list.map(line).join('\n'));
        return 0;
      }
      case 'verify': {
        const id = rest[0] ?? (await backups.list())[0]?.id;
        if (!id) throw new OmsBackupError('ERR_OMS_BACKUP_NOT_FOUND', 'there is no backup to verify');
        const scratchUrl =
          o['scratch-url'] ?? o.url ?? process.env.OMS_BACKUP_DATABASE_URL ?? process.env.DATABASE_URL;
        const r = await backups.verify(id, scratchUrl === undefined ? {} : { scratchUrl });
        out(
          r,
          `verified ${r.id}: ${r.tables.length} tables match, restore took ${(r.restoreMs / 1000).toFixed(1)} s`,
        );
        return 0;
      }
      case 'restore': {
        const id = rest[0];
        if (!id) throw new Usage('restore needs a backup id (see list)');
        const targetUrl = o['target-url'];
        if (!targetUrl) throw new Usage('restore needs --target-url');
        await backups.restore(id, { targetUrl, clean: o.clean === true });
        out({ id, restored: true }, `restored ${id}`);
        return 0;
      }
      case 'prune': {
        const plan = await backups.prune({ dryRun: o['dry-run'] === true });
        const text = [
          ...plan.keep.map((k) => `keep    ${k.id}  ${k.reasons.join(', ')}`),
          ...plan.delete.map((d) => `${plan.dryRun ? 'would delete' : 'deleted'} ${d.id}`),
        ].join('\n');
        out(plan, text || 'no backups');
        return 0;
      }
      case 'status': {
        const s = await backups.status();
        const text = statusText(s);
        out(s, text);
        return s.rpoBreached || s.lastVerifyFailed ? 3 : 0;
      }
      default:
        throw new Usage(`unknown command ${JSON.stringify(command)}; see oms-backup --help`);
    }
  } finally {
    await backups.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof Usage || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`oms-backup: ${(e as Error).message}\n`);
      process.exitCode = 2;
    } else if (isOmsBackupError(e)) {
      process.stderr.write(`oms-backup: ${e.code}: ${e.message}\n`);
      process.exitCode = e.code === 'ERR_OMS_BACKUP_INVALID_OPTION' ? 2 : 1;
    } else {
      process.stderr.write(`oms-backup: ${(e as Error)?.message ?? String(e)}\n`);
      process.exitCode = 1;
    }
  },
);
