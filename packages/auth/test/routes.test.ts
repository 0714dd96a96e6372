import { describe, expect, it } from 'vitest';
import { routePolicy } from '../src/index.js';

const routes = routePolicy({
  'GET /livez': 'public',
  'GET /': 'public',
  'GET /v1/orders': 'orders:list',
  'GET /v1/orders/:id': 'orders:read',
  'PATCH /v1/orders/:id': { permission: 'orders:update', resource: (p) => ({ id: p.id }) },
  'GET /v1/orders/export': 'orders:export',
  'GET /v1/orders/:id/lines/:line': 'orders:read',
  'GET /static/*': 'public',
  'GET /v1/a/b/c': 'x:c',
  'GET /v1/a/:x/d': 'x:d',
});

describe('routePolicy', () => {
  it('gives params as own properties with nothing inherited, whatever the parameter is called', () => {
    const routes = routePolicy({ 'GET /x/:__proto__': 'a:read', 'GET /y/:constructor/:toString': 'a:read' });
    const x = routes.resolve('GET', '/x/1');
    const y = routes.resolve('GET', '/y/2/3');
    if (x.kind !== 'permission' || y.kind !== 'permission') throw new Error('expected matches');
    expect(Object.hasOwn(x.params, '__proto__')).toBe(true);
    expect(Object.getOwnPropertyDescriptor(x.params, '__proto__')?.value).toBe('1');
    expect({ ...y.params }).toEqual({ constructor: '2', toString: '3' });
    const none = routes.resolve('GET', '/x/1');
    expect((none.kind === 'permission' && none.params.hasOwnProperty) || undefined).toBeUndefined();
  });

  it('maps methods and paths with params to permissions or public', () => {
    expect(routes.resolve('GET', '/livez')).toMatchObject({ kind: 'public', route: 'GET /livez' });
    expect(routes.resolve('GET', '/')).toMatchObject({ kind: 'public' });
    expect(routes.resolve('GET', '/v1/orders/42?expand=lines#top')).toEqual({
      kind: 'permission',
      route: 'GET /v1/orders/:id',
      permission: 'orders:read',
      params: { id: '42' },
    });
    expect(routes.resolve('GET', '/v1/orders/7/lines/3')).toMatchObject({ params: { id: '7', line: '3' } });
    expect(routes.resolve('get', '/v1/orders')).toMatchObject({ permission: 'orders:list' });
    expect(routes.resolve('GET', '/static/css/site.css')).toMatchObject({
      kind: 'public',
      params: { '*': 'css/site.css' },
    });
  });

  it('prefers a static segment, and falls back to the parameter when the static branch does not match', () => {
    expect(routes.resolve('GET', '/v1/orders/export')).toMatchObject({ permission: 'orders:export' });
    expect(routes.resolve('GET', '/v1/a/b/c')).toMatchObject({ permission: 'x:c' });
    expect(routes.resolve('GET', '/v1/a/b/d')).toMatchObject({ permission: 'x:d', params: { x: 'b' } });
  });

  it('decodes params and hands them to the resource loader', () => {
    const r = routes.resolve('PATCH', '/v1/orders/a%20b');
    expect(r).toMatchObject({ kind: 'permission', params: { id: 'a b' } });
    if (r.kind === 'permission') expect(r.resource?.(r.params)).toEqual({ id: 'a b' });
  });

  it('falls back from HEAD to GET, but never from another method', () => {
    expect(routes.resolve('HEAD', '/v1/orders/1')).toMatchObject({ permission: 'orders:read' });
    expect(routes.resolve('DELETE', '/v1/orders/1')).toEqual({ kind: 'deny', reason: 'unmapped' });
  });

  it('denies every unmapped route', () => {
    for (const p of ['/v1', '/v1/orders/1/lines', '/LIVEZ', '/v2/orders', '/static']) {
      expect(routes.resolve('GET', p), p).toEqual({ kind: 'deny', reason: 'unmapped' });
    }
    // a trailing slash is an empty segment: a different route, and not one anybody mapped
    for (const p of ['/v1/orders/', '/livez/'])
      expect(routes.resolve('GET', p), p).toMatchObject({ kind: 'deny' });
  });

  it('denies hostile paths: dot segments, encoded slashes and dots, empty segments, control bytes, bad escapes', () => {
    const hostile = [
      '/v1/orders/../admin',
      '/v1/orders/./1',
      '/v1/orders/%2e%2e/admin',
      '/v1/orders/%2E%2E',
      '/v1/orders/1%2Flines%2F2',
      '/v1/orders/1%5Cx',
      '/v1/orders/1\\x',
      '//v1/orders/1',
      '/v1//orders/1',
      '/v1/orders/%00',
      '/v1/orders/%E0%A4%A',
      '/v1/orders/\u0000',
      'v1/orders/1',
      '',
      'http://evil.test/v1/orders/1',
    ];
    for (const p of hostile)
      expect(routes.resolve('GET', p), p).toEqual({ kind: 'deny', reason: 'invalid-path' });
  });

  it('denies 10,000 segments and a megabyte path without stalling', () => {
    const t0 = performance.now();
    expect(routes.resolve('GET', `/v1${'/orders'.repeat(10_000)}`)).toEqual({
      kind: 'deny',
      reason: 'invalid-path',
    });
    expect(routes.resolve('GET', `/${'a'.repeat(1 << 20)}`)).toEqual({
      kind: 'deny',
      reason: 'invalid-path',
    });
    expect(routes.resolve(42 as unknown as string, '/livez')).toEqual({
      kind: 'deny',
      reason: 'invalid-path',
    });
    // not a speed claim: a bound far above any scheduler stall, that a quadratic or exponential walk would blow
    expect(performance.now() - t0).toBeLessThan(2_000);
  });

  it('refuses duplicate and conflicting patterns at construction', () => {
    const bad: Record<string, string>[] = [
      { 'GET /a/:id': 'a:r', 'GET /a/:other': 'a:r' },
      { 'GET /a/:id': 'a:r', 'GET /a/:name/b': 'a:r' },
      { 'GET /a/*': 'a:r', 'GET /a/*/': 'a:r' },
      { 'FETCH /a': 'a:r' },
      { 'get /a': 'a:r' },
      { 'GET a': 'a:r' },
      { 'GET /a/../b': 'a:r' },
      { 'GET /a/*/b': 'a:r' },
      { 'GET /a': 'not-a-permission' },
      { 'GET /a': '' },
    ];
    for (const m of bad) {
      expect(() => routePolicy(m), JSON.stringify(m)).toThrow(
        expect.objectContaining({ code: 'ERR_OMS_AUTH_INVALID_OPTION' }),
      );
    }
  });

  it('builds a table of 5,000 patterns and matches in it', () => {
    const map: Record<string, string> = {};
    for (let i = 0; i < 5_000; i++) map[`GET /v1/r${i}/:id/s${i % 7}`] = `r${i}:read`;
    const big = routePolicy(map);
    expect(big.routes).toHaveLength(5_000);
    expect(big.resolve('GET', '/v1/r4321/9/s2')).toMatchObject({
      permission: 'r4321:read',
      params: { id: '9' },
    });
    expect(big.resolve('GET', '/v1/r4321/9/s3')).toEqual({ kind: 'deny', reason: 'unmapped' });
  });
});
