import { randomUUID } from 'node:crypto';
import { fakeClock, until } from '@oms/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createVerifier,
  isOmsAuthError,
  type JwksFetchEvent,
  type RemoteJwksOptions,
  remoteJwks,
  type Verifier,
} from '../src/index.js';
import { type JwksServer, jwksServer } from './fixtures/jwks-server.js';
import { AUD, claimsAt, craft, ISS, makeKey, NOW_MS, sign, type TestKey } from './fixtures/tokens.js';

const open: { server: JwksServer; verifier: Verifier }[] = [];
afterEach(async () => {
  for (const o of open.splice(0)) {
    await o.verifier.close();
    await o.server.stop().catch(() => {});
  }
});

async function setup(opts: RemoteJwksOptions = {}, o: { cache?: boolean; realClock?: boolean } = {}) {
  const k1 = await makeKey('RS256', 'k1');
  const server = await jwksServer([k1.publicJwk]);
  const clock = fakeClock(NOW_MS);
  const keys = remoteJwks(server.url, {
    cooldownMs: 1_000,
    cacheMaxAgeMs: 60_000,
    staleWhileErrorMs: 120_000,
    timeoutMs: 2_000,
    ...(o.realClock ? {} : { clock }),
    ...opts,
  });
  const fetches: JwksFetchEvent[] = [];
  const verifier = createVerifier({
    issuer: ISS,
    audience: AUD,
    algorithms: ['RS256'],
    keys,
    clockToleranceSec: 0,
    ...(o.cache ? {} : { cache: false as const }),
    ...(o.realClock ? {} : { clock }),
  });
  verifier.on('jwksFetch', (e) => fetches.push(e));
  open.push({ server, verifier });
  // Tokens valid for as long as the test's fake time can run.
  const token = (k: TestKey, extra: Record<string, unknown> = {}) =>
    sign(k, { claims: { exp: NOW_MS / 1000 + 1e6, ...extra } });
  return { k1, server, clock, keys, verifier, fetches, token };
}

const outcome = (p: Promise<unknown>) =>
  p.then(
    () => 'ok',
    (e: unknown) => (isOmsAuthError(e) ? `${e.code} ${e.httpStatus}` : `not an OmsAuthError: ${String(e)}`),
  );

