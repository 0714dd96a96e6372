import type { WindowBucketsSnapshot, WindowSnapshot } from './types.js';

export const FAILED = 1;
export const SLOW = 2;

/** Counts over a sliding window; O(1) per recorded call. */
export interface OutcomeWindow {
  record(code: number, now: number): void;
  calls(now: number): number;
  failures: number;
  slow: number;
  clear(): void;
  snapshot(): WindowSnapshot;
  restore(s: WindowSnapshot): void;
}

/** The last `size` calls, as a ring of outcome codes. */
export class CountWindow implements OutcomeWindow {
  readonly #ring: Uint8Array;
  #next = 0;
  #size = 0;
  failures = 0;
  slow = 0;

  constructor(readonly size: number) {
    this.#ring = new Uint8Array(size);
  }

  record(code: number): void {
    const i = this.#next;
    if (this.#size === this.size) {
      const old = this.#ring[i]!;
      this.failures -= old & FAILED;
      this.slow -= old >> 1;
    } else {
      this.#size++;
    }
    this.#ring[i] = code;
    this.failures += code & FAILED;
    this.slow += code >> 1;
    this.#next = i + 1 === this.size ? 0 : i + 1;
  }

  calls(): number {
    return this.#size;
  }

  clear(): void {
    this.#next = 0;
    this.#size = 0;
    this.failures = 0;
    this.slow = 0;
  }

  snapshot(): WindowSnapshot {
    const outcomes: number[] = [];
    const start = this.#size === this.size ? this.#next : 0;
    for (let k = 0; k < this.#size; k++) outcomes.push(this.#ring[(start + k) % this.size]!);
    return { kind: 'calls', size: this.size, outcomes };
  }

  restore(s: WindowSnapshot): void {
    this.clear();
    if (s.kind !== 'calls') return;
    for (const code of s.outcomes.slice(-this.size)) this.record(code & 3);
  }
}

/**
 * The last `ms` milliseconds as `n` buckets of `ms / n`. A call lands in the bucket of its time; moving to a
 * new bucket clears the ones that fell out, at most `n` of them, so recording stays O(1) amortised.
 */
export class TimeWindow implements OutcomeWindow {
  readonly #width: number;
  readonly #n: number;
  readonly #calls: Float64Array;
  readonly #fails: Float64Array;
  readonly #slows: Float64Array;
  #cur = Number.NEGATIVE_INFINITY;
  #total = 0;
  failures = 0;
  slow = 0;

  constructor(ms: number, buckets: number) {
    this.#n = buckets;
    this.#width = ms / buckets;
    this.#calls = new Float64Array(buckets);
    this.#fails = new Float64Array(buckets);
    this.#slows = new Float64Array(buckets);
  }

  #roll(now: number): number {
    const b = Math.floor(now / this.#width);
    if (b === this.#cur) return b % this.#n;
    if (b < this.#cur) return this.#cur % this.#n; // a clock step back: keep counting in the newest bucket
    const steps = Math.min(this.#n, b - this.#cur);
    for (let k = 1; k <= steps; k++) {
      const i = (b - steps + k) % this.#n;
      this.#total -= this.#calls[i]!;
      this.failures -= this.#fails[i]!;
      this.slow -= this.#slows[i]!;
      this.#calls[i] = 0;
      this.#fails[i] = 0;
      this.#slows[i] = 0;
    }
    this.#cur = b;
    return b % this.#n;
  }

  record(code: number, now: number): void {
    const i = this.#roll(now);
    this.#calls[i]!++;
    this.#total++;
    if (code & FAILED) {
      this.#fails[i]!++;
      this.failures++;
    }
    if (code & SLOW) {
      this.#slows[i]!++;
      this.slow++;
    }
  }

  calls(now: number): number {
    this.#roll(now);
    return this.#total;
  }

  clear(): void {
    this.#calls.fill(0);
    this.#fails.fill(0);
    this.#slows.fill(0);
    this.#total = 0;
    this.failures = 0;
    this.slow = 0;
  }

  snapshot(): WindowBucketsSnapshot {
    const buckets: WindowBucketsSnapshot['buckets'] = [];
    if (Number.isFinite(this.#cur)) {
      for (let b = this.#cur - this.#n + 1; b <= this.#cur; b++) {
        const i = ((b % this.#n) + this.#n) % this.#n;
        if (this.#calls[i]! > 0) buckets.push([b, this.#calls[i]!, this.#fails[i]!, this.#slows[i]!]);
      }
    }
    return { kind: 'time', bucketMs: this.#width, buckets };
  }

  restore(s: WindowSnapshot): void {
    this.clear();
    this.#cur = Number.NEGATIVE_INFINITY;
    if (s.kind !== 'time' || s.bucketMs !== this.#width || s.buckets.length === 0) return;
    const last = Math.max(...s.buckets.map((b) => b[0]));
    this.#cur = last;
    for (const [b, calls, fails, slows] of s.buckets) {
      if (b <= last - this.#n) continue;
      const i = ((b % this.#n) + this.#n) % this.#n;
      this.#calls[i] = calls;
      this.#fails[i] = fails;
      this.#slows[i] = slows;
      this.#total += calls;
      this.failures += fails;
      this.slow += slows;
    }
  }
}
