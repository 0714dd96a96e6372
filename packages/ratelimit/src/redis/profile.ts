import { type AlgorithmImpl, type Out, Unit } from '../algorithm.js';
import type { Raw } from './script-runner.js';

/**
 * An algorithm with its parameters in the scripts' µs units. A send names each once and its calls refer to
 * it by index, so a call costs the script two arguments instead of six.
 */
export interface Profile {
  readonly code: number;
  readonly p1: number;
  readonly p2: number;
  readonly p3: number;
  /** The send that last listed this profile, and its index and deadline there. */
  mark: number;
  idx: number;
  timeoutMs: number;
}

/** Converts ms-unit parameter `i` to the scripts' µs. */
function usParam(alg: AlgorithmImpl, p: Float64Array, i: number): number {
  const u = alg.units[i]!;
  return u === Unit.none ? p[i]! : u === Unit.ms ? p[i]! * 1000 : p[i]! / 1000;
}

// A limiter's parameters are one array for its life unless it is adaptive (then they change per call).
const cache = new WeakMap<Float64Array, Profile>();

/** The profile of `alg` at parameters `p`; one object per limiter unless the algorithm is adaptive. */
export function profileOf(alg: AlgorithmImpl, p: Float64Array): Profile {
  if (!alg.adaptive) {
    const hit = cache.get(p);
    if (hit !== undefined && hit.code === alg.code) return hit;
  }
  const prof: Profile = {
    code: alg.code,
    p1: usParam(alg, p, 0),
    p2: usParam(alg, p, 1),
    p3: usParam(alg, p, 2),
    mark: 0,
    idx: 0,
    timeoutMs: 0,
  };
  if (!alg.adaptive) cache.set(p, prof);
  return prof;
}

let marks = 0;

/** A new send's mark: profiles listed in it carry it (stores on one client share profiles' marks). */
export const nextMark = (): number => ++marks;

/**
 * The index of `prof` in the send marked `mark`, listing it in `list` when new there. A profile listed with
 * another timeout (never, in practice: a profile is one limiter's) gets an entry of its own.
 */
export function indexIn(list: Profile[], prof: Profile, mark: number, timeoutMs: number): number {
  if (prof.mark === mark && prof.timeoutMs === timeoutMs) return prof.idx;
  if (prof.mark === mark) {
    // the same parameters under another deadline: a listing of their own
    const copy: Profile = { ...prof, timeoutMs };
    list.push(copy);
    return list.length - 1;
  }
  prof.mark = mark;
  prof.idx = list.length;
  prof.timeoutMs = timeoutMs;
  list.push(prof);
  return prof.idx;
}

/** Copies one (remaining resetMs retryMs) triple of a reply into `out`; a retry of 0 means allowed. */
export function fill(out: Out, raw: Raw, at: number): void {
  const retry = raw[at + 2] as number;
  out.allowed = retry === 0;
  out.remaining = raw[at] as number;
  out.resetMs = raw[at + 1] as number;
  out.retryAfterMs = retry;
}
