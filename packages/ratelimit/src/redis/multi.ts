import { Mode, type Out } from '../algorithm.js';
import type { AllSink, StoreScope } from '../store.js';
import { fill, indexIn, nextMark, type Profile, profileOf } from './profile.js';
import { downError, type Raw, type ScriptRunner, STALE } from './script-runner.js';
import { DROPPED, MULTI_SCRIPT } from './scripts.js';
import type { ServerClock } from './server-clock.js';
import { keySlot } from './slot.js';
import { MAX_BATCH, TickBatcher } from './tick-batcher.js';

/** One `limitAll` call (or one slot's part of it) for the multi-scope script. */
interface Group {
  readonly keys: string[];
  readonly profs: Profile[];
  readonly cost: number;
  readonly mode: Mode;
  readonly rts: number;
  readonly timeoutMs: number;
}

/** A group waiting for the end of its tick: its reply fills `outs`, then `sink` gets the denied index. */
interface Queued extends Group {
  outs: Out[];
  sink: AllSink;
}

/** The profile of each scope. */
function profilesOf(scopes: readonly StoreScope[]): Profile[] {
  const profs: Profile[] = new Array(scopes.length);
  for (let i = 0; i < scopes.length; i++) profs[i] = profileOf(scopes[i]!.alg, scopes[i]!.p);
  return profs;
}

/**
 * The multi-scope script's KEYS and ARGV for `groups`, each with its deadline from issue time `at`. The groups
 * of one run share their mode and rts: a tick's calls all commit, and a Cluster slot's call runs alone.
 */
function multiArgs(
  groups: readonly Group[],
  clock: ServerClock,
  at: number,
): { numKeys: number; args: (number | string)[] } {
  const mark = nextMark();
  const profs: Profile[] = [];
  const keys: (number | string)[] = [];
  const tail: (number | string)[] = [];
  for (const g of groups) {
    for (const k of g.keys) keys.push(k);
    tail.push(g.keys.length, g.cost);
    for (const p of g.profs) tail.push(indexIn(profs, p, mark, g.timeoutMs));
  }
  const numKeys = keys.length;
  keys.push(groups[0]!.mode, groups[0]!.rts, profs.length);
  for (const p of profs) keys.push(p.code, p.p1, p.p2, p.p3, clock.deadline(at, p.timeoutMs));
  for (const x of tail) keys.push(x);
  return { numKeys, args: keys };
}

/** Fills `outs` from a group's answer at `from`: the index of the first denying scope, or -1. */
function fillGroup(raw: Raw, from: number, outs: Out[], n: number): number {
  for (let i = 0; i < n; i++) fill(outs[i]!, raw, from + 1 + i * 3);
  return (raw[from] as number) - 1;
}

const rejectOne = (g: Queued, e: unknown): void => g.sink.replyAll(e, -1);

/**
 * `limitAll` on Redis: all or nothing in one script run when every key is on one node (a tick's calls share
 * the run); on Cluster across slots, a reservation per slot and a refund of each when any slot denied.
 */
export class MultiCalls {
  readonly #batcher = new TickBatcher<Queued>(MAX_BATCH / 4, (q) => this.#dispatch(q));

  constructor(
    readonly runner: ScriptRunner,
    readonly clock: ServerClock,
    readonly keyOf: (sc: StoreScope) => string,
  ) {}

