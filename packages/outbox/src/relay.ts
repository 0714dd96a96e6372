import { OmsOutboxError } from './errors.js';
import { backgroundTimeout } from './internal/clock.js';
import { Emitter } from './internal/emitter.js';
import { keyWaves } from './key-waves.js';
import { ListenSession } from './listen-session.js';
import { callPublisher } from './publish-call.js';
import { type Config, configure, errorText } from './relay-options.js';
import { backlog, claim, heartbeat, type Settlement, settle } from './relay-sql.js';
import type {
  OutboxMessage,
  PublishResult,
  Relay,
  RelayEvents,
  RelayOptions,
  RelayState,
  RelayStats,
  StopOptions,
} from './types.js';
import { checkSignal, throwIfAborted, v } from './validate.js';
import { Waker } from './waker.js';

export { keyWaves };

/** How often a relay polls while its listen session is lost (unless `pollMs` is shorter). */
const LOST_LISTEN_POLL_MS = 1_000;

/** Counters since the relay was created. */
interface Totals {
  published: number;
  failed: number;
  deadLettered: number;
}

/**
 * Publishes what `enqueue` wrote. Claims batches with `FOR UPDATE SKIP LOCKED` under a lease renewed by a
 * heartbeat, hands them to the publisher, and settles each message by its own result: published ones are
 * deleted, failed ones retry alone after a backoff, and after `maxAttempts` they move to the dead letters.
 * Several relays (processes) can run on one outbox; a crashed relay's claims are taken over after `leaseMs`.
 *
 * With `ordering: 'per-key'` (the default), a key's next message is published only once the previous one was
 * published or dead-lettered, in id order; other keys never wait for it.
 *
 * @example
 * import { relay, fnPublisher } from '@oms/outbox';
 * import { pgListen } from '@oms/outbox/postgres';
 * import { Kysely, PostgresDialect } from 'kysely';
 * import pg from 'pg';
 * const pool = new pg.Pool();
 * const db = new Kysely<unknown>({ dialect: new PostgresDialect({ pool }) });
 * const listener = new pg.Client();
 * await listener.connect();
 * const r = relay({
 *   db,
 *   listen: pgListen(listener),
 *   publisher: fnPublisher(async (m) => void (await fetch(`https://hooks.example.com/${m.topic}`, { method: 'POST', body: JSON.stringify(m.payload) }))),
 * });
 * r.start();
 * process.once('SIGTERM', async () => {
 *   await r.stop({ drain: true });
 *   await listener.end();
 *   await db.destroy();
 * });
 */
export function relay(opts: RelayOptions): Relay {
  return new OutboxRelay(configure(opts));
}

class OutboxRelay implements Relay {
  readonly #c: Config;
  readonly #events = new Emitter<RelayEvents>();
  readonly #waker: Waker;
  readonly #totals: Totals = { published: 0, failed: 0, deadLettered: 0 };
  /** Ids claimed by this relay's loops and not yet settled: the heartbeat extends exactly these. */
  readonly #claimed = new Set<string>();
  #state: RelayState = 'idle';
  /** Aborts in-flight publishes: `stop({ drain: false })`, or a drain that ran out of time. */
  readonly #abort = new AbortController();
  #loops: Promise<void>[] = [];
  #listen: ListenSession | undefined;
  #heartbeat: unknown;
  /** `pollMs`, or shorter once the listen session is lost. */
  #pollMs: number;
  #stopping: Promise<void> | undefined;

  constructor(c: Config) {
    this.#c = c;
    this.#waker = new Waker(c.clock);
    this.#pollMs = c.pollMs;
  }

  get state(): RelayState {
    return this.#state;
  }

  on<K extends keyof RelayEvents>(event: K, fn: (e: RelayEvents[K]) => void): () => void {
    return this.#events.on(event, fn);
  }

