import { OmsBackupError } from './errors.js';
import { backgroundTimeout, type Clock } from './internal/clock.js';
import type {
  BackupEvents,
  BackupLease,
  BackupLock,
  Manifest,
  PrunePlan,
  Schedule,
  ScheduleOptions,
  VerifyResult,
} from './types.js';
import { invalid, v } from './validate.js';

/** What the scheduler needs from its manager: no more. */
export interface SchedulerHost {
  readonly name: string;
  readonly clock: Clock;
  readonly lock: BackupLock | undefined;
  create(o: { signal: AbortSignal }): Promise<Manifest>;
  list(o: { signal: AbortSignal }): Promise<Manifest[]>;
  verify(id: string, o: { signal: AbortSignal; scratchUrl?: string }): Promise<VerifyResult>;
  prune(o: { signal: AbortSignal }): Promise<PrunePlan>;
  skipped(reason: BackupEvents['skipped']['reason']): void;
}

async function take(lock: BackupLock, key: string, ttlMs: number): Promise<BackupLease | null> {
  if ('tryAcquire' in lock && typeof lock.tryAcquire === 'function') return lock.tryAcquire(key, { ttlMs });
  if ('acquire' in lock && typeof lock.acquire === 'function') {
    // One attempt: another instance holding it means this period is taken care of.
    return lock.acquire(key, { ttlMs, waitMs: 0 }).catch(() => null);
  }
  throw invalid('lock must have tryAcquire(key) or acquire(key)');
}

/**
 * One backup per period (periods aligned to the epoch, so instances agree on them). A run takes the lock, checks
 * under it whether the period already has a backup, and only then dumps, so two instances never both back up one
 * period. A tick that finds a run in progress coalesces into it. Timers are background (unref'd) timers.
 */
export class BackupScheduler implements Schedule {
  readonly #host: SchedulerHost;
  readonly #everyMs: number;
  readonly #opts: ScheduleOptions;
  readonly #ttlMs: number;
  readonly #stop = new AbortController();
  #timer: unknown;
  #running: Promise<void> | undefined;

  constructor(host: SchedulerHost, opts: ScheduleOptions) {
    if (typeof opts !== 'object' || opts === null) throw invalid('schedule needs { everyMs }');
    this.#everyMs = v.durationMs('everyMs', opts.everyMs, { min: 1 });
    this.#ttlMs =
      opts.lockTtlMs === undefined ? 600_000 : v.durationMs('lockTtlMs', opts.lockTtlMs, { min: 200 });
    this.#host = host;
    this.#opts = opts;
    this.#arm(0);
  }

  #period(ms: number): number {
    return Math.floor(ms / this.#everyMs);
  }

  #arm(ms: number): void {
    if (this.#stop.signal.aborted) return;
    this.#timer = backgroundTimeout(this.#host.clock, () => void this.#tick(), ms);
  }

  async #tick(): Promise<void> {
    if (this.#running) {
      this.#host.skipped('running');
      return;
    }
    let retrySoon = false;
    const startPeriod = this.#period(this.#host.clock.now());
    this.#running = this.#once().then(
      (r) => {
        retrySoon = r === 'locked';
      },
      () => {},
    );
    await this.#running;
    this.#running = undefined;
    const now = this.#host.clock.now();
    const toBoundary = this.#everyMs - (now % this.#everyMs);
    // A run that crossed a boundary looks at the new period at once (under the lock it may find it done).
    if (this.#period(now) !== startPeriod) this.#arm(0);
    else this.#arm(retrySoon ? Math.min(toBoundary, Math.max(1, Math.floor(this.#everyMs / 4))) : toBoundary);
  }

  async #once(): Promise<'done' | 'locked' | 'ran'> {
    const host = this.#host;
    const stop = this.#stop.signal;
    const lease = host.lock ? await take(host.lock, `oms-backup:${host.name}`, this.#ttlMs) : undefined;
    if (lease === null) {
      host.skipped('locked');
      return 'locked';
    }
    try {
      const latest = (await host.list({ signal: stop }))[0];
      if (latest && this.#period(Date.parse(latest.time)) === this.#period(host.clock.now())) {
        host.skipped('done');
        return 'done';
      }
      const signal = lease?.signal ? AbortSignal.any([stop, lease.signal]) : stop;
      const m = await host.create({ signal });
      if (this.#opts.verify) {
        await host.verify(m.id, { signal, ...this.#opts.verify }).catch(() => {});
      }
      if (this.#opts.prune) await host.prune({ signal }).catch(() => {});
      return 'ran';
    } finally {
      await lease?.release().catch(() => {});
    }
  }

  async close(): Promise<void> {
    if (!this.#stop.signal.aborted) {
      this.#stop.abort(new OmsBackupError('ERR_OMS_BACKUP_CLOSED', 'the schedule was closed'));
      this.#host.clock.clearTimeout(this.#timer);
    }
    await this.#running;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
