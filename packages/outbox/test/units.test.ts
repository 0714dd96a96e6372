import { fakeClock } from '@oms/testkit';
import { describe, expect, it } from 'vitest';
import { backoffFn } from '../src/backoff.js';
import { isOmsOutboxError, migrationSql, type OutboxMessage } from '../src/index.js';
import { toJson } from '../src/payload.js';
import { keyWaves } from '../src/relay.js';
import { resolveTables } from '../src/tables.js';
import { Waker } from '../src/waker.js';

const m = (id: number, key: string): OutboxMessage => ({
  id: String(id),
  topic: 't',
  key,
  type: 'x',
  payload: null,
  headers: {},
  createdAt: new Date(0),
  attempts: 0,
});

describe('keyWaves', () => {
  it("puts each key's n-th message in wave n, keeping id order inside a wave", () => {
    const waves = keyWaves([m(1, 'a'), m(2, 'b'), m(3, 'a'), m(4, 'c'), m(5, 'a'), m(6, 'b')]);
    expect(waves.map((w) => w.map((x) => `${x.key}${x.id}`))).toEqual([
      ['a1', 'b2', 'c4'],
      ['a3', 'b6'],
      ['a5'],
    ]);
  });
});

describe('backoff', () => {
  it('grows by factor from baseMs, caps at maxMs, and jitter only shortens it', () => {
    const none = backoffFn({ baseMs: 100, maxMs: 1_000, factor: 2, jitter: 0 });
    expect([1, 2, 3, 4, 5, 10].map(none)).toEqual([100, 200, 400, 800, 1_000, 1_000]);
    const full = backoffFn({ baseMs: 100, jitter: 0.5 }, () => 1);
    expect(full(1)).toBe(50);
    expect(backoffFn(undefined, () => 0)(1)).toBe(500);
  });

  it('clamps a user function that returns nonsense to 0 ms, and rejects bad options', () => {
    expect(backoffFn(() => Number.NaN)(1)).toBe(0);
    expect(backoffFn(() => -5)(1)).toBe(0);
    expect(() => backoffFn({ baseMs: 100, maxMs: 50 })).toThrow(/backoff.maxMs/);
    expect(() => backoffFn({ jitter: 2 })).toThrow(/backoff.jitter/);
  });
});

describe('toJson', () => {
  it('serialises JSON and drops an absent optional property, as JSON does', () => {
    expect(toJson('p', { a: 1, b: undefined, c: [true, null, 'x'] })).toBe('{"a":1,"c":[true,null,"x"]}');
    expect(toJson('p', new Date(0))).toBe('"1970-01-01T00:00:00.000Z"');
  });

  it.each([
    ['BigInt', 1n, /BigInt/],
    ['Infinity', { x: Infinity }, /property "x" is Infinity/],
    ['a symbol', { s: Symbol('x') }, /property "s" is a symbol/],
    ['undefined in an array', [1, undefined], /inside an array/],
    ['NUL', 'a\u0000', /NUL/],
    ['undefined itself', undefined, /the value itself/],
  ])('rejects %s with ERR_OMS_OUTBOX_PAYLOAD_NOT_JSON', (_n, value, message) => {
    let err: unknown;
    try {
      toJson('payload', value);
    } catch (e) {
      err = e;
    }
    expect(isOmsOutboxError(err)).toBe(true);
    expect(err).toMatchObject({
      code: 'ERR_OMS_OUTBOX_PAYLOAD_NOT_JSON',
      message: expect.stringMatching(message),
    });
  });
});

describe('tables', () => {
  it('defaults to outbox, outbox_dead and inbox, with the channel named after the schema and table', () => {
    expect(resolveTables(undefined).names).toEqual({ outbox: 'outbox', dead: 'outbox_dead', inbox: 'inbox' });
    expect(resolveTables(undefined).channel).toBe('outbox');
    expect(resolveTables({ schema: 'app', outbox: 'events' }).channel).toBe('app_events');
  });

  it('quotes every name in the SQL script and refuses anything but plain identifiers', () => {
    const script = migrationSql({ schema: 'app' });
    expect(script).toContain('create table if not exists "app"."outbox"');
    expect(script).toContain("pg_notify('app_outbox', '')");
    for (const bad of [{ schema: 'App' }, { outbox: 'a-b' }, { inbox: '' }, { channel: 'x'.repeat(64) }]) {
      expect(() => resolveTables(bad), JSON.stringify(bad)).toThrow(
        expect.objectContaining({ code: 'ERR_OMS_OUTBOX_INVALID_OPTION' }),
      );
    }
  });
});

describe('Waker', () => {
  it('sleeps until the timer or a wake, and never sleeps through a wake that came while busy', async () => {
    const clock = fakeClock();
    const w = new Waker(clock);
    let woke = false;
    void w.wait(1_000).then(() => {
      woke = true;
    });
    await clock.advanceAsync(999);
    expect(woke).toBe(false);
    await clock.advanceAsync(1);
    expect(woke).toBe(true);

    const since = w.generation;
    w.wake(); // arrives while the loop is claiming
    let immediate = false;
    void w.wait(60_000, { since }).then(() => {
      immediate = true;
    });
    await Promise.resolve();
    expect(immediate).toBe(true);

    let early = false;
    void w.wait(60_000).then(() => {
      early = true;
    });
    w.wakeAfter(50);
    await clock.advanceAsync(50);
    expect(early).toBe(true);
    expect(clock.pending()).toBe(0);
  });
});
