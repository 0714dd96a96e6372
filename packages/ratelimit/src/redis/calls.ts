import { type AlgorithmImpl, type Mode, newOut, type Out, Unit } from '../algorithm.js';
import { downError, type Raw, type ScriptRunner, STALE } from './script-runner.js';
import { BATCH_SCRIPT, SCRIPTS } from './scripts.js';
import type { ServerClock } from './server-clock.js';
import { MAX_BATCH, TickBatcher } from './tick-batcher.js';

/**
 * Test-only: when set, sees every single-scope decision with the Redis key and the server time (µs) its script
 * read, so a test can replay the decisions in server order. Not part of the public API.
 */
export const serverTimeProbe: {
  onDecision: ((key: string, nowUs: number, cost: number, out: Out) => void) | undefined;
} = { onDecision: undefined };

/** One single-scope call waiting for the end of its tick. */
export interface Call {
  readonly k: string;
  readonly code: number;
  readonly p1: number;
  readonly p2: number;
  readonly cost: number;
  readonly mode: Mode;
  readonly timeoutMs: number;
  readonly cb: (err: unknown, out: Out | undefined) => void;
}

/** Converts ms-unit parameter `i` to the scripts' µs. */
export function usParam(alg: AlgorithmImpl, p: Float64Array, i: number): number {
  const u = alg.units[i]!;
  return u === Unit.none ? p[i]! : u === Unit.ms ? p[i]! * 1000 : p[i]! / 1000;
}

/** Copies one (ok remaining resetMs retryMs) quadruple of a reply into `out`. */
export function fill(out: Out, raw: Raw, at: number): void {
  out.allowed = raw[at] === 1;
  out.remaining = raw[at + 1] as number;
  out.resetMs = raw[at + 2] as number;
  out.retryAfterMs = raw[at + 3] as number;
}

const failAll = (q: readonly Call[], e: unknown): void => {
  for (const c of q) c.cb(e, undefined);
};

const failOne = (c: Call, e: unknown): void => c.cb(e, undefined);

/** Single-scope calls: a tick's calls go out as one script run (one per call on Cluster). */
export class SingleCalls {
  readonly #batcher = new TickBatcher<Call>(MAX_BATCH, (q) => this.#dispatch(q, Date.now()));

  constructor(
    readonly runner: ScriptRunner,
    readonly clock: ServerClock,
  ) {}

  add(call: Call): void {
    // a Cluster routes by key, so only one node's calls could share a script: send each on its own there
    if (this.runner.isCluster) this.#dispatch([call], Date.now());
    else this.#batcher.add(call, call.k);
  }

  /** Sends `q` (calls issued together at `at`, their deadlines count from then), once the clock is known. */
  #dispatch(q: Call[], at: number): void {
    this.clock.whenKnown(q, at, this.#send, failOne);
  }

  readonly #send = (q: Call[], at: number): void => {
    const down = downError(this.runner.redis);
    if (down !== undefined) {
      failAll(q, down);
      return;
    }
    if (q.length === 1) this.#send1(q[0]!, at);
    else this.#sendBatch(q, at);
  };

  #sendBatch(q: Call[], at: number): void {
    const n = q.length;
    const a: (number | string)[] = new Array(n * 7);
    for (let i = 0; i < n; i++) {
      const c = q[i]!;
      const b = n + i * 6;
      a[i] = c.k;
      a[b] = c.code;
      a[b + 1] = c.p1;
      a[b + 2] = c.p2;
      a[b + 3] = c.cost;
      a[b + 4] = c.mode;
      a[b + 5] = this.clock.deadline(at, c.timeoutMs);
    }
    const ok = (raw: Raw): void => {
      const now = raw[0] as number;
      this.clock.sample(now);
      for (let i = 0; i < n; i++) {
        const o = 1 + i * 4;
        if (raw[o] === -1) {
          q[i]!.cb(STALE, undefined);
          continue;
        }
        const out = newOut();
        fill(out, raw, o);
        serverTimeProbe.onDecision?.(q[i]!.k, now, q[i]!.cost, out);
        q[i]!.cb(null, out);
      }
    };
    this.runner.run(BATCH_SCRIPT, n, a).then(ok, (e: unknown) => failAll(q, e));
  }

  #send1(c: Call, at: number): void {
    const { k, cost, cb } = c;
    const dl = this.clock.deadline(at, c.timeoutMs);
    const ok = (raw: Raw): void => {
      if (raw[0] === -1) {
        cb(STALE, undefined);
        return;
      }
      const now = raw[4] as number;
      this.clock.sample(now);
      const out = newOut();
      fill(out, raw, 0);
      serverTimeProbe.onDecision?.(k, now, cost, out);
      cb(null, out);
    };
    this.runner
      .run(SCRIPTS[c.code]!, 1, [k, c.p1, c.p2, cost, c.mode, dl])
      .then(ok, (e: unknown) => cb(e, undefined));
  }
}
