import { describe, expect, it } from 'vitest';
import { redactSecrets } from '../src/index.js';

describe('redactSecrets', () => {
  it.each([
    ['a URL password', 'connect postgres://app:hunter2@db:5432/orders failed', 'hunter2'],
    ['a URL password without a user', 'redis://:hunter2@cache:6379 refused', 'hunter2'],
    ['a libpq pair', 'host=db password=hunter2 dbname=orders', 'hunter2'],
    ['a query parameter', 'GET /x?api_key=hunter2&page=1', 'hunter2'],
    ['a quoted value with spaces', 'password: "hunter 2 x"', 'hunter 2 x'],
    ['a JSON key', '{"user":"app","password":"hunter2"}', 'hunter2'],
    ['a bearer token behind its header name', 'authorization: Bearer eyJhbGciOi.hunter2', 'hunter2'],
    ['a bearer token in JSON', '{"authorization":"Bearer eyJhbGciOi.hunter2"}', 'hunter2'],
    ['a basic credential', 'Authorization=Basic aHVudGVyMjpodW50ZXIy', 'aHVudGVy'],
    ['an env-style key with a prefix and a suffix', 'AWS_SECRET_ACCESS_KEY=hunter2 missing', 'hunter2'],
    ['an underscore-prefixed key', 'client_secret=hunter2', 'hunter2'],
  ])('removes %s', (_what, text, secret) => {
    const out = redactSecrets(text);
    expect(out).not.toContain(secret);
    expect(out).toContain('***');
  });

  it.each([
    'password authentication failed for user "app"',
    'connect ECONNREFUSED 127.0.0.1:5432',
    'GET http://payments.internal:8080/livez answered 418, expected 2xx',
    'author: Jane, time: 10:52',
  ])('leaves ordinary diagnostics alone: %s', (text) => {
    expect(redactSecrets(text)).toBe(text);
  });

  it('keeps the host and user of a connection string so the output stays useful', () => {
    expect(redactSecrets('postgres://app:hunter2@db:5432/orders')).toBe('postgres://app:***@db:5432/orders');
  });
});
