import { fnPublisher, handleOnce, type OutboxMessage, type Publisher } from '@oms/outbox';
import { type RedisStreamsConsumer, redisStreamsConsumer, redisStreamsPublisher } from '@oms/outbox/redis';
import type { Redis } from 'ioredis';
import type { Kysely, Transaction } from 'kysely';
import type { Database } from './db/schema.js';

/** The inbox name of the notifications consumer. */
export const NOTIFICATIONS = 'notifications';

/** What the notifications consumer does with one event, inside the inbox transaction. */
async function apply(trx: Transaction<Database>, m: OutboxMessage): Promise<void> {
  await trx.insertInto('notifications').values({ message_id: m.id, order_id: m.key, type: m.type }).execute();
}

/**
 * Applies one delivered event exactly once: the inbox row and the notification commit together, so a second
 * delivery of the same message id is a `duplicate` and changes nothing.
 */
export async function applyNotification(
  db: Kysely<Database>,
  m: OutboxMessage,
): Promise<'processed' | 'duplicate'> {
  const r = await handleOnce(db, { consumer: NOTIFICATIONS, messageId: m.id }, (trx) => apply(trx, m));
  return r.status;
}

/** Where the relay delivers and who consumes: in process (embedded) or through a Redis stream. */
export interface Delivery {
  publisher: Publisher;
  consumer: RedisStreamsConsumer | undefined;
  start(): void;
  stop(): Promise<void>;
}

export function inProcessDelivery(db: Kysely<Database>): Delivery {
  return {
    // the "broker" hands each message straight to the consumer
    publisher: fnPublisher(async (m) => {
      await applyNotification(db, m);
    }),
    consumer: undefined,
    start() {},
    async stop() {},
  };
}

export function redisDelivery(o: {
  db: Kysely<Database>;
  redis: Redis;
  consumerRedis: Redis;
  stream: string;
  consumerName: string;
  onError: (error: unknown) => void;
}): Delivery {
  const consumer = redisStreamsConsumer<Database, void>({
    redis: o.consumerRedis,
    stream: o.stream,
    group: NOTIFICATIONS,
    consumer: o.consumerName,
    inboxConsumer: NOTIFICATIONS,
    db: o.db,
    handler: (m, trx) => apply(trx, m),
    blockMs: 1_000,
  });
  consumer.on('error', (e) => o.onError(e.error));
  return {
    publisher: redisStreamsPublisher({ redis: o.redis, stream: o.stream }),
    consumer,
    start: () => consumer.start(),
    stop: () => consumer.stop(),
  };
}
