import type { Server } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import { constants } from 'node:os';
import { systemClock } from './internal/clock.js';
import { Emitter } from './internal/emitter.js';
import { HookRunner, RequestTracker } from './shutdown-parts.js';
import type { Clock, HealthRegistry } from './types.js';
import { invalid, v } from './validate.js';

/**
 * One step run after the server drained, in order, with its own timeout.
 *
 * @example
 * declare const relay: { stop(o: { drain: boolean; signal: AbortSignal }): Promise<void> };
 * const stopRelay: ShutdownHook = { name: 'outbox relay', fn: (signal) => relay.stop({ drain: true, signal }), timeoutMs: 5000 };
 */
export interface ShutdownHook {
  /** Shown in events and logs, e.g. `outbox relay` or `pg pool`. */
  name: string;
  /** Its signal aborts when the hook's timeout or the whole shutdown's timeout runs out. */
  fn: (signal: AbortSignal) => unknown;
  /** Default 5000 ms. */
  timeoutMs?: number | undefined;
}

/**
 * A hook given as a bare function, as terminus users write them: it runs with the default 5000 ms timeout,
 * and events and logs name it by the function's name, or `hook[i]` when it has none.
 *
 * @example
 * import type { ShutdownHookFn } from '@oms/health';
 * declare const pool: { end(): Promise<void> };
 * const closePool: ShutdownHookFn = async function closePool() {
 *   await pool.end();
 * };
 */
export type ShutdownHookFn = (signal: AbortSignal) => unknown;

/**
 * A request that was still running at some point of the shutdown. Query strings are left out (tokens).
 *
 * @example
 * declare const shutdown: GracefulShutdown;
 * declare const log: { error(msg: string): void };
 * shutdown.on('forced', (e) => {
 *   for (const r of e.inFlight as InFlightRequest[]) log.error(`${r.method} ${r.path} cut after ${r.ageMs} ms`);
 * });
 */
export interface InFlightRequest {
  method: string;
  path: string;
  /** How long it had been running, in ms. */
  ageMs: number;
}

/**
 * Where a graceful shutdown is: `running`, then `draining` (readiness fails), `closing`, `waiting` (for
 * in-flight requests), `hooks`, `exiting`.
 *
 * @example
 * declare const shutdown: GracefulShutdown;
 * declare const res: import('node:http').ServerResponse;
 * const phase: ShutdownPhase = shutdown.phase;
 * if (phase !== 'running') res.setHeader('connection', 'close');
 */
export type ShutdownPhase = 'running' | 'draining' | 'closing' | 'waiting' | 'hooks' | 'exiting';

/**
 * A structured log line of the shutdown (only the noteworthy ones: failures and forced exits).
 *
 * @example
 * declare const options: GracefulShutdownOptions;
 * declare const logger: Record<'info' | 'error', (obj: object, msg: string) => void>;
 * gracefulShutdown({ ...options, log: (entry: ShutdownLogEntry) => logger[entry.level](entry, entry.msg) });
 */
export interface ShutdownLogEntry {
  level: 'info' | 'error';
  msg: string;
  [key: string]: unknown;
}

/**
 * Events of a graceful shutdown.
 *
 * @example
 * declare const shutdown: GracefulShutdown;
 * declare const log: { info(obj: object, msg?: string): void };
 * shutdown.on('hook', (e: ShutdownEvents['hook']) => log.info({ hook: e.name, ok: e.ok, ms: e.durationMs }));
 * shutdown.on('exit', (e: ShutdownEvents['exit']) => log.info({ code: e.code }, 'bye'));
 */
export interface ShutdownEvents {
  phase: { phase: ShutdownPhase; time: number; inFlight: number; reason?: string };
  hook: { name: string; ok: boolean; durationMs: number; error?: string };
  forced: {
    reason: 'signal' | 'timeout';
    signal?: string;
    phase: ShutdownPhase;
    inFlight: InFlightRequest[];
    hook?: string;
  };
  exit: { code: number; durationMs: number };
}

/**
 * Options of {@link gracefulShutdown}.
 *
 * @example
 * declare const server: import('node:http').Server;
 * declare const registry: HealthRegistry;
 * declare const pool: import('pg').Pool;
 * const options: GracefulShutdownOptions = {
 *   server, registry, drainDelayMs: 5000, timeoutMs: 25_000,
 *   hooks: [{ name: 'pg pool', fn: () => pool.end() }],
 * };
 * gracefulShutdown(options);
 */
