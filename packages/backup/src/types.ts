import type { BackupErrorCode } from './errors.js';
import type { Clock } from './internal/clock.js';

export type { Clock };

/**
 * What a table checksum covers: a table's rows, a sequence's position, or every large object.
 *
 * @example
 * import type { ChecksumKind } from '@oms/backup';
 * const kind: ChecksumKind = 'sequence';
 */
export type ChecksumKind = 'table' | 'sequence' | 'large-objects';

/**
 * One entry of a manifest's content checksums: a row count and an md5 over the sums of the rows' md5s (order-free),
 * computed in SQL inside the dump's own snapshot, so it describes exactly what the archive holds.
 *
 * @example
 * import type { TableChecksum } from '@oms/backup';
 * const orders: TableChecksum = { schema: 'public', name: 'orders', kind: 'table', rows: 42, checksum: 'd41d8cd98f00b204e9800998ecf8427e' };
 */
export interface TableChecksum {
  schema: string;
  name: string;
  kind: ChecksumKind;
  rows: number;
  checksum: string;
}

/**
 * One stored file of a backup: a custom-format archive is one file, a directory-format dump is several.
 *
 * @example
 * import type { ArtifactFile } from '@oms/backup';
 * const f: ArtifactFile = { name: 'archive.dump', bytes: 1024, sha256: 'e3b0c442…' };
 */
export interface ArtifactFile {
  name: string;
  /** Bytes as stored (after encryption, when encrypted). */
  bytes: number;
  /** SHA-256 (hex) of the bytes as stored. */
  sha256: string;
}

/**
 * How a backup's files are encrypted; the data key is wrapped by the user's key, never stored in clear.
 *
 * @example
 * import type { Manifest, ManifestEncryption } from '@oms/backup';
 * declare const m: Manifest;
 * const enc: ManifestEncryption | undefined = m.encryption;
 * const keyId = enc?.keyId ?? 'none';
 */
export interface ManifestEncryption {
  algorithm: 'aes-256-gcm';
  /** The user's key id, so a rotation can tell which key wraps which backup. */
  keyId: string;
  /** base64 of iv ‖ ciphertext ‖ tag of the per-backup data key under the user's key. */
  wrappedKey: string;
  chunkBytes: number;
}

/**
 * The outcome of the last `verify` of a backup.
 *
 * @example
 * import type { Manifest, ManifestVerification } from '@oms/backup';
 * declare const m: Manifest;
 * const v: ManifestVerification | undefined = m.verification;
 * const drilled = v?.ok === true;
 */
export interface ManifestVerification {
  /** ISO time the verify finished. */
  at: string;
  ok: boolean;
  /** How long the test restore took, in ms: the measured RTO. */
  restoreMs: number;
  /** The error code when it failed. */
  code?: BackupErrorCode;
}

/**
 * Everything known about one backup. It is written last, so a backup without a manifest never counts.
 *
 * @example
 * import type { BackupManager, Manifest } from '@oms/backup';
 * declare const backups: BackupManager;
 * const m: Manifest = await backups.create();
 * const orders = m.tables.find((t) => t.name === 'orders')?.rows;
 */
export interface Manifest {
  /** Manifest format version. */
  version: 1;
  /** Sortable and unique, e.g. `20260101T120000000Z-1a2b3c4d`. */
  id: string;
  /** `logical` (pg_dump). Physical backups (pg_basebackup + WAL) are a planned `kind`. */
  kind: 'logical';
  /** Which source made it: `postgres` or `pglite`. */
  source: string;
  /** ISO time the dump's snapshot was taken: the point in time the backup restores to. */
  time: string;
  /** ISO time the archive was complete. */
  finishedAt: string;
  database: string;
  serverVersion: string;
  /** `custom`, `directory` (pg_dump) or `plain` (PGlite's SQL dump). */
  format: 'custom' | 'directory' | 'plain';
  /** Total stored bytes. */
  bytes: number;
  /** SHA-256 of the archive file; for several files, of their `name sha256` lines. */
  sha256: string;
  files: ArtifactFile[];
  tables: TableChecksum[];
  encryption?: ManifestEncryption;
  verification?: ManifestVerification;
}

/**
 * Where backups live. Keys look like `<id>/archive.dump`; bodies are streams, so an object store (S3 multipart)
 * fits as well as a directory. `put` must be atomic: a key is either absent or complete.
 *
 * @example
 * import type { BackupStorage } from '@oms/backup';
 * declare const storage: BackupStorage;
 * const keys = await storage.list('');
 */
