import type { Algorithm } from './types.js';

/**
 * Per-key state in the memory store. Field meaning depends on the algorithm; numeric fields keep every
 * slot one hidden class. `exp === 0` marks a fresh slot (new, or past the time it could matter).
 */
export class Slot {
  a = 0;
  b = 0;
  c = 0;
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

/** Step modes, shared with the Lua scripts. */
export const PEEK = 0;
export const COMMIT = 1;
export const REFUND = 2;

/** The engine side of an `Algorithm`: memory step, Lua dispatch code and parameter scaling. */
export interface AlgorithmImpl extends Algorithm {
  /** Dispatch code in the Lua scripts. */
  readonly code: 1 | 2 | 3 | 4 | 5;
  /** Power of the time unit in each parameter: the Redis store converts ms to µs with 1000^unit. */
  readonly units: readonly [number, number, number];
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
   * Evaluates one call on a memory slot at `now` (ms); writes the slot only for COMMIT (when allowed) and
   * REFUND (`rts` is the reservation's time).
   */
  step(s: Slot, now: number, p: Float64Array, cost: number, mode: number, rts: number, out: Out): void;
}

export const impl = (a: Algorithm): AlgorithmImpl => a as AlgorithmImpl;

/** `quotaOf` of the algorithms whose quota is their integer limit, kept in p[0]. */
export const quotaInP0 = (p: Float64Array): number => p[0]!;

/** Floors with a tolerance so 2.9999999999 (float noise) counts as 3. */
export const floorEps = (x: number): number => Math.floor(x + 1e-9);

/** An integer limit scaled by `m`, never below 1 so a call of cost 1 can still pass. */
export const scaledInt = (n: number, m: number): number => (m === 1 ? n : Math.max(1, Math.floor(n * m)));