export interface GracefulShutdownOptions {
  /** The application's HTTP(S) server (not the probe server). In-flight requests are tracked from now on. */
  server: Server | HttpsServer;
  /** Readiness fails through it at the first signal; closed after the hooks. */
  registry: Pick<HealthRegistry, 'beginShutdown' | 'close'>;
  /** Wait this long after failing readiness before closing the listener: at least one probe period plus
   * the load balancer's reaction time, so no new traffic is routed to a closed port. */
  drainDelayMs: number;
  /** The whole shutdown's budget from the first signal; when it runs out the process exits non-zero. */
  timeoutMs: number;
  /** Run in order after the drain: `{ name, fn, timeoutMs? }` objects or bare (async) functions. */
  hooks?: readonly (ShutdownHook | ShutdownHookFn)[] | undefined;
  /** Default `['SIGTERM', 'SIGINT']`. */
  signals?: readonly NodeJS.Signals[] | undefined;
  /** How the process ends. Default `process.exit`; inject one in tests. */
  exit?: ((code: number) => void) | undefined;
  /** Default: real, ref'd timers, so the process stays up until the shutdown is done. */
  clock?: Clock | undefined;
  /** Where forced exits and hook failures are logged. Default: one JSON line on stderr. `false` silences. */
  log?: ((entry: ShutdownLogEntry) => void) | false | undefined;
}

/**
 * A graceful shutdown controller.
 *
 * @example
 * declare const server: import('node:http').Server;
 * declare const registry: HealthRegistry;
 * declare const log: { info(obj: object): void };
 * const shutdown: GracefulShutdown = gracefulShutdown({ server, registry, drainDelayMs: 5000, timeoutMs: 25_000 });
 * shutdown.on('phase', (e) => log.info({ phase: e.phase, inFlight: e.inFlight }));
 */
export interface GracefulShutdown {
  readonly phase: ShutdownPhase;
  /** Requests running now. */
  inFlight(): InFlightRequest[];
  /** Starts the shutdown as a signal would (or forces it, if already started). Resolves to the exit code. */
  shutdown(reason?: string): Promise<number>;
  on<E extends keyof ShutdownEvents>(event: E, fn: (e: ShutdownEvents[E]) => void): () => void;
  /** Removes the signal handlers and request tracking (when the process keeps running, e.g. in tests). */
  dispose(): void;
}

const stderrLog = (entry: ShutdownLogEntry) => {
  process.stderr.write(
    `${JSON.stringify({ time: new Date().toISOString(), source: '@oms/health', ...entry })}\n`,
  );
};

/** A hook as given, checked and with its name settled once, so events and logs say the same. */
function toHook(h: ShutdownHook | ShutdownHookFn, i: number): ShutdownHook {
  if (typeof h === 'function') return { name: h.name || `hook[${i}]`, fn: h };
  if (!h || typeof h !== 'object' || typeof h.name !== 'string' || typeof h.fn !== 'function') {
    invalid(`hooks[${i}] must be a function or { name: string, fn: (signal) => unknown, timeoutMs? }`);
  }
  if (h.timeoutMs !== undefined) v.positiveFinite(`hooks[${i}].timeoutMs (${h.name})`, h.timeoutMs);
  return h;
}

/**
 * Handles SIGTERM/SIGINT in the order Kubernetes needs: readiness fails at once; after `drainDelayMs` the
 * listener closes and idle keep-alive connections are dropped; tracked in-flight requests finish; `hooks`
 * run in order, each with its own timeout; the process exits 0. Liveness keeps passing throughout. A second
 * signal, or `timeoutMs` running out, exits non-zero and logs what was still in flight.
 *
 * @example
 * import http from 'node:http';
 * import { gracefulShutdown, type HealthRegistry } from '@oms/health';
 * declare const app: http.RequestListener;
 * declare const health: HealthRegistry;
 * declare const relay: { stop(o: { drain: boolean }): Promise<void> };
 * declare const pool: import('pg').Pool;
 * const server = http.createServer(app).listen(8080);
 * gracefulShutdown({
 *   server, registry: health, drainDelayMs: 5000, timeoutMs: 25_000,
 *   hooks: [
 *     { name: 'outbox relay', fn: () => relay.stop({ drain: true }), timeoutMs: 5000 },
 *     async function closePgPool() {
 *       await pool.end();
 *     },
 *   ],
 * });
 */
