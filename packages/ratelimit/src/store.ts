import type { AlgorithmImpl, Mode, Out } from './algorithm.js';
import type { RateLimitStore } from './types.js';

/** One scope of a multi-scope call, as the stores see it. */
export interface StoreScope {
  /** The scope's own store: `limitAll` may span several stores that can act atomically together. */
  readonly store: StoreImpl;
  readonly name: string;
  readonly key: string;
  readonly alg: AlgorithmImpl;
  readonly p: Float64Array;
}

/** A store whose calls complete synchronously in this process (memory). */
export interface SyncStore extends RateLimitStore {
  readonly sync: true;
  bind(name: string): SyncBinding;
  /** True when one atomic step can cover scopes on this store and on `other`. */
  atomicWith(other: StoreImpl): boolean;
  /** Checks every scope (each on its own memory store), then charges all or none. */
  applyAll(scopes: readonly StoreScope[], cost: number, now: number, outs: Out[]): number;
}

export interface SyncBinding {
  /** The slot of `key` at `now`, created (possibly evicting another) when `create`. */
  slot(key: string, now: number, create: boolean): import('./algorithm.js').Slot;
  apply(
    key: string,
    alg: AlgorithmImpl,
    p: Float64Array,
    cost: number,
    mode: Mode,
    now: number,
    out: Out,
  ): void;
  reset(key: string): void;
}

/** A store behind a network round trip (Redis). */
export interface AsyncStore extends RateLimitStore {
  readonly sync: false;
  /** `timeoutMs`: the caller gives up after it, so a command reaching the server later must do nothing. */
  bind(name: string, timeoutMs: number): AsyncBinding;
  /** True when one atomic step can cover scopes on this store and on `other`. */
  atomicWith(other: StoreImpl): boolean;
  /** Fills `outs` and answers `sink` with the index of the first denying scope, or -1 when all were charged. */
  applyAll(scopes: readonly StoreScope[], cost: number, outs: Out[], timeoutMs: number, sink: AllSink): void;
}

/** Where a remote store delivers one call's answer: an object, so the hot path needs no closure per call. */
export interface StoreSink {
  reply(err: unknown, out: Out | undefined): void;
}

/** Where a remote store delivers a `limitAll` answer (`denied` is -1 when all were charged, or on `err`). */
export interface AllSink {
  replyAll(err: unknown, denied: number): void;
}

export interface AsyncBinding {
  /** Answers through `sink`: the hot path then needs no promise of its own besides the one it returns. */
  apply(key: string, alg: AlgorithmImpl, p: Float64Array, cost: number, mode: Mode, sink: StoreSink): void;
  reset(key: string): Promise<void>;
}

export type StoreImpl = SyncStore | AsyncStore;

export const isStoreImpl = (s: unknown): s is StoreImpl =>
  typeof s === 'object' && s !== null && typeof (s as StoreImpl).bind === 'function' && 'sync' in s;
