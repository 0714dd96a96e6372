import type { PGlite } from '@electric-sql/pglite';
import type { Listen } from '../types.js';

/**
 * The part of a PGlite instance the listener uses.
 *
 * @example
 * import { PGlite } from '@electric-sql/pglite';
 * import type { PGliteListenLike } from '@oms/outbox/pglite';
 * const db: PGliteListenLike = new PGlite();
 */
export type PGliteListenLike = Pick<PGlite, 'listen'>;

/**
 * Wakes a relay on `NOTIFY` inside an embedded PGlite database. Use it with Kysely's `PGliteDialect` on the
 * same instance.
 *
 * @example
 * import { PGlite } from '@electric-sql/pglite';
 * import { Kysely, PGliteDialect } from 'kysely';
 * import { migrate, relay, fnPublisher } from '@oms/outbox';
 * import { pgliteListen } from '@oms/outbox/pglite';
 * const pglite = new PGlite();
 * const db = new Kysely<unknown>({ dialect: new PGliteDialect({ pglite }) });
 * await migrate(db);
 * const r = relay({ db, listen: pgliteListen(pglite), publisher: fnPublisher(async () => {}) });
 * r.start();
 */
export function pgliteListen(pglite: PGliteListenLike): Listen {
  if (typeof pglite?.listen !== 'function') throw new TypeError('pgliteListen needs a PGlite instance');
  return {
    async subscribe(channel, onNotify) {
      const off = await pglite.listen(channel, () => onNotify());
      return async () => {
        await off();
      };
    },
  };
}
