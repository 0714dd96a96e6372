import { describe, expect, it } from 'vitest';
import { compareResults } from './compare.js';

const results = (cases: [string, number][], ratios: [string, number, string?][]) => ({
  suite: 's',
  cases: cases.map(([name, medianNsPerOp]) => ({ name, medianNsPerOp })),
  ratios: ratios.map(([name, value, goal]) => (goal ? { name, value, goal } : { name, value })),
});

describe('compareResults', () => {
  it('flags a case more than 10% slower, and not one within 10%', () => {
    const changes = compareResults(
      results(
        [
          ['a', 100],
          ['b', 100],
        ],
        [],
      ),
      results(
        [
          ['a', 111],
          ['b', 109],
        ],
        [],
      ),
    );
    expect(changes.map((c) => [c.what, c.regression])).toEqual([
      ['a', true],
      ['b', false],
    ]);
  });

  it('reads the goal for a ratio direction: lower is better for <=, higher for >=', () => {
    const base = results(
      [],
      [
        ['overhead', 1.0, '<= 1.1'],
        ['speedup', 8, '>= 8'],
        ['plain', 2],
      ],
    );
    const now = results(
      [],
      [
        ['overhead', 1.2, '<= 1.1'],
        ['speedup', 9, '>= 8'],
        ['plain', 5],
      ],
    );
    const changes = compareResults(base, now);
    expect(changes.map((c) => [c.what, c.regression])).toEqual([
      ['ratio: overhead', true],
      ['ratio: speedup', false],
    ]);
    expect(
      compareResults(results([], [['speedup', 8, '>= 8']]), results([], [['speedup', 7, '>= 8']]))[0]
        ?.regression,
    ).toBe(true);
  });

  it('skips cases and ratios that are new in this run', () => {
    expect(compareResults(results([], []), results([['new', 5]], [['r', 1, '<= 2']]))).toEqual([]);
  });
});
