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

type Outcome = 'done' | 'locked' | 'ran';

/** One periodic job: backups, or (with `verify.everyMs`) restore drills on their own period. */
interface Job {
  readonly kind: 'backup' | 'verify';
  readonly everyMs: number;
  timer: unknown;
}

/**
 * One backup per period (periods aligned to the epoch, so instances agree on them). A run takes the lock, checks
 * under it whether the period already has a backup, and only then dumps, so two instances never both back up one
 * period. Verification runs after each backup, or on its own period with `verify.everyMs`. Runs never overlap: a
 * tick that finds the other job running waits for it. Timers are background (unref'd).
 */
export class BackupScheduler implements Schedule {
  readonly #host: SchedulerHost;
  readonly #opts: ScheduleOptions;
  readonly #ttlMs: number;
  readonly #stop = new AbortController();
  readonly #jobs: Job[];
  #running: Promise<void> | undefined;

  constructor(host: SchedulerHost, opts: ScheduleOptions) {
    if (typeof opts !== 'object' || opts === null) throw invalid('schedule needs { everyMs }');
    const everyMs = v.durationMs('everyMs', opts.everyMs, { min: 1 });
    this.#ttlMs =
      opts.lockTtlMs === undefined ? 600_000 : v.durationMs('lockTtlMs', opts.lockTtlMs, { min: 200 });
    if (opts.verify !== undefined && (typeof opts.verify !== 'object' || opts.verify === null)) {
      throw invalid('verify must be an object such as { scratchUrl }');
    }
    const verifyEvery = opts.verify?.everyMs;
    this.#jobs = [{ kind: 'backup', everyMs, timer: undefined }];
    if (verifyEvery !== undefined) {
      this.#jobs.push({
        kind: 'verify',
        everyMs: v.durationMs('verify.everyMs', verifyEvery, { min: 1 }),
        timer: undefined,
      });
    }
    this.#host = host;
    this.#opts = opts;
    for (const job of this.#jobs) this.#arm(job, 0);
  }

  #arm(job: Job, ms: number): void {
    if (this.#stop.signal.aborted) return;
    job.timer = backgroundTimeout(this.#host.clock, () => void this.#tick(job), ms);
  }

  async #tick(job: Job): Promise<void> {
    const period = (ms: number) => Math.floor(ms / job.everyMs);
    const soon = () => {
      const toBoundary = job.everyMs - (this.#host.clock.now() % job.everyMs);
      return Math.min(toBoundary, Math.max(1, Math.floor(job.everyMs / 4)));
    };
    // The other job's run finishes first; at a shared boundary the backup (armed first) runs before the drill.
    while (this.#running) await this.#running;
    if (this.#stop.signal.aborted) return;
    let outcome = 'ran' as Outcome;
    const startPeriod = period(this.#host.clock.now());
    this.#running = (job.kind === 'backup' ? this.#backup(job) : this.#verify(job)).then(
      (r) => {
        outcome = r;
      },
      () => {},
    );
    await this.#running;
    this.#running = undefined;
    const now = this.#host.clock.now();
    // A run that crossed a boundary looks at the new period at once (under the lock it may find it done).
    // Drills are due 1 ms after a boundary, so a backup due at the same boundary runs first and is the one drilled.
    const offset = job.kind === 'verify' ? 1 : 0;
    if (period(now) !== startPeriod) this.#arm(job, offset);
    else this.#arm(job, outcome === 'locked' ? soon() : job.everyMs - (now % job.everyMs) + offset);
  }

  /** Runs `fn` under the lock; `locked` when another instance holds it. */
  async #locked(fn: (signal: AbortSignal) => Promise<Outcome>): Promise<Outcome> {
    const host = this.#host;
    const lease = host.lock ? await take(host.lock, `oms-backup:${host.name}`, this.#ttlMs) : undefined;
    if (lease === null) {
      host.skipped('locked');
      return 'locked';
    }
    try {
      return await fn(lease?.signal ? AbortSignal.any([this.#stop.signal, lease.signal]) : this.#stop.signal);
    } finally {
      await lease?.release().catch(() => {});
    }
  }

  #backup(job: Job): Promise<Outcome> {
    const host = this.#host;
    return this.#locked(async (signal) => {
      const latest = (await host.list({ signal }))[0];
      const period = (ms: number) => Math.floor(ms / job.everyMs);
      if (latest && period(Date.parse(latest.time)) === period(host.clock.now())) {
        host.skipped('done');
        return 'done';
      }
      const m = await host.create({ signal });
      const verify = this.#opts.verify;
      if (verify && verify.everyMs === undefined) {
        await host
          .verify(m.id, {
            signal,
            ...(verify.scratchUrl === undefined ? {} : { scratchUrl: verify.scratchUrl }),
          })
          .catch(() => {});
      }
      if (this.#opts.prune) await host.prune({ signal }).catch(() => {});
      return 'ran';
    });
  }

  /** A restore drill of the newest backup, once per verify period (whoever verified it). */
  #verify(job: Job): Promise<Outcome> {
    const host = this.#host;
    const scratchUrl = this.#opts.verify?.scratchUrl;
    return this.#locked(async (signal) => {
      const newest = (await host.list({ signal }))[0];
      const period = (ms: number) => Math.floor(ms / job.everyMs);
      const at = newest?.verification?.at;
      if (!newest || (at !== undefined && period(Date.parse(at)) === period(host.clock.now()))) {
        host.skipped('done');
        return 'done';
      }
      await host.verify(newest.id, { signal, ...(scratchUrl === undefined ? {} : { scratchUrl }) });
      return 'ran';
    });
  }

  async close(): Promise<void> {
    if (!this.#stop.signal.aborted) {
      this.#stop.abort(new OmsBackupError('ERR_OMS_BACKUP_CLOSED', 'the schedule was closed'));
      for (const job of this.#jobs) this.#host.clock.clearTimeout(job.timer);
    }
    await this.#running;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
