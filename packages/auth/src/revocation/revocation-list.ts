import { fail, invalidOption, isOmsAuthError } from '../errors.js';
import { backgroundTimeout, type Clock, systemClock } from '../internal/clock.js';
import { Emitter } from '../internal/emitter.js';
import { raceSignal } from '../keys/signal.js';
import type {
  Principal,
  Revocation,
  RevocationList,
  RevocationListEvents,
  RevocationListOptions,
  RevocationStore,
  RevocationTarget,
} from '../types.js';
import { v } from '../validate.js';

const DAY_MS = 86_400_000;
const MAX_VALUE = 1024;

/** The settings of one list, checked once. */
interface Settings {
  readonly store: RevocationStore | undefined;
  readonly pollMs: number;
  readonly retainMs: number;
  readonly timeoutMs: number;
  readonly clock: Clock;
}

/** A store's answer is foreign input: each record is checked before it can refuse (or fail to refuse) anything. */
function isRevocation(r: unknown): r is Revocation {
  const x = r as Partial<Revocation> | null;
  return (
    typeof x === 'object' &&
    x !== null &&
    (x.kind === 'jti' || x.kind === 'subject') &&
    typeof x.value === 'string' &&
    x.value.length > 0 &&
    Number.isFinite(x.notBefore) &&
    Number.isFinite(x.until)
  );
}

class MemoryView implements RevocationList {
  readonly #s: Settings;
  readonly #events = new Emitter<RevocationListEvents>();
  /** In force by token id, and by subject (the latest `notBefore` wins). */
  readonly #jtis = new Map<string, Revocation>();
  readonly #subjects = new Map<string, Revocation>();
  #cursor: string | undefined;
  #synced: boolean;
  /** A read in progress, shared by every caller (single flight). */
  #reading: Promise<void> | undefined;
  /** Why the last read failed while the view was never read: a sync within pollMs answers with it. */
  #firstReadError: { readonly at: number; readonly error: unknown } | undefined;
  /** The timeout of the read in flight. */
  #readTimer: unknown;
  #timer: unknown;
  #closed = false;

  constructor(s: Settings) {
    this.#s = s;
    this.#synced = s.store === undefined;
    if (s.store !== undefined) this.#poll(0);
  }

  get synced(): boolean {
    return this.#synced;
  }

  get size(): number {
    return this.#jtis.size + this.#subjects.size;
  }

  async revoke(target: RevocationTarget, opts?: { signal?: AbortSignal }): Promise<Revocation> {
    const r = this.#revocationOf(target);
    const { store } = this.#s;
    if (store !== undefined) {
      try {
        await raceSignal(store.add(r, opts?.signal), opts?.signal);
      } catch (e) {
        if (isOmsAuthError(e)) throw e;
        throw fail('ERR_OMS_AUTH_REVOCATIONS_UNAVAILABLE', 'the revocation store could not record it', e);
      }
    }
    this.#apply(r, this.#s.clock.now());
    return r;
  }

  check(principal: Principal, now = this.#s.clock.now()): Revocation | undefined {
    if (this.#jtis.size > 0) {
      const jti = principal.claims.jti;
      const r = typeof jti === 'string' ? this.#jtis.get(jti) : undefined;
      if (r !== undefined && r.until > now) return r;
    }
    if (this.#subjects.size > 0) {
      const r = this.#subjects.get(principal.subject);
      if (r !== undefined && r.until > now) {
        const iat = principal.claims.iat;
        // iat has second granularity: a token of the revocation's own second is refused, before or after it.
        if (typeof iat !== 'number' || !(iat * 1000 >= r.notBefore)) return r;
      }
    }
    return undefined;
  }

