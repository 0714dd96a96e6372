import type { Kysely, Transaction } from 'kysely';
import type { Clock } from './internal/clock.js';

/**
 * Any Kysely instance or transaction, whatever its table types: the outbox only runs its own SQL on it.
 *
 * @example
 * import type { OutboxDb } from '@oms/outbox';
 * import { Kysely, PostgresDialect } from 'kysely';
 * import pg from 'pg';
 * interface MyTables { orders: { id: number } }
 * const db: OutboxDb = new Kysely<MyTables>({ dialect: new PostgresDialect({ pool: new pg.Pool() }) });
 */
// biome-ignore lint/suspicious/noExplicitAny: a user's own table types must fit, and Kysely<DB> is invariant in DB
export type OutboxDb = Kysely<any>;

/**
 * The transaction `handleOnce` passes to its handler, typed for any tables.
 *
 * @example
 * import type { OutboxTransaction } from '@oms/outbox';
 * const handler = async (trx: OutboxTransaction) => trx.selectFrom('orders').selectAll().execute();
 */
// biome-ignore lint/suspicious/noExplicitAny: as OutboxDb
export type OutboxTransaction = Transaction<any>;

/**
 * Where the outbox lives. Every function that touches the tables takes the same `tables` option, so one
 * application can run several outboxes side by side (one per schema, or differently named tables).
 *
 * @example
 * import type { OutboxTables } from '@oms/outbox';
 * const tables: OutboxTables = { schema: 'messaging', outbox: 'outbox', dead: 'outbox_dead', inbox: 'inbox' };
 */
export interface OutboxTables {
  /** Schema of the tables; created by `migrate()`. Default: none, so the connection's `search_path` decides. */
  schema?: string;
  /** Pending messages. Default `'outbox'`. */
  outbox?: string;
  /** Messages that exhausted `maxAttempts` or were rejected as not retryable. Default `'outbox_dead'`. */
  dead?: string;
  /** Message ids each consumer has processed. Default `'inbox'`. */
  inbox?: string;
  /** The NOTIFY channel the insert trigger fires. Default: `<schema>_<outbox>`, or `<outbox>` without schema. */
  channel?: string;
  /**
   * How message ids are made, fixed when the tables are created: `'bigserial'` (default), or `'uuidv7'`, made
   * by the database (a function the migration creates) from its clock in milliseconds, a sub-millisecond
   * fraction and a sequence, so ids still sort in insertion order. Pass the same value everywhere.
   */
  idType?: 'bigserial' | 'uuidv7';
}

/**
 * Options shared by every function that reads or writes the tables.
 *
 * @example
 * import type { TablesOption } from '@oms/outbox';
 * const opts: TablesOption = { tables: { schema: 'messaging' } };
 */
export interface TablesOption {
  tables?: OutboxTables;
}

/**
 * A message to write with `enqueue`.
 *
 * @example
 * import type { NewMessage } from '@oms/outbox';
 * const m: NewMessage = { topic: 'orders', key: 'order-42', type: 'order.created', payload: { total: 99 } };
 */
export interface NewMessage {
  /** Where the publisher sends it (a stream, a subject, an exchange). Non-empty, at most 1 KiB. */
  topic: string;
  /** The ordering key: with `ordering: 'per-key'`, messages with one key are published in order. At most 1 KiB. */
  key: string;
  /** What happened, for the consumer's dispatch (`'order.created'`). Non-empty, at most 1 KiB. */
  type: string;
  /** Any JSON-serialisable value, at most `maxPayloadBytes` once serialised. */
  payload: unknown;
  /** String headers; `traceparent`/`tracestate` of the active context are added unless given here. */
  headers?: Record<string, string>;
}

/**
 * Options of `enqueue`.
 *
 * @example
 * import type { EnqueueOptions } from '@oms/outbox';
 * const opts: EnqueueOptions = { serializeKey: true, maxPayloadBytes: 64 * 1024 };
 */
export interface EnqueueOptions extends TablesOption {
  /**
   * Take a transaction-scoped advisory lock on each key before inserting, so that for one key the id order
   * equals the commit order even across concurrent writers. Without it, the order is per writer.
   */
  serializeKey?: boolean;
  /** The largest serialised payload in bytes. Default 1 MiB. */
  maxPayloadBytes?: number;
  /**
   * `false` skips the insert trigger's NOTIFY for this write: the commit then wakes no relay, which finds the
   * message on its next claim (at once when it is busy, after `pollMs` when it sleeps). A NOTIFY costs every
   * writer a lock at commit and wakes each listening session; skip it when writers are many and the relay is
   * never idle. Default `true`.
   */
  notify?: boolean;
}

