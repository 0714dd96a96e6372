import { randomBytes } from 'node:crypto';
import { restoreContext, storeArtifact } from './archive.js';
import { assertSameChecksums } from './checksums.js';
import { checkEncryption, type KeyConfig, unwrapKey, wrapKey } from './encryption.js';
import {
  abortError,
  type BackupErrorCode,
  isOmsBackupError,
  OmsBackupError,
  throwIfAborted,
} from './errors.js';
import { type Clock, systemClock } from './internal/clock.js';
import { Emitter } from './internal/emitter.js';
import {
  archiveSha,
  idTime,
  MANIFEST,
  newId,
  parseManifest,
  readAll,
  removeBackup,
  writeManifest,
} from './manifest.js';
import {
  type CheckedPolicy,
  checkRetention,
  DEFAULT_INCOMPLETE_AFTER_MS,
  planRetention,
} from './retention.js';
import { BackupScheduler } from './scheduler.js';
import { healthOf, statusOf } from './status.js';
import type {
  ArtifactFile,
  BackupEvents,
  BackupHealth,
  BackupLock,
  BackupManager,
  BackupManagerOptions,
  BackupSource,
  BackupStatus,
  BackupStorage,
  CallOptions,
  EncryptionOptions,
  Manifest,
  Operation,
  PrunePlan,
  RestoreOptions,
  Schedule,
  ScheduleOptions,
  VerifyOptions,
  VerifyResult,
} from './types.js';
import { checkId, checkParts, checkSignal, invalid, v } from './validate.js';

function codeOf(e: unknown): BackupErrorCode | 'ERR_UNKNOWN' {
  return isOmsBackupError(e) ? e.code : 'ERR_UNKNOWN';
}

/** Failures of the backup itself, recorded in its manifest; a bad option or an unreachable scratch server is not. */
const RECORDED: ReadonlySet<string> = new Set([
  'ERR_OMS_BACKUP_CORRUPT',
  'ERR_OMS_BACKUP_DECRYPT',
  'ERR_OMS_BACKUP_VERIFY_MISMATCH',
  'ERR_OMS_BACKUP_RESTORE_FAILED',
]);

class Manager implements BackupManager {
  readonly name: string;
  readonly clock: Clock;
  readonly lock: BackupLock | undefined;
  readonly #source: BackupSource;
  readonly #storage: BackupStorage;
  readonly #key: KeyConfig | undefined;
  readonly #retention: CheckedPolicy | undefined;
  readonly #rpoMs: number | undefined;
  readonly #events = new Emitter<BackupEvents>();
  readonly #closing = new AbortController();
  readonly #schedules = new Set<Schedule>();
  #runs = 0;
  #lastSuccessAt: number | undefined;
  #lastError: BackupStatus['lastError'];

  constructor(o: BackupManagerOptions) {
    checkParts(o);
    this.#source = o.source;
    this.#storage = o.storage;
    this.#key = checkEncryption(o.encryption);
    this.#retention = checkRetention(o.retention);
    this.#rpoMs = o.rpoMs === undefined ? undefined : v.durationMs('rpoMs', o.rpoMs, { min: 1 });
    this.lock = o.lock;
    this.name = o.name === undefined ? 'default' : v.key('name', o.name, 200);
    this.clock = v.clock(o.clock, systemClock);
  }

  get lastSuccessAt(): number | undefined {
    return this.#lastSuccessAt;
  }

  on<K extends keyof BackupEvents>(event: K, fn: (e: BackupEvents[K]) => void): () => void {
    return this.#events.on(event, fn);
  }

