import {
  AlgCode,
  type AlgorithmImpl,
  Mode,
  type Out,
  quotaInP0,
  type Slot,
  scaledInt,
  Unit,
} from './algorithm.js';
import { invalidOption } from './errors.js';
import type { Algorithm, FixedWindowOptions } from './types.js';
import { v } from './validate.js';

/**
 * Fixed window: time is cut into windows [k·W, (k+1)·W) aligned to the epoch, each with a counter. A call of
 * cost c is admitted when count + c <= limit. Up to 2 × limit can pass around a boundary (the end of one
 * window and the start of the next); over [t0, t1] at most limit × (⌊t1/W⌋ − ⌊t0/W⌋ + 1).
 *
 * @example
 * const limiter = rateLimiter({ name: 'export', algorithm: fixedWindow({ limit: 100, windowMs: 3_600_000 }) });
 */
export function fixedWindow(o: FixedWindowOptions): Algorithm {
  if (o === null || typeof o !== 'object') throw invalidOption('fixedWindow() needs { limit, windowMs }');
  v.integer('limit', o.limit, { min: 1 });
  v.integer('windowMs', o.windowMs, { min: 1 });
  const limit = o.limit;
  const w = o.windowMs;
  const a: AlgorithmImpl = {
    kind: 'fixed-window',
    limit,
    quota: limit,
    windowMs: w,
    adaptive: false,
    code: AlgCode.fixedWindow,
    units: [Unit.none, Unit.ms, Unit.none],
    base: Float64Array.of(limit, w, 0),
    scale(p, m) {
      p[0] = scaledInt(limit, m);
      p[1] = w;
      p[2] = 0;
    },
    limitAt: (m) => scaledInt(limit, m),
    quotaOf: quotaInP0,
    step: fixedWindowStep,
  };
  return Object.freeze(a);
}

// slot: at = window number, level = count
function fixedWindowStep(
  s: Slot,
  now: number,
  p: Float64Array,
  cost: number,
  mode: Mode,
  rts: number,
  out: Out,
) {
  const limit = p[0]!;
  const w = p[1]!;
  const win = Math.floor(now / w);
  let count = s.exp !== 0 && s.at === win ? s.level : 0;
  const end = (win + 1) * w;
  if (mode === Mode.refund) {
    if (Math.floor(rts / w) === win) count = Math.max(0, count - cost);
    s.at = win;
    s.level = count;
    s.exp = end;
    out.allowed = true;
    out.retryAfterMs = 0;
  } else {
    const ok = count + cost <= limit;
    out.allowed = ok;
    out.retryAfterMs = ok ? 0 : Math.ceil(end - now);
    if (ok && mode === Mode.commit) {
      count += cost;
      s.at = win;
      s.level = count;
      s.exp = end;
    }
  }
  out.remaining = Math.max(limit - count, 0);
  out.resetMs = count === 0 ? 0 : Math.ceil(end - now);
}
