import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { invalidOption } from '../errors.js';
import { type Clock, systemClock } from '../internal/clock.js';
import type { DpopNonceSource } from '../types.js';
import { v } from '../validate.js';

/**
 * Options of `dpopNonces`.
 *
 * @example
 * import { dpopNonces, type DpopNoncesOptions } from '@oms/auth';
 * const opts: DpopNoncesOptions = { secret: process.env.DPOP_NONCE_SECRET ?? '', rotateMs: 300_000 };
 * const nonces = dpopNonces(opts);
 */
export interface DpopNoncesOptions {
  /**
   * Shared by every instance behind one origin, at least 32 bytes, so a nonce one instance hands out is accepted by
   * the others. Default: random per process (one instance only).
   */
  secret?: string | Uint8Array;
  /** How long one nonce is handed out; the previous one stays accepted for as long again. Default 5 min. */
  rotateMs?: number;
  clock?: Clock;
}

/**
 * Server nonces for DPoP (RFC 9449 §8) without shared state: a nonce is an HMAC of the current time window, so
 * instances sharing `secret` agree on it, and the nonce of the previous window stays accepted so a client that just
 * fetched one is not refused at a boundary.
 *
 * @example
 * import { dpop, dpopNonces, memoryReplayStore } from '@oms/auth';
 * const proofs = dpop({
 *   replayStore: memoryReplayStore(),
 *   htuFrom: { origin: 'https://api.example.com' },
 *   nonce: dpopNonces({ secret: process.env.DPOP_NONCE_SECRET ?? '', rotateMs: 300_000 }),
 * });
 */
export function dpopNonces(opts: DpopNoncesOptions = {}): DpopNonceSource {
  const key =
    opts.secret === undefined
      ? randomBytes(32)
      : typeof opts.secret === 'string'
        ? Buffer.from(opts.secret)
        : Buffer.from(opts.secret);
  if (key.byteLength < 32)
    throw invalidOption(`dpopNonces: secret must be at least 32 bytes (got ${key.byteLength})`);
  const rotateMs = v.durationMs('rotateMs', opts.rotateMs ?? 300_000, { min: 1_000 });
  const clock = v.clock(opts.clock, systemClock);
  const nonceOf = (window: number) =>
    createHmac('sha256', key).update(`dpop-nonce:${window}`).digest('base64url');
  const equal = (a: string, b: string) =>
    a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));
  return {
    current: () => nonceOf(Math.floor(clock.now() / rotateMs)),
    accepts(nonce) {
      if (typeof nonce !== 'string' || nonce.length !== 43) return false;
      const w = Math.floor(clock.now() / rotateMs);
      return equal(nonce, nonceOf(w)) || equal(nonce, nonceOf(w - 1));
    },
  };
}