  sync(signal?: AbortSignal): Promise<void> {
    if (this.#s.store === undefined) return Promise.resolve();
    // Never read yet and the last attempt failed within pollMs: answer at once, so an outage does not make every
    // request wait out a read (the poll keeps trying).
    const failed = this.#firstReadError;
    if (failed !== undefined && this.#s.clock.now() - failed.at < this.#s.pollMs)
      return Promise.reject(failed.error);
    // A read already in flight may have started before the caller's revocation was stored: read again after it.
    // If it is a poll, its timeout now bounds a promise someone awaits, so it must hold the process open.
    (this.#readTimer as { ref?: () => unknown } | undefined)?.ref?.();
    const after = this.#reading ?? Promise.resolve();
    const next = after.then(
      () => this.#read(signal, true),
      () => this.#read(signal, true),
    );
    return raceSignal(next, signal);
  }

  on<K extends keyof RevocationListEvents>(event: K, fn: (e: RevocationListEvents[K]) => void): () => void {
    return this.#events.on(event, fn);
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) this.#s.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#events.clear();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #revocationOf(target: RevocationTarget): Revocation {
    if (typeof target !== 'object' || target === null)
      throw invalidOption('revoke() needs { jti } or { subject }');
    const now = this.#s.clock.now();
    const limit = now + this.#s.retainMs;
    if ('jti' in target) {
      const value = checkValue('jti', target.jti);
      const expiresAt = target.expiresAt ?? limit;
      if (!Number.isFinite(expiresAt)) throw invalidOption('expiresAt must be a time in ms');
      return { kind: 'jti', value, notBefore: now, until: Math.min(expiresAt, limit) };
    }
    if ('subject' in target) {
      const value = checkValue('subject', target.subject);
      const notBefore = target.notBefore ?? now;
      if (!Number.isFinite(notBefore) || notBefore > now) {
        throw invalidOption('notBefore must be a time in ms, not in the future (default: now)');
      }
      return { kind: 'subject', value, notBefore, until: limit };
    }
    throw invalidOption('revoke() needs { jti } or { subject }');
  }

  /** Adds one revocation to the view, merged with one of the same token or subject; emits `revoked` if it is new. */
  #apply(r: Revocation, now: number): void {
    if (r.until <= now) return;
    const map = r.kind === 'jti' ? this.#jtis : this.#subjects;
    const had = map.get(r.value);
    if (had !== undefined && had.until > now && had.notBefore >= r.notBefore && had.until >= r.until) return;
    map.set(
      r.value,
      had === undefined || had.until <= now
        ? r
        : { ...r, notBefore: Math.max(had.notBefore, r.notBefore), until: Math.max(had.until, r.until) },
    );
    this.#events.emit('revoked', r);
  }

  #sweep(now: number): void {
    for (const map of [this.#jtis, this.#subjects]) {
      for (const [k, r] of map) if (r.until <= now) map.delete(k);
    }
  }

  /** One read of the store, bounded by `timeoutMs` (a ref'd timer when a caller awaits it, unref'd for a poll). */
  #read(signal: AbortSignal | undefined, awaited: boolean): Promise<void> {
    const store = this.#s.store as RevocationStore;
    const { clock, timeoutMs } = this.#s;
    const reading = (async () => {
      let page: Awaited<ReturnType<RevocationStore['read']>>;
      let timer: unknown;
      try {
        const timedOut = new Promise<never>((_, reject) => {
          const onTimeout = () =>
            reject(new Error(`the revocation store did not answer within ${timeoutMs} ms`));
          timer = awaited
            ? clock.setTimeout(onTimeout, timeoutMs)
            : backgroundTimeout(clock, onTimeout, timeoutMs);
          this.#readTimer = timer;
        });
        page = await Promise.race([store.read(this.#cursor, signal), timedOut]);
      } catch (e) {
        if (this.#events.has('syncError')) this.#events.emit('syncError', { error: e });
        const err = fail('ERR_OMS_AUTH_REVOCATIONS_UNAVAILABLE', 'the revocation store could not be read', e);
        err.retryAfterMs = Math.max(1_000, this.#s.pollMs);
        if (!this.#synced) this.#firstReadError = { at: clock.now(), error: err };
        throw err;
      } finally {
        clock.clearTimeout(timer);
        if (this.#readTimer === timer) this.#readTimer = undefined;
      }
      const now = this.#s.clock.now();
      this.#sweep(now);
      for (const r of page.revocations) if (isRevocation(r)) this.#apply(r, now);
      this.#cursor = page.cursor ?? this.#cursor;
      this.#synced = true;
      this.#firstReadError = undefined;
    })();
    this.#reading = reading;
    return reading.finally(() => {
      if (this.#reading === reading) this.#reading = undefined;
    });
  }

  #poll(ms: number): void {
    if (this.#closed) return;
    this.#timer = backgroundTimeout(
      this.#s.clock,
      () => {
        this.#timer = undefined;
        (this.#reading ?? this.#read(undefined, false))
          .catch(() => {})
          .finally(() => this.#poll(this.#s.pollMs));
      },
      ms,
    );
  }
}

function checkValue(name: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_VALUE) {
    throw invalidOption(`${name} must be a string of 1 to ${MAX_VALUE} characters`);
  }
  return value;
}

/**
 * A deny list that refuses tokens by `jti`, or every token of a subject issued before a time, for
 * `createVerifier({ revocations })`. Every verification checks it, cache hits included, against a view held in
 * memory, so a check costs two Map lookups and no I/O. With a `store` (`redisRevocationStore()` from
 * `@oms/auth/redis`), `revoke()` resolves once the store holds the revocation, and every instance polls the store
 * every `pollMs` for the others': a revocation made anywhere is in force everywhere within `pollMs`.
 *
 * A verification that is not a cache hit waits for the first read of the store (at most `timeoutMs`), and fails
 * with `ERR_OMS_AUTH_REVOCATIONS_UNAVAILABLE` (HTTP 503) while that read fails (at once within `pollMs` of a failed
 * read); after it, a failing read keeps the view it had and emits `syncError`. Revocations are forgotten after `retainMs`, when no token they refuse can still be
 * valid: set it to at least your longest token lifetime.
 *
 * @example
 * import { createVerifier, hmacSecret, revocationList } from '@oms/auth';
 * const revocations = revocationList();
 * const verifier = createVerifier({
 *   issuer: 'https://idp.example.com/',
 *   audience: 'orders-api',
 *   algorithms: ['HS256'],
 *   keys: hmacSecret(process.env.JWT_SECRET ?? ''),
 *   revocations,
 * });
 * await revocations.revoke({ subject: 'user-1' }); // every token user-1 holds now is refused
 */
export function revocationList(opts: RevocationListOptions = {}): RevocationList {
  if (typeof opts !== 'object' || opts === null)
    throw invalidOption('revocationList(options) needs an options object');
  const { store } = opts;
  if (store !== undefined && (typeof store?.add !== 'function' || typeof store.read !== 'function')) {
    throw invalidOption('store must have add(revocation) and read(cursor), like redisRevocationStore()');
  }
  const storeRetain = store?.retainMs;
  if (storeRetain !== undefined) v.durationMs('store.retainMs', storeRetain, { min: 1 });
  const retainMs = Math.min(
    v.durationMs('retainMs', opts.retainMs ?? DAY_MS, { min: 1 }),
    storeRetain ?? Number.POSITIVE_INFINITY,
  );
  return new MemoryView({
    store,
    pollMs: v.durationMs('pollMs', opts.pollMs ?? 1_000, { min: 1 }),
    retainMs,
    timeoutMs: v.durationMs('timeoutMs', opts.timeoutMs ?? 5_000, { min: 1 }),
    clock: v.clock(opts.clock, systemClock),
  });
}