describe('remoteJwks against a real HTTP server', () => {
  it('fetches once for a burst of cold-start verifications (single flight)', async () => {
    const { k1, server, verifier, token } = await setup();
    const t = await token(k1);
    const results = await Promise.all(Array.from({ length: 50 }, () => outcome(verifier.verify(t))));
    expect(new Set(results)).toEqual(new Set(['ok']));
    expect(server.requests).toBe(1);
  });

  it('keeps verifying with the last good keys for staleWhileErrorMs while the IdP is down, then answers 503', async () => {
    const { k1, server, clock, verifier, fetches, token } = await setup();
    const t = await token(k1);
    expect(await outcome(verifier.verify(t))).toBe('ok');
    await server.stop();
    await clock.advanceAsync(60_000); // the keys are stale now; the background refresh fails
    await until(() => fetches.some((f) => f.outcome === 'error'), {
      timeoutMs: 20_000,
      what: 'a failed background refresh',
    });
    expect(await outcome(verifier.verify(t))).toBe('ok');
    await clock.advanceAsync(119_999);
    expect(await outcome(verifier.verify(t))).toBe('ok');
    await clock.advanceAsync(1);
    expect(await outcome(verifier.verify(t))).toBe('ERR_OMS_AUTH_KEYS_UNAVAILABLE 503');
    // an unknown kid during the outage is a 503 too: it may be a key the IdP just rotated in
    const k2 = await makeKey('RS256', 'k2');
    expect(await outcome(verifier.verify(await token(k2)))).toBe('ERR_OMS_AUTH_KEYS_UNAVAILABLE 503');
    const err = await verifier.verify(t).catch((e: unknown) => e);
    expect(err).toMatchObject({ retryable: true, wwwAuthenticate: undefined });
    // the IdP comes back: the next attempt after the cooldown recovers
    await server.start();
    await clock.advanceAsync(1_000);
    await until(async () => (await outcome(verifier.verify(t))) === 'ok', {
      timeoutMs: 20_000,
      what: 'recovery after the IdP is back',
    });
  });

  it('answers 503, never 401, when the IdP cannot be reached on a cold start (redirects are not followed)', async () => {
    for (const mode of ['error-500', 'not-json', 'empty', 'redirect'] as const) {
      const { k1, server, verifier, fetches, token } = await setup();
      server.mode = mode;
      expect(await outcome(verifier.verify(await token(k1)))).toBe('ERR_OMS_AUTH_KEYS_UNAVAILABLE 503');
      expect(fetches.at(-1)).toMatchObject({ outcome: 'error', reason: 'initial' });
    }
    const { k1, server, verifier, token } = await setup();
    await server.stop();
    expect(await outcome(verifier.verify(await token(k1)))).toBe('ERR_OMS_AUTH_KEYS_UNAVAILABLE 503');
  });

  it('keeps the previous keys when a refresh returns an error page, bad JSON or an empty set', async () => {
    const { k1, server, clock, verifier, fetches, token } = await setup({ staleWhileErrorMs: 3_600_000 });
    const t = await token(k1);
    expect(await outcome(verifier.verify(t))).toBe('ok');
    for (const mode of ['error-500', 'not-json', 'empty'] as const) {
      server.mode = mode;
      const before = fetches.length;
      await clock.advanceAsync(60_000);
      await until(() => fetches.length > before, {
        timeoutMs: 20_000,
        what: `a refresh answered with ${mode}`,
      });
      expect(fetches.at(-1)).toMatchObject({ outcome: 'error' });
      expect(await outcome(verifier.verify(t))).toBe('ok');
    }
  });

  it('fetches at most once per cooldown for a storm of 1,000 random kids', async () => {
    const { k1, server, clock, verifier, token } = await setup();
    expect(await outcome(verifier.verify(await token(k1)))).toBe('ok');
    expect(server.requests).toBe(1);
    const storm = () =>
      Promise.all(
        Array.from({ length: 1_000 }, () =>
          outcome(
            verifier.verify(
              craft({ alg: 'RS256', kid: randomUUID() }, claimsAt({ exp: NOW_MS / 1000 + 1e6 }), 'c2ln'),
            ),
          ),
        ),
      );
    // within the cooldown of the first fetch: no fetch at all
    expect(new Set(await storm())).toEqual(new Set(['ERR_OMS_AUTH_KEY_NOT_FOUND 401']));
    expect(server.requests).toBe(1);
    await clock.advanceAsync(1_000);
    expect(new Set(await storm())).toEqual(new Set(['ERR_OMS_AUTH_KEY_NOT_FOUND 401']));
    expect(server.requests).toBe(2);
    await storm();
    expect(server.requests).toBe(2); // still within the cooldown
    await clock.advanceAsync(1_000);
    await storm();
    expect(server.requests).toBe(3);
  });

  it('picks up a rotated-in key on first sight, and drops cached tokens of a rotated-out key', async () => {
    const { k1, server, clock, verifier, token } = await setup({}, { cache: true });
    const old = await token(k1);
    expect(await outcome(verifier.verify(old))).toBe('ok');
    expect(verifier.cacheSize).toBe(1);
    const k2 = await makeKey('RS256', 'k2');
    server.keys = [k1.publicJwk, k2.publicJwk];
    await clock.advanceAsync(1_000); // past the cooldown
    expect(await outcome(verifier.verify(await token(k2)))).toBe('ok');
    expect(server.requests).toBe(2);
    // k1 leaves the set; the next refresh retires it, and its cached token with it
    server.keys = [k2.publicJwk];
    await clock.advanceAsync(60_000);
    await until(() => server.requests >= 3, { timeoutMs: 20_000, what: 'the background refresh' });
    await until(() => verifier.cacheSize === 1, {
      timeoutMs: 20_000,
      what: 'the cached k1 token to leave the cache',
    });
    expect(await outcome(verifier.verify(old))).toBe('ERR_OMS_AUTH_KEY_NOT_FOUND 401');
  });

  it('bounds a fetch to a hung server by timeoutMs, then answers 503', async () => {
    const { k1, server, verifier, fetches, token } = await setup({ timeoutMs: 200 }, { realClock: true });
    server.mode = 'hang';
    const t0 = Date.now();
    expect(await outcome(verifier.verify(await token(k1)))).toBe('ERR_OMS_AUTH_KEYS_UNAVAILABLE 503');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
    expect(fetches.at(-1)).toMatchObject({ outcome: 'error', error: 'timeout' });
  });

  it("rejects with ERR_OMS_AUTH_ABORTED when the caller's signal aborts a wait for keys", async () => {
    const { k1, server, verifier, token } = await setup({ timeoutMs: 30_000 }, { realClock: true });
    server.mode = 'hang';
    const ac = new AbortController();
    const p = outcome(verifier.verify(await token(k1), { signal: ac.signal }));
    await until(() => server.requests === 1, { timeoutMs: 20_000, what: 'the fetch to start' });
    ac.abort();
    expect(await p).toBe('ERR_OMS_AUTH_ABORTED 499');
  });

  it('skips keys it cannot verify with (private, secret, encryption) and uses the rest', async () => {
    const { k1, server, verifier, token } = await setup();
    server.keys = [
      { kty: 'oct', k: 'c2VjcmV0', kid: 'k1' },
      { ...k1.publicJwk, kid: 'enc', use: 'enc' },
      { ...k1.publicJwk, d: 'AAAA', kid: 'priv' },
      'garbage',
      k1.publicJwk,
    ];
    expect(await outcome(verifier.verify(await token(k1)))).toBe('ok');
  });

  it('refuses a non-http URL and bad options at construction', () => {
    for (const [url, o] of [
      ['file:///etc/passwd', {}],
      ['not a url', {}],
      ['https://idp.test/jwks', { cooldownMs: -1 }],
      ['https://idp.test/jwks', { timeoutMs: 0 }],
    ] as const) {
      expect(() => remoteJwks(url, o)).toThrow(
        expect.objectContaining({ code: 'ERR_OMS_AUTH_INVALID_OPTION' }),
      );
    }
  });
});
