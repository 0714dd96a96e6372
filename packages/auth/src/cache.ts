import type { Principal, RevokeTarget } from './types.js';

/** One verified token. */
export interface CacheEntry {
  /** The whole token: an entry answers only to this exact string. */
  readonly token: string;
  readonly principal: Principal;
  /** The token's `cnf.jkt`: a DPoP-bound token is never a hit for a Bearer presentation. */
  readonly jkt: string | undefined;
  /** The token's `exp` (or the cache's own bound, if sooner), in ms. */
  readonly expiresAt: number;
  /** The key that verified it: once it leaves the key set, so does this entry. */
  readonly handle: { readonly retired: boolean };
  /** The audit digest of the token, computed the first time someone asks (see `tokenDigest`). */
  digest: string | undefined;
}

/**
 * Where an entry is filed: the whole token, never a part of it, so the index itself can never point two tokens
 * at one answer. (Hashing a fresh ~1 KB string costs a pass over it per hit; a part would be cheaper, but a cache
 * keyed by a part is the shape of fast-jwt's cache-confusion advisory, and `get` still compares the whole string.)
 */
const indexOf = (token: string): string => token;

/**
 * Verified tokens, answered only for the exact token string that was verified. Not for a part of it: a cache that
 * answers on a part (the signature, say) answers for a token it never verified, which is how fast-jwt's
 * cache-confusion advisory happened. Exact string equality cannot confuse two tokens.
 *
 * Bounded by `maxEntries`, least recently used first in two generations (a hit in the older generation moves the
 * entry to the newer one; when the newer one fills up it becomes the older one and the older one is dropped), so a
 * hit never reorders anything. No entry outlives its token's `exp`, and only successes enter, so a failure is
 * always checked again.
 */
export class VerificationCache {
  #hot = new Map<string, CacheEntry>();
  #cold = new Map<string, CacheEntry>();
  readonly #hotMax: number;

  constructor(
    readonly maxEntries: number,
    readonly maxTtlMs: number,
  ) {
    this.#hotMax = Math.max(1, Math.ceil(maxEntries / 2));
  }

  get size(): number {
    return this.#hot.size + this.#cold.size;
  }

  get(token: string, now: number): CacheEntry | undefined {
    const k = indexOf(token);
    let e = this.#hot.get(k);
    if (e === undefined) {
      e = this.#cold.get(k);
      if (e === undefined || e.token !== token) return undefined;
      this.#cold.delete(k);
      if (e.expiresAt <= now || e.handle.retired) return undefined;
      this.#file(k, e);
      return e;
    }
    if (e.token !== token) return undefined;
    if (e.expiresAt <= now || e.handle.retired) {
      this.#hot.delete(k);
      return undefined;
    }
    return e;
  }

  set(
    token: string,
    principal: Principal,
    jkt: string | undefined,
    expSec: number,
    handle: CacheEntry['handle'],
    now: number,
  ): void {
    const expiresAt = Math.min(expSec * 1000, now + this.maxTtlMs);
    if (!(expiresAt > now)) return;
    const k = indexOf(token);
    this.#hot.delete(k);
    this.#cold.delete(k);
    this.#file(k, { token, principal, jkt, expiresAt, handle, digest: undefined });
  }

  #file(k: string, e: CacheEntry): void {
    if (this.#hot.size >= this.#hotMax) {
      this.#cold = this.#hot;
      this.#hot = new Map();
    }
    if (this.#hot.size + this.#cold.size >= this.maxEntries) {
      const oldest = this.#cold.keys().next();
      if (!oldest.done) this.#cold.delete(oldest.value);
    }
    this.#hot.set(k, e);
  }

  /** Drops every entry of a token id or a subject; returns how many. */
  revoke(target: RevokeTarget): number {
    const hit =
      'jti' in target
        ? (e: CacheEntry) => e.principal.claims.jti === target.jti
        : (e: CacheEntry) => e.principal.subject === target.subject;
    return this.#drop(hit);
  }

  /** Frees the entries of keys that left the key set (they would be refused on their next hit anyway). */
  dropRetired(): void {
    this.#drop((e) => e.handle.retired);
  }

  #drop(hit: (e: CacheEntry) => boolean): number {
    let n = 0;
    for (const map of [this.#hot, this.#cold]) {
      for (const [k, e] of map) {
        if (hit(e)) {
          map.delete(k);
          n++;
        }
      }
    }
    return n;
  }

  clear(): void {
    this.#hot.clear();
    this.#cold.clear();
  }
}