export function gracefulShutdown(opts: GracefulShutdownOptions): GracefulShutdown {
  if (!opts || typeof opts !== 'object') invalid('gracefulShutdown(options) needs an object');
  const server = opts.server as Partial<Server> | undefined;
  if (!server || typeof server.close !== 'function' || typeof server.on !== 'function') {
    invalid(
      'gracefulShutdown({ server }) needs a node:http or node:https server (for a Fastify instance, import gracefulShutdown from @oms/health/fastify)',
    );
  }
  return shutdownSequence(opts, {
    server: opts.server,
    close: () => {
      opts.server.close();
      opts.server.closeIdleConnections?.();
      return undefined;
    },
  });
}

/**
 * How the sequence stops the application server at the `closing` step. Requests are tracked on `server`;
 * `close()` stops accepting, and what it returns is awaited after the in-flight requests (the Fastify
 * adapter drains through `app.close()` this way). Not part of the public surface.
 */
export interface DrainTarget {
  server: Server | HttpsServer;
  close(): PromiseLike<unknown> | undefined;
}

/** The shutdown sequence itself, for `gracefulShutdown` and the framework adapters. */
export function shutdownSequence(
  opts: Omit<GracefulShutdownOptions, 'server'>,
  target: DrainTarget,
): GracefulShutdown {
  if (!opts.registry || typeof opts.registry.beginShutdown !== 'function') {
    invalid('gracefulShutdown({ registry }) needs a health registry');
  }
  v.nonNegativeFinite('drainDelayMs', opts.drainDelayMs);
  v.positiveFinite('timeoutMs', opts.timeoutMs);
  if (opts.timeoutMs <= opts.drainDelayMs) {
    invalid(`timeoutMs (${opts.timeoutMs}) must be greater than drainDelayMs (${opts.drainDelayMs})`);
  }
  const run = new ShutdownRun(opts, target, (opts.hooks ?? []).map(toHook));
  const handlers = new Map<NodeJS.Signals, () => void>();
  for (const sig of [...(opts.signals ?? ['SIGTERM', 'SIGINT'])]) {
    const h = () => void run.start(sig, sig);
    handlers.set(sig, h);
    process.on(sig, h);
  }
  let disposed = false;
  return {
    get phase() {
      return run.phase;
    },
    inFlight: () => run.requests.list(),
    shutdown: (reason = 'shutdown()') => run.start(reason),
    on: (event, fn) => run.events.on(event, fn),
    dispose() {
      if (disposed) return;
      disposed = true;
      for (const [sig, h] of handlers) process.off(sig, h);
      handlers.clear();
      run.stopTracking();
    },
  };
}

/** One shutdown, step by step: the runbook of `gracefulShutdown`. */
class ShutdownRun {
  readonly events = new Emitter<ShutdownEvents>();
  readonly requests: RequestTracker;
  phase: ShutdownPhase = 'running';
  readonly #o: Omit<GracefulShutdownOptions, 'server'>;
  readonly #target: DrainTarget;
  readonly #hookList: ShutdownHook[];
  // Shutdown is foreground work: the drain and hook timers are ref'd, so the process lives until it is done.
  readonly #clock: Clock;
  readonly #exit: (code: number) => void;
  readonly #log: ((entry: ShutdownLogEntry) => void) | undefined;
  readonly #hooks: HookRunner;
  #startedAt = 0;
  #exited = false;
  #timeoutTimer: unknown;
  #sleepTimer: unknown;
  #exitCode: Promise<number> | undefined;
  #resolveExit: ((code: number) => void) | undefined;

