import { sql } from 'kysely';
import { OmsOutboxError } from './errors.js';
import { type ResolvedTables, resolveTables } from './tables.js';
import type { DeadLetter, OutboxDb, TablesOption } from './types.js';
import { v } from './validate.js';

interface DeadRow {
  id: string;
  topic: string;
  key: string;
  type: string;
  payload: unknown;
  headers: Record<string, string>;
  created_at: Date | string;
  attempts: number;
  last_error: string | null;
  dead_at: Date | string;
}

const date = (d: Date | string) => (d instanceof Date ? d : new Date(d));

const invalid = (message: string) => new OmsOutboxError('ERR_OMS_OUTBOX_INVALID_OPTION', message);

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const ids = (t: ResolvedTables, name: string, list: unknown): string[] => {
  if (!Array.isArray(list)) throw invalid(`${name} must be an array of message ids`);
  const uuid = t.idType === 'uuidv7';
  return list.map((id: unknown, i) => {
    const s = typeof id === 'bigint' || typeof id === 'number' ? String(id) : id;
    const text = uuid && typeof s === 'string' ? s.toLowerCase() : s;
    if (typeof text !== 'string' || !(uuid ? UUID.test(text) : /^[0-9]{1,19}$/.test(text))) {
      const example = uuid ? '"0190f6e2-8a4b-7c3d-8e5f-0123456789ab"' : '"42"';
      throw invalid(
        `${name}[${i}] must be a message id such as ${example} (got ${JSON.stringify(s) ?? String(s)})`,
      );
    }
    return text;
  });
};

/**
 * Messages that exhausted `maxAttempts` or were rejected as not retryable, with their last error.
 *
 * @example
 * import { deadLetters } from '@oms/outbox';
 * import type { Kysely } from 'kysely';
 * declare const db: Kysely<unknown>;
 * const dead = await deadLetters.list(db, { topic: 'orders', limit: 20 });
 * await deadLetters.redrive(db, dead.map((d) => d.id));
 */
export const deadLetters = {
  /**
   * The dead letters in id order, optionally of one topic and after an id (for paging).
   *
   * @example
   * import { deadLetters } from '@oms/outbox';
   * import type { Kysely } from 'kysely';
   * declare const db: Kysely<unknown>;
   * const page = await deadLetters.list(db, { limit: 50 });
   */
  async list(
    db: OutboxDb,
    o: TablesOption & { topic?: string; limit?: number; afterId?: string } = {},
  ): Promise<DeadLetter[]> {
    const t = resolveTables(o.tables);
    const limit = v.integer('limit', o.limit ?? 100, { min: 1, max: 10_000 });
    const topic = o.topic === undefined ? null : v.key('topic', o.topic);
    const after = o.afterId === undefined ? null : (ids(t, 'afterId', [o.afterId])[0] as string);
    // ordered by the id column (bigint or uuid), not by the text it is returned as
    const res = await sql<DeadRow>`select d.id::text as id, d.topic, d.key, d.type, d.payload, d.headers,
        d.created_at, d.attempts, d.last_error, d.dead_at
      from ${t.dead} d
      where (cast(${topic} as text) is null or d.topic = ${topic}) and (cast(${after} as text) is null or d.id > cast(${after} as ${t.idSql}))
      order by d.id
      limit ${limit}`.execute(db);
    return res.rows.map((r) => ({
      id: r.id,
      topic: r.topic,
      key: r.key,
      type: r.type,
      payload: r.payload,
      headers: r.headers,
      createdAt: date(r.created_at),
      attempts: Number(r.attempts),
      lastError: r.last_error,
      deadAt: date(r.dead_at),
    }));
  },

  /**
   * Moves dead letters back into the outbox with their original id and no attempts, so consumers that dedupe
   * on the id still recognise them. A redriven message is again the head of its key. Resolves to the ids moved.
   *
   * @example
   * import { deadLetters } from '@oms/outbox';
   * import type { Kysely } from 'kysely';
   * declare const db: Kysely<unknown>;
   * const moved = await deadLetters.redrive(db, ['42', '43']);
   */
  async redrive(db: OutboxDb, list: readonly string[], o: TablesOption = {}): Promise<string[]> {
    const t = resolveTables(o.tables);
    const doc = JSON.stringify(ids(t, 'ids', list));
    const res = await sql<{ id: string }>`with moved as (
        delete from ${t.dead} where id in (select cast(x as ${t.idSql}) from jsonb_array_elements_text(cast(${doc} as jsonb)) as x)
        returning *
      )
      insert into ${t.outbox} (id, topic, key, type, payload, headers, created_at)
      select id, topic, key, type, payload, headers, created_at from moved
      returning id::text as id`.execute(db);
    return res.rows.map((r) => r.id);
  },

  /**
   * Deletes dead letters that died before `olderThan`; resolves to how many.
   *
   * @example
   * import { deadLetters } from '@oms/outbox';
   * import type { Kysely } from 'kysely';
   * declare const db: Kysely<unknown>;
   * await deadLetters.purge(db, { olderThan: new Date(Date.now() - 30 * 86_400_000) });
   */
  async purge(db: OutboxDb, o: TablesOption & { olderThan: Date }): Promise<number> {
    const t = resolveTables(o.tables);
    if (!(o?.olderThan instanceof Date) || Number.isNaN(o.olderThan.getTime())) {
      throw invalid('olderThan must be a valid Date');
    }
    const res = await sql`delete from ${t.dead} where dead_at < ${o.olderThan.toISOString()}`.execute(db);
    return Number(res.numAffectedRows ?? 0);
  },
};
