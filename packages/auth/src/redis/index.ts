import { fail, invalidOption } from '../errors.js';
import type { DpopReplayStore, Revocation, RevocationStore } from '../types.js';
import { v } from '../validate.js';

/**
 * The one command the replay store sends. An ioredis `Redis` or `Cluster` fits as is; so does any client with
 * this `set` overload.
 *
 * @example
 * import type { RedisSetNx } from '@oms/auth/redis';
 * declare const redis: RedisSetNx;
 * const fresh = (await redis.set('k', '1', 'PX', 1_000, 'NX')) === 'OK';
 */
export interface RedisSetNx {
  set(key: string, value: string, px: 'PX', ms: number, nx: 'NX'): Promise<'OK' | null>;
}

/**
 * Options of `redisReplayStore`.
 *
 * @example
 * import { type RedisReplayStoreOptions, type RedisSetNx, redisReplayStore } from '@oms/auth/redis';
 * declare const redis: RedisSetNx;
 * const opts: RedisReplayStoreOptions = { redis, prefix: 'api:dpop:' };
 * const store = redisReplayStore(opts);
 */
export interface RedisReplayStoreOptions {
  redis: RedisSetNx;
  /** Prepended to every key. Default `oms:dpop:`. */
  prefix?: string;
}

/**
 * A DPoP replay store shared by every process on one Redis: `SET key 1 PX ttl NX`, so exactly one process accepts a
 * proof id, and Redis expires it on its own clock. A Redis error rejects with
 * `ERR_OMS_AUTH_REPLAY_STORE_UNAVAILABLE` (HTTP 503): a proof is never accepted unchecked.
 *
 * @example
 * import { dpop } from '@oms/auth';
 * import { type RedisSetNx, redisReplayStore } from '@oms/auth/redis';
 * declare const redis: RedisSetNx; // your ioredis Redis or Cluster: new Redis(process.env.REDIS_URL)
 * const proofs = dpop({
 *   replayStore: redisReplayStore({ redis, prefix: 'orders:dpop:' }),
 *   htuFrom: { origin: 'https://api.example.com' },
 * });
 */
export function redisReplayStore(opts: RedisReplayStoreOptions): DpopReplayStore {
  if (typeof opts?.redis?.set !== 'function')
    throw invalidOption('redisReplayStore needs { redis } (an ioredis client)');
  const prefix = opts.prefix ?? 'oms:dpop:';
  if (typeof prefix !== 'string' || prefix.length > 200 || /[{}\s]/.test(prefix)) {
    throw invalidOption(
      `prefix must be at most 200 characters without braces or whitespace (got ${JSON.stringify(prefix)})`,
    );
  }
  const { redis } = opts;
  return {
    async remember(id, ttlMs) {
      let reply: 'OK' | null;
      try {
        reply = await redis.set(`${prefix}${id}`, '1', 'PX', Math.max(1, Math.ceil(ttlMs)), 'NX');
      } catch (e) {
        throw fail(
          'ERR_OMS_AUTH_REPLAY_STORE_UNAVAILABLE',
          'the DPoP replay store (Redis) could not be reached',
          e,
        );
      }
      return reply === 'OK';
    },
  };
}

/**
 * The two stream commands the revocation store sends. An ioredis `Redis` or `Cluster` fits as is.
 *
 * @example
 * import type { RedisStreams } from '@oms/auth/redis';
 * declare const redis: RedisStreams;
 * const rows = await redis.xrange('oms:revocations', '-', '+', 'COUNT', 100);
 */
export interface RedisStreams {
  xadd(...args: [key: string, ...fields: (string | number)[]]): Promise<string | null>;
  xrange(
    key: string,
    start: string,
    end: string,
    countToken: 'COUNT',
    count: number,
  ): Promise<[id: string, fields: string[]][]>;
}

/**
 * Options of `redisRevocationStore`.
 *
 * @example
 * import { type RedisRevocationStoreOptions, type RedisStreams, redisRevocationStore } from '@oms/auth/redis';
 * declare const redis: RedisStreams;
 * const opts: RedisRevocationStoreOptions = { redis, key: 'orders:revocations', retainMs: 86_400_000 };
 * const store = redisRevocationStore(opts);
 */
