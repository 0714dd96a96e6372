import { createHash, randomBytes } from 'node:crypto';
import { assertSameChecksums } from './checksums.js';
import { checkEncryption, decrypt, encrypt, type KeyConfig, unwrapKey, wrapKey } from './encryption.js';
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
  RestoreContext,
  RestoreOptions,
  Schedule,
  ScheduleOptions,
  VerifyOptions,
  VerifyResult,
} from './types.js';
import { checkId, checkSignal, invalid, v } from './validate.js';

const MANIFEST = 'manifest.json';

async function* once(b: Uint8Array): AsyncGenerator<Uint8Array> {
  yield b;
}

/** Passes chunks through, telling `see` about each: hashing and counting on the way to storage. */
async function* tap(
  src: AsyncIterable<Uint8Array>,
  see: (c: Uint8Array) => void,
): AsyncGenerator<Uint8Array> {
  for await (const c of src) {
    see(c);
    yield c;
  }
}

async function readAll(src: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of src) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

const compactIso = (ms: number) => new Date(ms).toISOString().replace(/[-:.]/g, '');

/** When a backup with this id started (ids begin with a compact ISO time), or undefined for a foreign key. */
function idTime(id: string): number | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z-/.exec(id);
  if (!m) return undefined;
  const t = Date.parse(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}.${m[7]}Z`);
  return Number.isNaN(t) ? undefined : t;
}

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

function checkManifest(id: string, raw: Buffer): Manifest {
  let m: Manifest;
  try {
    m = JSON.parse(raw.toString('utf8')) as Manifest;
  } catch (e) {
    throw new OmsBackupError(
      'ERR_OMS_BACKUP_CORRUPT',
      `the manifest of backup ${id} is not valid JSON`,
      false,
      {
        cause: e,
      },
    );
  }
  if (m?.version !== 1 || m.id !== id || !Array.isArray(m.files) || !Array.isArray(m.tables)) {
    throw new OmsBackupError(
      'ERR_OMS_BACKUP_CORRUPT',
      `the manifest of backup ${id} is not a version 1 @oms/backup manifest for this id`,
    );
  }
  return m;
}

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
    if (typeof o !== 'object' || o === null) throw invalid('backupManager needs { source, storage }');
    const s = o.source as Partial<BackupSource> | undefined;
    if (
      !s ||
      typeof s.dump !== 'function' ||
      typeof s.verify !== 'function' ||
      typeof s.restore !== 'function'
    ) {
      throw invalid('source must be a backup source such as postgresSource({ connectionString })');
    }
    const st = o.storage as Partial<BackupStorage> | undefined;
    if (!st || (['put', 'get', 'list', 'delete'] as const).some((k) => typeof st[k] !== 'function')) {
      throw invalid('storage must have put, get, list and delete, such as fileStorage(dir)');
    }
    const lock = o.lock as Record<string, unknown> | undefined;
    if (lock !== undefined && typeof lock?.tryAcquire !== 'function' && typeof lock?.acquire !== 'function') {
      throw invalid('lock must have tryAcquire(key) or acquire(key), such as a Locks store of @oms/locks');
    }
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
    const id = `${compactIso(started)}-${randomBytes(4).toString('hex')}`;
    const dataKey = this.#key ? randomBytes(32) : undefined;
    const files: ArtifactFile[] = [];
    let total = 0;
    try {
      const info = await this.#source.dump({
        signal,
        write: async (name, body) => {
          if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name) || name === MANIFEST) {
            throw invalid(`artifact name ${JSON.stringify(name)} is not allowed`);
          }
          const hash = createHash('sha256');
          let bytes = 0;
          const stored = dataKey && this.#key ? encrypt(body, dataKey, name, this.#key.chunkBytes) : body;
          await this.#storage.put(
            `${id}/${name}`,
            tap(stored, (c) => {
              hash.update(c);
              bytes += c.byteLength;
              total += c.byteLength;
              if (this.#events.has('progress'))
                this.#events.emit('progress', { run, operation: 'create', bytes: total });
            }),
            { signal },
          );
          files.push({ name, bytes, sha256: hash.digest('hex') });
        },
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
        ...(dataKey && this.#key ? { encryption: wrapKey(this.#key, id, dataKey) } : {}),
      };
      // Written last: until this rename, the backup does not exist for list(), verify() or prune().
      await this.#writeManifest(manifest, signal);
      this.#lastSuccessAt = Math.max(this.#lastSuccessAt ?? 0, started);
      return manifest;
    } catch (e) {
      await this.#remove(id).catch(() => {});
      if (signal.aborted && !isOmsBackupError(e)) throw abortError(signal, 'create');
      throw e;
    }
  }

  #writeManifest(m: Manifest, signal?: AbortSignal): Promise<{ bytes: number }> {
    return this.#storage.put(
      `${m.id}/${MANIFEST}`,
      once(Buffer.from(`${JSON.stringify(m, null, 2)}\n`)),
      signal ? { signal } : {},
    );
  }

  /** The manifest goes first, so a half-deleted backup is never listed as complete. */
  async #remove(id: string): Promise<void> {
    const keys = await this.#storage.list(`${id}/`);
    const ordered = [
      ...keys.filter((k) => k.endsWith(`/${MANIFEST}`)),
      ...keys.filter((k) => !k.endsWith(`/${MANIFEST}`)),
    ];
    for (const k of ordered) await this.#storage.delete(k);
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
    return checkManifest(id, raw);
  }

  /**
   * Reads every stored file end to end before anything is restored: the SHA-256 of each against the manifest,
   * then (when encrypted) every chunk's authentication tag. Nothing reaches a database before both passed.
   */
  async #checkArchive(m: Manifest, dataKey: Buffer | undefined, signal: AbortSignal): Promise<void> {
    for (const f of m.files) {
      const hash = createHash('sha256');
      let bytes = 0;
      const stored = await this.#storage.get(`${m.id}/${f.name}`, { signal }).catch((e: unknown) => {
        if (!isOmsBackupError(e) || e.code !== 'ERR_OMS_BACKUP_NOT_FOUND') throw e;
        throw new OmsBackupError(
          'ERR_OMS_BACKUP_CORRUPT',
          `backup ${m.id} is incomplete: ${f.name} is missing from storage; it is not restored`,
          false,
          { cause: e },
        );
      });
      for await (const c of stored) {
        throwIfAborted(signal, 'reading the archive');
        hash.update(c);
        bytes += c.byteLength;
      }
      const sha = hash.digest('hex');
      if (bytes !== f.bytes || sha !== f.sha256) {
        throw new OmsBackupError(
          'ERR_OMS_BACKUP_CORRUPT',
          `backup ${m.id} is corrupt: ${f.name} has ${bytes} bytes and SHA-256 ${sha.slice(0, 12)}…, the manifest says ${f.bytes} bytes and ${f.sha256.slice(0, 12)}…; it is not restored`,
        );
      }
    }
    if (!dataKey) return;
    for (const f of m.files) {
      for await (const _ of decrypt(
        await this.#storage.get(`${m.id}/${f.name}`, { signal }),
        dataKey,
        f.name,
      )) {
        throwIfAborted(signal, 'reading the archive');
      }
    }
  }

  async #prepare(m: Manifest, signal: AbortSignal): Promise<RestoreContext> {
    const dataKey = m.encryption ? unwrapKey(this.#key, m.id, m.encryption) : undefined;
    await this.#checkArchive(m, dataKey, signal);
    const storage = this.#storage;
    return {
      signal,
      manifest: m,
      async *read(name) {
        const src = await storage.get(`${m.id}/${name}`, { signal });
        yield* dataKey ? decrypt(src, dataKey, name) : src;
      },
    };
  }

  async verify(id: string, opts: VerifyOptions = {}): Promise<VerifyResult> {
    const signal = this.#signal(opts, 'verify');
    checkId(id);
    return this.#observe('verify', id, signal, async () => {
      const m = await this.#get(id, signal);
      try {
        const ctx = await this.#prepare(m, signal);
        const t0 = this.clock.now();
        const tables = await this.#source.verify(
          ctx,
          opts.scratchUrl === undefined ? {} : { scratchUrl: opts.scratchUrl },
        );
        const restoreMs = this.clock.now() - t0;
        assertSameChecksums(id, m.tables, tables);
        m.verification = { at: new Date(this.clock.now()).toISOString(), ok: true, restoreMs };
        await this.#writeManifest(m);
        return { id, restoreMs, tables };
      } catch (e) {
        if (!signal.aborted && isOmsBackupError(e) && RECORDED.has(e.code)) {
          m.verification = {
            at: new Date(this.clock.now()).toISOString(),
            ok: false,
            restoreMs: 0,
            code: e.code,
          };
          await this.#writeManifest(m).catch(() => {});
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
      const ctx = await this.#prepare(m, signal);
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
          await this.#remove(d.id);
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
    await this.#writeManifest(m, signal);
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

function archiveSha(files: ArtifactFile[]): string {
  if (files.length === 1) return (files[0] as ArtifactFile).sha256;
  return createHash('sha256')
    .update(files.map((f) => `${f.name} ${f.sha256}\n`).join(''))
    .digest('hex');
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
