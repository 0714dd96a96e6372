import { OmsHealthError } from './errors.js';
import { backgroundTimeout } from './internal/clock.js';
import type { Emitter } from './internal/emitter.js';
import { describe, normalize, rejected } from './outcome.js';
import type {
  CheckKind,
  CheckOutcome,
  CheckResult,
  Clock,
  HealthCheck,
  HealthEvents,
  HealthTransition,
} from './types.js';

/** A registered check: what it is (readonly), and the runner's state of it. */
export interface Entry {
  readonly name: string;
  readonly check: HealthCheck;
  readonly kinds: readonly CheckKind[];
  readonly critical: boolean;
  readonly timeoutMs: number;
  readonly intervalMs: number | undefined;
  readonly staleAfterMs: number | undefined;
  readonly componentType: string;
  last: CheckResult | undefined;
  lastChangeAt: number;
  /** The shared result of the current run: resolves on completion or on timeout. */
  inflight: Promise<CheckResult> | undefined;
  /** The user's function has not settled yet (it may outlive its timeout). */
  running: boolean;
  runStartedAt: number;
  passedOnce: boolean;
  controller: AbortController | undefined;
  /** Settles the pending run (with a timeout or close result); clears its timer. */
  settle: ((outcome: CheckOutcome, timedOut: boolean) => void) | undefined;
  /** Refs the pending run's timeout timer: a report now awaits a run the poller started in the background. */
  hold: (() => void) | undefined;
  pollTimer: unknown;
  removed: boolean;
  readonly ring: HealthTransition[];
}

export interface RunnerOptions {
  clock: Clock;
  events: Emitter<HealthEvents>;
  historySize: number;
  /** Filters every output before it is kept (redaction and length). */
  scrub: (text: string | undefined) => string | undefined;
  /** Called after every result is kept (the registry re-evaluates `started`). */
  recorded: () => void;
}

/**
 * Runs checks: one run at a time per check (single flight, joined by every caller), an enforced timeout,
 * background polling, staleness of polled results, and the history of status changes.
 */
export class CheckRunner {
  readonly #o: RunnerOptions;
  #closed = false;

  constructor(o: RunnerOptions) {
    this.#o = o;
  }

  /** The result a report uses: the polled one (checked for staleness), or a run now. */
  async current(entry: Entry): Promise<CheckResult> {
    if (entry.intervalMs !== undefined && entry.last) return this.staleness(entry) as CheckResult;
    return this.run(entry, true);
  }

  /**
   * Starts a run, or joins the one in flight. `awaited`: a caller waits on this run, so its timeout timer
   * must hold the process open until it settles (a bare script would otherwise exit with code 13
   * mid-report). A run only the poller started is background work, and its timer is unref'd until a report
   * joins it.
   */
  run(entry: Entry, awaited: boolean): Promise<CheckResult> {
    if (entry.inflight) {
      if (awaited) entry.hold?.();
      return entry.inflight;
    }
    if (entry.running) return Promise.resolve(this.#stillRunning(entry));
    const controller = new AbortController();
    entry.controller = controller;
    entry.running = true;
    const startedAt = this.#o.clock.now();
    entry.runStartedAt = startedAt;
    const p = new Promise<CheckResult>((resolve) => {
      let settled = false;
      let timer: unknown;
      const settle = (outcome: CheckOutcome, timedOut: boolean) => {
        if (settled) return;
        settled = true;
        this.#o.clock.clearTimeout(timer);
        if (entry.settle === settle) {
          entry.settle = undefined;
          entry.hold = undefined;
        }
        resolve(this.#safeRecord(entry, outcome, startedAt, timedOut));
      };
      // close() settles a pending run at once, so it can clear this run's timer without leaving a report hanging
      entry.settle = settle;
      timer = this.#timeout(entry, awaited, () => !settled, controller, settle);
      let ret: unknown;
      try {
        ret = entry.check({ signal: controller.signal });
      } catch (e) {
        ret = Promise.reject(e);
      }
      Promise.resolve(ret)
        .then(normalize, rejected)
        .then((outcome) => {
          entry.running = false;
          settle(outcome, false);
        });
    });
    entry.inflight = p;
    void p.then(() => {
      if (entry.inflight === p) entry.inflight = undefined;
    });
    return p;
  }

  /**
   * The last run outlived its timeout and still has not settled: starting another would stack up hung calls
   * against a dependency that is already in trouble.
   */
  #stillRunning(entry: Entry): CheckResult {
    const clock = this.#o.clock;
    const age = clock.now() - entry.runStartedAt;
    return this.#record(
      entry,
      {
        status: 'fail',
        observedValue: age,
        observedUnit: 'ms',
        output: `timed out after ${entry.timeoutMs} ms; that run is still in flight after ${age} ms, so no new run was started`,
      },
      clock.now(),
      true,
    );
  }

