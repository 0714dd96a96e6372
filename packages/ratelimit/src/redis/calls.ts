import { type Mode, newOut, type Out } from '../algorithm.js';
import type { StoreSink } from '../store.js';
import { fill, indexIn, nextMark, type Profile } from './profile.js';
import { downError, type Raw, type ScriptRunner, STALE } from './script-runner.js';
import { BATCH_SCRIPT, DROPPED, SCRIPTS } from './scripts.js';
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
  readonly prof: Profile;
  readonly cost: number;
  readonly mode: Mode;
  readonly timeoutMs: number;
  readonly sink: StoreSink;
}

const failAll = (q: readonly Call[], e: unknown): void => {
  for (const c of q) c.sink.reply(e, undefined);
};

const failOne = (c: Call, e: unknown): void => c.sink.reply(e, undefined);

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
    const mark = nextMark();
    const profs: Profile[] = [];
    // KEYS, then ARGV: nProfiles, the profiles, then (profile × 3 + mode, cost) per call
    const calls: (number | string)[] = new Array(n * 2);
    for (let i = 0; i < n; i++) {
      const c = q[i]!;
      calls[i * 2] = indexIn(profs, c.prof, mark, c.timeoutMs) * 3 + c.mode;
      calls[i * 2 + 1] = c.cost;
    }
    const np = profs.length;
    const a: (number | string)[] = new Array(n + 1 + np * 5);
    for (let i = 0; i < n; i++) a[i] = q[i]!.k;
    a[n] = np;
    for (let j = 0; j < np; j++) {
      const p = profs[j]!;
      const b = n + 1 + j * 5;
      a[b] = p.code;
      a[b + 1] = p.p1;
      a[b + 2] = p.p2;
      a[b + 3] = p.p3;
      a[b + 4] = this.clock.deadline(at, p.timeoutMs);
    }
    for (let i = 0; i < calls.length; i++) a.push(calls[i]!);
    this.runner.run(BATCH_SCRIPT, n, a).then(
      (raw) => this.#settleBatch(q, raw),
      (e: unknown) => failAll(q, e),
    );
  }

  #settleBatch(q: Call[], raw: Raw): void {
    const now = raw[0] as number;
    this.clock.sample(now);
    const probe = serverTimeProbe.onDecision;
    for (let i = 0; i < q.length; i++) {
      const o = 1 + i * 3;
      const c = q[i]!;
      if (raw[o] === DROPPED) {
        c.sink.reply(STALE, undefined);
        continue;
      }
      const out = newOut();
      fill(out, raw, o);
      probe?.(c.k, now, c.cost, out);
      c.sink.reply(null, out);
    }
  }

  #send1(c: Call, at: number): void {
    const { k, prof, cost, sink } = c;
    const args = [k, prof.p1, prof.p2, prof.p3, this.clock.deadline(at, c.timeoutMs), c.mode, cost];
    const ok = (raw: Raw): void => {
      if (raw[0] === DROPPED) {
        sink.reply(STALE, undefined);
        return;
      }
      const now = raw[4] as number;
      this.clock.sample(now);
      const out = newOut();
      fill(out, raw, 1);
      out.allowed = raw[0] === 1;
      serverTimeProbe.onDecision?.(k, now, cost, out);
      sink.reply(null, out);
    };
    this.runner.run(SCRIPTS[prof.code]!, 1, args).then(ok, (e: unknown) => sink.reply(e, undefined));
  }
}
