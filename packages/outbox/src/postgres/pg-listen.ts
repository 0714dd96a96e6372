import type { Listen } from '../types.js';

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
  on(
    event: 'notification',
    fn: (message: { channel: string; payload?: string | undefined }) => void,
  ): unknown;
  removeListener(
    event: 'notification',
    fn: (message: { channel: string; payload?: string | undefined }) => void,
  ): unknown;
}

/**
 * Wakes a relay on `NOTIFY`, through a dedicated, connected `pg.Client` (LISTEN needs a real session: behind
 * PgBouncer transaction pooling, connect this client to PostgreSQL directly). If the client dies, the relay
 * keeps working on its poll; reconnecting the client is the caller's business.
 *
 * @example
 * import { relay, fnPublisher } from '@oms/outbox';
 * import { pgListen } from '@oms/outbox/postgres';
 * import type { Kysely } from 'kysely';
 * import pg from 'pg';
 * declare const db: Kysely<unknown>;
 * const client = new pg.Client({ connectionString: process.env.DATABASE_URL });
 * await client.connect();
 * const r = relay({ db, listen: pgListen(client), publisher: fnPublisher(async () => {}) });
 * r.start();
 */
export function pgListen(client: PgListenClient): Listen {
  if (typeof client?.query !== 'function' || typeof client.on !== 'function') {
    throw new TypeError('pgListen needs a connected pg.Client');
  }
  return {
    async subscribe(channel, onNotify) {
      const fn = (m: { channel: string }) => {
        if (m.channel === channel) onNotify();
      };
      client.on('notification', fn);
      try {
        await client.query(`LISTEN "${channel.replaceAll('"', '""')}"`);
      } catch (e) {
        client.removeListener('notification', fn);
        throw e;
      }
      return async () => {
        client.removeListener('notification', fn);
        await client.query(`UNLISTEN "${channel.replaceAll('"', '""')}"`).catch(() => {});
      };
    },
  };
}
