import { fakeClock } from '@oms/testkit';
import { describe, expect, it } from 'vitest';
import { backupManager } from '../src/index.js';
import { checkRetention, planRetention, type RetentionCandidate } from '../src/retention.js';
import { memorySource } from './fixtures/memory-source.js';
import { memoryStorage } from './fixtures/memory-storage.js';

const DAY = 86_400_000;
const at = (iso: string) => Date.parse(iso);
const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** One backup a day at 12:00 UTC from `from` to `to` inclusive. */
function daily(
  from: string,
  to: string,
  verified: (iso: string) => boolean = () => false,
): RetentionCandidate[] {
  const out: RetentionCandidate[] = [];
  for (let t = at(`${from}T12:00:00Z`); t <= at(`${to}T12:00:00Z`); t += DAY) {
    out.push({ id: `b-${day(t)}`, time: t, verified: verified(day(t)) });
  }
  return out;
}

describe('grandfather-father-son retention', () => {
  it('keeps the hand-computed set over three simulated years of daily backups', () => {
    const all = daily('2024-01-01', '2026-12-31', (d) => d === '2024-03-15');
    const plan = planRetention(
      all,
      checkRetention({ daily: 3, weekly: 2, monthly: 2, yearly: 2 }),
      at('2026-12-31T13:00:00Z'),
      true,
    );
    // daily: Dec 31, 30, 29. ISO week 53 of 2026 (Mon Dec 28) -> Dec 31; week 52 -> Sun Dec 27.
    // monthly: Dec -> Dec 31, Nov -> Nov 30. yearly: 2026 -> Dec 31, 2025 -> 2025-12-31.
    // The only verified backup (2024-03-15) survives whatever the policy says.
    expect(Object.fromEntries(plan.keep.map((k) => [k.id, k.reasons]))).toEqual({
      'b-2026-12-31': ['daily', 'weekly', 'monthly', 'yearly'],
      'b-2026-12-30': ['daily'],
      'b-2026-12-29': ['daily'],
      'b-2026-12-27': ['weekly'],
      'b-2026-11-30': ['monthly'],
      'b-2025-12-31': ['yearly'],
      'b-2024-03-15': ['newest-verified'],
    });
    expect(plan.delete).toHaveLength(all.length - 7);
  });

  it('buckets by the configured time zone, not UTC', () => {
    const b = (id: string, iso: string): RetentionCandidate => ({ id, time: at(iso), verified: false });
    const all = [
      b('x', '2026-03-01T23:30:00Z'),
      b('y', '2026-03-02T10:00:00Z'),
      b('z', '2026-03-02T16:00:00Z'),
    ];
    const now = at('2026-03-03T00:00:00Z');
    // Tokyo (UTC+9): x and y fall on March 2, z on March 3.
    expect(
      planRetention(all, checkRetention({ daily: 2, timeZone: 'Asia/Tokyo' }), now, true).delete.map(
        (d) => d.id,
      ),
    ).toEqual(['x']);
    // UTC: y and z fall on March 2, x on March 1.
    expect(planRetention(all, checkRetention({ daily: 2 }), now, true).delete.map((d) => d.id)).toEqual([
      'y',
    ]);
  });

  it('keepLast and minAgeMs keep the newest and the young', () => {
    const all = daily('2026-01-01', '2026-01-10');
    const plan = planRetention(
      all,
      checkRetention({ keepLast: 2, minAgeMs: 3.5 * DAY }),
      at('2026-01-10T13:00:00Z'),
      true,
    );
    expect(plan.keep.map((k) => [k.id, k.reasons])).toEqual([
      ['b-2026-01-10', ['keep-last', 'min-age']],
      ['b-2026-01-09', ['keep-last', 'min-age']],
      ['b-2026-01-08', ['min-age']],
      ['b-2026-01-07', ['min-age']],
    ]);
  });

  it('day by day over two simulated years: every policy keeps the newest verified backup and the newest of each recent bucket', () => {
    const policies = [
      { daily: 1 },
      { weekly: 1 },
      { monthly: 3 },
      { yearly: 1 },
      { keepLast: 1 },
      { daily: 7, weekly: 4, monthly: 12, yearly: 5 },
    ];
    const all = daily('2025-01-01', '2026-12-31', (d) => d.endsWith('-15'));
    for (const p of policies) {
      const policy = checkRetention(p);
      for (let i = 0; i < all.length; i += 9) {
        const seen = all.slice(0, i + 1);
        const now = (seen[seen.length - 1] as RetentionCandidate).time + 3_600_000;
        const plan = planRetention(seen, policy, now, true);
        const kept = new Set(plan.keep.map((k) => k.id));
        const newestVerified = [...seen].reverse().find((b) => b.verified);
        if (newestVerified) expect(kept.has(newestVerified.id)).toBe(true);
        expect(kept.has(`b-${day(now)}`)).toBe(true);
        expect(plan.keep.length + plan.delete.length).toBe(seen.length);
        const bound =
          (p.keepLast ?? 0) + (p.daily ?? 0) + (p.weekly ?? 0) + (p.monthly ?? 0) + (p.yearly ?? 0) + 1;
        expect(kept.size).toBeLessThanOrEqual(bound);
      }
    }
  });

  it('a policy that keeps nothing is refused', () => {
    expect(() => checkRetention({})).toThrow(/keeps nothing/);
  });

  it('prune through the manager on a fake clock deletes what the plan says, and dryRun deletes nothing', async () => {
    const clock = fakeClock(at('2026-01-01T12:00:00Z'));
    const storage = memoryStorage();
    const backups = backupManager({
      source: memorySource(),
      storage,
      clock,
      retention: { daily: 2, monthly: 1 },
    });
    for (let i = 0; i < 40; i++) {
      await backups.create();
      clock.advance(DAY);
    }
    const first = (await backups.list()).at(-1);
    if (!first) throw new Error('no backups');
    await backups.verify(first.id);
    const dry = await backups.prune({ dryRun: true });
    expect((await backups.list()).length).toBe(40);
    // daily: Feb 9, Feb 8; monthly: Feb -> Feb 9, Jan -> none needed (1 bucket); newest verified: Jan 1.
    expect(dry.keep.map((k) => k.time.slice(0, 10))).toEqual(['2026-02-09', '2026-02-08', '2026-01-01']);
    const done = await backups.prune();
    expect(done.delete.map((d) => d.id)).toEqual(dry.delete.map((d) => d.id));
    expect((await backups.list()).map((m) => m.time.slice(0, 10))).toEqual([
      '2026-02-09',
      '2026-02-08',
      '2026-01-01',
    ]);
    expect(storage.keys().filter((k) => !dry.keep.some((x) => k.startsWith(`${x.id}/`)))).toEqual([]);
  });
});
