import { type ScriptRunner, STALE } from './script-runner.js';
import { CLOCK_SCRIPT } from './scripts.js';

/**
 * A send waiting for the store's first reading of the server clock: until then no command could carry its
 * caller's deadline in server time.
 */
interface Held {
  /** Client time (ms) after which every caller of this send has given up. */
  readonly until: number;
  readonly timeoutMs: number;
  readonly send: () => void;
  readonly fail: (e: unknown) => void;
}

/** What a batch of calls needs for `ServerClock.whenKnown`. */
export interface Timed {
  readonly timeoutMs: number;
}

/**
 * The store's estimate of the Redis server's clock, so each command carries its caller's deadline in server
 * time and a command reaching Redis after its caller gave up charges nothing.
 */
export class ServerClock {
  /** Server time minus client time in µs, estimated from replies; NaN until the first reply. */
  #offsetUs = Number.NaN;
  #samples = 0;
  /** Sends waiting for the first clock reading, in issue order. */
  #held: Held[] = [];
  /** Client time (ms) the clock probe in flight was sent at; NaN when none is. */
  #probeSent = Number.NaN;

  constructor(readonly runner: ScriptRunner) {}

  get known(): boolean {
    return !Number.isNaN(this.#offsetUs);
  }

  /**
   * Latest server time (µs) at which a command issued at client time `at` (ms) may still act: when its caller
   * gives up. The offset estimate errs low, so a late command is dropped early rather than charged late.
   */
  deadline(at: number, timeoutMs: number): number {
    const off = this.#offsetUs;
    // never reached (every send waits for the clock), but a command must never go out without a deadline:
    // 1 µs has always passed, so such a command would do nothing rather than charge whenever it arrives
    if (Number.isNaN(off)) return 1;
    return (at + timeoutMs) * 1000 + off;
  }

  /** Takes the server time (µs) a reply carries. */
  sample(serverUs: number): void {
    // the reply left the server before we read it, so each sample underestimates the offset by the
    // one-way latency; keep the largest recent one
    const s = serverUs - Date.now() * 1000;
    if (s > this.#offsetUs || Number.isNaN(this.#offsetUs) || ++this.#samples > 4096) {
      this.#offsetUs = s;
      this.#samples = 0;
    }
  }

  /**
   * Calls `send(batch, at)` once the clock is known: at once when it is, else behind the first reading, with
   * the calls whose callers gave up meanwhile dropped (`fail(call, STALE)`). `at` is the batch's issue time.
   */
  whenKnown<T extends Timed>(
    batch: T[],
    at: number,
    send: (live: T[], at: number) => void,
    fail: (call: T, e: unknown) => void,
  ): void {
    if (this.known) {
      send(batch, at);
      return;
    }
    let t = 0;
    for (const c of batch) if (c.timeoutMs > t) t = c.timeoutMs;
    this.hold({
      until: at + t,
      timeoutMs: t,
      send: () => {
        // a call whose caller gave up while the clock was read is not sent at all
        const now = Date.now();
        const live: T[] = [];
        for (const c of batch) {
          if (at + c.timeoutMs > now) live.push(c);
          else fail(c, STALE);
        }
        if (live.length > 0) send(live, at);
      },
      fail: (e) => {
        for (const c of batch) fail(c, e);
      },
    });
  }

  /** Resolves once the clock is known; rejects with STALE when that is past `at + timeoutMs`. */
  async waitKnown(at: number, timeoutMs: number): Promise<void> {
    if (this.known) return;
    await new Promise<void>((resolve, reject) => {
      this.hold({ until: at + timeoutMs, timeoutMs, send: resolve, fail: reject });
    });
    if (Date.now() >= at + timeoutMs) throw STALE;
  }

  /**
   * Holds a send until the store knows the server clock. Before the first reply the store cannot state a
   * deadline in server time, and a command sent without one could wait in ioredis's offline queue (a client
   * still connecting, a server that dies or hangs before answering) and charge whenever it finally runs, long
   * after its caller was answered. So the first send asks the server for its time with a script that touches
   * no key, and the calls issued meanwhile go out behind its reply, each with its caller's deadline.
   */
  hold(h: Held): void {
    const now = Date.now();
    const held = this.#held;
    // callers that gave up need nothing sent: an unreachable server cannot make the list grow
    while (held.length > 0 && held[0]!.until <= now) held.shift()!.fail(STALE);
    held.push(h);
    // a probe whose reply the disconnect lost never settles (autoResendUnfulfilledCommands: false): once it is
    // older than this call's bound, send another rather than wait on it for good
    const sent = this.#probeSent;
    if (Number.isNaN(sent) || now - sent >= h.timeoutMs) this.#probe(now);
  }

  #probe(now: number): void {
    this.#probeSent = now;
    this.runner.run(CLOCK_SCRIPT, 0, []).then(
      (raw) => {
        this.sample(raw[0] as number);
        if (this.#probeSent === now) this.#probeSent = Number.NaN;
        const held = this.#held;
        this.#held = [];
        for (const h of held) h.send();
      },
      (e: unknown) => {
        if (this.#probeSent !== now) return;
        this.#probeSent = Number.NaN;
        const held = this.#held;
        this.#held = [];
        for (const h of held) h.fail(e);
      },
    );
  }
}