  start(): void {
    if (this.#state === 'running') return;
    if (this.#state !== 'idle') {
      throw new OmsOutboxError(
        'ERR_OMS_OUTBOX_STOPPED',
        'this relay was stopped; create a new one to start again',
      );
    }
    this.#setState('running');
    const { listen, tables } = this.#c;
    if (listen) {
      this.#listen = new ListenSession(listen, tables.channel, this.#c.clock, {
        notify: () => this.#waker.wake(),
        lost: (error) => {
          // without notifications the relay still works, on the poll, until the session is back
          this.#events.emit('error', { phase: 'listen', error });
          this.#pollMs = Math.min(this.#c.pollMs, LOST_LISTEN_POLL_MS);
          this.#waker.wake();
        },
        restored: () => {
          this.#pollMs = this.#c.pollMs;
          // notifications sent while it was away are gone: look once
          this.#waker.wake();
        },
      });
      this.#listen.start();
    }
    this.#scheduleHeartbeat();
    this.#loops = Array.from({ length: this.#c.concurrency }, () => this.#run());
  }

  stop(opts: StopOptions = {}): Promise<void> {
    if (this.#state === 'idle') {
      this.#setState('stopped');
      return Promise.resolve();
    }
    this.#stopping ??= this.#stop(opts);
    return this.#stopping;
  }

  async #stop({ drain = true, timeoutMs }: StopOptions): Promise<void> {
    if (timeoutMs !== undefined) v.durationMs('timeoutMs', timeoutMs);
    this.#setState('stopping');
    this.#waker.cancelAll();
    let timer: unknown;
    if (!drain) this.#abort.abort(new OmsOutboxError('ERR_OMS_OUTBOX_STOPPED', 'the relay is stopping'));
    else if (timeoutMs !== undefined) {
      // ref'd on purpose: the caller awaits this stop, so the timer must keep a bare script alive
      timer = this.#c.clock.setTimeout(
        () =>
          this.#abort.abort(
            new OmsOutboxError(
              'ERR_OMS_OUTBOX_DRAIN_TIMEOUT',
              `the drain did not finish within ${timeoutMs} ms`,
            ),
          ),
        timeoutMs,
      );
    }
    try {
      await Promise.all(this.#loops);
    } finally {
      if (timer !== undefined) this.#c.clock.clearTimeout(timer);
      this.#c.clock.clearTimeout(this.#heartbeat);
      await this.#listen?.close((error) => this.#events.emit('error', { phase: 'listen', error }));
      this.#setState('stopped');
    }
  }

  close(): Promise<void> {
    return this.stop({ drain: true });
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async stats(signal?: AbortSignal): Promise<RelayStats> {
    throwIfAborted(checkSignal(signal));
    const b = await backlog(this.#c.db, this.#c.tables);
    return { ...b, inFlight: this.#claimed.size, ...this.#totals, state: this.#state };
  }

  #setState(to: RelayState): void {
    const from = this.#state;
    if (from === to) return;
    this.#state = to;
    this.#events.emit('stateChange', { from, to });
  }

  /**
   * One claim-publish-settle loop; `concurrency` of them run side by side. A batch's outcomes are settled by the
   * statement that claims the next batch, so a busy loop pays one round trip per batch; they are settled on
   * their own when the loop stops or the combined statement fails.
   */
  async #run(): Promise<void> {
    let failures = 0;
    let pending: Settlement[] = [];
    try {
      while (this.#state === 'running') {
        const since = this.#waker.generation;
        let batch: OutboxMessage[];
        try {
          batch = await claim(this.#c.db, this.#c.tables, {
            relayId: this.#c.relayId,
            limit: this.#c.batchSize,
            leaseMs: this.#c.leaseMs,
            perKey: this.#c.perKey,
            settle: pending,
          });
          failures = 0;
          if (batch.length === 0 && pending.length > 0) {
            // per-key: every due key may have had its head in the batch just settled, which this statement's
            // snapshot still saw; they are due now, so look again at once instead of sleeping
            this.#settled(pending);
            pending = [];
            continue;
          }
          this.#settled(pending);
          pending = [];
        } catch (error) {
          this.#events.emit('error', { phase: 'claim', error });
          // the statement settled nothing either: settle on its own, retrying, before claiming again
          await this.#settle(pending);
          pending = [];
          failures++;
          await this.#waker.wait(Math.min(this.#pollMs, 50 * 2 ** Math.min(failures, 10)));
          continue;
        }
        for (const m of batch) this.#claimed.add(m.id);
        if (batch.length === 0) {
          if (this.#events.has('idle')) this.#events.emit('idle', { at: this.#c.clock.now() });
          await this.#waker.wait(this.#pollMs, { since });
          continue;
        }
        pending = await this.#process(batch);
      }
    } finally {
      await this.#settle(pending);
    }
  }

  /** Publishes a claimed batch; resolves to each message's outcome, for the next claim to settle. */
  async #process(batch: OutboxMessage[]): Promise<Settlement[]> {
    const startedAt = this.#c.clock.now();
    const settlements: Settlement[] = [];
    const counts = { published: 0, failed: 0, deadLettered: 0 };
    try {
      const waves = this.#c.perKey ? keyWaves(batch) : [batch];
      // keys whose head failed and will retry: their later messages must wait for it
      const blocked = new Set<string>();
      for (const wave of waves) {
        const ready = wave.filter((m) => !blocked.has(m.key));
        for (const m of wave) if (blocked.has(m.key)) settlements.push({ id: m.id, outcome: 'release' });
        if (ready.length === 0) continue;
        if (this.#abort.signal.aborted) {
          for (const m of ready) settlements.push({ id: m.id, outcome: 'release' });
          continue;
        }
        const results = await this.#publish(ready);
        const published: OutboxMessage[] = [];
        ready.forEach((m, i) => {
          const r = results[i] as PublishResult | 'aborted';
          if (r === 'aborted') {
            settlements.push({ id: m.id, outcome: 'release' });
          } else if (r.ok) {
            settlements.push({ id: m.id, outcome: 'ok' });
            published.push(m);
          } else {
            const s = this.#failure(m, r);
            settlements.push(s);
            if (s.outcome === 'dead') counts.deadLettered++;
            else blocked.add(m.key);
            counts.failed++;
          }
        });
        counts.published += published.length;
        if (published.length > 0 && this.#events.has('published')) {
          this.#events.emit('published', { messages: published, at: this.#c.clock.now() });
        }
      }
    } finally {
      this.#totals.published += counts.published;
      this.#totals.failed += counts.failed;
      this.#totals.deadLettered += counts.deadLettered;
      if (this.#events.has('batch')) {
        this.#events.emit('batch', {
          size: batch.length,
          ...counts,
          startedAt,
          endedAt: this.#c.clock.now(),
          headers: batch.map((m) => m.headers),
        });
      }
    }
    return settlements;
  }

  /** Forgets settled claims: the heartbeat no longer extends them. */
  #settled(items: readonly Settlement[]): void {
    for (const s of items) this.#claimed.delete(s.id);
  }

  /** Calls the publisher; every failure mode becomes one result per message. */
  #publish(messages: readonly OutboxMessage[]): Promise<readonly (PublishResult | 'aborted')[]> {
    return callPublisher(this.#c.publisher, messages, this.#abort.signal);
  }

  #failure(m: OutboxMessage, r: { ok: false; error: unknown; retryable?: boolean }): Settlement {
    const attempt = m.attempts + 1;
    const error = errorText(r.error);
    const dead = r.retryable === false || attempt >= this.#c.maxAttempts;
    if (dead) {
      this.#events.emit('failed', { message: m, error: r.error, dead: true });
      return { id: m.id, outcome: 'dead', error };
    }
    const delayMs = this.#c.backoff(attempt);
    this.#events.emit('failed', { message: m, error: r.error, dead: false, retryInMs: delayMs });
    this.#waker.wakeAfter(delayMs + 5);
    return { id: m.id, outcome: 'retry', error, delayMs };
  }

  /**
   * Writes a batch's outcomes, retrying while the database is away: until it succeeds the claims stay ours (the
   * heartbeat keeps them), and a relay that gives up would only make the next owner publish them again.
   */
  async #settle(items: Settlement[]): Promise<void> {
    if (items.length === 0) return;
    try {
      for (let failures = 0; ; failures++) {
        try {
          await settle(this.#c.db, this.#c.tables, this.#c.relayId, items);
          return;
        } catch (error) {
          this.#events.emit('error', { phase: 'settle', error });
          // after a lease, another relay owns them anyway: its publish is the one that counts
          if (failures * 200 > this.#c.leaseMs) return;
          await this.#waker.wait(200, { hold: this.#state !== 'running' });
        }
      }
    } finally {
      this.#settled(items);
    }
  }

  #scheduleHeartbeat(): void {
    this.#heartbeat = backgroundTimeout(
      this.#c.clock,
      async () => {
        if (this.#state === 'stopped') return;
        if (this.#claimed.size > 0) {
          try {
            await heartbeat(this.#c.db, this.#c.tables, this.#c.relayId, this.#c.leaseMs, [...this.#claimed]);
          } catch (error) {
            this.#events.emit('error', { phase: 'heartbeat', error });
          }
        }
        if (this.#state === 'running' || this.#state === 'stopping') this.#scheduleHeartbeat();
      },
      this.#c.leaseMs / 3,
    );
  }
}
