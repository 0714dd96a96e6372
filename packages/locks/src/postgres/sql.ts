/** PostgreSQL channel of release wake-ups; payload `<namespace length>:<namespace><key>`. */
export const CHANNEL = 'oms_locks';

/**
 * Everything both strategies need: the fencing sequence `oms_locks_fence_seq`, the lease table `oms_locks`
 * (with writer intents), the fair queue table `oms_locks_queue`, and the functions `oms_locks_acquire`,
 * `oms_locks_acquire_fair`, `oms_locks_advisory_try_fair` and `oms_locks_release`. Idempotent; run it with your own migration tool, or call
 * `migrate()`.
 *
 * @example
 * import { writeFileSync } from 'node:fs';
 * import { LOCKS_MIGRATION_SQL } from '@oms/locks/postgres';
 * writeFileSync('migrations/0007_oms_locks.sql', LOCKS_MIGRATION_SQL);
 */
export const LOCKS_MIGRATION_SQL = `
create sequence if not exists oms_locks_fence_seq as bigint;

create table if not exists oms_locks (
  namespace     text        not null,
  key           text        not null,
  holder        uuid        not null,
  mode          text        not null check (mode in ('exclusive', 'shared', 'intent')),
  fencing_token bigint,
  expires_at    timestamptz not null,
  acquired_at   timestamptz not null default now(),
  primary key (namespace, key, holder)
);

create or replace function oms_locks_acquire(
  p_ns text, p_key text, p_holder uuid, p_mode text, p_ttl_ms integer, p_intent_ms integer
) returns table (token bigint, retry_ms integer) language plpgsql as $fn$
declare
  v_block timestamptz;
  v_intent boolean;
  v_dirty boolean;
  v_token bigint;
begin
  -- serializes acquirers of one key for this transaction only, so it is safe behind transaction pooling
  perform pg_advisory_xact_lock(hashtext(p_ns), hashtext(p_key));
  -- one read of the key's rows decides; the uncontended path then only inserts
  select max(l.expires_at) filter (where l.expires_at > now()
           and (l.mode = 'exclusive' or (p_mode = 'exclusive' and l.mode = 'shared'))),
         coalesce(bool_or(l.mode = 'intent' and l.expires_at > now()), false),
         coalesce(bool_or(l.expires_at <= now() or l.holder = p_holder), false)
    into v_block, v_intent, v_dirty
    from oms_locks l where l.namespace = p_ns and l.key = p_key;
  if v_dirty then
    -- expired rows, and this holder's own intent (it is either granted now or written again below)
    delete from oms_locks l where l.namespace = p_ns and l.key = p_key
      and (l.expires_at <= now() or l.holder = p_holder);
  end if;
  if v_block is not null then
    if p_mode = 'exclusive' and p_intent_ms > 0 then
      insert into oms_locks (namespace, key, holder, mode, expires_at)
        values (p_ns, p_key, p_holder, 'intent', now() + p_intent_ms * interval '1 millisecond')
        on conflict (namespace, key, holder) do update set expires_at = excluded.expires_at;
    end if;
    return query select null::bigint, greatest(1, ceil(extract(epoch from v_block - now()) * 1000))::integer;
    return;
  end if;
  -- writer preference: a waiting writer holds new readers back
  if p_mode = 'shared' and v_intent then
    return query select null::bigint, null::integer;
    return;
  end if;
  v_token := nextval('oms_locks_fence_seq');
  insert into oms_locks (namespace, key, holder, mode, fencing_token, expires_at)
    values (p_ns, p_key, p_holder, p_mode, v_token, now() + p_ttl_ms * interval '1 millisecond');
  return query select v_token, null::integer;
end
$fn$;

-- The fair queue: a waiter of a fair store keeps its place (ticket) while it re-tries within expires_at.
create table if not exists oms_locks_queue (
  namespace  text        not null,
  key        text        not null,
  holder     uuid        not null,
  mode       text        not null check (mode in ('exclusive', 'shared')),
  ticket     bigint      not null,
  expires_at timestamptz not null,
  primary key (namespace, key, holder)
);

-- FIFO across modes: granted when the holders allow it and no conflicting waiter queued earlier (a writer
-- passes nobody, a reader passes only readers). A failed try with p_queue_ms > 0 takes or keeps a place.
create or replace function oms_locks_acquire_fair(
  p_ns text, p_key text, p_holder uuid, p_mode text, p_ttl_ms integer, p_queue_ms integer
) returns table (token bigint, retry_ms integer) language plpgsql as $fn$
declare
  v_block timestamptz;
  v_dirty boolean;
  v_ticket bigint;
  v_ahead boolean;
  v_token bigint;
begin
  perform pg_advisory_xact_lock(hashtext(p_ns), hashtext(p_key));
  delete from oms_locks_queue q where q.namespace = p_ns and q.key = p_key and q.expires_at <= now();
  select q.ticket into v_ticket from oms_locks_queue q
    where q.namespace = p_ns and q.key = p_key and q.holder = p_holder;
  select exists (select 1 from oms_locks_queue q
    where q.namespace = p_ns and q.key = p_key and q.holder <> p_holder
      and (v_ticket is null or q.ticket < v_ticket) and (p_mode = 'exclusive' or q.mode = 'exclusive'))
    into v_ahead;
  select max(l.expires_at) filter (where l.expires_at > now()
           and (l.mode = 'exclusive' or (p_mode = 'exclusive' and l.mode = 'shared'))),
         coalesce(bool_or(l.expires_at <= now()), false)
    into v_block, v_dirty
    from oms_locks l where l.namespace = p_ns and l.key = p_key;
  if v_dirty then
    delete from oms_locks l where l.namespace = p_ns and l.key = p_key and l.expires_at <= now();
  end if;
  if v_block is not null or v_ahead then
    if p_queue_ms > 0 then
      if v_ticket is null then
        insert into oms_locks_queue (namespace, key, holder, mode, ticket, expires_at)
          select p_ns, p_key, p_holder, p_mode, coalesce(max(q.ticket), 0) + 1,
                 now() + p_queue_ms * interval '1 millisecond'
            from oms_locks_queue q where q.namespace = p_ns and q.key = p_key;
      else
        update oms_locks_queue q set expires_at = now() + p_queue_ms * interval '1 millisecond'
          where q.namespace = p_ns and q.key = p_key and q.holder = p_holder;
      end if;
    end if;
    return query select null::bigint, case when v_block is null then null
      else greatest(1, ceil(extract(epoch from v_block - now()) * 1000))::integer end;
    return;
  end if;
  if v_ticket is not null then
    delete from oms_locks_queue q where q.namespace = p_ns and q.key = p_key and q.holder = p_holder;
  end if;
  v_token := nextval('oms_locks_fence_seq');
  insert into oms_locks (namespace, key, holder, mode, fencing_token, expires_at)
    values (p_ns, p_key, p_holder, p_mode, v_token, now() + p_ttl_ms * interval '1 millisecond');
  return query select v_token, null::integer;
end
$fn$;

-- The advisory strategy's fair try: the same queue, and the session lock itself (held past this statement).
create or replace function oms_locks_advisory_try_fair(
  p_ns text, p_key text, p_holder uuid, p_mode text, p_lock bigint, p_queue_ms integer
) returns boolean language plpgsql as $fn$
declare
  v_ticket bigint;
  v_ok boolean := false;
begin
  perform pg_advisory_xact_lock(hashtext(p_ns), hashtext(p_key));
  delete from oms_locks_queue q where q.namespace = p_ns and q.key = p_key and q.expires_at <= now();
  select q.ticket into v_ticket from oms_locks_queue q
    where q.namespace = p_ns and q.key = p_key and q.holder = p_holder;
  if not exists (select 1 from oms_locks_queue q
      where q.namespace = p_ns and q.key = p_key and q.holder <> p_holder
        and (v_ticket is null or q.ticket < v_ticket) and (p_mode = 'exclusive' or q.mode = 'exclusive')) then
    if p_mode = 'exclusive' then
      v_ok := pg_try_advisory_lock(p_lock);
    else
      v_ok := pg_try_advisory_lock_shared(p_lock);
    end if;
  end if;
  if v_ok then
    if v_ticket is not null then
      delete from oms_locks_queue q where q.namespace = p_ns and q.key = p_key and q.holder = p_holder;
    end if;
  elsif p_queue_ms > 0 then
    if v_ticket is null then
      insert into oms_locks_queue (namespace, key, holder, mode, ticket, expires_at)
        select p_ns, p_key, p_holder, p_mode, coalesce(max(q.ticket), 0) + 1,
               now() + p_queue_ms * interval '1 millisecond'
          from oms_locks_queue q where q.namespace = p_ns and q.key = p_key;
    else
      update oms_locks_queue q set expires_at = now() + p_queue_ms * interval '1 millisecond'
        where q.namespace = p_ns and q.key = p_key and q.holder = p_holder;
    end if;
  end if;
  return v_ok;
end
$fn$;

-- Waiters mark a key by holding a shared session lock on its marker from their LISTEN session, so a release
-- notifies only when its exclusive try on the marker fails. The key's xact lock is held until commit: a
-- waiter that marks after the check re-tries after the delete is visible, so it never misses the release.
create or replace function oms_locks_release(
  p_ns text, p_key text, p_holder uuid, p_payload text, p_marker bigint
) returns boolean language plpgsql as $fn$
declare
  v_ok boolean;
begin
  perform pg_advisory_xact_lock(hashtext(p_ns), hashtext(p_key));
  delete from oms_locks l where l.namespace = p_ns and l.key = p_key and l.holder = p_holder
    returning l.expires_at > now() into v_ok;
  if not pg_try_advisory_xact_lock(p_marker) then
    perform pg_notify('${CHANNEL}', p_payload);
  end if;
  return coalesce(v_ok, false);
end
$fn$;
`;

