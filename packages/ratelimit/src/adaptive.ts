import { type AlgorithmImpl, impl } from './algorithm.js';
import { invalidOption } from './errors.js';
import type { AdaptiveOptions, Algorithm } from './types.js';
import { v } from './validate.js';

/**
 * Scales an algorithm's limit (and rate) down as a load signal in [0, 1] rises past `threshold`:
 * multiplier = max(floor, 1 − (load − threshold) / (1 − threshold)), read on every call. Integer limits
 * scale to ⌊limit × multiplier⌋ (at least 1); refill rates scale continuously.
 *
 * @example
 * import { performance } from 'node:perf_hooks';
 * import { adaptive, tokenBucket } from '@oms/ratelimit';
 * let last = performance.eventLoopUtilization();
 * const load = () => {
 *   const now = performance.eventLoopUtilization();
 *   const busy = performance.eventLoopUtilization(now, last).utilization;
 *   last = now;
 *   return busy;
 * };
 * const algorithm = adaptive(tokenBucket({ capacity: 100, refillPerSec: 50 }), { load, threshold: 0.7, floor: 0.2 });
 */
export function adaptive(algorithm: Algorithm, o: AdaptiveOptions): Algorithm {
  const inner = impl(algorithm);
  if (!inner || typeof inner.step !== 'function')
    throw invalidOption('adaptive() needs an algorithm from this package');
  if (inner.adaptive)
    throw invalidOption('adaptive() of an adaptive algorithm: wrap the base algorithm once');
  if (o === null || typeof o !== 'object' || typeof o.load !== 'function') {
    throw invalidOption('adaptive() needs { load: () => number, threshold?, floor? }');
  }
  const threshold = o.threshold ?? 0.7;
  const floor = o.floor ?? 0.1;
  v.fraction('threshold', threshold);
  if (threshold === 1) throw invalidOption('threshold must be < 1 (got 1)');
  v.fraction('floor', floor, { openLow: true });
  if (o.curve !== undefined && typeof o.curve !== 'function') throw invalidOption('curve must be a function');
  const load = o.load;
  const curve = o.curve ?? ((l: number, t: number) => 1 - (l - t) / (1 - t));
  const multiplier = (): number => {
    let l = Number(load());
    if (!(l > 0)) l = 0; // NaN and negatives read as idle
    if (l > 1) l = 1;
    if (l <= threshold) return 1;
    const m = curve(l, threshold);
    if (!(m < 1)) return 1;
    return Math.max(m, floor);
  };
  const a: AlgorithmImpl = { ...inner, adaptive: true, multiplier };
  return Object.freeze(a);
}
