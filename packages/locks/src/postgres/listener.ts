import type { LossReason } from '../types.js';
import { CHANNEL, MARK_WAITING, UNMARK_WAITING } from './sql.js';
import type { PgClientLike, PgPoolLike } from './types.js';

/** The NOTIFY payload of a release of `key` in namespace `ns` (the namespace's prefix when `key` is ''). */
export const payloadOf = (ns: string, key: string) => `${ns.length}:${ns}${key}`;

/**
 * The advisory key a key's waiters hold shared while they wait (releases notify only when it is held).
 * `k` is the key's advisoryKey().
 */
export const markerOf = (k: bigint): string => BigInt.asIntN(64, k ^ 0x5bd1e9955bd1e995n).toString();

export /** Keeps one session LISTENing for release wake-ups; reconnects lazily after it drops. */
class Listener {
  readonly #pool: PgPoolLike | false;
  readonly #ns: string;
  #client: PgClientLike | undefined;
  #connecting: Promise<void> | undefined;
  #wake: ((key: string) => void) | undefined;
  #closed = false;

  constructor(pool: PgPoolLike | false, ns: string) {
    this.#pool = pool;
    this.#ns = ns;
  }

  async ensure(wake: (key: string) => void): Promise<void> {
    this.#wake = wake;
    if (this.#client || this.#pool === false || this.#closed) return;
    const pool = this.#pool;
    this.#connecting ??= (async () => {
      const c = await pool.connect();
      const prefix = payloadOf(this.#ns, '');
      const onNotification = (m: { channel: string; payload?: string | undefined }) => {
        if (m.channel === CHANNEL && m.payload?.startsWith(prefix))
          this.#wake?.(m.payload.slice(prefix.length));
      };
      const onGone = () => {
        if (this.#client !== c) return;
        this.#client = undefined;
        c.removeListener('notification', onNotification as (...args: unknown[]) => void);
        c.release(true);
      };
      c.on('notification', onNotification);
      c.on('error', onGone);
      c.on('end', onGone);
      try {
        await c.query(`listen ${CHANNEL}`);
      } catch (e) {
        c.release(true);
        throw e;
      }
      if (this.#closed) {
        c.release(true);
        return;
      }
      this.#client = c;
    })().finally(() => {
      this.#connecting = undefined;
    });
    return this.#connecting;
  }

  get live(): boolean {
    return this.#client !== undefined;
  }

  get current(): PgClientLike | undefined {
    return this.#client;
  }

  /**
   * Marks a key as waited on from the LISTEN session, so that session's death drops the mark with the
   * wake-ups it stood for. Returns the session it marked on, or undefined when nothing listens.
   */
  async mark(marker: string): Promise<PgClientLike | undefined> {
    const c = this.#client;
    if (!c) return undefined;
    await c.query(MARK_WAITING, [marker]);
    return c;
  }

  /** Drops one mark; a mark of a session since replaced died with it. */
  unmark(c: PgClientLike, marker: string): void {
    if (this.#client === c) c.query(UNMARK_WAITING, [marker]).catch(() => {});
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#connecting?.catch(() => {});
    const c = this.#client;
    this.#client = undefined;
    // destroy rather than UNLISTEN: a pooled session must not keep listening for the next borrower
    c?.release(true);
  }
}

export /** Watches a checked-out connection; reports its death once. */
function watch(c: PgClientLike) {
  let fn: ((reason: LossReason) => void) | undefined;
  let dead = false;
  const onGone = () => {
    if (dead) return;
    dead = true;
    fn?.('connection');
  };
  c.on('error', onGone);
  c.on('end', onGone);
  return {
    get dead() {
      return dead;
    },
    onLoss(f: (reason: LossReason) => void) {
      fn = f;
      if (dead) f('connection');
    },
    /** Back to the pool (or destroyed when broken); stops watching. */
    done(destroy: boolean) {
      c.removeListener('error', onGone);
      c.removeListener('end', onGone);
      c.release(destroy || dead);
    },
  };
}

export /** One acquire's waiter mark: placed at most once per LISTEN session, dropped when the acquire ends. */
function waiterMark(listener: Listener, marker: string, waitMarkMs: number) {
  let on: PgClientLike | undefined;
  return {
    markWaiting:
      waitMarkMs > 0
        ? async (): Promise<boolean> => {
            if (!listener.live || on === listener.current) return false;
            const c = await listener.mark(marker);
            if (on) listener.unmark(on, marker);
            on = c;
            return c !== undefined;
          }
        : undefined,
    unmark(): void {
      if (on) listener.unmark(on, marker);
      on = undefined;
    },
  };
}
