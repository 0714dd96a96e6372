import { fakeClock } from '@oms/testkit';
import { describe, expect, it } from 'vitest';
import { memoryReplayStore } from '../src/index.js';

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
