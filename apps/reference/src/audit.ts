import { createHash } from 'node:crypto';
import { type Kysely, sql } from 'kysely';
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

type Queued = AuditEntry & { at: string };
interface Head {
  seq: string;
  hash: string;
}
/** Rows per append statement (4 parameters each, far below PostgreSQL's 65535). */
const APPEND_ROWS = 1_000;
/** Appends tried on the head as last seen before one that locks it. */
const OPTIMISTIC_TURNS = 3;

/** The rows of `entries` chained onto `from`, and the head after the last of them. */
function chainRows(from: Head, entries: readonly Queued[]) {
  let seq = BigInt(from.seq);
  let prev = from.hash;
  const rows = entries.map((e) => {
    seq += 1n;
    const entry = canonicalJson({ ...e, seq: seq.toString() });
    const hash = chainHash(prev, entry);
    const row = { seq: seq.toString(), entry, prev_hash: prev, hash };
    prev = hash;
    return row;
  });
  return { rows, head: { seq: seq.toString(), hash: prev } };
}

export interface AuditVerification {
  ok: boolean;
  rows: number;
  /** The seq of the first row whose hash or link does not match. */
  brokenAt?: string;
}

/**
 * The append-only, hash-chained audit log. Decisions are queued in memory and appended in batches. A batch is
 * one statement that moves the chain head row from the head this process last saw to the batch's last row and
 * inserts the rows only if it did: appenders on every instance take turns on that row, so the chain never forks.
 * When another instance moved the head first, the statement writes nothing; the batch is then rebuilt on the
 * head as it is, and after a few such turns appended in a transaction that locks the head (`select ... for
 * update`) first.
 */
export class AuditLog {
  readonly #db: Kysely<Database>;
  readonly #log: Logger;
  #queue: Queued[] = [];
  #flushing: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #appended = 0;
  /** The chain head as this process last wrote or read it; undefined: read it. */
  #head: Head | undefined;

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

  async #append(batch: Queued[]): Promise<void> {
    let done = 0;
    try {
      while (done < batch.length) {
        const chunk = batch.slice(done, done + APPEND_ROWS);
        await this.#appendChunk(chunk);
        done += chunk.length;
        this.#appended += chunk.length;
      }
    } catch (err) {
      // never lose a decision silently: put what was not appended back at the front and say so
      this.#head = undefined;
      this.#queue = batch.slice(done).concat(this.#queue);
      this.#log.error({ err: String(err), pending: this.#queue.length }, 'audit append failed; will retry');
      if (!this.#closed) this.#timer ??= setTimeout(() => this.#flushSoon(), 500).unref();
      throw err;
    }
  }

  /** Appends one chunk; once it resolves, the chunk's rows are committed and the head points at its last row. */
  async #appendChunk(chunk: Queued[]): Promise<void> {
    for (let turn = 0; turn < OPTIMISTIC_TURNS; turn++) {
      const from: Head = this.#head ?? (await this.#readHead());
      const { rows, head } = chainRows(from, chunk);
      const { rows: moved } = await sql<{ n: number | string }>`
        with moved as (
          update audit_head set seq = ${head.seq}, hash = ${head.hash}
          where id = 1 and seq = ${from.seq} and hash = ${from.hash}
          returning 1
        ), appended as (
          insert into audit_log (seq, entry, prev_hash, hash)
          select v.seq::bigint, v.entry, v.prev_hash, v.hash
          from (values ${sql.join(rows.map((r) => sql`(${r.seq}, ${r.entry}, ${r.prev_hash}, ${r.hash})`))})
            as v (seq, entry, prev_hash, hash)
          where exists (select 1 from moved)
        )
        select count(*) as n from moved`.execute(this.#db);
      if (Number(moved[0]?.n) === 1) {
        this.#head = head;
        return;
      }
      this.#head = undefined; // another instance appended first: build on its head
    }
    await this.#appendLocked(chunk);
  }

  async #readHead(): Promise<Head> {
    const h = await this.#db
      .selectFrom('audit_head')
      .select(['seq', 'hash'])
      .where('id', '=', 1)
      .executeTakeFirstOrThrow();
    return { seq: String(h.seq), hash: h.hash };
  }

  /** The append that always succeeds: the head row locked for the transaction, then the rows and the head. */
  async #appendLocked(chunk: Queued[]): Promise<void> {
    this.#head = await this.#db.transaction().execute(async (trx) => {
      const from = await trx
        .selectFrom('audit_head')
        .select(['seq', 'hash'])
        .where('id', '=', 1)
        .forUpdate()
        .executeTakeFirstOrThrow();
      const { rows, head } = chainRows(from, chunk);
      await trx.insertInto('audit_log').values(rows).execute();
      await trx.updateTable('audit_head').set(head).where('id', '=', 1).execute();
      return head;
    });
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
