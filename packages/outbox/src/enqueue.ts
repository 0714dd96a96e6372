import { sql } from 'kysely';
import { OmsOutboxError } from './errors.js';
import { byId } from './ids.js';
import { Emitter } from './internal/emitter.js';
import { validators } from './internal/validate.js';
import { DEFAULT_MAX_PAYLOAD_BYTES, toJson } from './payload.js';
import { NOTIFY_FLAG } from './schema.js';
import { resolveTables } from './tables.js';
import { traceHeaders } from './trace.js';
import type { EnqueueOptions, NewMessage, OutboxDb } from './types.js';
import { v } from './validate.js';

/** Bad messages fail with their own code, so callers can map them to a 400 apart from bad options. */
const m = validators((message) => new OmsOutboxError('ERR_OMS_OUTBOX_INVALID_MESSAGE', message));

/**
 * Facts about enqueues in this process. `enqueue` is a free function, so its one subscriber (`instrument`)
 * listens here rather than on an object.
 */
export const enqueueEvents = new Emitter<{ enqueued: { readonly topic: string; readonly count: number } }>();

/**
 * Sets the flag that makes the insert trigger skip its NOTIFY for this statement (the trigger clears it). A
 * volatile call in a FROM subquery runs once, before the statement's AFTER trigger.
 */
const QUIET = sql`(select set_config(${NOTIFY_FLAG}, 'off', true)) as quiet`;

interface Row {
  readonly topic: string;
  readonly key: string;
  readonly type: string;
  readonly payload: string;
  readonly headers: string;
}

/**
 * Writes messages to the outbox in the caller's transaction, so they commit (or roll back) with the caller's own
 * writes. The active trace context (`traceparent`, `tracestate`) is added to the headers. Every message is
 * checked before anything is written: a bad one throws an `OmsOutboxError` and leaves the transaction usable.
 * Resolves to the new id (or ids, in input order).
 *
 * @example
 * import { enqueue } from '@oms/outbox';
 * import type { Kysely } from 'kysely';
 * interface Database { orders: { id: string; total: number } }
 * declare const db: Kysely<Database>;
 * await db.transaction().execute(async (trx) => {
 *   const order = { id: 'o-42', total: 99 };
 *   await trx.insertInto('orders').values(order).execute();
 *   await enqueue(trx, { topic: 'orders', key: order.id, type: 'order.created', payload: order });
 * });
 */
