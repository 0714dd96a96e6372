import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Emitter } from './internal/emitter.js';
import type { InFlightRequest, ShutdownEvents, ShutdownHook, ShutdownLogEntry } from './shutdown.js';
import type { Clock } from './types.js';

interface Tracked {
  method: string;
  path: string;
  startedAt: number;
  res: ServerResponse;
}

// tells keep-alive clients to not reuse the socket, so none races a request into a closing socket
const markClose = (res: ServerResponse) => {
  if (!res.headersSent) res.setHeader('connection', 'close');
};

/** The requests in flight on the server being drained, and a wait for the last one to finish. */
export class RequestTracker {
  readonly #clock: Clock;
  readonly #closing: () => boolean;
  readonly #tracked = new Set<Tracked>();
  #idleWaiter: (() => void) | undefined;

  /** `closing()`: the shutdown has begun, so every new response closes its connection. */
  constructor(clock: Clock, closing: () => boolean) {
    this.#clock = clock;
    this.#closing = closing;
  }

  readonly onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const t: Tracked = {
      method: req.method ?? 'GET',
      path: (req.url ?? '/').split('?', 1)[0] ?? '/',
      startedAt: this.#clock.now(),
      res,
    };
    this.#tracked.add(t);
    if (this.#closing()) markClose(res);
    res.once('close', () => {
      this.#tracked.delete(t);
      if (this.#tracked.size === 0) this.#idleWaiter?.();
    });
  };

  get size(): number {
    return this.#tracked.size;
  }

  list(): InFlightRequest[] {
    const now = this.#clock.now();
    return [...this.#tracked].map((t) => ({ method: t.method, path: t.path, ageMs: now - t.startedAt }));
  }

  /** Marks every response in flight `Connection: close`. */
  closeAll(): void {
    for (const t of this.#tracked) markClose(t.res);
  }

  idle(): Promise<void> {
    return this.#tracked.size === 0
      ? Promise.resolve()
      : new Promise<void>((r) => {
          this.#idleWaiter = r;
        });
  }
}

/** Runs shutdown hooks one at a time, each with its own (ref'd) timeout and abort signal. */
export class HookRunner {
  readonly #clock: Clock;
  readonly #events: Emitter<ShutdownEvents>;
  readonly #log: ((entry: ShutdownLogEntry) => void) | undefined;
  readonly #aborts = new Set<AbortController>();
  #timer: unknown;
  /** The hook running now, if any. */
  current: string | undefined;

  constructor(
    clock: Clock,
    events: Emitter<ShutdownEvents>,
    log: ((entry: ShutdownLogEntry) => void) | undefined,
  ) {
    this.#clock = clock;
    this.#events = events;
    this.#log = log;
  }

  /** Runs one hook; false when it failed or timed out (already reported as an event and a log line). */
  async run(h: ShutdownHook): Promise<boolean> {
    const clock = this.#clock;
    const limit = h.timeoutMs ?? 5000;
    const controller = new AbortController();
    this.#aborts.add(controller);
    this.current = h.name;
    const t0 = clock.now();
    let timer: unknown;
    try {
      await Promise.race([
        Promise.resolve().then(() => h.fn(controller.signal)),
        new Promise((_, reject) => {
          timer = this.#timer = clock.setTimeout(() => {
            const err = new Error(`hook ${h.name} timed out after ${limit} ms`);
            controller.abort(err);
            reject(err);
          }, limit);
        }),
      ]);
      this.#events.emit('hook', { name: h.name, ok: true, durationMs: clock.now() - t0 });
      return true;
    } catch (e) {
      const error = e instanceof Error ? e.message : String(e);
      this.#events.emit('hook', { name: h.name, ok: false, durationMs: clock.now() - t0, error });
      this.#log?.({ level: 'error', msg: `shutdown hook ${h.name} failed: ${error}`, hook: h.name });
      return false;
    } finally {
      clock.clearTimeout(timer);
      this.#aborts.delete(controller);
      this.current = undefined;
    }
  }

  /** A forced exit: clears the running hook's timer and aborts its signal. */
  abortAll(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    for (const c of this.#aborts) c.abort(new Error('shutdown forced'));
  }
}