export interface RedisRevocationStoreOptions {
  redis: RedisStreams;
  /** The stream holding the revocations. Default `oms:revocations`. */
  key?: string;
  /** How long a revocation is kept, in ms: at least your longest token lifetime. Default 24 h. */
  retainMs?: number;
}

const PAGE = 1_000;
const MAX_PAGES = 100;

/** One stream entry as a revocation, or `undefined` for an entry this code did not write. */
function revocationOf(fields: readonly string[]): Revocation | undefined {
  const f: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i] as string] = fields[i + 1] as string;
  const kind = f.k;
  if ((kind !== 'jti' && kind !== 'subject') || !f.v) return undefined;
  const notBefore = Number(f.nb);
  const until = Number(f.u);
  if (!Number.isFinite(notBefore) || !Number.isFinite(until)) return undefined;
  return { kind, value: f.v, notBefore, until };
}

/**
 * A revocation store on one Redis stream, shared by every instance: `add` is an `XADD` (trimming entries older than
 * `retainMs` with `MINID ~`), `read` an `XRANGE` from the last entry an instance has seen, so each poll reads only
 * what is new. A Redis error rejects with `ERR_OMS_AUTH_REVOCATIONS_UNAVAILABLE` (HTTP 503).
 *
 * @example
 * import { createVerifier, hmacSecret, revocationList } from '@oms/auth';
 * import { type RedisStreams, redisRevocationStore } from '@oms/auth/redis';
 * declare const redis: RedisStreams; // your ioredis Redis or Cluster: new Redis(process.env.REDIS_URL)
 * const revocations = revocationList({ store: redisRevocationStore({ redis, key: 'orders:revocations' }) });
 * const verifier = createVerifier({
 *   issuer: 'https://idp.example.com/',
 *   audience: 'orders-api',
 *   algorithms: ['HS256'],
 *   keys: hmacSecret(process.env.JWT_SECRET ?? ''),
 *   revocations,
 * });
 * await revocations.revoke({ jti: 'b3f1c2' }); // refused by every instance within its pollMs
 */
export function redisRevocationStore(opts: RedisRevocationStoreOptions): RevocationStore {
  const redis = opts?.redis;
  if (typeof redis?.xadd !== 'function' || typeof redis.xrange !== 'function')
    throw invalidOption('redisRevocationStore needs { redis } (an ioredis client)');
  const key = opts.key ?? 'oms:revocations';
  if (typeof key !== 'string' || key.length === 0 || key.length > 200 || /\s/.test(key)) {
    throw invalidOption(`key must be 1 to 200 characters without whitespace (got ${JSON.stringify(key)})`);
  }
  const retainMs = v.durationMs('retainMs', opts.retainMs ?? 86_400_000, { min: 1 });
  const unavailable = (what: string, e: unknown) =>
    fail('ERR_OMS_AUTH_REVOCATIONS_UNAVAILABLE', `the revocation store (Redis) could not ${what}`, e);
  return {
    retainMs,
    async add(r) {
      const minId = Math.max(0, Date.now() - retainMs);
      try {
        await redis.xadd(
          key,
          'MINID',
          '~',
          minId,
          '*',
          'k',
          r.kind,
          'v',
          r.value,
          'nb',
          r.notBefore,
          'u',
          r.until,
        );
      } catch (e) {
        throw unavailable('record the revocation', e);
      }
    },
    async read(cursor) {
      const revocations: Revocation[] = [];
      let last = cursor;
      try {
        for (let page = 0; page < MAX_PAGES; page++) {
          const rows = await redis.xrange(key, last === undefined ? '-' : `(${last}`, '+', 'COUNT', PAGE);
          for (const [id, fields] of rows) {
            const r = revocationOf(fields);
            if (r !== undefined) revocations.push(r);
            last = id;
          }
          if (rows.length < PAGE) break;
        }
      } catch (e) {
        throw unavailable('be read', e);
      }
      return { revocations, cursor: last };
    },
  };
}
