import { randomUUID } from 'node:crypto';
import { backoffFn } from './backoff.js';
import { OmsOutboxError } from './errors.js';
import { type Clock, systemClock } from './internal/clock.js';
import { type ResolvedTables, resolveTables } from './tables.js';
import type { Listen, OutboxDb, Publisher, RelayOptions } from './types.js';
import { v } from './validate.js';

/** The options after defaults and checks: the relay trusts these. */
export interface Config {
  readonly db: OutboxDb;
  readonly publisher: Publisher;
  readonly tables: ResolvedTables;
  readonly batchSize: number;
  readonly concurrency: number;
  readonly listen: Listen | undefined;
  readonly pollMs: number;
  readonly perKey: boolean;
  readonly maxAttempts: number;
  readonly backoff: (attempt: number) => number;
  readonly leaseMs: number;
  readonly relayId: string;
  readonly clock: Clock;
}

export function configure(o: RelayOptions): Config {
  if (typeof o !== 'object' || o === null) throw invalid('relay options must be an object');
  if (
    typeof o.db !== 'object' ||
    o.db === null ||
    typeof (o.db as { transaction?: unknown }).transaction !== 'function'
  ) {
    throw invalid('db must be a Kysely instance');
  }
  if (typeof o.publisher?.publish !== 'function')
    throw invalid('publisher must have a publish(messages, signal) method');
  if (o.listen !== undefined && typeof o.listen?.subscribe !== 'function') {
    throw invalid('listen must have a subscribe(channel, onNotify) method');
  }
  if (o.ordering !== undefined && o.ordering !== 'per-key' && o.ordering !== 'none') {
    throw invalid(`ordering must be 'per-key' or 'none' (got ${JSON.stringify(o.ordering)})`);
  }
  const leaseMs = v.durationMs('leaseMs', o.leaseMs ?? 30_000, { min: 300 });
  return {
    db: o.db,
    publisher: o.publisher,
    tables: resolveTables(o.tables),
    batchSize: v.integer('batchSize', o.batchSize ?? 100, { min: 1, max: 10_000 }),
    concurrency: v.integer('concurrency', o.concurrency ?? 1, { min: 1, max: 64 }),
    listen: o.listen,
    pollMs: v.durationMs('pollMs', o.pollMs ?? 1_000, { min: 1 }),
    perKey: (o.ordering ?? 'per-key') === 'per-key',
    maxAttempts: v.integer('maxAttempts', o.maxAttempts ?? 10, { min: 1 }),
    backoff: backoffFn(o.backoff),
    leaseMs,
    relayId: o.relayId === undefined ? `relay-${randomUUID()}` : v.key('relayId', o.relayId, 200),
    clock: v.clock(o.clock, systemClock),
  };
}

export const invalid = (message: string) => new OmsOutboxError('ERR_OMS_OUTBOX_INVALID_OPTION', message);

export const errorText = (e: unknown): string => {
  const text = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  return text.length > 2_000 ? `${text.slice(0, 2_000)}…` : text;
};