  constructor(opts: Omit<GracefulShutdownOptions, 'server'>, target: DrainTarget, hooks: ShutdownHook[]) {
    this.#o = opts;
    this.#target = target;
    this.#hookList = hooks;
    this.#clock = v.clock(opts.clock, systemClock);
    this.#exit = opts.exit ?? ((code: number) => process.exit(code));
    this.#log = opts.log === false ? undefined : (opts.log ?? stderrLog);
    this.#hooks = new HookRunner(this.#clock, this.events, this.#log);
    this.requests = new RequestTracker(this.#clock, () => this.phase !== 'running');
    // First in line: a synchronous handler (`res.end('hello')`) has sent its headers by the time a listener
    // added after it runs, and would keep `Connection: keep-alive` through the drain.
    target.server.prependListener('request', this.requests.onRequest);
  }

  stopTracking(): void {
    this.#target.server.off('request', this.requests.onRequest);
  }

  start(reason: string, signal?: NodeJS.Signals): Promise<number> {
    if (this.#exitCode) {
      this.#force('signal', signal);
      return this.#exitCode;
    }
    this.#exitCode = new Promise<number>((r) => {
      this.#resolveExit = r;
    });
    this.#sequence(reason).catch((e: unknown) => {
      this.#log?.({
        level: 'error',
        msg: `graceful shutdown failed: ${e instanceof Error ? e.message : String(e)}`,
      });
      this.#finish(1);
    });
    return this.#exitCode;
  }

  async #sequence(reason: string): Promise<void> {
    const clock = this.#clock;
    this.#startedAt = clock.now();
    this.#o.registry.beginShutdown();
    this.#setPhase('draining', reason);
    this.requests.closeAll();
    this.#timeoutTimer = clock.setTimeout(() => this.#force('timeout'), this.#o.timeoutMs);

    await new Promise<void>((r) => {
      this.#sleepTimer = clock.setTimeout(r, this.#o.drainDelayMs);
    });
    // A process that stalled through the drain (a GC pause, a starved CPU) runs this timer before it reads the
    // sockets: a request that arrived meanwhile sits unparsed on a connection that still looks idle, and closing
    // idle connections now would reset it. One turn of the poll phase parses it, so it is served instead.
    await new Promise<void>((r) => setImmediate(r));
    if (this.#exited) return;
    this.#setPhase('closing');
    const closed = Promise.resolve(this.#target.close()).then(
      () => true,
      (e: unknown) => {
        this.#log?.({
          level: 'error',
          msg: `closing the server failed: ${e instanceof Error ? e.message : String(e)}`,
        });
        return false;
      },
    );

    this.#setPhase('waiting');
    await this.requests.idle();
    if (this.#exited) return;
    // connections whose last response was already streaming before the signal are idle now
    this.#target.server.closeIdleConnections?.();
    let ok = await closed;
    if (this.#exited) return;

    this.#setPhase('hooks');
    for (const h of this.#hookList) {
      if (this.#exited) return;
      if (!(await this.#hooks.run(h))) ok = false;
    }
    if (this.#exited) return;
    try {
      await this.#o.registry.close();
    } catch {
      // the registry's close only clears timers; nothing to report
    }
    this.#finish(ok ? 0 : 1);
  }

  #setPhase(p: ShutdownPhase, reason?: string): void {
    this.phase = p;
    this.events.emit('phase', {
      phase: p,
      time: this.#clock.now(),
      inFlight: this.requests.size,
      ...(reason ? { reason } : {}),
    });
  }

  #force(reason: 'signal' | 'timeout', signal?: NodeJS.Signals): void {
    if (this.#exited) return;
    const list = this.requests.list();
    const phase = this.phase;
    const hook = this.#hooks.current;
    const e: ShutdownEvents['forced'] = {
      reason,
      phase,
      inFlight: list,
      ...(signal ? { signal } : {}),
      ...(hook ? { hook } : {}),
    };
    this.events.emit('forced', e);
    this.#log?.({
      level: 'error',
      msg:
        reason === 'timeout'
          ? `graceful shutdown timed out after ${this.#o.timeoutMs} ms in phase ${phase}; forcing exit`
          : `second ${signal ?? 'signal'} during graceful shutdown (phase ${phase}); forcing exit`,
      phase,
      inFlight: list,
      ...(hook ? { hook } : {}),
    });
    const signum = signal ? (constants.signals as Record<string, number>)[signal] : undefined;
    this.#finish(signum ? 128 + signum : 1);
  }

  #finish(code: number): void {
    if (this.#exited) return;
    this.#exited = true;
    this.phase = 'exiting';
    const clock = this.#clock;
    if (this.#timeoutTimer !== undefined) clock.clearTimeout(this.#timeoutTimer);
    // when exit is injected the process lives on: a forced exit must not leave the drain timer behind
    if (this.#sleepTimer !== undefined) clock.clearTimeout(this.#sleepTimer);
    this.#hooks.abortAll();
    this.events.emit('exit', { code, durationMs: clock.now() - this.#startedAt });
    // signal handlers stay until dispose(): a late signal must not fall back to Node's default kill
    this.stopTracking();
    this.#resolveExit?.(code);
    this.#exit(code);
  }
}
