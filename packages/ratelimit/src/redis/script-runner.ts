import { OmsRatelimitError } from '../errors.js';
import { ALL_SCRIPTS, type Script } from './scripts.js';
import type { RedisLike } from './types.js';

/** A script's reply: numbers (and, for the clock, a number in µs). */
export type Raw = (number | string)[];

/** Thrown when the client cannot send now: a command would only wait in ioredis's offline queue. */
export const unavailable = (status: string): OmsRatelimitError =>
  new OmsRatelimitError(
    'ERR_OMS_RATELIMIT_STORE_UNAVAILABLE',
    `redis is not connected (status ${status})`,
    true,
  );

/** A call that reached Redis after its caller's deadline: the script dropped it and charged nothing. */
export const STALE = new OmsRatelimitError(
  'ERR_OMS_RATELIMIT_STORE_TIMEOUT',
  'the command reached redis after its deadline and was dropped',
  true,
);

// Statuses in which a command would only wait in ioredis's offline queue: fail at once instead.
const DOWN = new Set(['reconnecting', 'close', 'end', 'disconnecting']);

/** The client's error when it cannot send now, or undefined when it can. */
export function downError(redis: RedisLike): OmsRatelimitError | undefined {
  const status = redis.status;
  return DOWN.has(status) ? unavailable(status) : undefined;
}

const isNoScript = (e: unknown): boolean => e instanceof Error && e.message.startsWith('NOSCRIPT');

/**
 * The store's one way to run a script: EVALSHA, falling back to EVAL on NOSCRIPT. A fallback re-sends the
 * call after calls sent behind it (on the same key too) may already have run, so before its first command a
 * runner loads every script on a single Redis, in line ahead of that command: a server that knows some
 * scripts (loaded by other clients) and not others then never answers NOSCRIPT to a fresh store. After a
 * restart or SCRIPT FLUSH all in-flight calls fail alike and fall back in the order they were sent.
 */
export class ScriptRunner {
  #preloaded = false;

  constructor(
    readonly redis: RedisLike,
    readonly isCluster: boolean,
  ) {}

  run(s: Script, numKeys: number, args: (number | string)[]): Promise<Raw> {
    const r = this.redis;
    const down = downError(r);
    if (down !== undefined) return Promise.reject(down);
    if (!this.#preloaded) {
      this.#preloaded = true;
      // on Cluster a keyless SCRIPT LOAD reaches one node only, so there the fallback alone has to do
      if (!this.isCluster) for (const x of ALL_SCRIPTS) r.script('LOAD', x.src).catch(() => undefined);
    }
    return (r.evalsha(s.sha, numKeys, ...args) as Promise<Raw>).catch((e: unknown) => {
      // NOSCRIPT: this node has not seen the script (new node, restart, SCRIPT FLUSH): send the source once
      if (!isNoScript(e)) throw e;
      return r.eval(s.src, numKeys, ...args) as Promise<Raw>;
    });
  }
}
