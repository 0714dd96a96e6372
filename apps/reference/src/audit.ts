import { createHash } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import { GENESIS } from './db/migrations.js';
import type { Database } from './db/schema.js';

/** One authorization decision, as the audit log keeps it. */
export interface AuditEntry {
  /** `route`: the route policy + token + RBAC (authPlugin); `resource`: a handler's ownership check. */
  kind: 'route' | 'resource';
  method: string;
  route: string;
  status: number;
  allowed: boolean;
  reason: string;
  code?: string | undefined;
  subject?: string | undefined;
  tokenDigest?: string | undefined;
  permission?: string | undefined;
  resourceId?: string | undefined;
  requestId?: string | undefined;
}

/** JSON with keys sorted at every level: the same entry always hashes to the same bytes. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
    .join(',')}}`;
}

/** The hash of a row: sha256 over the previous row's hash and this row's canonical JSON. */
export const chainHash = (prevHash: string, entry: string): string =>
  createHash('sha256').update(prevHash).update('\n').update(entry).digest('hex');

export interface AuditVerification {
  ok: boolean;
  rows: number;
  /** The seq of the first row whose hash or link does not match. */
  brokenAt?: string;
}

/**
 * The append-only, hash-chained audit log. Decisions are queued in memory and appended in batches, each batch
 * in one transaction that first locks the chain head row (`select ... for update`): appenders on every
 * instance take turns, so the chain never forks, and a batch costs one round trip per statement, not per row.
 */
export class AuditLog {
  readonly #db: Kysely<Database>;
  readonly #log: Logger;
  #queue: (AuditEntry & { at: string })[] = [];
  #flushing: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #appended = 0;

  constructor(db: Kysely<Database>, log: Logger) {
    this.#db = db;
    this.#log = log;
  }

  /** Rows appended by this process. */
  get appended(): number {
    return this.#appended;
  }

  /** Queues a decision; it is written within a few milliseconds (see {@link flush}). */
  record(e: AuditEntry): void {
    if (this.#closed) return;
    this.#queue.push({ ...e, at: new Date().toISOString() });
    if (this.#queue.length >= 500) this.#flushSoon();
    else this.#timer ??= setTimeout(() => this.#flushSoon(), 20).unref();
  }

  /** A background flush: a failure is logged and retried by #append, never an unhandled rejection. */
  #flushSoon(): void {
    this.flush().catch(() => {});
  }

  /** Writes everything queued so far; resolves once it is committed. */
  async flush(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    while (this.#flushing) await this.#flushing.catch(() => {});
    if (this.#queue.length === 0) return;
    const batch = this.#queue;
    this.#queue = [];
    this.#flushing = this.#append(batch).finally(() => {
      this.#flushing = undefined;
    });
    await this.#flushing;
  }

  async #append(batch: (AuditEntry & { at: string })[]): Promise<void> {
    try {
      await this.#db.transaction().execute(async (trx) => {
        const head = await trx
          .selectFrom('audit_head')
          .select(['seq', 'hash'])
          .where('id', '=', 1)
          .forUpdate()
          .executeTakeFirstOrThrow();
        let seq = BigInt(head.seq);
        let prev = head.hash;
        const rows = batch.map((e) => {
          seq += 1n;
          const entry = canonicalJson({ ...e, seq: seq.toString() });
          const hash = chainHash(prev, entry);
          const row = { seq: seq.toString(), entry, prev_hash: prev, hash };
          prev = hash;
          return row;
        });
        for (let i = 0; i < rows.length; i += 200) {
          await trx
            .insertInto('audit_log')
            .values(rows.slice(i, i + 200))
            .execute();
        }
        await trx
          .updateTable('audit_head')
          .set({ seq: seq.toString(), hash: prev })
          .where('id', '=', 1)
          .execute();
      });
      this.#appended += batch.length;
    } catch (err) {
      // never lose a decision silently: put the batch back at the front and say so
      this.#queue = batch.concat(this.#queue);
      this.#log.error({ err: String(err), pending: this.#queue.length }, 'audit append failed; will retry');
      if (!this.#closed) this.#timer ??= setTimeout(() => this.#flushSoon(), 500).unref();
      throw err;
    }
  }

  /** Recomputes the chain from the first row; the first mismatch is `brokenAt`. */
  async verify(): Promise<AuditVerification> {
    await this.flush().catch(() => {});
    let prev = GENESIS;
    let rows = 0;
    let after = '0';
    for (;;) {
      const page = await this.#db
        .selectFrom('audit_log')
        .select(['seq', 'entry', 'prev_hash', 'hash'])
        .where('seq', '>', after)
        .orderBy('seq')
        .limit(1000)
        .execute();
      for (const r of page) {
        rows++;
        let seqOk = false;
        try {
          seqOk = (JSON.parse(r.entry) as { seq?: string }).seq === String(r.seq);
        } catch {}
        if (!seqOk || r.prev_hash !== prev || chainHash(prev, r.entry) !== r.hash) {
          return { ok: false, rows, brokenAt: String(r.seq) };
        }
        prev = r.hash;
      }
      if (page.length < 1000) break;
      after = String(page[page.length - 1]!.seq);
    }
    const head = await this.#db
      .selectFrom('audit_head')
      .select(['seq', 'hash'])
      .where('id', '=', 1)
      .executeTakeFirst();
    if (head && head.hash !== prev) return { ok: false, rows, brokenAt: String(head.seq) };
    return { ok: true, rows };
  }

  async close(): Promise<void> {
    await this.flush().catch(() => {});
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
  }
}
