import { describe, expect, it } from 'vitest';
import { healthSchema } from './helpers.js';
import { validate } from './json-schema.js';

const good = {
  status: 'warn',
  version: '1',
  releaseId: '1.2.2',
  serviceId: 'orders',
  description: 'health of the order service',
  output: 'cache:responseTime: slow',
  checks: {
    'cache:responseTime': [
      {
        componentType: 'datastore',
        observedValue: 250,
        observedUnit: 'ms',
        status: 'warn',
        time: '2018-01-17T03:36:48Z',
        output: 'slow',
        node: 1,
      },
    ],
    uptime: [{ componentType: 'system', observedValue: 1209600.245, observedUnit: 's', status: 'pass' }],
  },
  links: { about: 'http://api.example.com/about/authz' },
};

describe('the health+json schema and its validator', () => {
  it('accepts the example shaped after the draft', () => {
    expect(validate(healthSchema, good)).toEqual([]);
  });

  it.each([
    ['a missing status', (b: Record<string, unknown>) => delete b.status, 'missing required property status'],
    ['an unknown status', (b: Record<string, unknown>) => (b.status = 'healthy'), 'is not one of'],
    ['a numeric version', (b: Record<string, unknown>) => (b.version = 1), '$.version: expected string'],
    [
      'an unknown top-level key',
      (b: Record<string, unknown>) => (b.uptime = 3),
      'unexpected property uptime',
    ],
    ['checks as an array', (b: Record<string, unknown>) => (b.checks = []), '$.checks: expected object'],
    [
      'a key with two colons',
      (b: Record<string, unknown>) => (b.checks = { 'a:b:c': [{ status: 'pass' }] }),
      'does not match',
    ],
    [
      'a check that is not an array',
      (b: Record<string, unknown>) => (b.checks = { 'a:b': { status: 'pass' } }),
      'expected array',
    ],
    [
      'an empty check array',
      (b: Record<string, unknown>) => (b.checks = { 'a:b': [] }),
      'fewer than 1 items',
    ],
    [
      'a bad entry status',
      (b: Record<string, unknown>) => (b.checks = { 'a:b': [{ status: 'up!' }] }),
      'is not one of',
    ],
    [
      'a non-RFC 3339 time',
      (b: Record<string, unknown>) => (b.checks = { 'a:b': [{ time: '17/01/2018' }] }),
      'not an RFC 3339',
    ],
    [
      'an impossible date',
      (b: Record<string, unknown>) => (b.checks = { 'a:b': [{ time: '2018-13-45T99:00:00Z' }] }),
      'not an RFC 3339',
    ],
    [
      'a numeric observedUnit',
      (b: Record<string, unknown>) => (b.checks = { 'a:b': [{ observedUnit: 5 }] }),
      'expected string',
    ],
    ['a non-string link', (b: Record<string, unknown>) => (b.links = { self: 3 }), 'expected string'],
    ['notes that are not strings', (b: Record<string, unknown>) => (b.notes = [1]), 'expected string'],
    ['a body that is not an object', () => undefined, 'expected object'],
  ])('rejects %s', (_what, mutate, message) => {
    const body = structuredClone(good) as Record<string, unknown>;
    const result = mutate(body);
    const errors = validate(healthSchema, _what === 'a body that is not an object' ? [result] : body);
    expect(errors.join('\n')).toContain(message);
  });

  it('refuses schemas that use keywords it does not implement', () => {
    expect(() => validate({ type: 'object', oneOf: [] }, {})).toThrow(/does not support keyword oneOf/);
  });
});
