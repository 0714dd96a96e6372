import { sql } from 'kysely';
import { resolveTables } from './tables.js';
import type { OutboxDb, OutboxTables, TablesOption } from './types.js';

/**
 * A Kysely migration, written structurally so it fits the `Migration` of every Kysely version (0.29 moved the
 * type to `kysely/migration`).
 *
 * @example
 * import type { OutboxMigration } from '@oms/outbox';
 * const noop: OutboxMigration = { up: async () => {}, down: async () => {} };
 */
export interface OutboxMigration {
  up(db: OutboxDb): Promise<void>;
  down(db: OutboxDb): Promise<void>;
}

const q = (name: string) => `"${name}"`;

/** The transaction-local setting an insert sets to 'off' to skip the trigger's NOTIFY. */
export const NOTIFY_FLAG = 'oms_outbox.notify';

/**
 * The statements that create the outbox, dead-letter and inbox tables, their indexes and the insert trigger,
 * in order. Every statement is idempotent (`if not exists`, `or replace`).
 */
export function migrationStatements(tables?: OutboxTables): string[] {
  const t = resolveTables(tables);
  const qual = (name: string) => (t.schema ? `${q(t.schema)}.${q(name)}` : q(name));
  const { outbox, dead, inbox } = t.names;
  const o = qual(outbox);
  const fn = qual(`${outbox}_notify`);
  const uuid = t.idType === 'uuidv7';
  const idFn = qual(`${outbox}_uuidv7`);
  const idSeq = qual(`${outbox}_uuidv7_seq`);
  return [
    ...(t.schema ? [`create schema if not exists ${q(t.schema)}`] : []),
    ...(uuid ? uuidv7Statements(idSeq, idFn) : []),
    `create table if not exists ${o} (
  id ${uuid ? `uuid primary key default ${idFn}()` : 'bigserial primary key'},
  topic text not null,
  key text not null,
  type text not null,
  payload jsonb not null,
  headers jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  available_at timestamptz not null default now(),
  attempts integer not null default 0,
  last_error text,
  claimed_by text,
  claimed_until timestamptz
) with (fillfactor = 50)`,
    // per-key ordering asks "is there an earlier message of this key?" and "the next messages of this key".
    // No index covers claimed_by, claimed_until, attempts or available_at: a claim then updates its rows in place
    // (a HOT update, with the room fillfactor leaves on each page) instead of adding an entry to every index,
    // and the relay finds its own claims by id.
    `create index if not exists ${q(`${outbox}_key_id`)} on ${o} (key, id)`,
    `create table if not exists ${qual(dead)} (
  id ${uuid ? 'uuid' : 'bigint'} primary key,
  topic text not null,
  key text not null,
  type text not null,
  payload jsonb not null,
  headers jsonb not null,
  created_at timestamptz not null,
  attempts integer not null,
  last_error text,
  dead_at timestamptz not null default now()
)`,
    `create index if not exists ${q(`${dead}_topic_id`)} on ${qual(dead)} (topic, id)`,
    `create table if not exists ${qual(inbox)} (
  consumer text not null,
  message_id text not null,
  processed_at timestamptz not null default now(),
  primary key (consumer, message_id)
)`,
    // one notification per inserting statement (and PostgreSQL folds duplicates within a transaction), unless
    // the statement opted out (`enqueue(…, { notify: false })` sets the flag in its own statement); the flag is
    // cleared here, so it never outlives that statement
    `create or replace function ${fn}() returns trigger language plpgsql as $$
begin
  if current_setting('${NOTIFY_FLAG}', true) = 'off' then
    perform set_config('${NOTIFY_FLAG}', '', true);
  else
    perform pg_notify('${t.channel}', '');
  end if;
  return null;
end
$$`,
    `create or replace trigger ${q(`${outbox}_notify`)} after insert on ${o} for each statement execute function ${fn}()`,
  ];
}