export interface BackupStorage {
  /** Stores `body` under `key` atomically; resolves to the bytes written. On error or abort nothing is left. */
  put(
    key: string,
    body: AsyncIterable<Uint8Array>,
    opts?: { signal?: AbortSignal },
  ): Promise<{ bytes: number }>;
  /** Streams the stored bytes; rejects with ERR_OMS_BACKUP_NOT_FOUND when absent. */
  get(key: string, opts?: { signal?: AbortSignal }): Promise<AsyncIterable<Uint8Array>>;
  /** Every complete key starting with `prefix`. */
  list(prefix: string, opts?: { signal?: AbortSignal }): Promise<string[]>;
  /** Removes `key`; absent keys are fine. */
  delete(key: string, opts?: { signal?: AbortSignal }): Promise<void>;
  /** Optional: removes the leftovers of interrupted writes older than `olderThanMs`; resolves to how many. */
  sweep?(olderThanMs: number, opts?: { signal?: AbortSignal }): Promise<number>;
}

/**
 * What a source learned while dumping, recorded in the manifest.
 *
 * @example
 * import type { DumpInfo } from '@oms/backup';
 * const info: DumpInfo = { database: 'app', serverVersion: '16.4', format: 'custom', tables: [] };
 */
export interface DumpInfo {
  database: string;
  serverVersion: string;
  format: Manifest['format'];
  tables: TableChecksum[];
}

/**
 * What the manager hands a source to dump into.
 *
 * @example
 * import type { DumpContext } from '@oms/backup';
 * async function dumpText(ctx: DumpContext, text: string): Promise<void> {
 *   await ctx.write('dump.sql', (async function* () { yield Buffer.from(text); })());
 * }
 */
export interface DumpContext {
  readonly signal: AbortSignal;
  /** Streams one artifact file into storage (hashed, encrypted); resolves once it is stored. */
  write(name: string, body: AsyncIterable<Uint8Array>): Promise<void>;
}

/**
 * What the manager hands a source to restore from: files already checked against the manifest.
 *
 * @example
 * import type { RestoreContext } from '@oms/backup';
 * async function size(ctx: RestoreContext): Promise<number> {
 *   let n = 0;
 *   for await (const chunk of ctx.read(ctx.manifest.files[0]?.name ?? 'archive.dump')) n += chunk.byteLength;
 *   return n;
 * }
 */
export interface RestoreContext {
  readonly signal: AbortSignal;
  readonly manifest: Manifest;
  /** The plain (decrypted, authenticated chunk by chunk) bytes of one file. */
  read(name: string): AsyncIterable<Uint8Array>;
}

/**
 * A minimal SQL surface (a PGlite instance or a pg client fits): what restore targets and checksums need.
 *
 * @example
 * import type { SqlDatabase } from '@oms/backup';
 * import { PGlite } from '@electric-sql/pglite';
 * const db: SqlDatabase = new PGlite();
 */
export interface SqlDatabase {
  query(sql: string): Promise<{ rows: unknown[] }>;
  exec?(sql: string): Promise<unknown>;
}

/**
 * Where a restore goes: a connection string for `postgresSource`, a database object for `pgliteSource`.
 *
 * @example
 * import type { RestoreTarget } from '@oms/backup';
 * const t: RestoreTarget = { targetUrl: 'postgres://postgres@localhost/app_restored', clean: false };
 */
export interface RestoreTarget {
  targetUrl?: string;
  target?: SqlDatabase;
  clean: boolean;
}

/**
 * A database a manager can back up: `postgresSource` (pg_dump) and `pgliteSource` (PGlite) implement it.
 *
 * @example
 * import type { BackupSource } from '@oms/backup';
 * declare const source: BackupSource;
 * const kind: string = source.kind;
 */
export interface BackupSource {
  readonly kind: string;
  /** Dumps the database through `ctx.write` and returns what it saw (checksums in the dump's snapshot). */
  dump(ctx: DumpContext): Promise<DumpInfo>;
  /** Restores into a fresh scratch database, returns its checksums and drops it. */
  verify(ctx: RestoreContext, scratch: { scratchUrl?: string }): Promise<TableChecksum[]>;
  /** Restores into the target; refuses a non-empty one unless `clean`. */
  restore(ctx: RestoreContext, target: RestoreTarget): Promise<void>;
}

