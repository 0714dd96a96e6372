import type { Principal, RevokeTarget } from './types.js';

/** One verified token. */
interface Entry {
  readonly principal: Principal;
  /** The token's `exp` (or the cache's own bound, if sooner), in ms. */
  readonly expiresAt: number;
  /** The key that verified it: once it leaves the key set, so does this entry. */
  readonly handle: { readonly retired: boolean };
}

/**
 * Verified tokens, keyed by the whole token string. Not a digest of a part of it: a cache keyed by a part (the
 * signature, say) answers for a token it never verified, which is how fast-jwt's cache-confusion advisory
 * happened. Exact string equality cannot confuse two tokens. Bounded (least recently used leaves first), no
 * entry outlives its token's `exp`, and only successes enter, so a failure is always re-checked.
 */
export class VerificationCache {
  readonly #entries = new Map<string, Entry>();

  constructor(
    readonly maxEntries: number,
    readonly maxTtlMs: number,
  ) {}

  get size(): number {
    return this.#entries.size;
  }

  get(token: string, now: number): Principal | undefined {
    const e = this.#entries.get(token);
    if (e === undefined) return undefined;
    this.#entries.delete(token);
    if (e.expiresAt <= now || e.handle.retired) return undefined;
    this.#entries.set(token, e); // to the back: most recently used
    return e.principal;
  }

  set(token: string, principal: Principal, expSec: number, handle: Entry['handle'], now: number): void {
    const expiresAt = Math.min(expSec * 1000, now + this.maxTtlMs);
    if (!(expiresAt > now)) return;
    this.#entries.delete(token);
    if (this.#entries.size >= this.maxEntries) {
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
    this.#entries.set(token, { principal, expiresAt, handle });
  }

  /** Drops every entry of a token id or a subject; returns how many. */
  revoke(target: RevokeTarget): number {
    let n = 0;
    for (const [token, e] of this.#entries) {
      const hit =
        'jti' in target ? e.principal.claims.jti === target.jti : e.principal.subject === target.subject;
      if (hit) {
        this.#entries.delete(token);
        n++;
      }
    }
    return n;
  }

  /** Frees the entries of keys that left the key set (they would be refused on their next hit anyway). */
  dropRetired(): void {
    for (const [token, e] of this.#entries) if (e.handle.retired) this.#entries.delete(token);
  }

  clear(): void {
    this.#entries.clear();
  }
}