/** The sequence and function behind the `uuidv7` id option. */
function uuidv7Statements(idSeq: string, idFn: string): string[] {
  return [
    `create sequence if not exists ${idSeq}`,
    // RFC 9562 UUIDv7 from the server clock: 48 bits of Unix milliseconds, the version, 12 bits of
    // sub-millisecond fraction (method 3), the variant, then 30 bits of a sequence (method 1: ids made in the
    // same clock tick still sort in the order they were made) and 32 random bits
    `create or replace function ${idFn}() returns uuid language plpgsql volatile as $$
declare
  ts numeric := extract(epoch from clock_timestamp()) * 1000;
  ms bigint := floor(ts);
  sub int := floor((ts - ms) * 4096);
  s bigint := nextval('${idSeq.replaceAll("'", "''")}') % 1073741824;
begin
  return (lpad(to_hex(ms), 12, '0') || '7' || lpad(to_hex(sub), 3, '0') || to_hex(8 | (s >> 28))
    || lpad(to_hex(s & 268435455), 7, '0') || lpad(to_hex(floor(random() * 4294967296)::bigint), 8, '0'))::uuid;
end
$$`,
  ];
}

/**
 * The whole migration as one SQL script, for migration tools of your own (Flyway, dbmate, Prisma, ...).
 *
 * @example
 * import { migrationSql } from '@oms/outbox';
 * import { writeFileSync } from 'node:fs';
 * writeFileSync('migrations/0001_outbox.sql', migrationSql({ schema: 'messaging' }));
 */
export function migrationSql(tables?: OutboxTables): string {
  return `${migrationStatements(tables).join(';\n\n')};\n`;
}

/**
 * Creates (or completes) the tables, indexes and trigger. Idempotent, and safe to run from several processes
 * at once: it serialises on a transaction-scoped advisory lock.
 *
 * @example
 * import { migrate } from '@oms/outbox';
 * import { Kysely, PostgresDialect } from 'kysely';
 * import pg from 'pg';
 * const db = new Kysely<unknown>({ dialect: new PostgresDialect({ pool: new pg.Pool() }) });
 * await migrate(db, { tables: { schema: 'messaging' } });
 */
export async function migrate(db: OutboxDb, opts: TablesOption = {}): Promise<void> {
  const statements = migrationStatements(opts.tables);
  const run = async (trx: OutboxDb) => {
    await sql`select pg_advisory_xact_lock(hashtext('@oms/outbox migrate'))`.execute(trx);
    for (const s of statements) await sql.raw(s).execute(trx);
  };
  if (db.isTransaction) await run(db);
  else await db.transaction().execute(run);
}

/**
 * The same migration as Kysely migrations, for a `Migrator` you already run. `down` drops the three tables.
 *
 * @example
 * import { outboxMigrations } from '@oms/outbox';
 * import type { Kysely } from 'kysely';
 * import { Migrator } from 'kysely/migration';
 * declare const db: Kysely<unknown>;
 * const migrator = new Migrator({
 *   db,
 *   provider: { getMigrations: async () => outboxMigrations({ schema: 'messaging' }) },
 * });
 * await migrator.migrateToLatest();
 */
export function outboxMigrations(tables?: OutboxTables): Record<string, OutboxMigration> {
  const t = resolveTables(tables);
  const prefix = t.schema ? `${t.schema}.${t.names.outbox}` : t.names.outbox;
  return {
    [`oms_outbox_0001_${prefix}`]: {
      up: async (db) => {
        for (const s of migrationStatements(tables)) await sql.raw(s).execute(db);
      },
      down: async (db) => {
        await sql`drop table if exists ${t.inbox}`.execute(db);
        await sql`drop table if exists ${t.dead}`.execute(db);
        await sql`drop table if exists ${t.outbox}`.execute(db);
        await sql`drop function if exists ${t.notifyFn}()`.execute(db);
        if (t.idType === 'uuidv7') {
          await sql`drop function if exists ${t.uuidFn}()`.execute(db);
          await sql`drop sequence if exists ${t.uuidSeq}`.execute(db);
        }
      },
    },
  };
}

/**
 * The Kysely migrations for the default table names; see {@link outboxMigrations} for other names.
 *
 * @example
 * import { migrations } from '@oms/outbox';
 * import type { Kysely } from 'kysely';
 * import { Migrator } from 'kysely/migration';
 * declare const db: Kysely<unknown>;
 * await new Migrator({ db, provider: { getMigrations: async () => migrations } }).migrateToLatest();
 */
export const migrations: Record<string, OutboxMigration> = outboxMigrations();