/**
 * The user's key: 32 bytes (for example `randomBytes(32)`, kept in a secret store). It wraps a random data key per
 * backup, so rotating it rewrites manifests, not archives.
 *
 * @example
 * import type { EncryptionOptions } from '@oms/backup';
 * const encryption: EncryptionOptions = { key: Buffer.from(process.env.BACKUP_KEY ?? '', 'base64'), keyId: '2026-01' };
 */
export interface EncryptionOptions {
  key: Uint8Array;
  /** Names the key in manifests (never the key itself). Default `default`. */
  keyId?: string;
  /** Plaintext bytes per authenticated chunk. Default 64 KiB. */
  chunkBytes?: number;
}

/**
 * Grandfather-father-son retention. Each count keeps the newest backup of that many distinct calendar buckets
 * (days, ISO weeks, months, years) in `timeZone`. A backup is kept when any rule keeps it; the newest verified
 * backup is always kept.
 *
 * @example
 * import type { RetentionPolicy } from '@oms/backup';
 * const retention: RetentionPolicy = { keepLast: 3, daily: 7, weekly: 4, monthly: 12, yearly: 3, timeZone: 'Europe/Paris' };
 */
export interface RetentionPolicy {
  keepLast?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
  yearly?: number;
  /** Backups younger than this are always kept. Default 0. */
  minAgeMs?: number;
  /**
   * A backup without a manifest (interrupted by a crash) is deleted by prune once it is this old, and so are
   * interrupted writes. Keep it above your longest backup. Default 2 days.
   */
  incompleteAfterMs?: number;
  /** IANA time zone of the calendar buckets. Default `UTC`. */
  timeZone?: string;
}

/**
 * Why prune keeps a backup.
 *
 * @example
 * import type { KeepReason, PrunePlan } from '@oms/backup';
 * declare const plan: PrunePlan;
 * const pinned = plan.keep.filter((k) => k.reasons.includes('newest-verified' satisfies KeepReason));
 */
export type KeepReason =
  | 'keep-last'
  | 'daily'
  | 'weekly'
  | 'monthly'
  | 'yearly'
  | 'min-age'
  | 'newest-verified'
  | 'no-policy';

/**
 * What `prune` keeps (and why) and what it deletes.
 *
 * @example
 * import type { BackupManager, PrunePlan } from '@oms/backup';
 * declare const backups: BackupManager;
 * const plan: PrunePlan = await backups.prune({ dryRun: true });
 * const doomed = plan.delete.map((b) => b.id);
 */
export interface PrunePlan {
  dryRun: boolean;
  /** Backups interrupted before their manifest was written, old enough to delete. */
  incomplete: { id: string }[];
  keep: { id: string; time: string; reasons: KeepReason[] }[];
  delete: { id: string; time: string }[];
}

/**
 * A lock that lets one instance at a time run a scheduled backup. `Locks` from `@oms/locks` fits, and so does
 * anything with `tryAcquire` or `acquire` that resolves to something with `release()`.
 *
 * @example
 * import type { BackupLock } from '@oms/backup';
 * const held = new Set<string>();
 * const lock: BackupLock = {
 *   tryAcquire: async (key: string) => {
 *     if (held.has(key)) return null;
 *     held.add(key);
 *     return { release: async () => void held.delete(key) };
 *   },
 * };
 */
export type BackupLock =
  | { tryAcquire(key: string, opts?: { ttlMs?: number }): Promise<BackupLease | null> }
  | { acquire(key: string, opts?: { ttlMs?: number; waitMs?: number }): Promise<BackupLease> };

/**
 * A held lock: released after the run; when its `signal` aborts (lease lost) the run is aborted.
 *
 * @example
 * import type { BackupLease } from '@oms/backup';
 * const lease: BackupLease = { release: async () => {} };
 */
export interface BackupLease {
  release(): Promise<void>;
  readonly signal?: AbortSignal;
}

/**
 * Options of `backupManager`.
 *
 * @example
 * import { backupManager, fileStorage, type BackupManagerOptions } from '@oms/backup';
 * import { postgresSource } from '@oms/backup/postgres';
 * const options: BackupManagerOptions = {
 *   source: postgresSource({ connectionString: 'postgres://app@localhost/app' }),
 *   storage: fileStorage('/var/backups/app'),
 *   rpoMs: 26 * 3_600_000,
 * };
 * const backups = backupManager(options);
 */
