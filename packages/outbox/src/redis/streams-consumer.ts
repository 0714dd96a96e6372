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
  const cfg = {
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
  };
  const events = new Emitter<RedisStreamsConsumerEvents>();
  const call = (...args: (string | number)[]) => o.redis.call(args[0] as string, ...args.slice(1));
  let running = false;
  let loop: Promise<void> | undefined;
  let wake: (() => void) | undefined;

  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const h = backgroundTimeout(cfg.clock, () => resolve(), ms);
      wake = () => {
        cfg.clock.clearTimeout(h);
        resolve();
      };
    });

  /** Handles entries in order; returns false at the first failure (it and what follows stay pending). */
  const handle = async (entries: Entry[]): Promise<boolean> => {
    for (const [entryId, fields] of entries) {
      if (!running) return true;
      let message: OutboxMessage | undefined;
      try {
        message = parseStreamEntry(fields);
        const m = message;
        const r = await context.with(extractTraceContext(m.headers), () =>
          handleOnce(o.db, { consumer: cfg.inboxConsumer, messageId: m.id }, (trx) => o.handler(m, trx), {
            ...(o.tables ? { tables: o.tables } : {}),
          }),
        );
        await call('XACK', cfg.stream, cfg.group, entryId);
        events.emit('handled', { message: m, status: r.status });
      } catch (error) {
        events.emit('error', message ? { error, message } : { error });
        // a poison entry would hold back every entry behind it for ever: past maxDeliveries, move it aside
        if (await deadLetter(entryId, fields, error, message).catch(() => false)) continue;
        return false;
      }
    }
    return true;
  };

  /**
   * Moves an entry that failed its `maxDeliveries`-th delivery to the dead-letter stream, then acknowledges it.
   * Resolves to false while it has deliveries left. A crash between the two commands leaves the entry pending,
   * so it may be dead-lettered twice, never lost.
   */
  const deadLetter = async (
    entryId: string,
    fields: string[],
    error: unknown,
    message: OutboxMessage | undefined,
  ): Promise<boolean> => {
    const info = (await call('XPENDING', cfg.stream, cfg.group, entryId, entryId, 1)) as
      | [string, string, number, number][]
      | null;
    const deliveries = Number(info?.[0]?.[3] ?? 0);
    if (deliveries < cfg.maxDeliveries) return false;
    const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    const deadEntryId = String(
      await call(
        'XADD',
        cfg.deadLetterStream,
        '*',
        ...fields,
        'dead_error',
        text.length > 2_000 ? `${text.slice(0, 2_000)}…` : text,
        'dead_source_id',
        entryId,
        'dead_group',
        cfg.group,
        'dead_deliveries',
        deliveries,
      ),
    );
    await call('XACK', cfg.stream, cfg.group, entryId);
    events.emit('deadLettered', {
      entryId,
      deadEntryId,
      deliveries,
      error,
      ...(message ? { message } : {}),
    });
    return true;
  };

  const run = async () => {
    if (o.createGroup !== false) {
      await call('XGROUP', 'CREATE', cfg.stream, cfg.group, '0', 'MKSTREAM').catch((e: unknown) => {
        if (!String((e as Error)?.message).includes('BUSYGROUP')) events.emit('error', { error: e });
      });
    }
    let pending = true;
    // after a failure, re-read only the failed entry: every read of an entry counts as a delivery, and the
    // entries behind it must not use up their maxDeliveries while they wait
    let retryHead = false;
    let nextClaimAt = 0;
    let failures = 0;
    while (running) {
      try {
        let entries: Entry[];
        if (pending) {
          entries = parseRead(
            await call(
              'XREADGROUP',
              'GROUP',
              cfg.group,
              cfg.consumer,
              'COUNT',
              retryHead ? 1 : cfg.count,
              'STREAMS',
              cfg.stream,
              '0',
            ),
          );
          if (entries.length === 0) pending = false;
        } else if (cfg.clock.now() >= nextClaimAt) {
          nextClaimAt = cfg.clock.now() + cfg.claimIdleMs / 2;
          const res = (await call(
            'XAUTOCLAIM',
            cfg.stream,
            cfg.group,
            cfg.consumer,
            cfg.claimIdleMs,
            '0-0',
            'COUNT',
            cfg.count,
          )) as [string, Entry[] | null];
          entries = (res?.[1] ?? []).filter((e): e is Entry => Array.isArray(e?.[1]));
        } else {
          entries = parseRead(
            await call(
              'XREADGROUP',
              'GROUP',
              cfg.group,
              cfg.consumer,
              'COUNT',
              cfg.count,
              'BLOCK',
              cfg.blockMs,
              'STREAMS',
              cfg.stream,
              '>',
            ),
          );
        }
        if (entries.length === 0) continue;
        if (await handle(entries)) {
          failures = 0;
          retryHead = false;
        } else {
          retryHead = true;
          // what failed and what came after it are pending for this consumer: read them again, in order
          pending = true;
          failures++;
          await pause(Math.min(30_000, 100 * 2 ** Math.min(failures, 8)));
        }
      } catch (error) {
        events.emit('error', { error });
        pending = true;
        failures++;
        await pause(Math.min(30_000, 100 * 2 ** Math.min(failures, 8)));
      }
    }
  };

  const consumer: RedisStreamsConsumer = {
    start() {
      if (running) return;
      running = true;
      loop = run();
    },
    async stop() {
      running = false;
      wake?.();
      await loop;
    },
    on: (event, fn) => events.on(event, fn),
    close: () => consumer.stop(),
    [Symbol.asyncDispose]: () => consumer.stop(),
  };
  return consumer;
}

function parseRead(res: unknown): Entry[] {
  const streams = res as [string, Entry[]][] | null;
  return (streams?.[0]?.[1] ?? []).filter((e): e is Entry => Array.isArray(e?.[1]));
}
