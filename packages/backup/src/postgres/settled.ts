import { settledTableChecksum, tableKey } from '../checksums.js';
import type { SqlDatabase, TableChecksum } from '../types.js';

// Plain user tables; a partition is left to the final pass, since a later data item loaded through its root may
// still route rows into it. Extension-owned tables are never hashed.
const TABLES_SQL = `
select c.oid::int8 as oid, n.nspname as schema, c.relname as name
from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where c.relkind = 'r' and not c.relispartition and c.relpersistence <> 't'
  and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_%'
  and not exists (select 1 from pg_catalog.pg_depend d
                  where d.classid = 'pg_catalog.pg_class'::regclass and d.objid = c.oid and d.deptype = 'e')`;

const DATA = /^pg_restore: processing data for table "(.*)"$/;
const NOT_PROGRESS = /^pg_restore: (error|warning|detail|hint):/;

interface Candidate {
  oid: string;
  schema: string;
  name: string;
}

/**
 * Hashes each table of a restore as soon as its data is in, on the given connections, while pg_restore goes on
 * with the next table and the post-data section. It follows `pg_restore --verbose` without --single-transaction:
 * a data item is committed once the next item is announced, and nothing writes to that table afterwards. A table
 * it could not place or hash is simply left to the final pass; `settled` holds the ones it did.
 */
export class SettledTables {
  readonly settled = new Map<string, TableChecksum>();
  readonly #idle: SqlDatabase[];
  readonly #queue: string[] = [];
  readonly #running = new Set<Promise<void>>();
  #loading: string | undefined;
  #tables: Promise<Map<string, Candidate | undefined> | undefined> | undefined;
  #closed = false;

  constructor(conns: SqlDatabase[]) {
    this.#idle = [...conns];
  }

  /** One stderr line of pg_restore --verbose; true when it was progress, not an error. */
  line(text: string): boolean {
    if (!text.startsWith('pg_restore: ') || NOT_PROGRESS.test(text)) return false;
    if (this.#loading !== undefined) this.#loaded(this.#loading);
    this.#loading = DATA.exec(text)?.[1];
    return true;
  }

  /** Stops taking tables and waits for the ones being hashed; the connections are free again after it. */
  async drain(): Promise<void> {
    this.#closed = true;
    while (this.#running.size > 0) await Promise.all(this.#running);
  }

  #loaded(printed: string): void {
    if (this.#closed) return;
    this.#queue.push(printed);
    for (let db = this.#idle.pop(); db; db = this.#idle.pop()) {
      const run: Promise<void> = this.#work(db).finally(() => {
        this.#running.delete(run);
        this.#idle.push(db);
      });
      this.#running.add(run);
    }
  }

  /** All tables exist by the first data item (pre-data comes first), so one catalogue read places them all. */
  #catalogue(db: SqlDatabase): Promise<Map<string, Candidate | undefined> | undefined> {
    this.#tables ??= db.query(TABLES_SQL).then(
      (r) => {
        const byPrinted = new Map<string, Candidate | undefined>();
        for (const t of r.rows as Candidate[]) {
          const printed = `${t.schema}.${t.name}`;
          // Two tables that print alike ("a.b"."c" and "a"."b.c") are left to the final pass.
          byPrinted.set(printed, byPrinted.has(printed) ? undefined : t);
        }
        return byPrinted;
      },
      () => undefined,
    );
    return this.#tables;
  }

  async #work(db: SqlDatabase): Promise<void> {
    const tables = await this.#catalogue(db);
    for (let next = this.#queue.shift(); next !== undefined; next = this.#queue.shift()) {
      const t = tables?.get(next);
      if (!t || this.#closed) continue;
      try {
        const size = (await db.query(`select pg_catalog.pg_table_size(${Number(t.oid)}) as b`)).rows[0] as {
          b: unknown;
        };
        const sum = await settledTableChecksum(db, t.schema, t.name, Number(size.b));
        this.settled.set(tableKey(t.schema, t.name), sum);
      } catch {
        // The final pass hashes it, and reports whatever is wrong with it there.
      }
    }
  }
}
