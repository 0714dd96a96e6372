import { type AlgorithmImpl, COMMIT, floorEps, type Out, REFUND, type Slot, scaledInt } from './algorithm.js';
import { invalidOption } from './errors.js';
import type { Algorithm, GcraOptions } from './types.js';
import { positiveFinite, positiveInt } from './validate.js';

/**
 * GCRA (generic cell rate algorithm, leaky bucket as a meter). With emission interval T = periodMs / limit
 * and tolerance τ = burst × T, it keeps one timestamp, the theoretical arrival time (TAT). A call of cost c at
 * time t computes TAT' = max(TAT, t) + c × T and is admitted when TAT' − t <= τ. It admits at most
 * `burst + elapsed / T` units over any interval.
 *
 * @example
 * const limiter = rateLimiter({ name: 'login', algorithm: gcra({ limit: 10, periodMs: 60_000, burst: 3 }) });
 */
export function gcra(o: GcraOptions): Algorithm {
  if (o === null || typeof o !== 'object') throw invalidOption('gcra() needs { limit, periodMs, burst? }');
  positiveInt('limit', o.limit);
  positiveFinite('periodMs', o.periodMs);
  const burst = o.burst ?? o.limit;
  positiveInt('burst', burst);
  const limit = o.limit;
  const period = o.periodMs;
  const a: AlgorithmImpl = {
    kind: 'gcra',
    limit: burst,
    windowMs: period,
    adaptive: false,
    code: 2,
    units: [1, 1, 0],
    base: Float64Array.of(period / limit, burst * (period / limit), 0),
    scale(p, m) {
      // under load both the rate and the burst shrink
      const t = period / scaledInt(limit, m);
      p[0] = t;
      p[1] = scaledInt(burst, m) * t;
      p[2] = 0;
    },
    limitAt: (m) => scaledInt(burst, m),
    step: gcraStep,
  };
  return Object.freeze(a);
}

// a = TAT (ms)
function gcraStep(s: Slot, now: number, p: Float64Array, cost: number, mode: number, rts: number, out: Out) {
  const t = p[0]!;
  const tau = p[1]!;
  let tat = s.exp !== 0 ? s.a : now;
  if (tat < now) tat = now;
  if (mode === REFUND) {
    void rts;
    tat = Math.max(now, tat - cost * t);
    s.a = tat;
    s.exp = tat + 1;
    out.allowed = true;
    out.retryAfterMs = 0;
  } else {
    const next = tat + cost * t;
    const ok = next - now <= tau;
    out.allowed = ok;
    out.retryAfterMs = ok ? 0 : Math.ceil(next - now - tau);
    if (ok && mode === COMMIT) {
      tat = next;
      s.a = tat;
      s.exp = tat + 1;
    }
  }
  const used = tat - now;
  const rem = floorEps((tau - used) / t);
  out.remaining = Math.max(rem, 0);
  out.resetMs = Math.ceil(used);
}
