import { Mode, type Out } from '../algorithm.js';
import type { StoreScope } from '../store.js';
import { fill, usParam } from './calls.js';
import { downError, type Raw, type ScriptRunner, STALE } from './script-runner.js';
import { MULTI_BATCH_SCRIPT, MULTI_SCRIPT } from './scripts.js';
import type { ServerClock } from './server-clock.js';
import { keySlot } from './slot.js';
import { MAX_BATCH, TickBatcher } from './tick-batcher.js';

/** One single-slot `limitAll` call waiting for the end of its tick. */
interface Group {
  readonly keys: string[];
  readonly args: (number | string)[];
  readonly timeoutMs: number;
  readonly resolve: (raw: Raw) => void;
  readonly reject: (e: unknown) => void;
}

/** Appends (code p1 p2 p3) of `sc` to a script's ARGV. */
function pushParams(args: (number | string)[], sc: StoreScope): void {
  args.push(sc.alg.code, usParam(sc.alg, sc.p, 0), usParam(sc.alg, sc.p, 1), usParam(sc.alg, sc.p, 2));
}

const rejectOne = (g: Group, e: unknown): void => g.reject(e);

/**
 * `limitAll` on Redis: all or nothing in one script run when every key is on one node (a tick's calls share
 * the run); on Cluster across slots, a reservation per slot and a refund of each when any slot denied.
 */
export class MultiCalls {
  readonly #batcher = new TickBatcher<Group>(MAX_BATCH / 4, (q) => this.#dispatch(q));

  constructor(
    readonly runner: ScriptRunner,
    readonly clock: ServerClock,
    readonly keyOf: (sc: StoreScope) => string,
  ) {}

  /** Resolves to the index of the first denying scope, or -1 when all were charged. */
  async apply(scopes: readonly StoreScope[], cost: number, outs: Out[], timeoutMs: number): Promise<number> {
    if (!this.runner.isCluster) {
      // on one node every key is local, so one script covers them all whatever their slots
      return this.#fillGroup(await this.#enqueue(scopes, cost, timeoutMs), outs, 1);
    }
    const groups = new Map<number, number[]>();
    for (let i = 0; i < scopes.length; i++) {
      const slot = keySlot(this.keyOf(scopes[i]!));
      const g = groups.get(slot);
      if (g) g.push(i);
      else groups.set(slot, [i]);
    }
    if (groups.size <= 1) {
      return this.#fillGroup(await this.#multi(scopes, cost, Mode.commit, 0, timeoutMs), outs, 2);
    }
    return this.#acrossSlots(scopes, [...groups.values()], cost, outs, timeoutMs);
  }

  #fillGroup(raw: Raw, outs: Out[], from: number): number {
    const n = (raw.length - from) / 4;
    for (let i = 0; i < n; i++) fill(outs[i]!, raw, from + i * 4);
    return (raw[0] as number) - 1;
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
        fill(outs[i]!, raw, 2 + j * 4);
      });
      if (raw[0] !== 0) {
        const i = idx[(raw[0] as number) - 1]!;
        if (denied < 0 || i < denied) denied = i;
      }
    });
    if (denied < 0 && failure === undefined) return -1;
    const refunds: Promise<unknown>[] = [];
    settled.forEach((s, gi) => {
      if (s.status !== 'fulfilled' || s.value[0] !== 0) return;
      const idx = list[gi]!;
      const group = idx.map((i) => scopes[i]!);
      refunds.push(
        this.#multi(group, cost, Mode.refund, s.value[1] as number, timeoutMs).then(
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
    const keys: string[] = [];
    const args: (number | string)[] = [
      cost,
      mode,
      mode === Mode.refund ? 0 : this.clock.deadline(at, timeoutMs),
      rts,
    ];
    for (const sc of group) {
      keys.push(this.keyOf(sc));
      pushParams(args, sc);
    }
    const raw = await this.runner.run(MULTI_SCRIPT, keys.length, [...keys, ...args]);
    if (raw[0] === -1) throw STALE;
    this.clock.sample(raw[1] as number);
    return raw;
  }

  /** Resolves to {deniedIndex, then (ok remaining resetMs retryMs) per scope}, sent with the tick's other calls. */
  #enqueue(scopes: readonly StoreScope[], cost: number, timeoutMs: number): Promise<Raw> {
    const down = downError(this.runner.redis);
    if (down !== undefined) return Promise.reject(down);
    const keys: string[] = new Array(scopes.length);
    const args: (number | string)[] = [scopes.length, cost, Mode.commit, 0, 0];
    for (let i = 0; i < scopes.length; i++) {
      keys[i] = this.keyOf(scopes[i]!);
      pushParams(args, scopes[i]!);
    }
    return new Promise<Raw>((resolve, reject) => {
      this.#batcher.add({ keys, args, timeoutMs, resolve, reject }, keys);
    });
  }

  #dispatch(q: Group[]): void {
    this.clock.whenKnown(q, Date.now(), this.#send, rejectOne);
  }

  readonly #send = (q: Group[], at: number): void => {
    const down = downError(this.runner.redis);
    if (down !== undefined) {
      for (const g of q) g.reject(down);
      return;
    }
    const keys: string[] = [];
    const args: (number | string)[] = [q.length];
    for (const g of q) {
      g.args[3] = this.clock.deadline(at, g.timeoutMs);
      for (const k of g.keys) keys.push(k);
      for (const a of g.args) args.push(a);
    }
    const ok = (raw: Raw): void => {
      this.clock.sample(raw[0] as number);
      let o = 1;
      for (const g of q) {
        const len = 1 + g.keys.length * 4;
        if (raw[o] === -1) g.reject(STALE);
        else g.resolve(raw.slice(o, o + len));
        o += len;
      }
    };
    const fail = (e: unknown): void => {
      for (const g of q) g.reject(e);
    };
    this.runner.run(MULTI_BATCH_SCRIPT, keys.length, [...keys, ...args]).then(ok, fail);
  };
}