  /** Arms a run's timeout: it aborts the check's signal and settles the run as a `fail`. */
  #timeout(
    entry: Entry,
    awaited: boolean,
    pending: () => boolean,
    controller: AbortController,
    settle: (outcome: CheckOutcome, timedOut: boolean) => void,
  ): unknown {
    const { clock } = this.#o;
    const onTimeout = () => {
      if (!pending()) return;
      controller.abort(
        new OmsHealthError(
          'ERR_OMS_HEALTH_ABORTED',
          `check ${entry.name} timed out after ${entry.timeoutMs} ms`,
        ),
      );
      settle(
        {
          status: 'fail',
          observedValue: entry.timeoutMs,
          observedUnit: 'ms',
          output: `timed out after ${entry.timeoutMs} ms`,
        },
        true,
      );
    };
    if (awaited) return clock.setTimeout(onTimeout, entry.timeoutMs);
    const timer = backgroundTimeout(clock, onTimeout, entry.timeoutMs);
    entry.hold = () => {
      (timer as { ref?: () => unknown } | null)?.ref?.();
    };
    return timer;
  }

  /** A polled result older than `staleAfterMs` is a `fail` (kept, so the change is in the history). */
  staleness(entry: Entry): CheckResult | undefined {
    const last = entry.last;
    if (!last || entry.intervalMs === undefined || entry.staleAfterMs === undefined) return last;
    const age = this.#o.clock.now() - last.time;
    if (age <= entry.staleAfterMs || last.status === 'fail') return last;
    const stale: CheckResult = {
      ...last,
      status: 'fail',
      output: `stale: the last result is ${age} ms old (staleAfterMs ${entry.staleAfterMs}); the background poller is stuck or behind`,
    };
    this.#setLast(entry, stale, 0);
    return stale;
  }

  /** Polls a check with `intervalMs`, starting on the next tick (user code never runs in register()'s frame). */
  startPolling(entry: Entry): void {
    if (entry.intervalMs !== undefined) {
      entry.pollTimer = backgroundTimeout(this.#o.clock, () => this.#poll(entry), 0);
    }
  }

  #poll(entry: Entry): void {
    if (this.#closed || entry.removed || entry.intervalMs === undefined) return;
    const { clock } = this.#o;
    const interval = entry.intervalMs;
    const startedAt = clock.now();
    void this.run(entry, false).then(() => {
      if (this.#closed || entry.removed) return;
      const wait = Math.max(0, interval - (clock.now() - startedAt));
      entry.pollTimer = backgroundTimeout(clock, () => this.#poll(entry), wait);
    });
  }

  /** Stops a check for good: no more polls, its run aborted and settled with `why`, its monitor closed. */
  stop(entry: Entry, why: string): void {
    entry.removed = true;
    if (entry.pollTimer !== undefined) this.#o.clock.clearTimeout(entry.pollTimer);
    entry.pollTimer = undefined;
    entry.controller?.abort(new OmsHealthError('ERR_OMS_HEALTH_CLOSED', 'the health registry was closed'));
    entry.settle?.({ status: 'fail', output: why }, false);
    try {
      entry.check.close?.();
    } catch {
      // closing a monitor must not stop the others from closing
    }
  }

  /** Stops every check and polls no more. */
  close(entries: Iterable<Entry>): void {
    this.#closed = true;
    for (const e of entries) this.stop(e, 'the health registry was closed during this run');
  }

  #record(entry: Entry, outcome: CheckOutcome, startedAt: number, timedOut: boolean): CheckResult {
    const now = this.#o.clock.now();
    const durationMs = Math.max(0, now - startedAt);
    const status = outcome.status ?? 'pass';
    const output = this.#o.scrub(outcome.output);
    const result: CheckResult = {
      name: entry.name,
      status,
      observedValue: outcome.observedValue !== undefined ? outcome.observedValue : durationMs,
      observedUnit: outcome.observedUnit ?? (outcome.observedValue !== undefined ? '' : 'ms'),
      ...(output !== undefined && output !== '' ? { output } : {}),
      componentType: outcome.componentType || entry.componentType,
      ...(outcome.componentId !== undefined ? { componentId: outcome.componentId } : {}),
      ...(Array.isArray(outcome.affectedEndpoints)
        ? { affectedEndpoints: [...outcome.affectedEndpoints] }
        : {}),
      ...(outcome.details && typeof outcome.details === 'object' ? { details: { ...outcome.details } } : {}),
      time: now,
      durationMs,
      timedOut,
    };
    this.#setLast(entry, result, durationMs);
    this.#o.events.emit('check', { name: entry.name, status, durationMs, timedOut });
    return result;
  }

  // A run's promise must always settle, or every later report would wait on it: should recording ever
  // throw, the run still settles, as fail.
  #safeRecord(entry: Entry, outcome: CheckOutcome, startedAt: number, timedOut: boolean): CheckResult {
    try {
      return this.#record(entry, outcome, startedAt, timedOut);
    } catch (e) {
      return this.#record(
        entry,
        { status: 'fail', output: `recording the result failed: ${describe(e)}` },
        startedAt,
        timedOut,
      );
    }
  }

  #setLast(entry: Entry, result: CheckResult, checkDurationMs: number): void {
    const prev = entry.last?.status;
    entry.last = result;
    if (result.status !== 'fail') entry.passedOnce = true;
    if (prev !== result.status) {
      const now = this.#o.clock.now();
      const t: HealthTransition = {
        name: entry.name,
        from: prev ?? 'unknown',
        to: result.status,
        time: now,
        durationMs: prev === undefined ? 0 : Math.max(0, now - entry.lastChangeAt),
        checkDurationMs,
        ...(result.output !== undefined ? { output: result.output } : {}),
        critical: entry.critical,
        kinds: entry.kinds,
      };
      entry.lastChangeAt = now;
      entry.ring.push(t);
      if (entry.ring.length > this.#o.historySize) entry.ring.shift();
      if (!entry.removed) this.#o.events.emit('change', t);
    }
    this.#o.recorded();
  }
}
