import { context } from '@opentelemetry/api';
import type { Cluster, Redis } from 'ioredis';
import type { Kysely, Transaction } from 'kysely';
import { OmsOutboxError } from '../errors.js';
import { handleOnce } from '../inbox.js';
import { backgroundTimeout, type Clock, systemClock } from '../internal/clock.js';
import { Emitter } from '../internal/emitter.js';
import { extractTraceContext } from '../trace.js';
import type { OutboxMessage, OutboxTables } from '../types.js';
import { v } from '../validate.js';
import { parseStreamEntry } from './streams-publisher.js';

/**
 * Options of `redisStreamsConsumer`.
 *
 * @example
 * import type { RedisStreamsConsumerOptions } from '@oms/outbox/redis';
 * import { Redis } from 'ioredis';
 * import type { Kysely } from 'kysely';
 * declare const db: Kysely<unknown>;
 * const opts: RedisStreamsConsumerOptions<unknown, void> = {
 *   redis: new Redis(), stream: 'orders', group: 'billing', consumer: 'billing-1', db, handler: async () => {},
 * };
 */
export interface RedisStreamsConsumerOptions<DB, T> {
  /** A connection of its own: XREADGROUP BLOCK holds the connection while it waits. */
  redis: Pick<Redis | Cluster, 'call'>;
  stream: string;
  group: string;
  /** This process's name in the group; unique per process. */
  consumer: string;
  db: Kysely<DB>;
  /** Runs once per message id, in the inbox transaction, inside the writer's restored trace context. */
  handler: (message: OutboxMessage, trx: Transaction<DB>) => T | Promise<T>;
  tables?: OutboxTables;
  /** The inbox's consumer name. Default: `group`, so every process of the group shares the dedup. */
  inboxConsumer?: string;
  /** Entries per read. Default 100. */
  count?: number;
  /** How long a read blocks waiting for entries. Default 1000 ms. */
  blockMs?: number;
  /** Pending entries idle this long (their consumer died) are claimed with XAUTOCLAIM. Default 30 s. */
  claimIdleMs?: number;
  /**
   * Deliveries of one entry (counted by Redis, across consumers and restarts) after which a failing entry is
   * moved to `deadLetterStream` and acknowledged, so it stops holding back the entries behind it. Default 10.
   */
  maxDeliveries?: number;
  /**
   * Where entries that failed `maxDeliveries` times go: XADD of the entry's own fields plus `dead_error`,
   * `dead_source_id`, `dead_group` and `dead_deliveries`. Default `<stream>:dead`. In a Cluster, give it a hash
   * tag of its own if it must share a slot with anything.
   */
  deadLetterStream?: string;
  /** Create the group (from the stream's start) if it does not exist. Default true. */
  createGroup?: boolean;
  clock?: Clock;
}

/**
 * What a consumer emits.
 *
 * @example
 * import type { RedisStreamsConsumerEvents } from '@oms/outbox/redis';
 * const log = (e: RedisStreamsConsumerEvents['error']) => String(e.error);
 */
export interface RedisStreamsConsumerEvents {
  /** A message was handled (`processed`) or recognised as already handled (`duplicate`), then acknowledged. */
  handled: { readonly message: OutboxMessage; readonly status: 'processed' | 'duplicate' };
  /** A read, a handler or an acknowledgement failed; the entry stays pending and is retried. */
  error: { readonly error: unknown; readonly message?: OutboxMessage };
  /**
   * An entry failed on its `maxDeliveries`-th delivery: it was added to the dead-letter stream and acknowledged.
   * `message` is absent for an entry that was not written by `redisStreamsPublisher`.
   */
  deadLettered: {
    readonly entryId: string;
    readonly deadEntryId: string;
    readonly deliveries: number;
    readonly error: unknown;
    readonly message?: OutboxMessage;
  };
}

/**
 * A running consumer.
 *
 * @example
 * import type { RedisStreamsConsumer } from '@oms/outbox/redis';
 * declare const c: RedisStreamsConsumer;
 * process.once('SIGTERM', () => void c.stop());
 */