export const LEASE_ACQUIRE =
  'select token::text as token, retry_ms from oms_locks_acquire($1, $2, $3, $4, $5, $6)';

export const LEASE_ACQUIRE_FAIR =
  'select token::text as token, retry_ms from oms_locks_acquire_fair($1, $2, $3, $4, $5, $6)';

export const ADVISORY_TRY_FAIR = `select l.ok, case when l.ok then nextval('oms_locks_fence_seq')::text end as token
  from (select oms_locks_advisory_try_fair($1, $2, $3, $4, $5::bigint, $6) as ok offset 0) l`;

/** Leaves the fair queue (both strategies) and wakes the waiters behind. */
export const QUEUE_CANCEL = `with d as (
  delete from oms_locks_queue where namespace = $1 and key = $2 and holder = $3 returning 1
) select case when exists (select 1 from d) then pg_notify('${CHANNEL}', $4) end`;

export const LEASE_EXTEND = `update oms_locks set expires_at = now() + $4 * interval '1 millisecond'
 where namespace = $1 and key = $2 and holder = $3 and mode <> 'intent' and expires_at > now()`;

export const LEASE_RELEASE = 'select oms_locks_release($1, $2, $3, $4, $5) as ok';

export const LEASE_CANCEL = `with d as (
  delete from oms_locks where namespace = $1 and key = $2 and holder = $3 and mode = 'intent' returning 1
) select case when exists (select 1 from d) then pg_notify('${CHANNEL}', $4) end`;

