import { sql } from 'kysely';
import { byId } from './ids.js';
import type { ResolvedTables } from './tables.js';
import type { OutboxDb, OutboxMessage } from './types.js';

interface ClaimedRow {
  id: string;
  topic: string;
  key: string;
  type: string;
  payload: unknown;
  headers: Record<string, string> | string;
  created_at: Date | string;
  attempts: number;
}

const toMessage = (r: ClaimedRow): OutboxMessage => ({
  id: r.id,
  topic: r.topic,
  key: r.key,
  type: r.type,
  payload: r.payload,
  headers: typeof r.headers === 'string' ? (JSON.parse(r.headers) as Record<string, string>) : r.headers,
  createdAt: r.created_at instanceof Date ? r.created_at : new Date(r.created_at),
  attempts: Number(r.attempts),
});

/**
 * The most messages of one key in a batch: each is a publish round of its own (a key's next message waits for the
 * previous one's result), and the cap bounds the index rows a claim reads to heads × cap.
 */
export const MAX_PER_KEY = 16;

/** What happens to one claimed message when its batch settles. */
export type Settlement =
  | { id: string; outcome: 'ok' }
  | { id: string; outcome: 'retry'; error: string; delayMs: number }
  | { id: string; outcome: 'dead'; error: string }
  | { id: string; outcome: 'release' };

/** A PostgreSQL array literal of ids (decimal bigints or UUIDs: neither needs quoting). */
const idArray = (t: ResolvedTables, ids: readonly string[]) =>
  sql`cast(${`{${ids.join(',')}}`} as ${t.idSql}[])`;

/**
 * The CTEs that settle a batch: published messages are deleted, failed ones get their attempt counted and a
 * later `available_at` (or move to the dead letters), and messages never tried go back unclaimed. Only rows
 * this relay still owns are touched, so a relay that lost its lease cannot undo the new owner's work. The
 * common case, a batch that was all published, is one `DELETE … WHERE id = ANY(…)`.
 */
function settleCtes(t: ResolvedTables, relayId: string, items: readonly Settlement[]) {
  if (items.every((s) => s.outcome === 'ok')) {
    return sql`done as (
      delete from ${t.outbox} m where m.id = any(${idArray(
        t,
        items.map((s) => s.id),
      )}) and m.claimed_by = ${relayId}
      returning m.id
    )`;
  }
  const doc = JSON.stringify(
    items.map((s) => ({
      id: s.id,
      outcome: s.outcome,
      error: 'error' in s ? s.error : null,
      delay_ms: 'delayMs' in s ? s.delayMs : null,
    })),
  );
  return sql`res as (
      select * from jsonb_to_recordset(cast(${doc} as jsonb)) as r(id ${t.idSql}, outcome text, error text, delay_ms float8)
    ),
    done as (
      delete from ${t.outbox} m using res
      where m.id = res.id and res.outcome = 'ok' and m.claimed_by = ${relayId}
      returning m.id
    ),
    dead as (
      delete from ${t.outbox} m using res
      where m.id = res.id and res.outcome = 'dead' and m.claimed_by = ${relayId}
      returning m.id, m.topic, m.key, m.type, m.payload, m.headers, m.created_at, m.attempts, res.error
    ),
    moved as (
      insert into ${t.dead} (id, topic, key, type, payload, headers, created_at, attempts, last_error)
      select id, topic, key, type, payload, headers, created_at, attempts + 1, error from dead
      on conflict (id) do nothing
      returning id
    ),
    retried as (
      update ${t.outbox} m
      set attempts = m.attempts + 1, last_error = res.error,
          available_at = now() + res.delay_ms * interval '1 millisecond',
          claimed_by = null, claimed_until = null
      from res
      where m.id = res.id and res.outcome = 'retry' and m.claimed_by = ${relayId}
      returning m.id
    ),
    released as (
      update ${t.outbox} m set claimed_by = null, claimed_until = null
      from res
      where m.id = res.id and res.outcome = 'release' and m.claimed_by = ${relayId}
      returning m.id
    )`;
}

/**
 * Settles the previous batch (if any) and claims up to `limit` messages for `relayId` until now() + `leaseMs`,
 * in id order, in one statement: a round trip per batch, as a bare `DELETE … SKIP LOCKED` loop pays.
 *
 * The claim runs on the statement's snapshot, in which the rows being settled still exist: they are under this
 * relay's live claim, so they are not taken again (and their ids are excluded outright, for a claim that
 * lapsed). With `per-key`, a key whose head is being settled is therefore taken by the next claim, not this one.
 *
 * `per-key`: a key is taken only through its head (its lowest id still in the outbox), and only when the head
 * is due and not under a live claim. Locking the head row (SKIP LOCKED) is what makes a relay the key's owner
 * for this claim; the key's following messages come along behind it, so another relay can take none of them:
 * they are not heads while the head exists, and the head stays claimed until it is settled.
 *
 * `none`: any due, unclaimed message.
 */