export interface RedisStreamsConsumer {
  start(): void;
  /** Stops reading; resolves once the message in hand is settled (at most one blocking read later). */
  stop(): Promise<void>;
  on<K extends keyof RedisStreamsConsumerEvents>(
    event: K,
    fn: (e: RedisStreamsConsumerEvents[K]) => void,
  ): () => void;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

type Entry = [id: string, fields: string[]];

/**
 * Consumes a stream written by `redisStreamsPublisher` with a consumer group, exactly once in effect: each entry
 * runs `handler` through `handleOnce` (the inbox row and the handler's writes commit together) and is
 * acknowledged only after that commit. Entries of consumers that died are taken over with XAUTOCLAIM after
 * `claimIdleMs`. Entries are handled one at a time in stream order; a failing one is retried (after a backoff)
 * before anything behind it, so a key's order on the stream is its order of effect. An entry that fails on its
 * `maxDeliveries`-th delivery moves to the dead-letter stream (`<stream>:dead`), so it holds nothing back.
 *
 * @example
 * import { redisStreamsConsumer } from '@oms/outbox/redis';
 * import { Redis } from 'ioredis';
 * import type { Kysely } from 'kysely';
 * interface Database { invoices: { order_id: string } }
 * declare const db: Kysely<Database>;
 * const consumer = redisStreamsConsumer({
 *   redis: new Redis(),
 *   stream: 'orders',
 *   group: 'billing',
 *   consumer: `billing-${process.pid}`,
 *   db,
 *   handler: async (message, trx) => {
 *     await trx.insertInto('invoices').values({ order_id: message.key }).execute();
 *   },
 * });
 * consumer.start();
 */
export function redisStreamsConsumer<DB, T>(o: RedisStreamsConsumerOptions<DB, T>): RedisStreamsConsumer {
  if (typeof o?.redis?.call !== 'function') {
    throw new OmsOutboxError('ERR_OMS_OUTBOX_INVALID_OPTION', 'redis must be an ioredis Redis or Cluster');
  }
  if (typeof o.handler !== 'function') {
    throw new OmsOutboxError('ERR_OMS_OUTBOX_INVALID_OPTION', 'handler must be a function (message, trx)');
  }
  return new StreamsConsumer(o, {
    stream: v.key('stream', o.stream),
    group: v.key('group', o.group, 200),
    consumer: v.key('consumer', o.consumer, 200),
    inboxConsumer: v.key('inboxConsumer', o.inboxConsumer ?? o.group, 200),
    count: v.integer('count', o.count ?? 100, { min: 1, max: 10_000 }),
    blockMs: v.integer('blockMs', o.blockMs ?? 1_000, { min: 1 }),
    claimIdleMs: v.integer('claimIdleMs', o.claimIdleMs ?? 30_000, { min: 1 }),
    maxDeliveries: v.integer('maxDeliveries', o.maxDeliveries ?? 10, { min: 1 }),
    deadLetterStream: v.key('deadLetterStream', o.deadLetterStream ?? `${o.stream}:dead`),
    clock: v.clock(o.clock, systemClock),
  });
}

/** The options after defaults and checks. */
interface ConsumerConfig {
  readonly stream: string;
  readonly group: string;
  readonly consumer: string;
  readonly inboxConsumer: string;
  readonly count: number;
  readonly blockMs: number;
  readonly claimIdleMs: number;
  readonly maxDeliveries: number;
  readonly deadLetterStream: string;
  readonly clock: Clock;
}

/** Where the read loop is: which command reads next. */
interface ReadState {
  /** Read this consumer's own pending entries (from id 0) before new ones. */
  pending: boolean;
  /**
   * After a failure, re-read only the failed entry: every read of an entry counts as a delivery, and the
   * entries behind it must not use up their maxDeliveries while they wait.
   */
  retryHead: boolean;
  nextClaimAt: number;
  failures: number;
}

class StreamsConsumer<DB, T> implements RedisStreamsConsumer {
  readonly #o: RedisStreamsConsumerOptions<DB, T>;
  readonly #cfg: ConsumerConfig;
  readonly #events = new Emitter<RedisStreamsConsumerEvents>();
  #running = false;
  #loop: Promise<void> | undefined;
  #wake: (() => void) | undefined;

  constructor(o: RedisStreamsConsumerOptions<DB, T>, cfg: ConsumerConfig) {
    this.#o = o;
    this.#cfg = cfg;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.#wake?.();
    await this.#loop;
  }

  on<K extends keyof RedisStreamsConsumerEvents>(
    event: K,
    fn: (e: RedisStreamsConsumerEvents[K]) => void,
  ): () => void {
    return this.#events.on(event, fn);
  }

  close(): Promise<void> {
    return this.stop();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  #call(...args: (string | number)[]): Promise<unknown> {
    return this.#o.redis.call(args[0] as string, ...args.slice(1));
  }

