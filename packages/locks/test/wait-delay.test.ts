import { describe, expect, it } from 'vitest';
import { waitDelay } from '../src/wait.js';

describe('waitDelay (the jittered sleep between two tries)', () => {
  it('jitters the poll to [0.5, 1.5) x pollMs', () => {
    expect(waitDelay(1_000, undefined, 60_000, () => 0)).toBe(500);
    expect(waitDelay(1_000, undefined, 60_000, () => 0.5)).toBe(1_000);
    expect(waitDelay(1_000, undefined, 60_000, () => 0.999)).toBeCloseTo(1_499, 6);
  });

  it("wakes 1 to 6 ms after the backend's hint when that comes before the poll", () => {
    const draws = [0.5, 0];
    expect(waitDelay(1_000, 100, 60_000, () => draws.shift() as number)).toBe(101);
    const late = [0.5, 0.999];
    expect(waitDelay(1_000, 100, 60_000, () => late.shift() as number)).toBeCloseTo(105.995, 6);
  });

  it('never sleeps past the deadline, nor a negative time', () => {
    expect(waitDelay(1_000, 400, 30, () => 0.5)).toBe(30);
    expect(waitDelay(1_000, undefined, -5, () => 0.5)).toBe(0);
  });

  it('uses Math.random when no random is given', () => {
    const d = waitDelay(1_000, undefined, 60_000);
    expect(d).toBeGreaterThanOrEqual(500);
    expect(d).toBeLessThan(1_500);
  });
});
