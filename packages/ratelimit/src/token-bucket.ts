import {
  AlgCode,
  type AlgorithmImpl,
  floorEps,
  Mode,
  type Out,
  quotaInP0,
  type Slot,
  scaledInt,
  Unit,
} from './algorithm.js';
import { invalidOption } from './errors.js';
import type { Algorithm, TokenBucketOptions } from './types.js';
import { v } from './validate.js';

/**
 * Token bucket: holds up to `capacity` tokens and gains `refillPerSec` per second, continuously.
 * A call of cost c is admitted when tokens >= c, then tokens -= c. Over any interval of length t, it admits
 * at most `capacity + refillPerSec × t` units.
 *
 * @example
 * const limiter = rateLimiter({ name: 'api', algorithm: tokenBucket({ capacity: 20, refillPerSec: 5 }) });
 */
export function tokenBucket(o: TokenBucketOptions): Algorithm {
  if (o === null || typeof o !== 'object')
    throw invalidOption('tokenBucket() needs { capacity, refillPerSec }');
  v.integer('capacity', o.capacity, { min: 1 });
  v.positiveFinite('refillPerSec', o.refillPerSec);
  const cap = o.capacity;
  const ratePerMs = o.refillPerSec / 1000;
  const a: AlgorithmImpl = {
    kind: 'token-bucket',
    limit: cap,
    quota: cap,
    windowMs: (cap / o.refillPerSec) * 1000,
    adaptive: false,
    code: AlgCode.tokenBucket,
    units: [Unit.none, Unit.perMs, Unit.none],
    base: Float64Array.of(cap, ratePerMs, 0),
    scale(p, m) {
      p[0] = scaledInt(cap, m);
      p[1] = ratePerMs * m;
      p[2] = 0;
    },
    limitAt: (m) => scaledInt(cap, m),
    quotaOf: quotaInP0,
    step: tokenBucketStep,
  };
  return Object.freeze(a);
}

// slot: level = tokens at time at (ms)
function tokenBucketStep(
  s: Slot,
  now: number,
  p: Float64Array,
  cost: number,
  mode: Mode,
  rts: number,
  out: Out,
) {
  const cap = p[0]!;
  const rate = p[1]!;
  let tokens = cap;
  let ts = now;
  if (s.exp !== 0) {
    tokens = s.level;
    ts = s.at;
    // a clock that steps back keeps ts: no refill until time catches up
    if (now > ts) {
      tokens += (now - ts) * rate;
      ts = now;
    }
    if (tokens > cap) tokens = cap;
  }
  if (mode === Mode.refund) {
    void rts;
    tokens = Math.min(cap, tokens + cost);
    s.level = tokens;
    s.at = ts;
    s.exp = ts + (cap - tokens) / rate;
    if (s.exp === 0) s.exp = 1;
    out.allowed = true;
  } else {
    const ok = tokens >= cost;
    out.allowed = ok;
    if (ok && mode === Mode.commit) {
      tokens -= cost;
      s.level = tokens;
      s.at = ts;
      s.exp = ts + (cap - tokens) / rate + 1;
    }
    out.retryAfterMs = ok ? 0 : Math.ceil((cost - tokens) / rate);
  }
  out.remaining = floorEps(tokens);
  out.resetMs = Math.ceil((cap - tokens) / rate);
}
