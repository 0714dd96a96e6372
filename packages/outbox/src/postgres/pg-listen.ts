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
 * - Given a connected `pg.Client`, it listens on it. That client is yours (end it after the relay stopped). If
 *   its session ends or fails, `pgListen` reports `ERR_OMS_OUTBOX_LISTEN_LOST`, which the relay emits once as an
 *   `error` event (phase `'listen'`); the relay polls at most every second meanwhile and subscribes again with
 *   backoff (1 s doubling to 30 s), and `pgListen` then connects a new client with the lost one's connection
 *   settings (its `connectionParameters`), which it owns and ends at the relay's stop. Once that client
 *   listens, the relay looks once and goes back to `pollMs`.
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
  // clients seen ending or failing: a pg.Client cannot connect twice, so a later subscribe needs a new one
  const dead = new WeakSet<PgListenClient>();
  return {
    async subscribe(channel, onNotify, onLost) {
      const own = dead.has(source);
      const client = own ? await replacementFor(source) : source;
      let lost = false;
      const fn = (m: Notification) => {
        if (m.channel === channel) onNotify();
      };
      // say once that the session is gone: the relay polls meanwhile and subscribes again, which lands here
      // with `source` dead and connects a replacement
      const onGone = (cause?: unknown) => {
        if (lost) return;
        lost = true;
        dead.add(client);
        onLost?.(
          new OmsOutboxError(
            'ERR_OMS_OUTBOX_LISTEN_LOST',
            'the LISTEN session ended or failed; the relay polls until it listens again on a new client',
            true,
            cause === undefined ? undefined : { cause },
          ),
        );
      };
      const onError = (e: Error) => onGone(e);
      const onEnd = () => onGone();
      const detach = () => {
        client.removeListener('notification', fn);
        client.removeListener('error', onError);
        client.removeListener('end', onEnd);
      };
      client.on('notification', fn);
      client.on('error', onError);
      client.on('end', onEnd);
      try {
        await client.query(listenSql('LISTEN', channel));
      } catch (e) {
        detach();
        // most likely a dead session; if not, the replacement costs one connection
        dead.add(client);
        if (own) await endQuietly(client);
        throw e;
      }
      if (own) {
        // a replacement's events were only ours; keep a late socket error from going unhandled
        client.on('error', () => {});
      }
      return async () => {
        // a dead session can still emit its socket's error after the server's: that must not go unhandled
        if (lost) client.on('error', () => {});
        detach();
        if (!lost) await client.query(listenSql('UNLISTEN', channel)).catch(() => {});
        if (own) await endQuietly(client);
      };
    },
  };
}

const endQuietly = async (c: PgListenClient) => {
  c.on('error', () => {});
  await c.end?.().catch(() => {});
};

/**
 * A new client with the lost one's connection settings (`connectionParameters`: host, port, user, password,
 * database, ssl, application_name, keepalives), the way `pg.Client` builds itself from a config.
 */
async function replacementFor(lost: PgListenClient): Promise<PgListenClient> {
  const params = (lost as { connectionParameters?: unknown }).connectionParameters;
  const Client = (lost as { constructor?: unknown }).constructor as
    | (new (
        config: unknown,
      ) => PgListenClient & { connect(): Promise<unknown> })
    | undefined;
  if (typeof params !== 'object' || params === null || typeof Client?.prototype?.connect !== 'function') {
    throw new OmsOutboxError(
      'ERR_OMS_OUTBOX_LISTEN_LOST',
      'the LISTEN client is gone and is not a pg.Client to reconnect from; pass pgListen a function that connects a client',
      true,
    );
  }
  const keepalives = (params as { keepalives?: unknown }).keepalives;
  const next = new Client(Object.assign(Object.create(params), { keepAlive: keepalives === 1 }));
  try {
    await next.connect();
  } catch (e) {
    await endQuietly(next);
    throw e;
  }
  return next;
}

function reconnecting(connect: () => Promise<PgListenClient>, opts: PgListenOptions): Listen {
  const baseMs = opts.reconnectMs ?? 1_000;
  if (!Number.isFinite(baseMs) || baseMs < 0) {
    throw new TypeError(`reconnectMs must be a finite number >= 0 (got ${String(opts.reconnectMs)})`);
  }
  const clock = opts.clock ?? systemClock;
  return { subscribe: (channel, onNotify) => ownSession(connect, { baseMs, clock, channel, onNotify }) };
}

/** A LISTEN session on clients `connect` makes, reconnected with backoff until the returned unsubscribe. */
async function ownSession(
  connect: () => Promise<PgListenClient>,
  o: { baseMs: number; clock: Clock; channel: string; onNotify: () => void },
): Promise<() => Promise<void>> {
  const { clock, channel, onNotify } = o;
  let client: PgListenClient | undefined;
  let closed = false;
  let timer: unknown;
  let delay = o.baseMs;
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
      // endQuietly keeps a late socket error from becoming an unhandled 'error' event
      void endQuietly(lost);
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
      await endQuietly(c);
      throw e;
    }
    if (closed) {
      detach(c);
      await endQuietly(c);
      return;
    }
    client = c;
    delay = o.baseMs;
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
      await endQuietly(c);
    }
  };
}
