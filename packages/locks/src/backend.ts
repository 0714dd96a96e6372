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
  /**
   * Backends that cannot mark a key as waited on inside `try` do it here, after a failed try and before
   * the wait. `true` means a mark was newly placed: the core then tries once more before sleeping, since a
   * release between the failed try and the mark published nothing.
   */
  markWaiting?: (() => Promise<boolean>) | undefined;
  /** The acquire gave up: drop the writer intent and any resource held for the attempt. */
  cancel(): Promise<void>;
}

/** What one `acquire` asks of the backend. */
export interface AttemptRequest {
  readonly key: string;
  readonly mode: LockMode;
  readonly ttlMs: number;
  /** Unique per acquire: the holder id of the lease, the writer intent and the queue ticket. */
  readonly owner: string;
  /**
   * `> 0` when the acquire may wait: failed tries then mark the key as waited on for that long (releases
   * notify only marked keys); the core re-tries well within it.
   */
  readonly waitMarkMs: number;
  /**
   * FIFO across modes: a failed try with `waitMarkMs > 0` takes (or keeps) a place in the key's queue for
   * that long, and a try succeeds only when no conflicting waiter queued before it. Writer intents are not
   * used then. Only asked of a backend whose `fair` is true.
   */
  readonly fair: boolean;
}

export interface Backend {
  readonly name: string;
  /** Whether this backend implements `AttemptRequest.fair`. */
  readonly fair: boolean;
  attempt(req: AttemptRequest): Attempt;
  /** Starts delivering release wake-ups to `wake(key)`; resolves once they flow. */
  listen(wake: (key: string) => void): Promise<void>;
  /** True while wake-ups flow, so a waiting acquire can skip awaiting `listen`. */
  readonly listening?: boolean;
  close(): Promise<void>;
}
