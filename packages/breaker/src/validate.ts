import { invalid } from './errors.js';

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}

export function requireObject(name: string, v: unknown): asserts v is Record<string, unknown> {
  if (!isObject(v)) throw invalid(`${name} must be an object (got ${v === null ? 'null' : typeof v})`);
}

/** A duration in ms: finite and >= 0 (or > 0 when `positive`). */
export function duration(name: string, v: unknown, positive = false): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (positive && v === 0)) {
    throw invalid(`${name} must be a finite number ${positive ? '> 0' : '>= 0'} in ms (got ${String(v)})`);
  }
  return v;
}

export function ratio(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 1) {
    throw invalid(`${name} must be a number in [0, 1] (got ${String(v)})`);
  }
  return v;
}

export function integer(name: string, v: unknown, min: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
    throw invalid(`${name} must be an integer >= ${min} (got ${String(v)})`);
  }
  return v;
}

export function positiveNumber(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw invalid(`${name} must be a finite number > 0 (got ${String(v)})`);
  }
  return v;
}

export function func<F>(name: string, v: unknown): F {
  if (typeof v !== 'function') throw invalid(`${name} must be a function (got ${typeof v})`);
  return v as F;
}

export function name(label: string, v: unknown): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > 200) {
    throw invalid(`${label} must be a non-empty string of at most 200 characters (got ${String(v)})`);
  }
  return v;
}

export function clockOf<C>(v: unknown, fallback: C): C {
  if (v === undefined) return fallback;
  requireObject('clock', v);
  if (
    typeof v.now !== 'function' ||
    typeof v.setTimeout !== 'function' ||
    typeof v.clearTimeout !== 'function'
  ) {
    throw invalid('clock must have now(), setTimeout() and clearTimeout()');
  }
  return v as C;
}
