import { fail, invalidOption, type OmsAuthError } from '../errors.js';
import { backgroundTimeout, type Clock, systemClock } from '../internal/clock.js';
import { Emitter } from '../internal/emitter.js';
import type {
  Jwk,
  JwksFetchEvent,
  JwsAlgorithm,
  KeySource,
  KeySourceEvents,
  RemoteJwksOptions,
  ResolvedKey,
} from '../types.js';
import { v } from '../validate.js';
import { KeySet, keyNotFound, unusableReason } from './key-set.js';
import { raceSignal } from './signal.js';

type Reason = JwksFetchEvent['reason'];

/** The settings of one source, checked once. */
interface Settings {
  readonly url: string;
  readonly cooldownMs: number;
  readonly cacheMaxAgeMs: number;
  readonly timeoutMs: number;
  readonly staleWhileErrorMs: number;
  readonly maxBytes: number;
  readonly headers: Record<string, string>;
  readonly fetch: NonNullable<RemoteJwksOptions['fetch']>;
  readonly clock: Clock;
}

/** What the last successful fetch gave, and when. */
interface Fresh {
  readonly set: KeySet;
  readonly at: number;
}

/** A fetch in progress, shared by every caller (single flight). */
interface Flight {
  readonly promise: Promise<KeySet>;
  /** The timeout's handle: a background fetch's is unref'd until an awaiting caller joins. */
  readonly timer: unknown;
}

const MAX_KEYS = 100;

const rejectOnAbort = (signal: AbortSignal) =>
  new Promise<never>((_, reject) =>
    signal.addEventListener('abort', () => reject(signal.reason), { once: true }),
  );

