import type { Clock } from './clock.js';

/**
 * The longest key any store of these packages accepts, in UTF-8 bytes; a longer key is refused with the package's
 * invalid-key error before it reaches a store.
 *
 * @example
 * ```ts
 * const key = `orders:${'x'.repeat(100)}`;
 * if (Buffer.byteLength(key) > MAX_KEY_BYTES) throw new Error('key too long');
 * ```
 */
export const MAX_KEY_BYTES = 1024;

/**
 * The option checks every @oms package shares, with one set of names and messages. Each returns the checked
 * value and throws the package's own invalid-option error otherwise.
 */
export interface Validators {
  /** A finite number > 0. */
  positiveFinite(name: string, v: unknown): number;
  /** A finite number >= 0. */
  nonNegativeFinite(name: string, v: unknown): number;
  /** A safe integer in [min, max] (min defaults to 0). */
  integer(name: string, v: unknown, range?: { min?: number; max?: number }): number;
  /** A number in [0, 1], or (0, 1] with `openLow`. */
  fraction(name: string, v: unknown, o?: { openLow?: boolean }): number;
  /** Milliseconds: finite and >= `min` (default 0); `Infinity` only with `allowInfinity`. */
  durationMs(name: string, v: unknown, o?: { min?: number; allowInfinity?: boolean }): number;
  /** A non-empty string of at most `maxBytes` UTF-8 bytes. */
  key(name: string, v: unknown, maxBytes?: number): string;
  /** `undefined` gives `fallback`; otherwise an object with now(), setTimeout() and clearTimeout(). */
  clock<C extends Clock>(v: unknown, fallback: C): C;
}

const show = (v: unknown): string => (typeof v === 'string' ? JSON.stringify(v) : String(v));

/**
 * Why `v` is not a usable key, or `undefined` when it is. Hot paths call this to reject without a throw.
 *
 * @example
 * const problem = keyProblem('key', 'user:1'); // undefined
 */
export function keyProblem(name: string, v: unknown, maxBytes = MAX_KEY_BYTES): string | undefined {
  if (typeof v !== 'string') return `${name} must be a string (got ${v === null ? 'null' : typeof v})`;
  if (v.length === 0) return `${name} must be a non-empty string`;
  // A UTF-8 byte is at most 3 per UTF-16 unit here, so only strings near the bound pay for byteLength.
  if (v.length * 3 <= maxBytes) return undefined;
  const bytes = Buffer.byteLength(v);
  return bytes <= maxBytes ? undefined : `${name} must be at most ${maxBytes} bytes of UTF-8 (got ${bytes})`;
}

/**
 * Builds the shared checks around the package's own error, so every message reads the same everywhere.
 *
 * @example
 * const v = validators((message) => new RangeError(message));
 * v.positiveFinite('capacity', 10);
 */
export function validators(fail: (message: string) => Error): Validators {
  const isNum = (v: unknown): v is number => typeof v === 'number' && !Number.isNaN(v);
  return {
    positiveFinite(name, v) {
      if (!isNum(v) || !Number.isFinite(v) || v <= 0) {
        throw fail(`${name} must be a finite number > 0 (got ${show(v)})`);
      }
      return v;
    },
    nonNegativeFinite(name, v) {
      if (!isNum(v) || !Number.isFinite(v) || v < 0) {
        throw fail(`${name} must be a finite number >= 0 (got ${show(v)})`);
      }
      return v;
    },
    integer(name, v, { min = 0, max = Number.MAX_SAFE_INTEGER } = {}) {
      if (!Number.isSafeInteger(v) || (v as number) < min || (v as number) > max) {
        const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in [${min}, ${max}]`;
        throw fail(`${name} must be an integer ${range} (got ${show(v)})`);
      }
      return v as number;
    },
    fraction(name, v, { openLow = false } = {}) {
      if (!isNum(v) || v < 0 || v > 1 || (openLow && v === 0)) {
        throw fail(`${name} must be a number in ${openLow ? '(0' : '[0'}, 1] (got ${show(v)})`);
      }
      return v;
    },
    durationMs(name, v, { min = 0, allowInfinity = false } = {}) {
      const ok = isNum(v) && v >= min && (Number.isFinite(v) || (allowInfinity && v === Infinity));
      if (!ok) {
        throw fail(
          `${name} must be a duration in ms >= ${min}${allowInfinity ? ' or Infinity' : ''} (got ${show(v)})`,
        );
      }
      return v;
    },
    key(name, v, maxBytes = MAX_KEY_BYTES) {
      const problem = keyProblem(name, v, maxBytes);
      if (problem !== undefined) throw fail(problem);
      return v as string;
    },
    clock<C extends Clock>(v: unknown, fallback: C): C {
      if (v === undefined) return fallback;
      const c = v as Partial<Record<keyof Clock, unknown>> | null;
      if (
        typeof c !== 'object' ||
        c === null ||
        typeof c.now !== 'function' ||
        typeof c.setTimeout !== 'function' ||
        typeof c.clearTimeout !== 'function'
      ) {
        throw fail('clock must be an object with now(), setTimeout() and clearTimeout()');
      }
      return v as C;
    },
  };
}
