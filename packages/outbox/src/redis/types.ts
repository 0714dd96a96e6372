import type { Cluster, Redis } from 'ioredis';
import type { OutboxMessage } from '../types.js';

/**
 * The commands the Redis Streams publisher sends: a `Redis` or a `Cluster` from ioredis fits.
 *
 * @example
 * import type { RedisStreamsLike } from '@oms/outbox/redis';
 * import { Cluster } from 'ioredis';
 * const redis: RedisStreamsLike = new Cluster([{ host: '127.0.0.1', port: 7000 }]);
 */
export type RedisStreamsLike = Pick<Redis | Cluster, 'evalsha' | 'eval'>;

/**
 * Options of `redisStreamsPublisher`.
 *
 * @example
 * import type { RedisStreamsPublisherOptions } from '@oms/outbox/redis';
 * import { Redis } from 'ioredis';
 * const opts: RedisStreamsPublisherOptions = { redis: new Redis(), stream: (m) => `events:${m.topic}`, maxLen: 100_000 };
 */
export interface RedisStreamsPublisherOptions {
  redis: RedisStreamsLike;
  /** The stream, or a function choosing one per message. In a Cluster, the dedup key shares the stream's slot. */
  stream: string | ((message: OutboxMessage) => string);
  /** Trims the stream to about this many entries (`MAXLEN ~`). Default: no trimming. */
  maxLen?: number;
  /** How long an outbox id is remembered, so a re-publish after a crash adds no second entry. Default 1 day. */
  dedupTtlSec?: number;
}
