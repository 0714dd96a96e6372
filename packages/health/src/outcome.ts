import { redactSecrets } from './redact.js';
import type { CheckOutcome, HealthStatus } from './types.js';

const STATUSES: readonly HealthStatus[] = ['pass', 'warn', 'fail'];
const MAX_OUTPUT = 1024;

/** A thrown value as one line of output. */
export const describe = (e: unknown): string => {
  if (e instanceof Error) return e.message || e.name;
  if (typeof e === 'string') return e;
  try {
    return JSON.stringify(e) ?? String(e);
  } catch {
    return String(e);
  }
};

/**
 * The output filter of a registry: built-in secret redaction, then the user's `redact` (a throwing one is
 * skipped rather than leak or throw), then a cut at 1024 characters.
 */
export function scrubber(extra: ((text: string) => string) | undefined) {
  return (text: string | undefined): string | undefined => {
    if (text === undefined) return undefined;
    let out = redactSecrets(text);
    if (extra) {
      try {
        out = extra(out);
      } catch {
        // keep the built-in redaction rather than leak or throw
      }
    }
    return out.length > MAX_OUTPUT ? `${out.slice(0, MAX_OUTPUT)}…` : out;
  };
}

/** What a check resolved with, as an outcome: anything malformed becomes a `fail` that says what was wrong. */
export function normalize(v: unknown): CheckOutcome {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    return {
      status: 'fail',
      output: `check returned ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v}; expected an object such as { status: 'pass' }`,
    };
  }
  const o = v as CheckOutcome;
  if (o.status !== undefined && !STATUSES.includes(o.status)) {
    return {
      status: 'fail',
      output: `check returned status ${JSON.stringify(o.status)}; expected 'pass', 'warn' or 'fail'`,
    };
  }
  const wrong = malformed(o);
  return wrong ? { status: 'fail', output: `check returned ${wrong}` } : o;
}

/** What a check rejected with, as a `fail` outcome. */
export const rejected = (e: unknown): CheckOutcome => ({
  status: 'fail',
  output:
    e instanceof Error
      ? describe(e)
      : `check rejected with a non-Error value (${typeof e}): ${describe(e) || '(empty)'}`,
});

const isString = (x: unknown) => x === undefined || typeof x === 'string';
const isJson = (x: unknown): boolean => {
  try {
    // bigint throws; functions and symbols vanish: either would break the body or lie about the reading
    return x === undefined || JSON.stringify(x) !== undefined;
  } catch {
    return false;
  }
};

/** Says what is wrong with an outcome a (JavaScript) check returned, so it fails instead of breaking the body. */
function malformed(o: CheckOutcome): string | undefined {
  for (const key of ['output', 'observedUnit', 'componentType', 'componentId'] as const) {
    if (!isString(o[key])) return `${key} of type ${typeof o[key]}; expected a string`;
  }
  if (!isJson(o.observedValue)) return `an observedValue that is not JSON (${typeof o.observedValue})`;
  const ends = o.affectedEndpoints;
  if (ends !== undefined && !(Array.isArray(ends) && ends.every((e) => typeof e === 'string'))) {
    return 'affectedEndpoints that is not an array of strings';
  }
  const d = o.details;
  if (d !== undefined && (d === null || typeof d !== 'object' || Array.isArray(d) || !isJson(d))) {
    return 'details that is not a JSON object';
  }
  return undefined;
}
