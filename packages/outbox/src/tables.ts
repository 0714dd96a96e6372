import { type RawBuilder, sql } from 'kysely';
import { OmsOutboxError } from './errors.js';
import type { OutboxTables } from './types.js';
import { identifier } from './validate.js';

/** Resolved, validated names, with quoted identifiers ready to interpolate. */
export interface ResolvedTables {
  readonly schema: string | undefined;
  readonly names: { readonly outbox: string; readonly dead: string; readonly inbox: string };
  readonly channel: string;
  readonly outbox: RawBuilder<unknown>;
  readonly dead: RawBuilder<unknown>;
  readonly inbox: RawBuilder<unknown>;
  /** The trigger function fired on insert. */
  readonly notifyFn: RawBuilder<unknown>;
}

const cache = new WeakMap<OutboxTables, ResolvedTables>();
let defaults: ResolvedTables | undefined;

// Enqueue runs in the caller's hot path, so the names are checked once per options object, not per call.
export function resolveTables(t: OutboxTables | undefined): ResolvedTables {
  if (t === undefined) {
    defaults ??= build({});
    return defaults;
  }
  let r = cache.get(t);
  if (r === undefined) {
    r = build(t);
    cache.set(t, r);
  }
  return r;
}

function build(t: OutboxTables): ResolvedTables {
  const schema = t.schema === undefined ? undefined : identifier('tables.schema', t.schema);
  const outbox = identifier('tables.outbox', t.outbox ?? 'outbox');
  const dead = identifier('tables.dead', t.dead ?? 'outbox_dead');
  const inbox = identifier('tables.inbox', t.inbox ?? 'inbox');
  const channel = identifier('tables.channel', t.channel ?? (schema ? `${schema}_${outbox}` : outbox));
  if (new Set([outbox, dead, inbox]).size !== 3) {
    throw identifierClash(outbox, dead, inbox);
  }
  const id = (name: string) => (schema ? sql.id(schema, name) : sql.id(name));
  return {
    schema,
    names: { outbox, dead, inbox },
    channel,
    outbox: id(outbox),
    dead: id(dead),
    inbox: id(inbox),
    notifyFn: id(`${outbox}_notify`),
  };
}

function identifierClash(outbox: string, dead: string, inbox: string): OmsOutboxError {
  return new OmsOutboxError(
    'ERR_OMS_OUTBOX_INVALID_OPTION',
    `tables.outbox, tables.dead and tables.inbox must be three different names (got ${outbox}, ${dead}, ${inbox})`,
  );
}
