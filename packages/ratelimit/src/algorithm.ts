import type { Algorithm } from './types.js';

/**
 * Per-key state in the memory store, the same model the Lua scripts keep in Redis (`at level [prevLevel]`):
 * - token bucket: `level` tokens at time `at` (ms);
 * - gcra: `level` cells in flight at time `at` (ms);
 * - fixed window: `level` units counted in window number `at`;
 * - sliding counter: `level` units in window number `at`, `prevLevel` in the window before;
 * - sliding log: `log` (one timestamp per unit, from `head` on).
 *
 * Numeric fields keep every slot one hidden class. `exp === 0` marks a fresh slot (new, or past the time it
 * could matter).
 */
export class Slot {
  at = 0;
  level = 0;
  prevLevel = 0;
  log: number[] | null = null;
  head = 0;
  exp = 0;
  // LRU bookkeeping (memory store): last use, and list links in admission order
  gen = 0;
  prev: Slot | null = null;
  next: Slot | null = null;
  key = '';
  owner: Map<string, Slot> | null = null;
}

/** Scratch result an algorithm step writes; the limiter copies it into a Decision at once. */
export interface Out {
  allowed: boolean;
  remaining: number;
  resetMs: number;
  retryAfterMs: number;
}

export const newOut = (): Out => ({ allowed: false, remaining: 0, resetMs: 0, retryAfterMs: 0 });

/**
 * What a step does, shared with the Lua scripts: `peek` evaluates only, `commit` charges when allowed,
 * `refund` returns what a reservation made at `rts` took.
 */
export const Mode = { peek: 0, commit: 1, refund: 2 } as const;
export type Mode = (typeof Mode)[keyof typeof Mode];

/** Each algorithm's dispatch code in the Lua scripts (`alg<code>`). */
export const AlgCode = { tokenBucket: 1, gcra: 2, fixedWindow: 3, slidingCounter: 4, slidingLog: 5 } as const;
export type AlgCode = (typeof AlgCode)[keyof typeof AlgCode];

/** Unit of each parameter: the Redis store converts ms-unit values to the scripts' µs. */
export const Unit = { none: 0, ms: 1, perMs: -1 } as const;
export type Unit = (typeof Unit)[keyof typeof Unit];

/** The engine side of an `Algorithm`: memory step, Lua dispatch code and parameter scaling. */
export interface AlgorithmImpl extends Algorithm {
  /** Dispatch code in the Lua scripts. */
  readonly code: AlgCode;
  /** The time unit of each parameter: the Redis store converts ms to µs with 1000^unit. */
  readonly units: readonly [Unit, Unit, Unit];
  /** Parameters at multiplier 1, ms units. */
  readonly base: Float64Array;
  /** Writes the parameters at multiplier `m` into `p`. */
  scale(p: Float64Array, m: number): void;
  /** The effective limit (largest cost) at multiplier `m`. */
  limitAt(m: number): number;
  /** The quota per window (`q`) that parameters `p` give; the limit, except for gcra with a burst. */
  quotaOf(p: Float64Array): number;
  /** Current multiplier (adaptive only). */
  multiplier?: () => number;
  /**
   * Evaluates one call on a memory slot at `now` (ms); writes the slot only for `commit` (when allowed) and
   * `refund` (`rts` is the reservation's time).
   */
  step(s: Slot, now: number, p: Float64Array, cost: number, mode: Mode, rts: number, out: Out): void;
}

export const impl = (a: Algorithm): AlgorithmImpl => a as AlgorithmImpl;

/** `quotaOf` of the algorithms whose quota is their integer limit, kept in p[0]. */
export const quotaInP0 = (p: Float64Array): number => p[0]!;

/** Floors with a tolerance so 2.9999999999 (float noise) counts as 3. */
export const floorEps = (x: number): number => Math.floor(x + 1e-9);

/** An integer limit scaled by `m`, never below 1 so a call of cost 1 can still pass. */
export const scaledInt = (n: number, m: number): number => (m === 1 ? n : Math.max(1, Math.floor(n * m)));
