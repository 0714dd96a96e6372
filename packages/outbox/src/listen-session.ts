import { OmsOutboxError } from './errors.js';
import { backgroundTimeout, type Clock } from './internal/clock.js';
import type { Listen } from './types.js';

/** What a relay does as its subscription comes and goes. */
export interface ListenHooks {
  /** A notification on the channel (or an adapter's one-off wake after it reconnected). */
  notify(): void;
  /** The subscription failed or was lost: called once per outage, however many resubscribes fail after it. */
  lost(error: unknown): void;
  /** A resubscribe after an outage succeeded. */
  restored(): void;
}

/** The first wait before subscribing again after an outage; doubled per failure up to `MAX_RETRY_MS`. */
const FIRST_RETRY_MS = 1_000;
const MAX_RETRY_MS = 30_000;
/** How long `close` waits for a subscribe in flight. */
export const CLOSE_WAIT_MS = 5_000;

/**
 * Keeps a relay subscribed to its channel: when `subscribe` rejects, or the adapter reports the session lost,
 * it tells the relay (which polls meanwhile) and subscribes again with backoff until it works, because a relay
 * that stays on the fallback poll for the rest of its life turns a one-second blip into seconds of latency
 * forever. The retry timer is background work (unref'd) and is cleared by `close`.
 */
export class ListenSession {
  readonly #listen: Listen;
  readonly #channel: string;
  readonly #clock: Clock;
  readonly #hooks: ListenHooks;
  /** Which subscribe call is current: an `onLost` from an older one is stale. */
  #attempt = 0;
  #unsubscribe: (() => Promise<void>) | undefined;
  #pending: Promise<unknown> = Promise.resolve();
  #timer: unknown;
  #delay = FIRST_RETRY_MS;
  #down = false;
  #closed = false;

  constructor(listen: Listen, channel: string, clock: Clock, hooks: ListenHooks) {
    this.#listen = listen;
    this.#channel = channel;
    this.#clock = clock;
    this.#hooks = hooks;
  }

  start(): void {
    this.#subscribe();
  }

  /**
   * Unsubscribes (errors go to `onError`) and stops resubscribing. A subscribe still in flight is waited for at
   * most `CLOSE_WAIT_MS`: a connect that never answers must not hold the relay's stop. Should it settle later,
   * its own handler sees the session closed and unsubscribes at once.
   */
  async close(onError: (error: unknown) => void): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    let bound: unknown;
    const settled = await Promise.race([
      this.#pending.then(() => true),
      // ref'd on purpose: the caller awaits this close
      new Promise<false>((resolve) => {
        bound = this.#clock.setTimeout(() => resolve(false), CLOSE_WAIT_MS);
      }),
    ]);
    this.#clock.clearTimeout(bound);
    if (!settled) {
      onError(
        new OmsOutboxError(
          'ERR_OMS_OUTBOX_LISTEN_LOST',
          `the listen subscribe had not answered ${CLOSE_WAIT_MS} ms into stop; it is dropped when it does`,
        ),
      );
      return;
    }
    const unsubscribe = this.#unsubscribe;
    this.#unsubscribe = undefined;
    await unsubscribe?.().catch(onError);
  }

  #subscribe(): void {
    const attempt = ++this.#attempt;
    const onLost = (error: unknown) => {
      if (attempt === this.#attempt && !this.#closed) this.#failed(error);
    };
    let call: Promise<() => Promise<void>>;
    try {
      call = this.#listen.subscribe(this.#channel, () => this.#hooks.notify(), onLost);
    } catch (error) {
      call = Promise.reject(error);
    }
    this.#pending = call.then(
      async (unsubscribe) => {
        if (this.#closed || attempt !== this.#attempt) {
          await unsubscribe().catch(() => {});
          return;
        }
        this.#unsubscribe = unsubscribe;
        if (this.#down) {
          this.#down = false;
          this.#delay = FIRST_RETRY_MS;
          this.#hooks.restored();
        }
      },
      (error: unknown) => {
        if (!this.#closed && attempt === this.#attempt) this.#failed(error);
      },
    );
  }

  #failed(error: unknown): void {
    // the lost subscription's cleanup (listeners, an adapter-owned client); its session is gone already
    const old = this.#unsubscribe;
    this.#unsubscribe = undefined;
    void old?.().catch(() => {});
    this.#attempt++;
    if (!this.#down) {
      this.#down = true;
      this.#hooks.lost(error);
    }
    if (this.#timer !== undefined) return;
    const delay = this.#delay;
    this.#delay = Math.min(delay * 2, MAX_RETRY_MS);
    this.#timer = backgroundTimeout(
      this.#clock,
      () => {
        this.#timer = undefined;
        if (!this.#closed) this.#subscribe();
      },
      delay,
    );
  }
}