  /** Fills `outs`, then tells `sink` the index of the first denying scope, or -1 when all were charged. */
  apply(scopes: readonly StoreScope[], cost: number, outs: Out[], timeoutMs: number, sink: AllSink): void {
    // on one node every key is local, so one script covers them all whatever their slots
    if (!this.runner.isCluster) this.#enqueue(scopes, cost, outs, timeoutMs, sink);
    else {
      this.#cluster(scopes, cost, outs, timeoutMs).then(
        (denied) => sink.replyAll(null, denied),
        (e: unknown) => sink.replyAll(e, -1),
      );
    }
  }

  async #cluster(
    scopes: readonly StoreScope[],
    cost: number,
    outs: Out[],
    timeoutMs: number,
  ): Promise<number> {
    const n = scopes.length;
    const groups = new Map<number, number[]>();
    for (let i = 0; i < n; i++) {
      const slot = keySlot(this.keyOf(scopes[i]!));
      const g = groups.get(slot);
      if (g) g.push(i);
      else groups.set(slot, [i]);
    }
    if (groups.size <= 1) {
      return fillGroup(await this.#multi(scopes, cost, Mode.commit, 0, timeoutMs), 1, outs, n);
    }
    return this.#acrossSlots(scopes, [...groups.values()], cost, outs, timeoutMs);
  }

  /** Keys span slots: reserve in each slot (atomic per slot), refund every reservation if any slot denied. */
  async #acrossSlots(
    scopes: readonly StoreScope[],
    list: number[][],
    cost: number,
    outs: Out[],
    timeoutMs: number,
  ): Promise<number> {
    const settled = await Promise.allSettled(
      list.map((idx) =>
        this.#multi(
          idx.map((i) => scopes[i]!),
          cost,
          Mode.commit,
          0,
          timeoutMs,
        ),
      ),
    );
    let denied = -1;
    let failure: unknown;
    settled.forEach((s, gi) => {
      const idx = list[gi]!;
      if (s.status === 'rejected') {
        failure ??= s.reason;
        return;
      }
      const raw = s.value;
      idx.forEach((i, j) => {
        fill(outs[i]!, raw, 2 + j * 3);
      });
      if (raw[1] !== 0) {
        const i = idx[(raw[1] as number) - 1]!;
        if (denied < 0 || i < denied) denied = i;
      }
    });
    if (denied < 0 && failure === undefined) return -1;
    const refunds: Promise<unknown>[] = [];
    settled.forEach((s, gi) => {
      if (s.status !== 'fulfilled' || s.value[1] !== 0) return;
      const idx = list[gi]!;
      const group = idx.map((i) => scopes[i]!);
      refunds.push(
        this.#multi(group, cost, Mode.refund, s.value[0] as number, timeoutMs).then(
          () => {
            // report what each scope has now the reservation is returned
            for (const i of idx)
              outs[i]!.remaining = Math.min(outs[i]!.remaining + cost, scopes[i]!.alg.limit);
          },
          () => undefined,
        ),
      );
    });
    await Promise.all(refunds);
    if (failure !== undefined) throw failure;
    return denied;
  }

  /** One slot's scopes in one script run of their own (Cluster). */
  async #multi(
    group: readonly StoreScope[],
    cost: number,
    mode: Mode,
    rts: number,
    timeoutMs: number,
  ): Promise<Raw> {
    const at = Date.now();
    // a refund follows a reservation's reply, so the clock is known; it must land whatever the time: it only
    // returns what a reservation took
    if (mode !== Mode.refund) await this.clock.waitKnown(at, timeoutMs);
    const keys = group.map(this.keyOf);
    const { numKeys, args } = multiArgs(
      [{ keys, profs: profilesOf(group), cost, mode, rts, timeoutMs }],
      this.clock,
      at,
    );
    const raw = await this.runner.run(MULTI_SCRIPT, numKeys, args);
    if (raw[1] === DROPPED) throw STALE;
    this.clock.sample(raw[0] as number);
    return raw;
  }

  /** Queues the call with the tick's others; once the run replied it fills `outs` and answers `sink`. */
  #enqueue(scopes: readonly StoreScope[], cost: number, outs: Out[], timeoutMs: number, sink: AllSink): void {
    const down = downError(this.runner.redis);
    if (down !== undefined) {
      sink.replyAll(down, -1);
      return;
    }
    const keys: string[] = new Array(scopes.length);
    for (let i = 0; i < scopes.length; i++) keys[i] = this.keyOf(scopes[i]!);
    const profs = profilesOf(scopes);
    const g: Queued = { keys, profs, cost, mode: Mode.commit, rts: 0, timeoutMs, outs, sink };
    this.#batcher.add(g, keys);
  }

  #dispatch(q: Queued[]): void {
    this.clock.whenKnown(q, Date.now(), this.#send, rejectOne);
  }

  readonly #send = (q: Queued[], at: number): void => {
    const down = downError(this.runner.redis);
    if (down !== undefined) {
      for (const g of q) g.sink.replyAll(down, -1);
      return;
    }
    const { numKeys, args } = multiArgs(q, this.clock, at);
    const ok = (raw: Raw): void => {
      this.clock.sample(raw[0] as number);
      let o = 1;
      for (const g of q) {
        if (raw[o] === DROPPED) g.sink.replyAll(STALE, -1);
        else g.sink.replyAll(null, fillGroup(raw, o, g.outs, g.keys.length));
        o += 1 + g.keys.length * 3;
      }
    };
    const fail = (e: unknown): void => {
      for (const g of q) g.sink.replyAll(e, -1);
    };
    this.runner.run(MULTI_SCRIPT, numKeys, args).then(ok, fail);
  };
}