// offset 0 keeps the planner from flattening the subquery, so nextval only runs when the lock was granted
export const ADVISORY_TRY_EXCLUSIVE = `select l.ok, case when l.ok then nextval('oms_locks_fence_seq')::text end as token,
  case when not l.ok and $3::boolean then pg_try_advisory_lock($2::bigint) end as intent,
  case when l.ok and $4::boolean then pg_advisory_unlock($2::bigint) end as intent_dropped
  from (select pg_try_advisory_lock($1::bigint) as ok offset 0) l`;

// writer preference: the first waiting writer holds the intent key exclusively, and a reader's momentary
// shared xact lock on it fails while it does (readers do not conflict with each other)
export const ADVISORY_TRY_SHARED = `select l.ok, case when l.ok then nextval('oms_locks_fence_seq')::text end as token
  from (select case when pg_try_advisory_xact_lock_shared($2::bigint) then pg_try_advisory_lock_shared($1::bigint)
    else false end as ok offset 0) l`;

export const ADVISORY_HELD = `select count(*)::int as n from pg_locks
 where locktype = 'advisory' and pid = pg_backend_pid() and classid = $1::oid and objid = $2::oid
   and objsubid = 1 and granted`;

// the unlock takes effect at once (session locks are not transactional), before the marker check
const advisoryUnlock = (fn: string) => `select u.ok,
  case when not pg_try_advisory_xact_lock($3::bigint) then pg_notify('${CHANNEL}', $2) end as woke
  from (select ${fn}($1::bigint) as ok offset 0) u`;
export const ADVISORY_UNLOCK_EXCLUSIVE = advisoryUnlock('pg_advisory_unlock');
export const ADVISORY_UNLOCK_SHARED = advisoryUnlock('pg_advisory_unlock_shared');

/** Run on the LISTEN session: a waiter's mark, held while it waits (sessions of every process coexist). */
export const MARK_WAITING = 'select pg_advisory_lock_shared($1::bigint)';
export const UNMARK_WAITING = 'select pg_advisory_unlock_shared($1::bigint)';
export const ADVISORY_DROP_INTENT = `select pg_advisory_unlock($1::bigint), pg_notify('${CHANNEL}', $2)`;
