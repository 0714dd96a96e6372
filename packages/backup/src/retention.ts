import type { KeepReason, PrunePlan, RetentionPolicy } from './types.js';
import { invalid, v } from './validate.js';

/** A backup as retention sees it. */
export interface RetentionCandidate {
  id: string;
  /** Unix ms of the backup's snapshot. */
  time: number;
  verified: boolean;
}

export interface CheckedPolicy {
  keepLast: number;
  daily: number;
  weekly: number;
  monthly: number;
  yearly: number;
  minAgeMs: number;
  incompleteAfterMs: number;
  timeZone: string;
}

export const DEFAULT_INCOMPLETE_AFTER_MS = 2 * 86_400_000;

export function checkRetention(p: RetentionPolicy | undefined): CheckedPolicy | undefined {
  if (p === undefined) return undefined;
  if (typeof p !== 'object' || p === null) throw invalid('retention must be an object such as { daily: 7 }');
  const n = (name: keyof RetentionPolicy) =>
    p[name] === undefined ? 0 : v.integer(`retention.${name}`, p[name], { min: 0, max: 100_000 });
  const timeZone = p.timeZone ?? 'UTC';
  try {
    new Intl.DateTimeFormat('en-CA', { timeZone });
  } catch {
    throw invalid(
      `retention.timeZone must be an IANA time zone such as 'Europe/Paris' (got ${JSON.stringify(timeZone)})`,
    );
  }
  const policy: CheckedPolicy = {
    keepLast: n('keepLast'),
    daily: n('daily'),
    weekly: n('weekly'),
    monthly: n('monthly'),
    yearly: n('yearly'),
    minAgeMs:
      p.minAgeMs === undefined ? 0 : v.durationMs('retention.minAgeMs', p.minAgeMs, { allowInfinity: true }),
    incompleteAfterMs:
      p.incompleteAfterMs === undefined
        ? DEFAULT_INCOMPLETE_AFTER_MS
        : v.durationMs('retention.incompleteAfterMs', p.incompleteAfterMs, { min: 60_000 }),
    timeZone,
  };
  if (
    policy.keepLast + policy.daily + policy.weekly + policy.monthly + policy.yearly === 0 &&
    policy.minAgeMs === 0
  ) {
    throw invalid(
      'retention keeps nothing: set at least one of keepLast, daily, weekly, monthly, yearly or minAgeMs',
    );
  }
  return policy;
}

/** The civil date of `ms` in `timeZone`, and the calendar buckets it falls in. */
function buckets(
  fmt: Intl.DateTimeFormat,
  ms: number,
): Record<'daily' | 'weekly' | 'monthly' | 'yearly', string> {
  const parts = Object.fromEntries(fmt.formatToParts(ms).map((p) => [p.type, p.value]));
  const y = Number(parts.year);
  const m = Number(parts.month);
  const d = Number(parts.day);
  // ISO 8601 week: the week belongs to the year of its Thursday.
  const day = Date.UTC(y, m - 1, d);
  const dow = (new Date(day).getUTCDay() + 6) % 7; // Monday 0
  const thursday = new Date(day + (3 - dow) * 86_400_000);
  const wy = thursday.getUTCFullYear();
  const week = Math.floor((thursday.getTime() - Date.UTC(wy, 0, 1)) / (7 * 86_400_000)) + 1;
  const pad = (x: number) => String(x).padStart(2, '0');
  return {
    daily: `${y}-${pad(m)}-${pad(d)}`,
    weekly: `${wy}-W${pad(week)}`,
    monthly: `${y}-${pad(m)}`,
    yearly: `${y}`,
  };
}

/**
 * Grandfather-father-son: for each rule, walk the backups newest first and keep the newest one of each distinct
 * bucket until the rule's count of buckets is reached. The newest verified backup is kept whatever the policy.
 */
export function planRetention(
  all: RetentionCandidate[],
  policy: CheckedPolicy | undefined,
  now: number,
  dryRun: boolean,
): PrunePlan {
  const sorted = [...all].sort((a, b) => b.time - a.time || (a.id < b.id ? 1 : -1));
  const reasons = new Map<string, KeepReason[]>(sorted.map((b) => [b.id, []]));
  const keep = (id: string, r: KeepReason) => reasons.get(id)?.push(r);
  if (!policy) {
    for (const b of sorted) keep(b.id, 'no-policy');
  } else {
    sorted.slice(0, policy.keepLast).forEach((b) => void keep(b.id, 'keep-last'));
    const fmt = new Intl.DateTimeFormat('en-CA', {
      timeZone: policy.timeZone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
    });
    const keys = sorted.map((b) => buckets(fmt, b.time));
    for (const rule of ['daily', 'weekly', 'monthly', 'yearly'] as const) {
      const seen = new Set<string>();
      for (let i = 0; i < sorted.length && seen.size < policy[rule]; i++) {
        const k = (keys[i] as Record<typeof rule, string>)[rule];
        if (seen.has(k)) continue;
        seen.add(k);
        keep((sorted[i] as RetentionCandidate).id, rule);
      }
    }
    for (const b of sorted) if (now - b.time < policy.minAgeMs) keep(b.id, 'min-age');
  }
  const newestVerified = sorted.find((b) => b.verified);
  if (newestVerified) keep(newestVerified.id, 'newest-verified');
  const iso = (ms: number) => new Date(ms).toISOString();
  return {
    dryRun,
    incomplete: [],
    keep: sorted
      .filter((b) => (reasons.get(b.id) ?? []).length > 0)
      .map((b) => ({ id: b.id, time: iso(b.time), reasons: reasons.get(b.id) ?? [] })),
    delete: sorted
      .filter((b) => (reasons.get(b.id) ?? []).length === 0)
      .map((b) => ({ id: b.id, time: iso(b.time) })),
  };
}
