import type { LockMode, LossReason } from './types.js';

// The seam between the generic lease logic (core.ts) and a storage backend. Internal: not exported from
// the package's public surface, but shared by the ./redis and ./postgres subpaths.

/** A lock the backend granted; the core drives its heartbeat and release. */
export interface HeldLock {
  /** Pushes the expiry to `ttlMs` from the server's now; `false` when the lock is no longer ours. */
  extend(ttlMs: number): Promise<boolean>;
  /** Releases and wakes waiters; `false` when the lock was no longer ours (it had been lost). */
  release(): Promise<boolean>;
  /** Loss the backend detects by itself (a dropped connection). Called at most once. */
  onLoss?(fn: (reason: LossReason) => void): void;
}

export type AttemptResult = { token: bigint; held: HeldLock } | { retryAfterMs?: number };

/** One `acquire` call: may be tried several times, then is either granted or cancelled. */
export interface Attempt {
  /**
   * One try. `intentMs > 0` (exclusive waiters only) registers a writer intent for that long, which makes
   * new shared acquisitions of the key back off: the writer-preference policy.
   */
  try(intentMs: number): Promise<AttemptResult>;
  /** The acquire gave up: drop the writer intent and any resource held for the attempt. */
  cancel(): Promise<void>;
}

export interface Backend {
  readonly name: string;
  attempt(key: string, mode: LockMode, ttlMs: number, owner: string): Attempt;
  /** Starts delivering release wake-ups to `wake(key)`; resolves once they flow. */
  listen(wake: (key: string) => void): Promise<void>;
  close(): Promise<void>;
}