/**
 * A message as the relay hands it to a publisher.
 *
 * @example
 * import type { OutboxMessage } from '@oms/outbox';
 * const route = (m: OutboxMessage) => `${m.topic}:${m.type}`;
 */
export interface OutboxMessage {
  /** The outbox id (a bigint as a decimal string): stable across retries, so consumers dedupe on it. */
  readonly id: string;
  readonly topic: string;
  readonly key: string;
  readonly type: string;
  readonly payload: unknown;
  readonly headers: Readonly<Record<string, string>>;
  readonly createdAt: Date;
  /** Failed attempts before this one (0 on the first). */
  readonly attempts: number;
}

/**
 * One publisher result per message, in order. `retryable: false` sends the message to the dead letters at once.
 *
 * @example
 * import type { PublishResult } from '@oms/outbox';
 * const results: PublishResult[] = [{ ok: true }, { ok: false, error: new Error('broker down') }];
 */
export type PublishResult = { ok: true } | { ok: false; error: unknown; retryable?: boolean };

/**
 * Sends messages to a broker. It returns one result per message, in order, so a failed message retries alone
 * and the rest of its batch is not resent. A rejection counts as a failure of every message passed.
 *
 * @example
 * import type { Publisher } from '@oms/outbox';
 * const publisher: Publisher = {
 *   async publish(messages, signal) {
 *     signal.throwIfAborted();
 *     return messages.map(() => ({ ok: true as const }));
 *   },
 * };
 */
export interface Publisher {
  publish(messages: readonly OutboxMessage[], signal: AbortSignal): Promise<readonly PublishResult[]>;
}

/**
 * Wakes the relay when messages are inserted. `subscribe` resolves once listening, to the function that stops.
 * `@oms/outbox/postgres` adapts a dedicated `pg.Client`, `@oms/outbox/pglite` adapts PGlite.
 *
 * @example
 * import type { Listen } from '@oms/outbox';
 * const never: Listen = { subscribe: async () => async () => {} };
 */
export interface Listen {
  /**
   * `onLost`, when the adapter passes it an error, says this subscription's session is gone and no
   * notification will come through it: the relay reports it (one `error` event per outage, phase `'listen'`),
   * polls at most every second, and calls `subscribe` again with backoff (1 s doubling to 30 s) until it
   * resolves; the same happens when `subscribe` rejects. Then it looks once and goes back to `pollMs`.
   */
  subscribe(
    channel: string,
    onNotify: () => void,
    onLost?: (error: unknown) => void,
  ): Promise<() => Promise<void>>;
}

/**
 * Retry delay after a failed publish: exponential from `baseMs` by `factor`, capped at `maxMs`, with up to
 * `jitter` of it removed at random; or a function of the attempt number (1 after the first failure).
 *
 * @example
 * import type { Backoff } from '@oms/outbox';
 * const fixed: Backoff = () => 1_000;
 * const exp: Backoff = { baseMs: 200, maxMs: 30_000 };
 */
export type Backoff =
  | ((attempt: number) => number)
  | { baseMs?: number; maxMs?: number; factor?: number; jitter?: number };

/**
 * Options of `relay`.
 *
 * @example
 * import { fnPublisher, type RelayOptions } from '@oms/outbox';
 * import type { Kysely, Transaction } from 'kysely';
 * declare const db: Kysely<unknown>;
 * const opts: RelayOptions = { db, publisher: fnPublisher(async () => {}), batchSize: 200, leaseMs: 10_000 };
 */
export interface RelayOptions extends TablesOption {
  /** Any Kysely instance on a PostgreSQL dialect (node-postgres, postgres.js, PGlite, ...). */
  db: OutboxDb;
  publisher: Publisher;
  /** Messages claimed per batch. Default 100. */
  batchSize?: number;
  /** Batches in flight at once in this relay. Default 1. */
  concurrency?: number;
  /** Wakes on inserts; without it the relay only polls. */
  listen?: Listen;
  /**
   * Fallback poll interval, and the longest a retry or a reclaim waits to be seen. Default 1000 ms. While a
   * `listen` session is lost, the relay polls at most every 1000 ms.
   */
  pollMs?: number;
  /** `'per-key'` (default) publishes a key's messages strictly in id order; `'none'` publishes in any order. */
  ordering?: 'per-key' | 'none';
  /** Publish attempts before a message moves to the dead letters. Default 10. */
  maxAttempts?: number;
  backoff?: Backoff;
  /** How long a claim stays valid without a heartbeat; a crashed relay's claims are reclaimed after it. Default 30 s. */
  leaseMs?: number;
  /** Identifies this relay in `claimed_by`. Default: a random id. */
  relayId?: string;
  /** Timers (poll, heartbeat). Default: the system clock. */
  clock?: Clock;
}

