import { createHash } from 'node:crypto';
import { OmsOutboxError } from '../errors.js';
import type { OutboxMessage, Publisher, PublishResult } from '../types.js';
import { v } from '../validate.js';
import type { RedisStreamsLike, RedisStreamsPublisherOptions } from './types.js';

// XADD once per outbox id: a relay that crashed after publishing but before settling republishes the message,
// and the second XADD returns the first entry's id instead of adding a duplicate. One call adds a whole chunk
// of messages to one stream (KEYS[1]; KEYS[i + 1] is message i's dedup key; ARGV: ttl, maxLen, then
// FIELD_ARGS fields per message): one command and one reply per chunk instead of per message.
const FIELD_ARGS = 14;
const XADD_ONCE = `local ttl, maxlen, out = ARGV[1], ARGV[2], {}
for i = 2, #KEYS do
  local id = redis.call('GET', KEYS[i])
  if not id then
    local from = 3 + (i - 2) * ${FIELD_ARGS}
    if maxlen ~= '' then
      id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', unpack(ARGV, from, from + ${FIELD_ARGS - 1}))
    else
      id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, from, from + ${FIELD_ARGS - 1}))
    end
    redis.call('SET', KEYS[i], id, 'EX', ttl)
  end
  out[i - 1] = id
end
return out`;
const XADD_ONCE_SHA = createHash('sha1').update(XADD_ONCE).digest('hex');
/** Messages per script call: bounds the command's size and how long it holds the server. */
const CHUNK = 100;

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

  const fields = (m: OutboxMessage) => [
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
  /** Adds a chunk of one stream's messages; a failed call fails exactly that chunk (retrying it is safe). */
  const addChunk = async (s: string, chunk: readonly OutboxMessage[]): Promise<void> => {
    const keys = [s, ...chunk.map((m) => dedupKey(s, m.id))];
    const args = [ttl, maxLen, ...chunk.flatMap(fields)];
    try {
      await redis.evalsha(XADD_ONCE_SHA, keys.length, ...keys, ...args);
    } catch (e) {
      if (!String((e as Error)?.message).includes('NOSCRIPT')) throw e;
      await redis.eval(XADD_ONCE, keys.length, ...keys, ...args);
    }
  };

  return {
    async publish(messages) {
      const results: PublishResult[] = new Array(messages.length);
      // per stream, in chunks; the calls go out back to back on the connection
      const byStream = new Map<string, number[]>();
      messages.forEach((m, i) => {
        try {
          const s = typeof stream === 'string' ? stream : v.key('stream', stream(m));
          const list = byStream.get(s);
          if (list) list.push(i);
          else byStream.set(s, [i]);
        } catch (error) {
          results[i] = { ok: false, error };
        }
      });
      const calls: Promise<void>[] = [];
      for (const [s, indexes] of byStream) {
        for (let from = 0; from < indexes.length; from += CHUNK) {
          const part = indexes.slice(from, from + CHUNK);
          calls.push(
            addChunk(
              s,
              part.map((i) => messages[i] as OutboxMessage),
            ).then(
              () => {
                for (const i of part) results[i] = { ok: true };
              },
              (error: unknown) => {
                for (const i of part) results[i] = { ok: false, error };
              },
            ),
          );
        }
      }
      await Promise.all(calls);
      return results;
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