export interface BackupManagerOptions {
  source: BackupSource;
  storage: BackupStorage;
  encryption?: EncryptionOptions;
  retention?: RetentionPolicy;
  /** Recovery point objective: the newest backup may be at most this old. Needed by `healthCheck()`. */
  rpoMs?: number;
  /** Only one instance runs a scheduled backup at a time. */
  lock?: BackupLock;
  /** Names the lock key (`oms-backup:<name>`) and telemetry. Default `default`. */
  name?: string;
  clock?: Clock;
}

/**
 * A per-call abort signal: aborting kills pg_dump/pg_restore and leaves no partial artifact.
 *
 * @example
 * import type { BackupManager, CallOptions } from '@oms/backup';
 * declare const backups: BackupManager;
 * const o: CallOptions = { signal: AbortSignal.timeout(3_600_000) };
 * await backups.create(o);
 */
export interface CallOptions {
  signal?: AbortSignal;
}

/**
 * Options of `verify`: where the scratch database goes. `postgresSource` needs `scratchUrl` (a database on a
 * server where the role may create databases); `pgliteSource` restores into a fresh in-memory PGlite.
 *
 * @example
 * import type { VerifyOptions } from '@oms/backup';
 * const o: VerifyOptions = { scratchUrl: 'postgres://postgres@localhost:5433/postgres' };
 */
export interface VerifyOptions extends CallOptions {
  scratchUrl?: string;
}

/**
 * What a successful `verify` measured.
 *
 * @example
 * import type { BackupManager, VerifyResult } from '@oms/backup';
 * declare const backups: BackupManager;
 * const r: VerifyResult = await backups.verify('20260101T000000000Z-1a2b', { scratchUrl: 'postgres://localhost/postgres' });
 * const rtoSeconds = r.restoreMs / 1000;
 */
export interface VerifyResult {
  id: string;
  restoreMs: number;
  tables: TableChecksum[];
}

/**
 * Options of `restore`. It refuses a target that already holds tables unless `clean` is set.
 *
 * @example
 * import type { RestoreOptions } from '@oms/backup';
 * const o: RestoreOptions = { targetUrl: 'postgres://postgres@localhost/app_restored' };
 */
export interface RestoreOptions extends CallOptions {
  targetUrl?: string;
  /** The database object to restore into (`pgliteSource`). */
  target?: SqlDatabase;
  /** Drop and recreate the objects the backup holds first. Default false. */
  clean?: boolean;
}

/**
 * Options of `schedule`.
 *
 * @example
 * import type { ScheduleOptions } from '@oms/backup';
 * const o: ScheduleOptions = { everyMs: 3_600_000, verify: { scratchUrl: 'postgres://localhost/postgres' }, prune: true };
 */
export interface ScheduleOptions {
  /** One backup per period of this length (periods are aligned to the epoch, so instances agree). */
  everyMs: number;
  /**
   * Test-restore into this scratch location: after each new backup, or with `everyMs` on its own period (the
   * newest backup, once per period).
   */
  verify?: { scratchUrl?: string; everyMs?: number };
  /** Prune after each backup. Default false. */
  prune?: boolean;
  /** Lock lease time while a run is in progress. Default 10 minutes. */
  lockTtlMs?: number;
}

/**
 * A running schedule; `close()` stops it and waits for (after aborting) a run in progress.
 *
 * @example
 * import type { BackupManager, Schedule } from '@oms/backup';
 * declare const backups: BackupManager;
 * const schedule: Schedule = backups.schedule({ everyMs: 3_600_000 });
 * process.once('SIGTERM', () => void schedule.close());
 */
