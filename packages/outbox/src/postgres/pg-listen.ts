import { OmsOutboxError } from '../errors.js';
import { backgroundTimeout, type Clock, systemClock } from '../internal/clock.js';
import type { Listen } from '../types.js';

/**
 * A notification as a `pg.Client` emits it: the channel, and the payload the sender gave.
 *
 * @example
 * import type { Notification } from '@oms/outbox/postgres';
 * const fromOutbox = (n: Notification) => n.channel === 'outbox';
 */
export interface Notification {
  channel: string;
  payload?: string | undefined;
}

/**
 * The part of a `pg.Client` the listener uses. A dedicated client: a pooled one may be handed to others.
 *
 * @example
 * import type { PgListenClient } from '@oms/outbox/postgres';
 * import pg from 'pg';
 * const client: PgListenClient = new pg.Client();
 */
export interface PgListenClient {
  query(text: string): Promise<unknown>;
  on(event: 'notification', fn: (message: Notification) => void): unknown;
  on(event: 'error', fn: (err: Error) => void): unknown;
  on(event: 'end', fn: () => void): unknown;
  removeListener(event: 'notification', fn: (message: Notification) => void): unknown;
  removeListener(event: 'error', fn: (err: Error) => void): unknown;
  removeListener(event: 'end', fn: () => void): unknown;
  /** Used only on clients `pgListen` connected itself (from a `connect` function). */
  end?(): Promise<void>;
}

/**
 * Options of `pgListen`.
 *
 * @example
 * import type { PgListenOptions } from '@oms/outbox/postgres';
 * const opts: PgListenOptions = { reconnectMs: 500 };
 */
export interface PgListenOptions {
  /** With a `connect` function: the first delay before reconnecting a lost session, doubled up to 30 s. Default 1000 ms. */
  reconnectMs?: number;
  /** Timers for the reconnect. Default: the system clock (unref'd: a reconnect never holds the process). */
  clock?: Clock;
}

const listenSql = (verb: 'LISTEN' | 'UNLISTEN', channel: string) =>
  `${verb} "${channel.replaceAll('"', '""')}"`;

/**
 * Wakes a relay on `NOTIFY` through a dedicated session (LISTEN needs a real one: behind PgBouncer transaction
 * pooling, connect to PostgreSQL directly).
 *
 * - Given a connected `pg.Client`, it listens on it. That client is yours: if it ends or fails, `pgListen`
 *   does not reconnect it, but reports `ERR_OMS_OUTBOX_LISTEN_LOST` to the relay, which emits it as an `error`
 *   event (phase `'listen'`) and polls from then on, at most every second.
 * - Given a function that connects a new client, it owns the session: when the session is lost (a PostgreSQL
 *   restart, a terminated backend) it reconnects with backoff and then wakes the relay once, so anything
 *   inserted while it was away is claimed at once; the relay's stop ends the client.
 *
 * @example
 * import { relay, fnPublisher } from '@oms/outbox';
 * import { pgListen } from '@oms/outbox/postgres';
 * import type { Kysely } from 'kysely';
 * import pg from 'pg';
 * declare const db: Kysely<unknown>;
 * const listen = pgListen(async () => {
 *   const client = new pg.Client({ connectionString: process.env.DATABASE_URL });
 *   await client.connect();
 *   return client;
 * });
 * relay({ db, listen, publisher: fnPublisher(async () => {}) }).start();
 */
export function pgListen(
  source: PgListenClient | (() => Promise<PgListenClient>),
  opts: PgListenOptions = {},
): Listen {
  if (typeof source === 'function') return reconnecting(source, opts);
  if (typeof source?.query !== 'function' || typeof source.on !== 'function') {
    throw new TypeError('pgListen needs a connected pg.Client, or a function that connects one');
  }
  return {
    async subscribe(channel, onNotify, onLost) {
      let lost = false;
      const fn = (m: Notification) => {
        if (m.channel === channel) onNotify();
      };
      // a client we did not connect is not ours to reconnect: say once that it is gone, so the relay polls
      const onGone = (cause?: unknown) => {
        if (lost) return;
        lost = true;
        onLost?.(
          new OmsOutboxError(
            'ERR_OMS_OUTBOX_LISTEN_LOST',
            'the LISTEN client ended or failed; the relay polls from now on (pass pgListen a function that connects a client to have it reconnect)',
            true,
            cause === undefined ? undefined : { cause },
          ),
        );
      };
      const onError = (e: Error) => onGone(e);
      const onEnd = () => onGone();
      const detach = () => {
        source.removeListener('notification', fn);
        source.removeListener('error', onError);
        source.removeListener('end', onEnd);
      };
      source.on('notification', fn);
      source.on('error', onError);
      source.on('end', onEnd);
      try {
        await source.query(listenSql('LISTEN', channel));
      } catch (e) {
        detach();
        throw e;
      }
      return async () => {
        detach();
        if (!lost) await source.query(listenSql('UNLISTEN', channel)).catch(() => {});
      };
    },
  };
}

function reconnecting(connect: () => Promise<PgListenClient>, opts: PgListenOptions): Listen {
  const baseMs = opts.reconnectMs ?? 1_000;
  if (!Number.isFinite(baseMs) || baseMs < 0) {
    throw new TypeError(`reconnectMs must be a finite number >= 0 (got ${String(opts.reconnectMs)})`);
  }
  const clock = opts.clock ?? systemClock;
  return {
    async subscribe(channel, onNotify) {
      let client: PgListenClient | undefined;
      let closed = false;
      let timer: unknown;
      let delay = baseMs;
      const onNotification = (m: Notification) => {
        if (m.channel === channel) onNotify();
      };
      const detach = (c: PgListenClient) => {
        c.removeListener('notification', onNotification);
        c.removeListener('error', onLost);
        c.removeListener('end', onLost);
      };
      function onLost() {
        const lost = client;
        client = undefined;
        if (lost) {
          detach(lost);
          // keep a late socket error from becoming an unhandled 'error' event
          lost.on('error', () => {});
          void lost.end?.().catch(() => {});
        }
        if (!closed && timer === undefined) retry();
      }
      const open = async () => {
        const c = await connect();
        c.on('notification', onNotification);
        c.on('error', onLost);
        c.on('end', onLost);
        try {
          await c.query(listenSql('LISTEN', channel));
        } catch (e) {
          detach(c);
          c.on('error', () => {});
          await c.end?.().catch(() => {});
          throw e;
        }
        if (closed) {
          detach(c);
          await c.end?.().catch(() => {});
          return;
        }
        client = c;
        delay = baseMs;
      };
      const retry = () => {
        timer = backgroundTimeout(
          clock,
          () => {
            timer = undefined;
            if (closed) return;
            open().then(
              // notifications sent while the session was down are gone: look once
              () => onNotify(),
              () => {
                delay = Math.min(delay * 2 || 100, 30_000);
                if (!closed && timer === undefined) retry();
              },
            );
          },
          delay,
        );
      };
      await open();
      return async () => {
        closed = true;
        if (timer !== undefined) clock.clearTimeout(timer);
        timer = undefined;
        const c = client;
        client = undefined;
        if (c) {
          detach(c);
          c.on('error', () => {});
          await c.query(listenSql('UNLISTEN', channel)).catch(() => {});
          await c.end?.().catch(() => {});
        }
      };
    },
  };
}
