import { createHash } from 'node:crypto';
import { OmsOutboxError } from '../errors.js';
import type { OutboxMessage, Publisher, PublishResult } from '../types.js';
import { v } from '../validate.js';
import type { RedisStreamsLike, RedisStreamsPublisherOptions } from './types.js';

// XADD once per outbox id: a relay that crashed after publishing but before settling republishes the message,
// and the second XADD returns the first entry's id instead of adding a duplicate.
const XADD_ONCE = `local seen = redis.call('GET', KEYS[2])
if seen then return seen end
local id
if ARGV[2] ~= '' then
  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
else
  id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))
end
redis.call('SET', KEYS[2], id, 'EX', ARGV[1])
return id`;
const XADD_ONCE_SHA = createHash('sha1').update(XADD_ONCE).digest('hex');

/** The key remembering that an outbox id was added; a hash tag keeps it in the stream's Cluster slot. */
const dedupKey = (stream: string, id: string) =>
  stream.includes('{') ? `${stream}:oms-outbox:${id}` : `{${stream}}:oms-outbox:${id}`;

/**
 * Publishes to Redis Streams with XADD, one entry per message with the fields `id`, `topic`, `key`, `type`,
 * `payload` (JSON), `headers` (JSON, carrying `traceparent`) and `created_at`. Idempotent per outbox id for
 * `dedupTtlSec`. Read the entries back with `parseStreamEntry`.
 *
 * @example
 * import { relay } from '@oms/outbox';
 * import { redisStreamsPublisher } from '@oms/outbox/redis';
 * import { Redis } from 'ioredis';
 * import type { Kysely } from 'kysely';
 * declare const db: Kysely<unknown>;
 * const publisher = redisStreamsPublisher({ redis: new Redis(), stream: 'orders', maxLen: 1_000_000 });
 * relay({ db, publisher }).start();
 */
export function redisStreamsPublisher(o: RedisStreamsPublisherOptions): Publisher {
  const redis: RedisStreamsLike | undefined = o?.redis;
  if (typeof redis?.evalsha !== 'function' || typeof redis.eval !== 'function') {
    throw new OmsOutboxError('ERR_OMS_OUTBOX_INVALID_OPTION', 'redis must be an ioredis Redis or Cluster');
  }
  const stream = typeof o.stream === 'function' ? o.stream : v.key('stream', o.stream);
  const maxLen = o.maxLen === undefined ? '' : String(v.integer('maxLen', o.maxLen, { min: 1 }));
  const ttl = String(v.integer('dedupTtlSec', o.dedupTtlSec ?? 86_400, { min: 1 }));

  const add = async (m: OutboxMessage): Promise<string> => {
    const s = typeof stream === 'string' ? stream : v.key('stream', stream(m));
    const args = [
      s,
      dedupKey(s, m.id),
      ttl,
      maxLen,
      'id',
      m.id,
      'topic',
      m.topic,
      'key',
      m.key,
      'type',
      m.type,
      'payload',
      JSON.stringify(m.payload),
      'headers',
      JSON.stringify(m.headers),
      'created_at',
      m.createdAt.toISOString(),
    ];
    try {
      return (await redis.evalsha(XADD_ONCE_SHA, 2, ...args)) as string;
    } catch (e) {
      if (!String((e as Error)?.message).includes('NOSCRIPT')) throw e;
      return (await redis.eval(XADD_ONCE, 2, ...args)) as string;
    }
  };

  return {
    async publish(messages) {
      // commands go out back to back on the connection; each message gets its own result
      const settled = await Promise.allSettled(messages.map(add));
      return settled.map(
        (r): PublishResult => (r.status === 'fulfilled' ? { ok: true } : { ok: false, error: r.reason }),
      );
    },
  };
}

/**
 * Turns the fields of an entry written by `redisStreamsPublisher` (as XREAD/XREADGROUP return them) back into
 * the message, so a consumer can run `handleOnce` on its `id` and restore its trace context from `headers`.
 *
 * @example
 * import { parseStreamEntry } from '@oms/outbox/redis';
 * import { handleOnce } from '@oms/outbox';
 * import type { Kysely } from 'kysely';
 * declare const db: Kysely<unknown>;
 * declare const fields: string[];
 * const m = parseStreamEntry(fields);
 * await handleOnce(db, { consumer: 'billing', messageId: m.id }, async () => m.payload);
 */
export function parseStreamEntry(fields: readonly string[]): OutboxMessage {
  const f: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i] as string] = fields[i + 1] as string;
  if (f.id === undefined || f.payload === undefined) {
    throw new OmsOutboxError(
      'ERR_OMS_OUTBOX_INVALID_MESSAGE',
      'not an entry written by redisStreamsPublisher (no id or payload)',
    );
  }
  return {
    id: f.id,
    topic: f.topic ?? '',
    key: f.key ?? '',
    type: f.type ?? '',
    payload: JSON.parse(f.payload) as unknown,
    headers: f.headers === undefined ? {} : (JSON.parse(f.headers) as Record<string, string>),
    createdAt: new Date(f.created_at ?? 0),
    attempts: 0,
  };
}