export function enqueue(db: OutboxDb, message: NewMessage, opts?: EnqueueOptions): Promise<string>;
export function enqueue(
  db: OutboxDb,
  messages: readonly NewMessage[],
  opts?: EnqueueOptions,
): Promise<string[]>;
export async function enqueue(
  db: OutboxDb,
  input: NewMessage | readonly NewMessage[],
  opts: EnqueueOptions = {},
): Promise<string | string[]> {
  const t = resolveTables(opts.tables);
  const maxBytes =
    opts.maxPayloadBytes === undefined
      ? DEFAULT_MAX_PAYLOAD_BYTES
      : v.integer('maxPayloadBytes', opts.maxPayloadBytes, { min: 1 });
  const single = !Array.isArray(input);
  const list = (single ? [input] : input) as readonly NewMessage[];
  if (list.length === 0) return [];
  const quiet = opts.notify === false;
  const trace = traceHeaders();
  const rows = list.map((msg, i) => toRow(msg, single ? 'message' : `messages[${i}]`, maxBytes, trace));

  const write = async (trx: OutboxDb): Promise<string[]> => {
    if (opts.serializeKey === true) {
      const keys = JSON.stringify([...new Set(rows.map((r) => r.key))]);
      // sorted, so two writers locking overlapping key sets cannot deadlock
      await sql`select pg_advisory_xact_lock(hashtextextended(k, 7160))
        from (select k from jsonb_array_elements_text(cast(${keys} as jsonb)) as k order by k) s`.execute(
        trx,
      );
    }
    if (rows.length === 1) {
      const r = rows[0] as Row;
      const res = quiet
        ? await sql<{ id: string }>`insert into ${t.outbox} (topic, key, type, payload, headers)
          select ${r.topic}, ${r.key}, ${r.type}, cast(${r.payload} as jsonb), cast(${r.headers} as jsonb)
          from ${QUIET}
          returning id::text as id`.execute(trx)
        : await sql<{ id: string }>`insert into ${t.outbox} (topic, key, type, payload, headers)
          values (${r.topic}, ${r.key}, ${r.type}, cast(${r.payload} as jsonb), cast(${r.headers} as jsonb))
          returning id::text as id`.execute(trx);
      return res.rows.map((x) => x.id);
    }
    const doc = `[${rows
      .map(
        (r) =>
          `{"t":${JSON.stringify(r.topic)},"k":${JSON.stringify(r.key)},"y":${JSON.stringify(r.type)},"p":${r.payload},"h":${r.headers}}`,
      )
      .join(',')}]`;
    // one statement and one parameter for any batch size; ids follow the input order
    const res = await sql<{ id: string }>`insert into ${t.outbox} (topic, key, type, payload, headers)
      select e.m->>'t', e.m->>'k', e.m->>'y', e.m->'p', e.m->'h'
      from jsonb_array_elements(cast(${doc} as jsonb)) with ordinality as e(m, n)${quiet ? sql` cross join ${QUIET}` : sql``}
      order by e.n
      returning id::text as id`.execute(trx);
    return res.rows.map((x) => x.id).sort(byId);
  };

  const ids =
    opts.serializeKey === true && !db.isTransaction ? await db.transaction().execute(write) : await write(db);
  if (enqueueEvents.has('enqueued')) {
    const byTopic = new Map<string, number>();
    for (const r of rows) byTopic.set(r.topic, (byTopic.get(r.topic) ?? 0) + 1);
    for (const [topic, count] of byTopic) enqueueEvents.emit('enqueued', { topic, count });
  }
  return single ? (ids[0] as string) : ids;
}

function toRow(msg: NewMessage, where: string, maxBytes: number, trace: Record<string, string>): Row {
  if (typeof msg !== 'object' || msg === null) {
    throw new OmsOutboxError(
      'ERR_OMS_OUTBOX_INVALID_MESSAGE',
      `${where} must be an object (got ${msg === null ? 'null' : typeof msg})`,
    );
  }
  const topic = m.key(`${where}.topic`, msg.topic);
  const key = m.key(`${where}.key`, msg.key);
  const type = m.key(`${where}.type`, msg.type);
  if (key.includes('\u0000') || topic.includes('\u0000') || type.includes('\u0000')) {
    throw new OmsOutboxError(
      'ERR_OMS_OUTBOX_INVALID_MESSAGE',
      `${where}: topic, key and type must not contain NUL characters`,
    );
  }
  const payload = toJson(`${where}.payload`, msg.payload);
  const bytes = Buffer.byteLength(payload);
  if (bytes > maxBytes) {
    throw new OmsOutboxError(
      'ERR_OMS_OUTBOX_PAYLOAD_TOO_LARGE',
      `${where}.payload is ${bytes} bytes of JSON, over maxPayloadBytes (${maxBytes}); store large blobs elsewhere and enqueue a reference`,
    );
  }
  return { topic, key, type, payload, headers: headersJson(where, msg.headers, trace) };
}

function headersJson(where: string, given: unknown, trace: Record<string, string>): string {
  if (given === undefined) return JSON.stringify(trace);
  if (typeof given !== 'object' || given === null || Array.isArray(given)) {
    throw new OmsOutboxError(
      'ERR_OMS_OUTBOX_INVALID_MESSAGE',
      `${where}.headers must be an object of strings`,
    );
  }
  for (const [k, val] of Object.entries(given)) {
    if (typeof val !== 'string') {
      throw new OmsOutboxError(
        'ERR_OMS_OUTBOX_INVALID_MESSAGE',
        `${where}.headers[${JSON.stringify(k)}] must be a string (got ${val === null ? 'null' : typeof val})`,
      );
    }
  }
  // headers the caller set win over the ambient trace context
  return toJson(`${where}.headers`, { ...trace, ...given });
}
