import { fakeClock } from '@oms/testkit';
import { describe, expect, it } from 'vitest';
import { createVerifier, isOmsAuthError, type Jwk, localJwks, routePolicy } from '../src/index.js';
import { AUD, b64, ISS, makeKey, NOW_MS, parts, sign } from './fixtures/tokens.js';

/** A small seeded generator, so a failure reproduces. */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('hostile input never crashes or passes', () => {
  it('2,000 mutated and random tokens each get a typed 401 and none verifies', async () => {
    const key = await makeKey('ES256', 'k1');
    const verifier = createVerifier({
      issuer: ISS,
      audience: AUD,
      algorithms: ['ES256'],
      keys: localJwks({ keys: [key.publicJwk as Jwk] }),
      clock: fakeClock(NOW_MS),
    });
    const good = await sign(key);
    const [h, p, s] = parts(good);
    const rand = rng(42);
    const alphabet = 'ABCabc019-_.=+/ \u0000\u00e9\ud83d\ude00"{}';
    const pick = () => alphabet[Math.floor(rand() * alphabet.length)] as string;
    const junk = (n: number) => Array.from({ length: n }, pick).join('');
    const tokens: string[] = [];
    for (let i = 0; i < 2_000; i++) {
      const chars = good.split('');
      const kind = i % 5;
      if (kind === 0) {
        // flip one character anywhere, the last included: a re-spelled signature (same bytes) is refused too
        const at = Math.floor(rand() * chars.length);
        chars[at] = chars[at] === 'A' ? 'B' : 'A';
        tokens.push(chars.join(''));
      } else if (kind === 1) tokens.push(junk(Math.floor(rand() * 400)));
      else if (kind === 2) tokens.push(`${b64(junk(30))}.${p}.${s}`);
      else if (kind === 3) tokens.push(`${h}.${b64(junk(60))}.${s}`);
      else tokens.push(good.slice(0, Math.floor(rand() * good.length)));
    }
    const outcomes = await Promise.all(
      tokens.map((t) =>
        verifier.verify(t).then(
          () => (t === good ? 'same-token' : 'VERIFIED'),
          (e: unknown) => (isOmsAuthError(e) && e.httpStatus === 401 ? 'refused' : `untyped: ${String(e)}`),
        ),
      ),
    );
    const unexpected = outcomes.filter((o) => o !== 'refused' && o !== 'same-token');
    expect(unexpected).toEqual([]);
  });

  it('random request targets resolve to a decision, never an exception', () => {
    const routes = routePolicy({ 'GET /v1/orders/:id': 'orders:read', 'GET /static/*': 'public' });
    const rand = rng(7);
    const alphabet = '/%2e%2f%5c..abc:*?#\u0000\\ \u00e9';
    for (let i = 0; i < 5_000; i++) {
      const path = Array.from(
        { length: Math.floor(rand() * 60) },
        () => alphabet[Math.floor(rand() * alphabet.length)],
      ).join('');
      const r = routes.resolve('GET', path);
      expect(['public', 'permission', 'deny']).toContain(r.kind);
      if (r.kind === 'permission') expect(path.startsWith('/v1/orders/')).toBe(true);
    }
  });
});