  /** The caller's signal joined with close(); close() aborts every call in flight. */
  #signal(opts: CallOptions | undefined, what: string): AbortSignal {
    if (this.#closing.signal.aborted) {
      throw new OmsBackupError('ERR_OMS_BACKUP_CLOSED', `${what}: the backup manager is closed`);
    }
    const s = checkSignal('signal', opts?.signal);
    return s ? AbortSignal.any([s, this.#closing.signal]) : this.#closing.signal;
  }

  /** Runs one operation between a start and an end event, the seam telemetry listens to. */
  async #observe<T>(
    operation: Operation,
    id: string | undefined,
    signal: AbortSignal,
    fn: (run: number) => Promise<T>,
    bytes?: (r: T) => number,
  ): Promise<T> {
    const run = ++this.#runs;
    const t0 = this.clock.now();
    this.#events.emit('start', { run, operation, ...(id ? { id } : {}) });
    try {
      const r = await fn(run);
      const b = bytes?.(r);
      this.#events.emit('end', {
        run,
        operation,
        ...(id ? { id } : {}),
        ok: true,
        durationMs: this.clock.now() - t0,
        ...(b === undefined ? {} : { bytes: b }),
      });
      return r;
    } catch (caught) {
      // A stream or driver aborted by our signal throws its own AbortError; callers get one code for an abort.
      const e = signal.aborted && !isOmsBackupError(caught) ? abortError(signal, operation) : caught;
      this.#events.emit('end', {
        run,
        operation,
        ...(id ? { id } : {}),
        ok: false,
        durationMs: this.clock.now() - t0,
        code: codeOf(e),
      });
      throw e;
    }
  }

  async create(opts?: CallOptions): Promise<Manifest> {
    const signal = this.#signal(opts, 'create');
    return this.#observe(
      'create',
      undefined,
      signal,
      (run) => this.#create(signal, run),
      (m) => m.bytes,
    ).catch((e: unknown) => {
      this.#lastError = {
        at: new Date(this.clock.now()).toISOString(),
        code: codeOf(e),
        message: e instanceof Error ? e.message : String(e),
      };
      throw e;
    });
  }

  async #create(signal: AbortSignal, run: number): Promise<Manifest> {
    throwIfAborted(signal, 'create');
    const started = this.clock.now();
    const id = newId(started, randomBytes(4));
    const key = this.#key ? { config: this.#key, dataKey: randomBytes(32) } : undefined;
    const files: ArtifactFile[] = [];
    let total = 0;
    const seen = (bytes: number) => {
      total += bytes;
      if (this.#events.has('progress'))
        this.#events.emit('progress', { run, operation: 'create', bytes: total });
    };
    const artifacts = { storage: this.#storage, id, key, files, signal, seen };
    try {
      const info = await this.#source.dump({
        signal,
        write: (name, body) => storeArtifact(artifacts, name, body),
      });
      throwIfAborted(signal, 'create');
      if (files.length === 0) {
        throw new OmsBackupError(
          'ERR_OMS_BACKUP_DUMP_FAILED',
          `the ${this.#source.kind} source wrote no archive`,
        );
      }
      const manifest: Manifest = {
        version: 1,
        id,
        kind: 'logical',
        source: this.#source.kind,
        time: new Date(started).toISOString(),
        finishedAt: new Date(this.clock.now()).toISOString(),
        database: info.database,
        serverVersion: info.serverVersion,
        format: info.format,
        bytes: files.reduce((n, f) => n + f.bytes, 0),
        sha256: archiveSha(files),
        files,
        tables: info.tables,
        ...(key ? { encryption: wrapKey(key.config, id, key.dataKey) } : {}),
      };
      // Written last: until this rename, the backup does not exist for list(), verify() or prune().
      await writeManifest(this.#storage, manifest, signal);
      this.#lastSuccessAt = Math.max(this.#lastSuccessAt ?? 0, started);
      return manifest;
    } catch (e) {
      await removeBackup(this.#storage, id).catch(() => {});
      if (signal.aborted && !isOmsBackupError(e)) throw abortError(signal, 'create');
      throw e;
    }
  }

  async list(opts?: CallOptions): Promise<Manifest[]> {
    const signal = this.#signal(opts, 'list');
    const keys = await this.#storage.list('', { signal });
    const ids = keys
      .filter((k) => k.endsWith(`/${MANIFEST}`) && k.split('/').length === 2)
      .map((k) => k.split('/')[0] as string);
    const out: Manifest[] = [];
    for (const id of ids) {
      throwIfAborted(signal, 'list');
      try {
        out.push(await this.#get(id, signal));
      } catch (e) {
        // Deleted between list and read (a concurrent prune): not a backup any more.
        if (isOmsBackupError(e) && e.code === 'ERR_OMS_BACKUP_NOT_FOUND') continue;
        throw e;
      }
    }
    out.sort((a, b) => Date.parse(b.time) - Date.parse(a.time) || (a.id < b.id ? 1 : -1));
    const newest = out[0];
    if (newest) this.#lastSuccessAt = Math.max(this.#lastSuccessAt ?? 0, Date.parse(newest.time));
    return out;
  }

  async get(id: string, opts?: CallOptions): Promise<Manifest> {
    return this.#get(checkId(id), this.#signal(opts, 'get'));
  }

  async #get(id: string, signal: AbortSignal): Promise<Manifest> {
    let raw: Buffer;
    try {
      raw = await readAll(await this.#storage.get(`${id}/${MANIFEST}`, { signal }));
    } catch (e) {
      if (signal.aborted && !isOmsBackupError(e)) throw abortError(signal, 'reading the manifest');
      if (isOmsBackupError(e) && e.code === 'ERR_OMS_BACKUP_NOT_FOUND') {
        throw new OmsBackupError(
          'ERR_OMS_BACKUP_NOT_FOUND',
          `no backup with id ${id} in storage (an unfinished backup has no manifest and does not count): run list to see the backups`,
          false,
          { cause: e },
        );
      }
      throw e;
    }
    return parseManifest(id, raw);
  }

  async verify(id: string, opts: VerifyOptions = {}): Promise<VerifyResult> {
    const signal = this.#signal(opts, 'verify');
    checkId(id);
    return this.#observe('verify', id, signal, async () => {
      const m = await this.#get(id, signal);
      try {
        const ctx = await restoreContext(this.#storage, this.#key, m, signal);
        const t0 = this.clock.now();
        const tables = await this.#source.verify(
          ctx,
          opts.scratchUrl === undefined ? {} : { scratchUrl: opts.scratchUrl },
        );
        const restoreMs = this.clock.now() - t0;
        assertSameChecksums(id, m.tables, tables);
        m.verification = { at: new Date(this.clock.now()).toISOString(), ok: true, restoreMs };
        await writeManifest(this.#storage, m);
        return { id, restoreMs, tables };
      } catch (e) {
        if (!signal.aborted && isOmsBackupError(e) && RECORDED.has(e.code)) {
          m.verification = {
            at: new Date(this.clock.now()).toISOString(),
            ok: false,
            restoreMs: 0,
            code: e.code,
          };
          await writeManifest(this.#storage, m).catch(() => {});
        }
        throw e;
      }
    });
  }

  async restore(id: string, opts: RestoreOptions = {}): Promise<void> {
    const signal = this.#signal(opts, 'restore');
    checkId(id);
    return this.#observe('restore', id, signal, async () => {
      const m = await this.#get(id, signal);
      const ctx = await restoreContext(this.#storage, this.#key, m, signal);
      await this.#source.restore(ctx, {
        ...(opts.targetUrl === undefined ? {} : { targetUrl: opts.targetUrl }),
        ...(opts.target === undefined ? {} : { target: opts.target }),
        clean: opts.clean === true,
      });
    });
  }

  async prune(opts: CallOptions & { dryRun?: boolean } = {}): Promise<PrunePlan> {
    const signal = this.#signal(opts, 'prune');
    return this.#observe('prune', undefined, signal, async () => {
      const all = await this.list({ signal });
      const now = this.clock.now();
      const plan = planRetention(
        all.map((m) => ({ id: m.id, time: Date.parse(m.time), verified: m.verification?.ok === true })),
        this.#retention,
        now,
        opts.dryRun === true,
      );
      const staleMs = this.#retention?.incompleteAfterMs ?? DEFAULT_INCOMPLETE_AFTER_MS;
      const complete = new Set(all.map((m) => m.id));
      const ids = new Set((await this.#storage.list('', { signal })).map((k) => k.split('/')[0] as string));
      for (const id of ids) {
        const started = idTime(id);
        if (!complete.has(id) && started !== undefined && now - started > staleMs)
          plan.incomplete.push({ id });
      }
      if (!plan.dryRun) {
        for (const d of [...plan.delete, ...plan.incomplete]) {
          throwIfAborted(signal, 'prune');
          await removeBackup(this.#storage, d.id);
        }
        await this.#storage.sweep?.(staleMs, { signal });
      }
      return plan;
    });
  }

  async rewrap(id: string, next: EncryptionOptions, opts?: CallOptions): Promise<Manifest> {
    const signal = this.#signal(opts, 'rewrap');
    const cfg = checkEncryption(next, 'next');
    if (!cfg) throw invalid('rewrap needs the new key: { key }');
    const m = await this.#get(checkId(id), signal);
    if (!m.encryption) throw invalid(`backup ${id} is not encrypted; there is no key to rewrap`);
    const dataKey = unwrapKey(this.#key, id, m.encryption);
    m.encryption = { ...wrapKey(cfg, id, dataKey), chunkBytes: m.encryption.chunkBytes };
    await writeManifest(this.#storage, m, signal);
    return m;
  }

  schedule(opts: ScheduleOptions): Schedule {
    if (this.#closing.signal.aborted)
      throw new OmsBackupError('ERR_OMS_BACKUP_CLOSED', 'schedule: the backup manager is closed');
    const s = new BackupScheduler(
      {
        name: this.name,
        clock: this.clock,
        lock: this.lock,
        create: (o) => this.create(o),
        list: (o) => this.list(o),
        verify: (id, o) => this.verify(id, o),
        prune: (o) => this.prune(o),
        skipped: (reason) => this.#events.emit('skipped', { reason }),
      },
      opts,
    );
    this.#schedules.add(s);
    return {
      close: async () => {
        this.#schedules.delete(s);
        await s.close();
      },
      [Symbol.asyncDispose]() {
        return this.close();
      },
    };
  }

  async status(opts?: CallOptions): Promise<BackupStatus> {
    const list = await this.list(opts);
    return statusOf(list, this.clock.now(), this.#rpoMs, this.#lastError);
  }

  healthCheck(): (ctx?: { signal?: AbortSignal }) => Promise<BackupHealth> {
    const rpoMs = this.#rpoMs;
    if (rpoMs === undefined) throw invalid('healthCheck() needs rpoMs in backupManager({ rpoMs })');
    return async (ctx) => healthOf(await this.status(ctx?.signal ? { signal: ctx.signal } : {}), rpoMs);
  }

  async close(): Promise<void> {
    if (this.#closing.signal.aborted) return;
    this.#closing.abort(new OmsBackupError('ERR_OMS_BACKUP_CLOSED', 'the backup manager was closed'));
    await Promise.all([...this.#schedules].map((s) => s.close()));
    this.#schedules.clear();
    this.#events.clear();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Creates a backup manager over a source and a storage: `create`, `list`, `verify`, `restore`, `prune`,
 * `schedule`, `status` and `healthCheck`.
 *
 * @example
 * import { backupManager, fileStorage } from '@oms/backup';
 * import { postgresSource } from '@oms/backup/postgres';
 * const backups = backupManager({
 *   source: postgresSource({ connectionString: 'postgres://app@localhost/app' }),
 *   storage: fileStorage('/var/backups/app'),
 *   retention: { daily: 7, weekly: 4, monthly: 12 },
 *   rpoMs: 26 * 3_600_000,
 * });
 * const manifest = await backups.create();
 * await backups.verify(manifest.id, { scratchUrl: 'postgres://app@localhost/postgres' });
 */
export function backupManager(options: BackupManagerOptions): BackupManager {
  return new Manager(options);
}