export async function claim(
  db: OutboxDb,
  t: ResolvedTables,
  o: { relayId: string; limit: number; leaseMs: number; perKey: boolean; settle?: readonly Settlement[] },
): Promise<OutboxMessage[]> {
  const settling = o.settle ?? [];
  const notSettling =
    settling.length === 0
      ? sql``
      : sql`and not (h.id = any(${idArray(
          t,
          settling.map((x) => x.id),
        )}))`;
  // a head's followers stop at the first one under a live claim or being settled right now: a lower id that
  // committed late (another writer) becomes the head while later ids are in flight, and taking those again would
  // publish them twice, and after it (the settle's delete skips a row this statement's update already changed)
  const takenSettling =
    settling.length === 0
      ? sql``
      : sql`or n.id = any(${idArray(
          t,
          settling.map((x) => x.id),
        )})`;
  const picked = o.perKey
    ? sql`heads as (
          select h.id, h.key from ${t.outbox} h
          where h.available_at <= now()
            and (h.claimed_until is null or h.claimed_until < now())
            ${notSettling}
            and not exists (select 1 from ${t.outbox} p where p.key = h.key and p.id < h.id)
          order by h.id
          limit ${o.limit}
          for update of h skip locked
        ),
        picked as (
          select f.id from heads cross join lateral (
            select n.id, bool_or(n.taken) over (order by n.id) as behind_taken
            from (
              select n.id, coalesce(n.claimed_until >= now(), false) ${takenSettling} as taken
              from ${t.outbox} n
              where n.key = heads.key and n.id >= heads.id
              order by n.id
              limit ${Math.min(o.limit, MAX_PER_KEY)}
            ) n
          ) f
          where not f.behind_taken
          order by f.id
          limit ${o.limit}
        )`
    : sql`picked as (
          select h.id from ${t.outbox} h
          where h.available_at <= now() and (h.claimed_until is null or h.claimed_until < now())
            ${notSettling}
          order by h.id
          limit ${o.limit}
          for update skip locked
        )`;
  const res =
    await sql<ClaimedRow>`with ${settling.length > 0 ? sql`${settleCtes(t, o.relayId, settling)},` : sql``}
    ${picked}
    update ${t.outbox} m
    set claimed_by = ${o.relayId}, claimed_until = now() + ${o.leaseMs} * interval '1 millisecond'
    from picked
    where m.id = picked.id
      -- re-checked on the row's latest version if a concurrent claim changed it first: never steal a live claim
      and (m.claimed_until is null or m.claimed_until < now())
    returning m.id::text as id, m.topic, m.key, m.type, m.payload, m.headers, m.created_at, m.attempts`.execute(
      db,
    );
  return res.rows.map(toMessage).sort((a, b) => byId(a.id, b.id));
}

/** Settles a batch without claiming another (on stop, and when a combined claim failed). */
export async function settle(
  db: OutboxDb,
  t: ResolvedTables,
  relayId: string,
  items: readonly Settlement[],
): Promise<void> {
  if (items.length === 0) return;
  await sql`with ${settleCtes(t, relayId, items)} select 1`.execute(db);
}

/** Extends this relay's live claims on `ids`; resolves to how many rows it still holds. */
export async function heartbeat(
  db: OutboxDb,
  t: ResolvedTables,
  relayId: string,
  leaseMs: number,
  ids: readonly string[],
): Promise<number> {
  if (ids.length === 0) return 0;
  const res = await sql`update ${t.outbox}
    set claimed_until = now() + ${leaseMs} * interval '1 millisecond'
    where id = any(${idArray(t, ids)}) and claimed_by = ${relayId}`.execute(db);
  return Number(res.numAffectedRows ?? 0);
}

/** Backlog and the oldest message's age, on the server's clock. */
export async function backlog(
  db: OutboxDb,
  t: ResolvedTables,
): Promise<{ backlog: number; oldestAgeMs: number }> {
  const res = await sql<{ backlog: string | number; oldest_ms: string | number | null }>`
    select count(*) as backlog,
           extract(epoch from (now() - min(created_at))) * 1000 as oldest_ms
    from ${t.outbox}`.execute(db);
  const row = res.rows[0];
  return { backlog: Number(row?.backlog ?? 0), oldestAgeMs: Math.max(0, Number(row?.oldest_ms ?? 0)) };
}
