import { fakeClock } from '@oms/testkit';
import { describe, expect, it } from 'vitest';
import { dpopNonces, memoryReplayStore } from '../src/index.js';

describe('memoryReplayStore', () => {
  it('remembers an id for its ttl, then forgets it', async () => {
    const clock = fakeClock();
    const store = memoryReplayStore({ clock });
    expect(await store.remember('a', 1_000)).toBe(true);
    expect(await store.remember('a', 1_000)).toBe(false);
    clock.advance(999);
    expect(await store.remember('a', 1_000)).toBe(false);
    clock.advance(1);
    expect(await store.remember('a', 1_000)).toBe(true);
  });

  it('refuses new ids when full of live ones instead of forgetting one (which would allow a replay)', async () => {
    const clock = fakeClock();
    const store = memoryReplayStore({ clock, maxEntries: 2 });
    await store.remember('a', 1_000);
    await store.remember('b', 1_000);
    await expect(store.remember('c', 1_000)).rejects.toMatchObject({
      code: 'ERR_OMS_AUTH_REPLAY_STORE_UNAVAILABLE',
    });
    expect(await store.remember('a', 1_000)).toBe(false);
    clock.advance(1_000); // both expire: room again
    expect(await store.remember('c', 1_000)).toBe(true);
  });
});

describe('dpopNonces', () => {
  it('accepts the current and the previous window, and agrees across instances sharing a secret', () => {
    const clock = fakeClock(0);
    const secret = 's'.repeat(32);
    const a = dpopNonces({ secret, rotateMs: 1_000, clock });
    const b = dpopNonces({ secret, rotateMs: 1_000, clock });
    const n0 = a.current();
    expect(b.current()).toBe(n0);
    expect(b.accepts(n0)).toBe(true);
    clock.advance(1_000);
    expect(a.current()).not.toBe(n0);
    expect(a.accepts(n0)).toBe(true); // the previous window
    clock.advance(1_000);
    expect(a.accepts(n0)).toBe(false);
    expect(a.accepts('')).toBe(false);
    expect(dpopNonces({ clock }).accepts(a.current())).toBe(false); // another secret
  });

  it('refuses a short secret', () => {
    expect(() => dpopNonces({ secret: 'short' })).toThrow(
      expect.objectContaining({ code: 'ERR_OMS_AUTH_INVALID_OPTION' }),
    );
  });
});
