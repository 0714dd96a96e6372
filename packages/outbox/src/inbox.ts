import { type Kysely, sql, type Transaction } from 'kysely';
import { OmsOutboxError } from './errors.js';
import { resolveTables } from './tables.js';
import type { HandleResult, TablesOption } from './types.js';
import { v } from './validate.js';

/**
 * Runs `handler` at most once per `(consumer, messageId)`, with an exactly-once effect: the inbox row and the
 * handler's writes commit in one transaction. A duplicate delivery, even one running at the same moment on
 * another connection, waits for the first to commit and then resolves to `{ status: 'duplicate' }`; if the first
 * rolls back (the handler threw), the next delivery processes the message. Pass a transaction to join it.
 *
 * @example
 * import { handleOnce } from '@oms/outbox';
 * import type { Kysely } from 'kysely';
 * interface Database { invoices: { order_id: string } }
 * declare const db: Kysely<Database>;
 * declare const message: { id: string; payload: { orderId: string } };
 * const r = await handleOnce(db, { consumer: 'billing', messageId: message.id }, async (trx) => {
 *   await trx.insertInto('invoices').values({ order_id: message.payload.orderId }).execute();
 *   return 'invoiced';
 * });
 * if (r.status === 'duplicate') { } // already applied: just acknowledge it
 */
export async function handleOnce<DB, T>(
  db: Kysely<DB>,
  id: { consumer: string; messageId: string },
  handler: (trx: Transaction<DB>) => T | Promise<T>,
  opts: TablesOption = {},
): Promise<HandleResult<T>> {
  const t = resolveTables(opts.tables);
  if (typeof id !== 'object' || id === null) {
    throw new OmsOutboxError('ERR_OMS_OUTBOX_INVALID_OPTION', 'handleOnce needs { consumer, messageId }');
  }
  const consumer = v.key('consumer', id.consumer, 200);
  const messageId = v.key('messageId', id.messageId);
  if (typeof handler !== 'function') {
    throw new OmsOutboxError('ERR_OMS_OUTBOX_INVALID_OPTION', 'handler must be a function');
  }
  const run = async (trx: Transaction<DB>): Promise<HandleResult<T>> => {
    // the unique key makes a concurrent duplicate wait here until the first commits or rolls back
    const res = await sql`insert into ${t.inbox} (consumer, message_id) values (${consumer}, ${messageId})
      on conflict do nothing returning 1 as inserted`.execute(trx);
    if (res.rows.length === 0) return { status: 'duplicate' };
    return { status: 'processed', result: await handler(trx) };
  };
  if (db.isTransaction) return run(db as Transaction<DB>);
  return db.transaction().execute(run);
}