  #pause(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const h = backgroundTimeout(this.#cfg.clock, () => resolve(), ms);
      this.#wake = () => {
        this.#cfg.clock.clearTimeout(h);
        resolve();
      };
    });
  }

  async #run(): Promise<void> {
    const { stream, group } = this.#cfg;
    if (this.#o.createGroup !== false) {
      await this.#call('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM').catch((e: unknown) => {
        if (!String((e as Error)?.message).includes('BUSYGROUP')) this.#events.emit('error', { error: e });
      });
    }
    const st: ReadState = { pending: true, retryHead: false, nextClaimAt: 0, failures: 0 };
    while (this.#running) {
      try {
        const entries = await this.#read(st);
        if (entries.length === 0) continue;
        if (await this.#handle(entries)) {
          st.failures = 0;
          st.retryHead = false;
        } else {
          st.retryHead = true;
          // what failed and what came after it are pending for this consumer: read them again, in order
          st.pending = true;
          st.failures++;
          await this.#pause(Math.min(30_000, 100 * 2 ** Math.min(st.failures, 8)));
        }
      } catch (error) {
        this.#events.emit('error', { error });
        st.pending = true;
        st.failures++;
        await this.#pause(Math.min(30_000, 100 * 2 ** Math.min(st.failures, 8)));
      }
    }
  }

  /** Own pending entries first, then (every `claimIdleMs / 2`) dead consumers' entries, then new ones. */
  async #read(st: ReadState): Promise<Entry[]> {
    const { stream, group, consumer, count, clock } = this.#cfg;
    if (st.pending) {
      const entries = await this.#readGroup(st.retryHead ? 1 : count, '0');
      if (entries.length === 0) st.pending = false;
      return entries;
    }
    if (clock.now() >= st.nextClaimAt) {
      st.nextClaimAt = clock.now() + this.#cfg.claimIdleMs / 2;
      const res = (await this.#call(
        'XAUTOCLAIM',
        stream,
        group,
        consumer,
        this.#cfg.claimIdleMs,
        '0-0',
        'COUNT',
        count,
      )) as [string, Entry[] | null];
      return (res?.[1] ?? []).filter((e): e is Entry => Array.isArray(e?.[1]));
    }
    return this.#readGroup(count, '>', this.#cfg.blockMs);
  }

  /** XREADGROUP as this consumer: `'0'` reads its own pending entries, `'>'` new ones (blocking `blockMs`). */
  async #readGroup(count: number, from: '0' | '>', blockMs?: number): Promise<Entry[]> {
    const { stream, group, consumer } = this.#cfg;
    const block = blockMs === undefined ? [] : ['BLOCK', blockMs];
    return parseRead(
      await this.#call(
        'XREADGROUP',
        'GROUP',
        group,
        consumer,
        'COUNT',
        count,
        ...block,
        'STREAMS',
        stream,
        from,
      ),
    );
  }

  /** Handles entries in order; returns false at the first failure (it and what follows stay pending). */
  async #handle(entries: Entry[]): Promise<boolean> {
    const o = this.#o;
    for (const [entryId, fields] of entries) {
      if (!this.#running) return true;
      let message: OutboxMessage | undefined;
      try {
        message = parseStreamEntry(fields);
        const m = message;
        const r = await context.with(extractTraceContext(m.headers), () =>
          handleOnce(
            o.db,
            { consumer: this.#cfg.inboxConsumer, messageId: m.id },
            (trx) => o.handler(m, trx),
            {
              ...(o.tables ? { tables: o.tables } : {}),
            },
          ),
        );
        await this.#call('XACK', this.#cfg.stream, this.#cfg.group, entryId);
        this.#events.emit('handled', { message: m, status: r.status });
      } catch (error) {
        this.#events.emit('error', message ? { error, message } : { error });
        // a poison entry would hold back every entry behind it for ever: past maxDeliveries, move it aside
        if (await this.#deadLetter(entryId, fields, error, message).catch(() => false)) continue;
        return false;
      }
    }
    return true;
  }

  /**
   * Moves an entry that failed its `maxDeliveries`-th delivery to the dead-letter stream, then acknowledges it.
   * Resolves to false while it has deliveries left. A crash between the two commands leaves the entry pending,
   * so it may be dead-lettered twice, never lost.
   */
  async #deadLetter(
    entryId: string,
    fields: string[],
    error: unknown,
    message: OutboxMessage | undefined,
  ): Promise<boolean> {
    const { stream, group } = this.#cfg;
    const info = (await this.#call('XPENDING', stream, group, entryId, entryId, 1)) as
      | [string, string, number, number][]
      | null;
    const deliveries = Number(info?.[0]?.[3] ?? 0);
    if (deliveries < this.#cfg.maxDeliveries) return false;
    const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    const deadEntryId = String(
      await this.#call(
        'XADD',
        this.#cfg.deadLetterStream,
        '*',
        ...fields,
        'dead_error',
        text.length > 2_000 ? `${text.slice(0, 2_000)}…` : text,
        'dead_source_id',
        entryId,
        'dead_group',
        group,
        'dead_deliveries',
        deliveries,
      ),
    );
    await this.#call('XACK', stream, group, entryId);
    this.#events.emit('deadLettered', {
      entryId,
      deadEntryId,
      deliveries,
      error,
      ...(message ? { message } : {}),
    });
    return true;
  }
}

function parseRead(res: unknown): Entry[] {
  const streams = res as [string, Entry[]][] | null;
  return (streams?.[0]?.[1] ?? []).filter((e): e is Entry => Array.isArray(e?.[1]));
}
