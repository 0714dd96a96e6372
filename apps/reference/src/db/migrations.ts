import { outboxMigrations } from '@oms/outbox';
import { type Kysely, sql } from 'kysely';
import { type Migration, type MigrationProvider, Migrator } from 'kysely/migration';

const app0001: Migration = {
  async up(db) {
    await sql`create table orders (
      id text primary key,
      customer_id text not null,
      status text not null check (status in ('created', 'payment_pending', 'paid', 'cancelled')),
      total_cents bigint not null check (total_cents >= 0),
      currency text not null,
      version int not null default 1,
      fence bigint not null default 0,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now()
    )`.execute(db);
    await sql`create index orders_customer_created on orders (customer_id, created_at desc, id desc)`.execute(
      db,
    );
    await sql`create index orders_created on orders (created_at desc, id desc)`.execute(db);
    await sql`create table order_items (
      order_id text not null references orders (id),
      line int not null,
      sku text not null,
      quantity int not null check (quantity > 0),
      unit_price_cents bigint not null check (unit_price_cents >= 0),
      primary key (order_id, line)
    )`.execute(db);
    await sql`create table payments (
      charge_id text primary key,
      order_id text not null unique references orders (id),
      amount_cents bigint not null,
      currency text not null,
      created_at timestamptz not null default now()
    )`.execute(db);
    await sql`create table idempotency_keys (
      principal text not null,
      key text not null,
      request_hash text not null,
      order_id text not null,
      created_at timestamptz not null default now(),
      primary key (principal, key)
    )`.execute(db);
    await sql`create table audit_log (
      seq bigint primary key,
      entry text not null,
      prev_hash text not null,
      hash text not null
    )`.execute(db);
    // the chain head: appenders lock this one row (select ... for update), so the chain never forks
    await sql`create table audit_head (id int primary key check (id = 1), seq bigint not null, hash text not null)`.execute(
      db,
    );
    await sql`insert into audit_head (id, seq, hash) values (1, 0, ${GENESIS})`.execute(db);
    await sql`create table notifications (
      message_id text primary key,
      order_id text not null,
      type text not null,
      applied_at timestamptz not null default now()
    )`.execute(db);
    await sql`create index notifications_order on notifications (order_id)`.execute(db);
    await sql`create table maintenance (
      id int primary key check (id = 1),
      holder text not null,
      reason text not null,
      since timestamptz not null,
      eta timestamptz not null
    )`.execute(db);
  },
  async down(db) {
    for (const t of [
      'maintenance',
      'notifications',
      'audit_head',
      'audit_log',
      'idempotency_keys',
      'payments',
      'order_items',
      'orders',
    ]) {
      await sql.raw(`drop table if exists ${t}`).execute(db);
    }
  },
};

/** The hash the first audit row chains to. */
export const GENESIS = '0'.repeat(64);

class Provider implements MigrationProvider {
  async getMigrations(): Promise<Record<string, Migration>> {
    // names sort in the order they must run: ours first, then the outbox's (it creates outbox/inbox)
    const outbox = outboxMigrations() as unknown as Record<string, Migration>;
    return {
      '0001_app': app0001,
      ...Object.fromEntries(Object.entries(outbox).map(([k, m]) => [`0002_${k}`, m])),
    };
  }
}

/**
 * Runs every pending migration (idempotent; Kysely's migration lock serialises concurrent starts). A start on a
 * database that already has exactly these migrations costs one query: Kysely's migrator would first introspect
 * the catalog and take its lock in a transaction (seconds on PGlite under load). Anything else (a fresh database,
 * a pending migration, one this code does not know) goes through the migrator, which migrates or fails as before.
 */
export async function migrateToLatest(db: Kysely<unknown>): Promise<string[]> {
  const provider = new Provider();
  const expected = Object.keys(await provider.getMigrations()).sort();
  const done = await sql<{ name: string }>`select name from kysely_migration`
    .execute(db)
    .then((r) => r.rows.map((x) => x.name).sort())
    .catch(() => undefined); // no table yet: a fresh database
  if (done !== undefined && done.length === expected.length && done.every((n, i) => n === expected[i])) {
    return [];
  }
  const migrator = new Migrator({ db, provider });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error;
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
