import { fakeClock } from '@oms/testkit';
import { describe, expect, it } from 'vitest';
import { type BackupEvents, type BackupLease, type BackupLock, backupManager } from '../src/index.js';
import { memorySource } from './fixtures/memory-source.js';
import { memoryStorage } from './fixtures/memory-storage.js';

const HOUR = 3_600_000;
const START = Date.parse('2026-01-01T00:00:00Z');

function setup(o: { lock?: BackupLock } = {}) {
  const clock = fakeClock(START);
  const source = memorySource();
  const storage = memoryStorage();
  const backups = backupManager({ source, storage, clock, rpoMs: HOUR, ...o });
  const skipped: BackupEvents['skipped']['reason'][] = [];
  backups.on('skipped', (e) => skipped.push(e.reason));
  return { clock, source, storage, backups, skipped };
}

/** A lock another instance may hold. */
function sharedLock() {
  const held = new Set<string>();
  const lock: BackupLock & { held: Set<string> } = {
    held,
    async tryAcquire(key: string): Promise<BackupLease | null> {
      if (held.has(key)) return null;
      held.add(key);
      return { release: async () => void held.delete(key) };
    },
  };
  return lock;
}

describe('healthCheck', () => {
  it('passes within the RPO, warns past it, fails past twice it, passes again after a backup', async () => {
    const { clock, backups } = setup();
    const check = backups.healthCheck();
    expect(await check()).toMatchObject({ status: 'fail', output: 'no backup yet', observedValue: null });
    await backups.create();
    expect(await check()).toMatchObject({ status: 'pass', observedValue: 0, observedUnit: 's' });
    clock.advance(HOUR);
    expect((await check()).status).toBe('pass');
    clock.advance(1_000);
    expect(await check()).toMatchObject({
      status: 'warn',
      observedValue: 3601,
      output: expect.stringMatching(/past the RPO/),
    });
    expect((await backups.status()).rpoBreached).toBe(true);
    clock.advance(HOUR);
    expect(await check()).toMatchObject({ status: 'fail', output: expect.stringMatching(/twice the RPO/) });
    await backups.create();
    expect((await check()).status).toBe('pass');
    expect((await backups.status()).rpoBreached).toBe(false);
  });

  it('fails when the latest verify failed, and recovers after a good verify', async () => {
    const { backups, storage } = setup();
    const m = await backups.create();
    await backups.verify(m.id);
    const s = await backups.status();
    expect(s.lastVerified?.id).toBe(m.id);
    expect(s.rtoMs).toBe(0);
    const key = `${m.id}/archive.json`;
    const good = await (async () => {
      const parts: Buffer[] = [];
      for await (const c of await storage.get(key)) parts.push(Buffer.from(c));
      return Buffer.concat(parts);
    })();
    async function* bad() {
      yield Buffer.from('["tampered"]');
    }
    await storage.put(key, bad());
    await expect(backups.verify(m.id)).rejects.toMatchObject({ code: 'ERR_OMS_BACKUP_CORRUPT' });
    const check = backups.healthCheck();
    expect(await check()).toMatchObject({
      status: 'fail',
      output: expect.stringMatching(/ERR_OMS_BACKUP_CORRUPT/),
    });
    async function* goodBody() {
      yield good;
    }
    await storage.put(key, goodBody());
    await backups.verify(m.id);
    expect((await check()).status).toBe('pass');
  });

  it('healthCheck() without rpoMs is an invalid option', () => {
    const backups = backupManager({ source: memorySource(), storage: memoryStorage() });
    expect(() => backups.healthCheck()).toThrow(
      expect.objectContaining({ code: 'ERR_OMS_BACKUP_INVALID_OPTION' }),
    );
  });
});

describe('schedule', () => {
  it('backs up once per period, aligned to period boundaries, and close() stops it', async () => {
    const { clock, source, backups } = setup();
    const schedule = backups.schedule({ everyMs: HOUR });
    await clock.advanceAsync(0);
    expect(source.dumps).toBe(1);
    await clock.advanceAsync(HOUR / 2);
    expect(source.dumps).toBe(1);
    await clock.advanceAsync(HOUR / 2);
    expect(source.dumps).toBe(2);
    await clock.advanceAsync(3 * HOUR);
    expect(source.dumps).toBe(5);
    const times = (await backups.list()).map((m) => Date.parse(m.time) - START).reverse();
    expect(times).toEqual([0, HOUR, 2 * HOUR, 3 * HOUR, 4 * HOUR]);
    await schedule.close();
    expect(clock.pending()).toBe(0);
    await clock.advanceAsync(5 * HOUR);
    expect(source.dumps).toBe(5);
  });

  it('skips while another instance holds the lock, then finds the period done', async () => {
    const lock = sharedLock();
    const a = setup({ lock });
    lock.held.add('oms-backup:default');
    const schedule = a.backups.schedule({ everyMs: HOUR });
    await a.clock.advanceAsync(0);
    expect(a.source.dumps).toBe(0);
    expect(a.skipped).toEqual(['locked']);
    // The other instance finishes its backup for this period (same storage) and releases the lock.
    await a.backups.create();
    lock.held.delete('oms-backup:default');
    await a.clock.advanceAsync(HOUR / 4);
    expect(a.skipped).toEqual(['locked', 'done']);
    expect(a.source.dumps).toBe(1);
    await a.clock.advanceAsync((3 * HOUR) / 4);
    expect(a.source.dumps).toBe(2);
    await schedule.close();
  });

  it('a lock with only acquire() works too, and manager.close() stops every schedule', async () => {
    const lock = sharedLock();
    const acquireOnly: BackupLock = {
      acquire: async (key: string) => {
        const l = await lock.tryAcquire(key);
        if (!l) throw new Error('timeout');
        return l;
      },
    };
    const { clock, source, backups } = setup({ lock: acquireOnly });
    backups.schedule({ everyMs: HOUR });
    await clock.advanceAsync(0);
    expect(source.dumps).toBe(1);
    expect(lock.held.size).toBe(0);
    await backups.close();
    expect(clock.pending()).toBe(0);
    await expect(backups.create()).rejects.toMatchObject({ code: 'ERR_OMS_BACKUP_CLOSED' });
  });

  it('verifies after each backup, or on its own period with verify.everyMs', async () => {
    const after = setup();
    const s1 = after.backups.schedule({ everyMs: HOUR, verify: {} });
    await after.clock.advanceAsync(2 * HOUR);
    const list = await after.backups.list();
    expect(list.map((m) => m.verification?.ok)).toEqual([true, true, true]);
    await s1.close();

    const own = setup();
    const s2 = own.backups.schedule({ everyMs: HOUR, verify: { everyMs: 4 * HOUR } });
    await own.clock.advanceAsync(0);
    await own.clock.advanceAsync(9 * HOUR);
    const verified = (await own.backups.list())
      .filter((m) => m.verification)
      .map((m) => (Date.parse(m.time) - START) / HOUR);
    // One drill per 4-hour period, each on the newest backup of its moment: hours 0, 4 and 8.
    expect(verified.sort((a, b) => a - b)).toEqual([0, 4, 8]);
    await s2.close();
    expect(own.clock.pending()).toBe(0);
  });

  it('rejects a bad period', () => {
    const { backups } = setup();
    expect(() => backups.schedule({ everyMs: 0 })).toThrow(
      expect.objectContaining({ code: 'ERR_OMS_BACKUP_INVALID_OPTION' }),
    );
  });
});