class JwksFetchError extends Error {
  constructor(
    readonly kind: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

class RemoteJwks implements KeySource {
  readonly kind = 'remote-jwks' as const;
  readonly symmetric = false;
  readonly #s: Settings;
  readonly #events = new Emitter<KeySourceEvents>();
  #fresh: Fresh | undefined;
  #flight: Flight | undefined;
  /** When the last fetch started, for the cooldown. */
  #lastAttemptAt = Number.NEGATIVE_INFINITY;
  /** The last fetch's failure, cleared by the next success: while set, a missing key is a 503, not a 401. */
  #lastError: JwksFetchError | undefined;
  #refreshTimer: unknown;
  #closed = false;

  constructor(s: Settings) {
    this.#s = s;
  }

  getKey(alg: JwsAlgorithm, kid: string | undefined, signal?: AbortSignal): Promise<ResolvedKey> {
    // The common case without an async frame: fresh keys that hold the token's key.
    const fresh = this.#fresh;
    if (fresh !== undefined && this.#s.clock.now() < fresh.at + this.#s.cacheMaxAgeMs) {
      const found = fresh.set.find(alg, kid);
      if (found !== undefined && found !== 'ambiguous') return found.resolve(alg);
    }
    return this.#getKey(alg, kid, signal);
  }

  async #getKey(alg: JwsAlgorithm, kid: string | undefined, signal?: AbortSignal): Promise<ResolvedKey> {
    const { clock, cacheMaxAgeMs, staleWhileErrorMs, cooldownMs } = this.#s;
    const now = clock.now();
    let set: KeySet;
    const fresh = this.#fresh;
    if (fresh === undefined || now >= fresh.at + cacheMaxAgeMs + staleWhileErrorMs) {
      // Nothing usable: this request waits for a fetch, unless one failed within the cooldown (then the IdP
      // is not hammered by every request of an outage).
      if (
        this.#flight === undefined &&
        this.#lastError !== undefined &&
        now - this.#lastAttemptAt < cooldownMs
      ) {
        throw this.#unavailable();
      }
      set = await this.#refresh(fresh === undefined ? 'initial' : 'expired', signal);
    } else {
      set = fresh.set;
      if (now >= fresh.at + cacheMaxAgeMs && now - this.#lastAttemptAt >= cooldownMs) {
        this.#refresh('background').catch(() => {});
      }
    }
    let found = set.find(alg, kid);
    if (found === undefined && kid !== undefined) {
      if (this.#flight !== undefined) {
        set = await this.#join(this.#flight, signal);
        found = set.find(alg, kid);
      } else if (clock.now() - this.#lastAttemptAt >= cooldownMs) {
        set = await this.#refresh('unknown-kid', signal);
        found = set.find(alg, kid);
      }
    }
    if (found === undefined || found === 'ambiguous') {
      // While the IdP cannot be reached, a kid we do not know may be a key it just rotated in: 503, not 401.
      if (found === undefined && kid !== undefined && this.#lastError !== undefined)
        throw this.#unavailable();
      throw keyNotFound(alg, kid, found);
    }
    return found.resolve(alg);
  }

  on<K extends keyof KeySourceEvents>(event: K, fn: (e: KeySourceEvents[K]) => void): () => void {
    return this.#events.on(event, fn);
  }

  /** Fetches now (single flight with any fetch in progress) and resolves once the keys are in. */
  async refresh(signal?: AbortSignal): Promise<void> {
    await this.#refresh('manual', signal);
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#refreshTimer !== undefined) this.#s.clock.clearTimeout(this.#refreshTimer);
    this.#refreshTimer = undefined;
    this.#events.clear();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #unavailable(cause: unknown = this.#lastError): OmsAuthError {
    const e = fail(
      'ERR_OMS_AUTH_KEYS_UNAVAILABLE',
      `the JWKS could not be fetched (${this.#lastError?.kind ?? 'unknown'}) and no usable keys are cached`,
      cause,
    );
    // The next fetch a request may cause is after the cooldown: a client retrying sooner meets this same answer.
    const { clock, cooldownMs } = this.#s;
    e.retryAfterMs = Math.max(1_000, this.#lastAttemptAt + cooldownMs - clock.now());
    return e;
  }

  /** Starts a fetch, or joins the one in progress. A caller passing `signal` (or awaiting) keeps its timer ref'd. */
  #refresh(reason: Reason, signal?: AbortSignal): Promise<KeySet> {
    const awaited = reason !== 'background';
    if (this.#flight !== undefined) return awaited ? this.#join(this.#flight, signal) : this.#flight.promise;
    this.#lastAttemptAt = this.#s.clock.now();
    const controller = new AbortController();
    const onTimeout = () =>
      controller.abort(new JwksFetchError('timeout', `JWKS fetch timed out after ${this.#s.timeoutMs} ms`));
    // The bound of a fetch someone awaits holds the process open; a background refresh never does.
    const timer = awaited
      ? this.#s.clock.setTimeout(onTimeout, this.#s.timeoutMs)
      : backgroundTimeout(this.#s.clock, onTimeout, this.#s.timeoutMs);
    const promise = this.#fetch(reason, controller.signal).finally(() => {
      this.#s.clock.clearTimeout(timer);
      this.#flight = undefined;
    });
    const flight: Flight = { promise, timer };
    this.#flight = flight;
    return awaited ? raceSignal(promise, signal) : promise;
  }

  #join(flight: Flight, signal: AbortSignal | undefined): Promise<KeySet> {
    (flight.timer as { ref?: () => unknown } | null)?.ref?.();
    return raceSignal(flight.promise, signal);
  }

  async #fetch(reason: Reason, signal: AbortSignal): Promise<KeySet> {
    const started = performance.now();
    const done = (e: Omit<JwksFetchEvent, 'reason' | 'durationSec'>) => {
      if (this.#events.has('fetch')) {
        this.#events.emit('fetch', { reason, durationSec: (performance.now() - started) / 1000, ...e });
      }
    };
    try {
      // The timeout settles the fetch even when a fetch implementation ignores its signal.
      const jwks = await Promise.race([this.#download(signal), rejectOnAbort(signal)]);
      const { set, retired } = KeySet.next(this.#fresh?.set, jwks);
      this.#fresh = { set, at: this.#s.clock.now() };
      this.#lastError = undefined;
      done({ outcome: 'ok', keys: set.records.length });
      if (retired > 0) this.#events.emit('retired', { count: retired });
      this.#schedule(this.#s.cacheMaxAgeMs);
      return set;
    } catch (e) {
      const err =
        e instanceof JwksFetchError
          ? e
          : signal.aborted && signal.reason instanceof JwksFetchError
            ? signal.reason
            : new JwksFetchError('network', 'the JWKS request failed', { cause: e });
      this.#lastError = err;
      done({ outcome: 'error', error: err.kind });
      // Keys we still hold keep working; the next background attempt waits out the cooldown.
      if (this.#fresh !== undefined) this.#schedule(this.#s.cooldownMs);
      throw this.#unavailable(err);
    }
  }

  #schedule(ms: number): void {
    if (this.#closed) return;
    if (this.#refreshTimer !== undefined) this.#s.clock.clearTimeout(this.#refreshTimer);
    this.#refreshTimer = backgroundTimeout(
      this.#s.clock,
      () => {
        this.#refreshTimer = undefined;
        this.#refresh('background').catch(() => {});
      },
      ms,
    );
  }

  async #download(signal: AbortSignal): Promise<Jwk[]> {
    const { url, maxBytes } = this.#s;
    const res = await this.#s.fetch(url, {
      signal,
      headers: { accept: 'application/json', ...this.#s.headers },
    });
    if (res.status !== 200) {
      await res.body?.cancel().catch(() => {});
      throw new JwksFetchError(`http-${res.status}`, `the JWKS endpoint answered ${res.status}`);
    }
    const declared = Number(res.headers.get('content-length') ?? '0');
    if (declared > maxBytes) {
      await res.body?.cancel().catch(() => {});
      throw new JwksFetchError('too-large', `the JWKS is larger than ${maxBytes} bytes`);
    }
    const text = await res.text();
    if (text.length > maxBytes)
      throw new JwksFetchError('too-large', `the JWKS is larger than ${maxBytes} bytes`);
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (cause) {
      throw new JwksFetchError('invalid-json', 'the JWKS is not JSON', { cause });
    }
    const keys = (doc as { keys?: unknown } | null)?.keys;
    if (!Array.isArray(keys)) throw new JwksFetchError('invalid-jwks', 'the JWKS has no keys array');
    // Keys we cannot use (encryption keys, secrets, private keys, unknown types) are skipped, not fatal.
    const usable = keys.filter((k) => unusableReason(k) === undefined).slice(0, MAX_KEYS) as Jwk[];
    // An empty set would turn every token into a 401; keeping the previous keys is the safer reading.
    if (usable.length === 0) throw new JwksFetchError('invalid-jwks', 'the JWKS has no usable signing key');
    return usable;
  }
}

/**
 * A `KeySource` of a remote JWKS; `refresh()` forces a fetch.
 *
 * @example
 * const keys: RemoteKeySource = remoteJwks('https://idp.example.com/.well-known/jwks.json');
 * await keys.refresh(AbortSignal.timeout(5_000)); // warm up before taking traffic
 */
export interface RemoteKeySource extends KeySource {
  readonly kind: 'remote-jwks';
  refresh(signal?: AbortSignal): Promise<void>;
}

/**
 * Keys from an IdP's JWKS endpoint that survive its outages:
 * - an unknown `kid` triggers at most one fetch per `cooldownMs` (a storm of random kids makes one fetch);
 * - fetches are single-flight, bounded by `timeoutMs`, and refreshed in the background after `cacheMaxAgeMs`;
 * - while the IdP is down, the last good keys keep verifying for `staleWhileErrorMs` past their age;
 * - after that, verification fails with `ERR_OMS_AUTH_KEYS_UNAVAILABLE` (HTTP 503), never a 401.
 *
 * Only public signing keys are used; `jku`, `x5u` and embedded `jwk` headers of tokens are never followed.
 *
 * @example
 * import { createVerifier, remoteJwks } from '@oms/auth';
 * const verifier = createVerifier({
 *   issuer: 'https://idp.example.com/',
 *   audience: 'orders-api',
 *   algorithms: ['RS256'],
 *   keys: remoteJwks('https://idp.example.com/.well-known/jwks.json', { staleWhileErrorMs: 3_600_000 }),
 * });
 */
export function remoteJwks(url: string | URL, opts: RemoteJwksOptions = {}): RemoteKeySource {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalidOption(`remoteJwks(url) needs an absolute URL (got ${JSON.stringify(String(url))})`);
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    throw invalidOption(`remoteJwks(url) needs an http(s) URL (got ${parsed.protocol})`);
  }
  const fetchImpl = opts.fetch ?? ((u, init) => globalThis.fetch(u, { ...init, redirect: 'error' }));
  if (typeof fetchImpl !== 'function') throw invalidOption('remoteJwks: fetch must be a function');
  return new RemoteJwks({
    url: parsed.href,
    cooldownMs: v.durationMs('cooldownMs', opts.cooldownMs ?? 30_000),
    cacheMaxAgeMs: v.durationMs('cacheMaxAgeMs', opts.cacheMaxAgeMs ?? 600_000, { min: 1 }),
    timeoutMs: v.durationMs('timeoutMs', opts.timeoutMs ?? 5_000, { min: 1 }),
    staleWhileErrorMs: v.durationMs('staleWhileErrorMs', opts.staleWhileErrorMs ?? 3_600_000),
    maxBytes: v.integer('maxBytes', opts.maxBytes ?? 1_048_576, { min: 1 }),
    headers: { ...(opts.headers ?? {}) },
    fetch: fetchImpl,
    clock: v.clock(opts.clock, systemClock),
  });
}
