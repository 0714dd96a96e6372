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
import type { Algorithm, SlidingWindowOptions } from './types.js';
import { v } from './validate.js';

/**
 * Sliding window.
 * - `counter` (default): keeps the current and previous fixed-window counts and estimates the last W ms as
 *   prev × (1 − f) + cur, where f is the elapsed fraction of the current window. Admits when
 *   estimate + cost <= limit. Approximate (it assumes the previous window's calls were spread evenly), O(1).
 * - `log`: keeps one timestamp per admitted unit and admits when the units in (t − W, t] plus cost <= limit.
 *   Exact: no interval of length W ever holds more than `limit`. Memory O(limit) per key.
 *
 * @example
 * const limiter = rateLimiter({ name: 'search', algorithm: slidingWindow({ limit: 60, windowMs: 60_000, mode: 'log' }) });
 */
export function slidingWindow(o: SlidingWindowOptions): Algorithm {
  if (o === null || typeof o !== 'object')
    throw invalidOption('slidingWindow() needs { limit, windowMs, mode? }');
  v.integer('limit', o.limit, { min: 1 });
  v.integer('windowMs', o.windowMs, { min: 1 });
  const mode = o.mode ?? 'counter';
  if (mode !== 'counter' && mode !== 'log')
    throw invalidOption(`mode must be 'counter' or 'log' (got ${String(mode)})`);
  const limit = o.limit;
  const w = o.windowMs;
  const log = mode === 'log';
  const a: AlgorithmImpl = {
    kind: log ? 'sliding-window-log' : 'sliding-window-counter',
    limit,
    quota: limit,
    windowMs: w,
    adaptive: false,
    code: log ? AlgCode.slidingLog : AlgCode.slidingCounter,
    units: [Unit.none, Unit.ms, Unit.none],
    base: Float64Array.of(limit, w, 0),
    scale(p, m) {
      p[0] = scaledInt(limit, m);
      p[1] = w;
      p[2] = 0;
    },
    limitAt: (m) => scaledInt(limit, m),
    quotaOf: quotaInP0,
    step: log ? logStep : counterStep,
  };
  return Object.freeze(a);
}

// slot: at = window number, level = its count, prevLevel = the previous window's count
function counterStep(s: Slot, now: number, p: Float64Array, cost: number, mode: Mode, rts: number, out: Out) {
  const limit = p[0]!;
  const w = p[1]!;
  const win = Math.floor(now / w);
  let cur = 0;
  let prev = 0;
  if (s.exp !== 0) {
    if (s.at === win) {
      cur = s.level;
      prev = s.prevLevel;
    } else if (s.at === win - 1) {
      prev = s.level;
    }
  }
  const start = win * w;
  const f = (now - start) / w;
  if (mode === Mode.refund) {
    const rw = Math.floor(rts / w);
    if (rw === win) cur = Math.max(0, cur - cost);
    else if (rw === win - 1) prev = Math.max(0, prev - cost);
    out.allowed = true;
    out.retryAfterMs = 0;
    s.at = win;
    s.level = cur;
    s.prevLevel = prev;
    s.exp = start + 2 * w;
  } else {
    const est = prev * (1 - f) + cur;
    const ok = est + cost <= limit;
    out.allowed = ok;
    if (ok) {
      out.retryAfterMs = 0;
      if (mode === Mode.commit) {
        cur += cost;
        s.at = win;
        s.level = cur;
        s.prevLevel = prev;
        s.exp = start + 2 * w;
      }
    } else if (cur + cost <= limit && prev > 0) {
      // later in this window: prev × (1 − f') + cur + cost <= limit
      const f2 = 1 - (limit - cost - cur) / prev;
      out.retryAfterMs = Math.max(1, Math.ceil(start + f2 * w - now));
    } else {
      // in the next window cur becomes prev: cur × (1 − g) + cost <= limit
      const g = cur > limit - cost ? 1 - (limit - cost) / cur : 0;
      out.retryAfterMs = Math.max(1, Math.ceil(start + w + g * w - now));
    }
  }
  const est = prev * (1 - f) + cur;
  const rem = floorEps(limit - est);
  out.remaining = Math.max(rem, 0);
  out.resetMs = cur > 0 ? Math.ceil(start + 2 * w - now) : prev > 0 ? Math.ceil(start + w - now) : 0;
}

// log holds admitted timestamps (one per unit) from index head on, oldest first
function logStep(s: Slot, now: number, p: Float64Array, cost: number, mode: Mode, rts: number, out: Out) {
  const limit = p[0]!;
  const w = p[1]!;
  let log = s.log;
  if (log === null || s.exp === 0) {
    log = s.log ?? [];
    log.length = 0;
    s.head = 0;
  }
  const edge = now - w;
  let head = s.head;
  while (head < log.length && log[head]! <= edge) head++;
  if (head > 64 && head * 2 > log.length) {
    log.splice(0, head);
    head = 0;
  }
  let n = log.length - head;
  if (mode === Mode.refund) {
    let left = cost;
    for (let i = log.length - 1; i >= head && left > 0; i--) {
      if (log[i] === rts) {
        log.splice(i, 1);
        left--;
      }
    }
    n = log.length - head;
    out.allowed = true;
    out.retryAfterMs = 0;
    s.log = log;
    s.head = head;
    s.exp = n > 0 ? log[log.length - 1]! + w : 1;
  } else {
    const ok = n + cost <= limit;
    out.allowed = ok;
    if (ok) {
      out.retryAfterMs = 0;
      if (mode === Mode.commit) {
        for (let i = 0; i < cost; i++) log.push(now);
        n += cost;
        s.log = log;
        s.head = head;
        s.exp = now + w;
      }
    } else {
      // the (n + cost − limit)-th oldest unit has to leave the window
      out.retryAfterMs = Math.max(1, Math.ceil(log[head + n + cost - limit - 1]! + w - now));
    }
    if (mode !== Mode.commit) s.head = head;
  }
  out.remaining = Math.max(limit - n, 0);
  out.resetMs = n > 0 ? Math.ceil(log[log.length - 1]! + w - now) : 0;
}