/**
 * Options of `stop`.
 *
 * @example
 * import type { StopOptions } from '@oms/outbox';
 * const opts: StopOptions = { drain: true, timeoutMs: 10_000 };
 */
export interface StopOptions {
  /**
   * `true` (default): claim nothing new and let in-flight batches finish. `false`: abort in-flight publishes
   * and hand their messages back at once.
   */
  drain?: boolean;
  /** With `drain`, abort whatever is still in flight after this long. Default: wait as long as it takes. */
  timeoutMs?: number;
}

/**
 * What `stats()` reports.
 *
 * @example
 * import type { RelayStats } from '@oms/outbox';
 * const healthy = (s: RelayStats) => s.oldestAgeMs < 60_000;
 */
export interface RelayStats {
  /** Messages in the outbox table, claimed or not. */
  backlog: number;
  /** Age of the oldest message in the outbox in ms (server clock), 0 when empty. */
  oldestAgeMs: number;
  /** Messages this relay has claimed and not yet settled. */
  inFlight: number;
  /** Totals since this relay was created. */
  published: number;
  failed: number;
  deadLettered: number;
  state: RelayState;
}

/**
 * `'idle'` before `start()`, `'running'`, `'stopping'` during `stop()`, then `'stopped'`.
 *
 * @example
 * import type { RelayState } from '@oms/outbox';
 * const live = (s: RelayState) => s === 'running';
 */
export type RelayState = 'idle' | 'running' | 'stopping' | 'stopped';

/**
 * The facts a relay emits; `instrument()` and logs subscribe to them.
 *
 * @example
 * import type { RelayEvents } from '@oms/outbox';
 * const onBatch = (e: RelayEvents['batch']) => e.published + e.failed;
 */
export interface RelayEvents {
  /** Messages the publisher accepted (settled in the table right after). */
  published: { readonly messages: readonly OutboxMessage[]; readonly at: number };
  /** A message failed; `dead` when it moved to the dead letters instead of being retried. */
  failed: {
    readonly message: OutboxMessage;
    readonly error: unknown;
    readonly dead: boolean;
    readonly retryInMs?: number;
  };
  /** One claimed batch, from claim to settle. */
  batch: {
    readonly size: number;
    readonly published: number;
    readonly failed: number;
    readonly deadLettered: number;
    readonly startedAt: number;
    readonly endedAt: number;
    /** The messages' headers, so telemetry can link the batch span to the writers' spans. */
    readonly headers: readonly Readonly<Record<string, string>>[];
  };
  /** The relay hit an error it will retry by itself (a lost connection, a failed heartbeat). */
  error: { readonly phase: 'claim' | 'settle' | 'heartbeat' | 'listen'; readonly error: unknown };
  stateChange: { readonly from: RelayState; readonly to: RelayState };
  /** A loop found nothing due and sleeps until a notification, a due retry or the poll. */
  idle: { readonly at: number };
}

/**
 * A running relay.
 *
 * @example
 * import { relay, fnPublisher } from '@oms/outbox';
 * import type { Kysely, Transaction } from 'kysely';
 * declare const db: Kysely<unknown>;
 * const r = relay({ db, publisher: fnPublisher(async () => {}) });
 * r.start();
 * process.once('SIGTERM', () => void r.stop({ drain: true }));
 */
export interface Relay {
  /** Starts claiming and publishing. Calling it again does nothing. */
  start(): void;
  /** Stops claiming; resolves once every in-flight batch is settled and the listener is closed. */
  stop(opts?: StopOptions): Promise<void>;
  /** Backlog, oldest age and counters. */
  stats(signal?: AbortSignal): Promise<RelayStats>;
  readonly state: RelayState;
  on<K extends keyof RelayEvents>(event: K, fn: (e: RelayEvents[K]) => void): () => void;
  /** `stop({ drain: true })`. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * What `handleOnce` resolves to: the handler's result the first time, `'duplicate'` ever after.
 *
 * @example
 * import type { HandleResult } from '@oms/outbox';
 * const applied = (r: HandleResult<number>) => r.status === 'processed';
 */
export type HandleResult<T> = { status: 'processed'; result: T } | { status: 'duplicate' };

/**
 * A row of the dead letters.
 *
 * @example
 * import type { DeadLetter } from '@oms/outbox';
 * const summary = (d: DeadLetter) => `${d.topic}/${d.type}: ${d.lastError ?? ''}`;
 */
export interface DeadLetter extends OutboxMessage {
  readonly lastError: string | null;
  readonly deadAt: Date;
}