export interface Schedule {
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Where backups stand, from the manifests in storage (so every instance reports the same).
 *
 * @example
 * import type { BackupManager, BackupStatus } from '@oms/backup';
 * declare const backups: BackupManager;
 * const s: BackupStatus = await backups.status();
 * if (s.rpoBreached) process.exitCode = 1;
 */
export interface BackupStatus {
  backups: number;
  lastSuccess?: { id: string; time: string; bytes: number };
  lastVerified?: { id: string; at: string; restoreMs: number };
  /** The most recent verification failed. */
  lastVerifyFailed?: { id: string; at: string; code?: BackupErrorCode };
  /** Age of the newest backup in ms (Infinity without one). */
  ageMs: number;
  rpoMs?: number;
  /** True when the newest backup is older than `rpoMs` (or there is none). False without `rpoMs`. */
  rpoBreached: boolean;
  /** The last successful verify's restore duration: the measured RTO. */
  rtoMs?: number;
  /** The last failure of `create` in this process. */
  lastError?: { at: string; code: BackupErrorCode | 'ERR_UNKNOWN'; message: string };
}

/**
 * What `healthCheck()` resolves to; @oms/health's `register({ check })` accepts it as is.
 *
 * @example
 * import type { BackupHealth } from '@oms/backup';
 * const h: BackupHealth = { status: 'warn', observedValue: 90_000, observedUnit: 's', output: 'newest backup is older than the RPO' };
 */
export interface BackupHealth {
  status: 'pass' | 'warn' | 'fail';
  observedValue: number | null;
  observedUnit: 's';
  output?: string;
  details?: {
    rpoSeconds: number;
    rtoSeconds: number | null;
    lastBackup: string | null;
    lastVerified: string | null;
  };
}

/**
 * Which operation an event is about.
 *
 * @example
 * import type { Operation } from '@oms/backup';
 * const op: Operation = 'verify';
 */
export type Operation = 'create' | 'verify' | 'restore' | 'prune';

/**
 * Events of a manager: the seam `instrument()` listens to. They never carry connection strings or keys.
 *
 * @example
 * import type { BackupEvents, BackupManager } from '@oms/backup';
 * declare const backups: BackupManager;
 * backups.on('end', (e: BackupEvents['end']) => {
 *   if (!e.ok) process.emitWarning(`backup ${e.operation} failed: ${e.code}`);
 * });
 */
export interface BackupEvents {
  start: { run: number; operation: Operation; id?: string };
  end: {
    run: number;
    operation: Operation;
    id?: string;
    ok: boolean;
    durationMs: number;
    bytes?: number;
    code?: BackupErrorCode | 'ERR_UNKNOWN';
  };
  /** Bytes stored so far by a `create` in progress (for progress displays). */
  progress: { run: number; operation: Operation; bytes: number };
  /** A scheduled run was skipped: another instance holds the lock, or this period already has its run. */
  skipped: { reason: 'locked' | 'done' };
}

/**
 * A backup manager: create, list, verify, restore, prune, schedule and report.
 *
 * @example
 * import { backupManager, fileStorage } from '@oms/backup';
 * import { postgresSource } from '@oms/backup/postgres';
 * const backups = backupManager({
 *   source: postgresSource({ connectionString: 'postgres://app@localhost/app' }),
 *   storage: fileStorage('/var/backups/app'),
 * });
 * const m = await backups.create();
 * await backups.verify(m.id, { scratchUrl: 'postgres://app@localhost/postgres' });
 */
export interface BackupManager {
  readonly name: string;
  /** Dumps the source into storage; the manifest is written last. */
  create(opts?: CallOptions): Promise<Manifest>;
  /** Complete backups, newest first. */
  list(opts?: CallOptions): Promise<Manifest[]>;
  /** One backup's manifest; ERR_OMS_BACKUP_NOT_FOUND when absent. */
  get(id: string, opts?: CallOptions): Promise<Manifest>;
  /** Checks the archive, restores it into a scratch database, compares checksums and records the result. */
  verify(id: string, opts?: VerifyOptions): Promise<VerifyResult>;
  /** Checks the archive end to end, then restores it into the target. */
  restore(id: string, opts?: RestoreOptions): Promise<void>;
  /** Applies the retention policy (or only reports the plan with `dryRun`). */
  prune(opts?: CallOptions & { dryRun?: boolean }): Promise<PrunePlan>;
  /** Re-wraps a backup's data key under a new key (key rotation); the archive is not rewritten. */
  rewrap(id: string, next: EncryptionOptions, opts?: CallOptions): Promise<Manifest>;
  schedule(opts: ScheduleOptions): Schedule;
  status(opts?: CallOptions): Promise<BackupStatus>;
  /** A health check: warn past the RPO, fail past twice the RPO or when the last verify failed. */
  healthCheck(): (ctx?: { signal?: AbortSignal }) => Promise<BackupHealth>;
  on<K extends keyof BackupEvents>(event: K, fn: (e: BackupEvents[K]) => void): () => void;
  /** Unix ms of the newest backup this manager has seen, for gauges (no I/O). */
  readonly lastSuccessAt: number | undefined;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}
