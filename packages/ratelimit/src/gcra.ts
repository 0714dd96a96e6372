import {
  AlgCode,
  type AlgorithmImpl,
  floorEps,
  Mode,
  type Out,
  type Slot,
  scaledInt,
  Unit,
} from './algorithm.js';
import { invalidOption } from './errors.js';
import type { Algorithm, GcraOptions } from './types.js';
import { v } from './validate.js';

/**
 * GCRA (generic cell rate algorithm, leaky bucket as a meter). With emission interval T = periodMs / limit,
 * a call of cost c is admitted when the cells still in flight plus c fit in `burst`; cells drain one per T.
 * This is the classic theoretical-arrival-time check TAT' − t <= τ with τ = burst × T, kept as (time, cells)
 * so same-instant calls add whole cells and never lose a due one to rounding. It admits at most
 * `burst + elapsed / T` units over any interval; `RateLimit-Policy` advertises `limit` per `periodMs`.
 *
 * @example
 * import { gcra, rateLimiter } from '@oms/ratelimit';
 * const limiter = rateLimiter({ name: 'login', algorithm: gcra({ limit: 10, periodMs: 60_000, burst: 3 }) });
 */
export function gcra(o: GcraOptions): Algorithm {
  if (o === null || typeof o !== 'object') throw invalidOption('gcra() needs { limit, periodMs, burst? }');
  v.integer('limit', o.limit, { min: 1 });
  v.positiveFinite('periodMs', o.periodMs);
  const burst = o.burst ?? o.limit;
  v.integer('burst', burst, { min: 1 });
  const limit = o.limit;
  const period = o.periodMs;
  const a: AlgorithmImpl = {
    kind: 'gcra',
    limit: burst,
    quota: limit,
    windowMs: period,
    adaptive: false,
    code: AlgCode.gcra,
    units: [Unit.ms, Unit.none, Unit.none],
    base: Float64Array.of(period / limit, burst, 0),
    scale(p, m) {
      // under load both the rate and the burst shrink
      p[0] = period / scaledInt(limit, m);
      p[1] = scaledInt(burst, m);
      p[2] = 0;
    },
    limitAt: (m) => scaledInt(burst, m),
    quotaOf: (p) => Math.round(period / p[0]!),
    step: gcraStep,
  };
  return Object.freeze(a);
}

// slot: level = cells in flight at time at (ms); p = [T, burst]
function gcraStep(s: Slot, now: number, p: Float64Array, cost: number, mode: Mode, rts: number, out: Out) {
  const t = p[0]!;
  const burst = p[1]!;
  let cells = 0;
  let ts = now;
  if (s.exp !== 0) {
    cells = s.level;
    ts = s.at;
    // a clock that steps back keeps ts: nothing drains until time catches up
    if (now > ts) {
      cells -= (now - ts) / t;
      ts = now;
      if (cells < 0) cells = 0;
    }
  }
  if (mode === Mode.refund) {
    void rts;
    cells = Math.max(0, cells - cost);
    s.level = cells;
    s.at = ts;
    s.exp = ts + cells * t + 1;
    out.allowed = true;
    out.retryAfterMs = 0;
  } else {
    // adding whole cells to a small number is exact, so n same-instant calls of a fresh key see 1, 2, … n
    const next = cells + cost;
    const ok = next <= burst;
    out.allowed = ok;
    out.retryAfterMs = ok ? 0 : Math.ceil((next - burst) * t);
    if (ok && mode === Mode.commit) {
      cells = next;
      s.level = cells;
      s.at = ts;
      s.exp = ts + cells * t + 1;
    }
  }
  out.remaining = Math.max(floorEps(burst - cells), 0);
  out.resetMs = Math.ceil(cells * t);
}
