import { createHash } from 'node:crypto';
import { OmsBackupError } from './errors.js';
import type { SqlDatabase, TableChecksum } from './types.js';

/**
 * Output settings that make `row::text` the same on the dumped and the restored side, whatever the server's or
 * role's defaults are.
 */
export const CANONICAL_SETTINGS = [
  "set timezone to 'UTC'",
  "set datestyle to 'ISO, YMD'",
  "set intervalstyle to 'postgres'",
  'set extra_float_digits to 1',
  "set bytea_output to 'hex'",
];

// Leaf tables and sequences of user schemas; partitioned parents hold no rows of their own and extension-owned
// tables are the extension's business.
const OBJECTS_SQL = `
select n.nspname as schema, c.relname as name, c.relkind as kind, pg_catalog.pg_table_size(c.oid) as bytes,
       c.reltuples::float8 as estimate
from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'S') and c.relpersistence <> 't'
  and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_toast%'
  and n.nspname not like 'pg\\_temp%'
  and not exists (select 1 from pg_catalog.pg_depend d
                  where d.classid = 'pg_catalog.pg_class'::regclass and d.objid = c.oid and d.deptype = 'e')
order by 1, 2`;

/** The key of a table in `tableChecksums`' `settled` map. */
export const tableKey = (schema: string, name: string): string => JSON.stringify([schema, name]);

const ident = (s: string) => `"${s.replace(/"/g, '""')}"`;

type Row = Record<string, unknown>;
const first = (r: { rows: unknown[] }): Row => (r.rows[0] ?? {}) as Row;

/**
 * A table is hashed in 256 groups from 8 MB on disk, or, when the planner's row estimate is known, from a million
 * rows or 256 MB: below that the server's concatenation of 32-byte hashes stays well under string_agg's 1 GB
 * limit (a row takes at least 28 bytes on disk, so even a stale estimate cannot push it past), and the server
 * returns only the md5. Grouped, a group holds 1/256 of the table's hashes.
 */
const GROUPED_FROM_BYTES = 8 * 2 ** 20;
const GROUPED_FROM_ROWS = 1_000_000;
const GROUPED_ALWAYS_FROM_BYTES = 256 * 2 ** 20;
const CURSOR = 'oms_backup_row_hashes';

/**
 * The SQL of a table's checksum: the md5 of its rows' md5s (each of `row(t.*)::text` under CANONICAL_SETTINGS),
 * concatenated in ascending byte order ("C" collation). Ordering the rows by their own hash needs no primary key
 * and depends neither on physical order nor on the database's collation. With `prefix` 0 the server computes the
 * whole md5 and returns it as `sum`. With `prefix` 2 the sorted hashes come back in 256 consecutive groups (by
 * their first two hex digits) as `hashes`, which the caller concatenates into the same md5: a group holds 1/256
 * of the table's hashes, so memory stays bounded on both sides whatever the table's size.
 */
export function tableChecksumSql(relation: string, prefix: 0 | 2 = 0): string {
  const hashes = `select pg_catalog.md5(row(t.*)::text) as h from only ${relation} as t offset 0`;
  if (prefix === 0) {
    return `select count(*)::int8 as rows,
     pg_catalog.md5(coalesce(string_agg(h, '' order by h collate "C"), '')) as sum from (${hashes}) as x`;
  }
  return `select count(*)::int8 as rows, string_agg(h, '' order by h collate "C") as hashes
   from (${hashes}) as x
   group by substr(h, 1, ${prefix}) order by substr(h, 1, ${prefix}) collate "C"`;
}

async function tableChecksum(
  db: SqlDatabase,
  rel: string,
  bytes: number,
  estimate = -1,
): Promise<{ rows: number; sum: string }> {
  // reltuples is -1 (or 0 before PostgreSQL 14) until the table is analyzed: then only its size decides.
  const small =
    bytes < GROUPED_FROM_BYTES ||
    (estimate > 0 && estimate < GROUPED_FROM_ROWS && bytes < GROUPED_ALWAYS_FROM_BYTES);
  if (small) {
    const r = first(await db.query(tableChecksumSql(rel)));
    return { rows: Number(r.rows), sum: String(r.sum) };
  }
  const md5 = createHash('md5');
  let rows = 0;
  await db.query(`declare ${CURSOR} no scroll cursor for ${tableChecksumSql(rel, 2)}`);
  for (;;) {
    const batch = (await db.query(`fetch 1 from ${CURSOR}`)).rows as { rows: unknown; hashes: string }[];
    if (batch.length === 0) break;
    for (const g of batch) {
      rows += Number(g.rows);
      md5.update(g.hashes);
    }
  }
  await db.query(`close ${CURSOR}`);
  return { rows, sum: md5.digest('hex') };
}

/**
 * The checksum of one table, in a transaction of its own: for a table nothing writes to any more (one a restore
 * has finished loading), computed while the rest of the database is still being restored.
 */
export async function settledTableChecksum(
  db: SqlDatabase,
  schema: string,
  name: string,
  bytes: number,
): Promise<TableChecksum> {
  await db.query('begin isolation level repeatable read read only');
  try {
    const r = await tableChecksum(db, `${ident(schema)}.${ident(name)}`, bytes);
    await db.query('commit');
    return { schema, name, kind: 'table', rows: r.rows, checksum: r.sum };
  } catch (e) {
    await db.query('rollback').catch(() => {});
    throw e;
  }
}

/** Sets CANONICAL_SETTINGS on a connection, as every checksum needs. */
export async function canonical(db: SqlDatabase): Promise<void> {
  for (const s of CANONICAL_SETTINGS) await db.query(s);
}

/**
 * Row counts and content checksums of every user table, sequence and the large objects (`tableChecksumSql` states a
 * table's). With `inTransaction` the caller's open transaction is used (the dump's snapshot); otherwise
 * they run in a repeatable-read transaction of their own, so every table is read at one instant. `helpers` are
 * more connections to the same database that hash tables at the same time, largest first; each reads in a
 * transaction of its own, so use them only where nothing else writes (a freshly restored scratch database).
 * `settled` holds tables already hashed by `settledTableChecksum`, by `tableKey`; they are not read again.
 */
export async function tableChecksums(
  db: SqlDatabase,
  o: { inTransaction?: boolean; helpers?: SqlDatabase[]; settled?: ReadonlyMap<string, TableChecksum> } = {},
): Promise<TableChecksum[]> {
  const helpers = o.helpers ?? [];
  const own = o.inTransaction ? helpers : [db, ...helpers];
  for (const c of [db, ...helpers]) await canonical(c);
  for (const c of own) await c.query('begin isolation level repeatable read read only');
  try {
    const out = await checksumsInTransaction(db, helpers, o.settled ?? new Map());
    for (const c of own) await c.query('commit');
    return out;
  } catch (e) {
    for (const c of own) await c.query('rollback').catch(() => {});
    throw e;
  }
}

interface DbObject {
  schema: string;
  name: string;
  kind: string;
  bytes: unknown;
  estimate: unknown;
}

async function objectChecksum(db: SqlDatabase, o: DbObject): Promise<TableChecksum> {
  const rel = `${ident(o.schema)}.${ident(o.name)}`;
  if (o.kind === 'S') {
    const r = first(
      await db.query(`select md5(last_value::text || ':' || is_called::text) as sum from ${rel}`),
    );
    return { schema: o.schema, name: o.name, kind: 'sequence', rows: 1, checksum: String(r.sum) };
  }
  const r = await tableChecksum(db, rel, Number(o.bytes), Number(o.estimate));
  return { schema: o.schema, name: o.name, kind: 'table', rows: r.rows, checksum: r.sum };
}

async function checksumsInTransaction(
  db: SqlDatabase,
  helpers: SqlDatabase[],
  settled: ReadonlyMap<string, TableChecksum>,
): Promise<TableChecksum[]> {
  const objects = (await db.query(OBJECTS_SQL)).rows as DbObject[];
  const out: TableChecksum[] = new Array(objects.length);
  const todo: { o: DbObject; i: number }[] = [];
  objects.forEach((o, i) => {
    const done = o.kind === 'r' ? settled.get(tableKey(o.schema, o.name)) : undefined;
    if (done) out[i] = done;
    else todo.push({ o, i });
  });
  // Largest first, each connection taking the next one as it finishes; results keep the catalogue's order.
  const queue = todo.sort((x, y) => Number(y.o.bytes) - Number(x.o.bytes));
  await Promise.all(
    [db, ...helpers].map(async (c) => {
      for (let next = queue.shift(); next; next = queue.shift())
        out[next.i] = await objectChecksum(c, next.o);
    }),
  );
  const lo = first(
    await db.query(
      `select count(*)::int8 as rows,
              md5(coalesce(string_agg(m.oid::text || ':' || md5(pg_catalog.lo_get(m.oid)), ',' order by m.oid), '')) as sum
       from pg_catalog.pg_largeobject_metadata m`,
    ),
  );
  if (Number(lo.rows) > 0) {
    out.push({
      schema: 'pg_catalog',
      name: 'pg_largeobject',
      kind: 'large-objects',
      rows: Number(lo.rows),
      checksum: String(lo.sum),
    });
  }
  return out;
}

/** Every difference between what the manifest recorded and what a restore produced, in words. */
export function checksumDifferences(expected: TableChecksum[], actual: TableChecksum[]): string[] {
  const key = (t: TableChecksum) => `${t.kind} ${t.schema}.${t.name}`;
  const got = new Map(actual.map((t) => [key(t), t]));
  const diffs: string[] = [];
  for (const e of expected) {
    const a = got.get(key(e));
    got.delete(key(e));
    if (!a) diffs.push(`${key(e)} is missing after restore`);
    else if (a.rows !== e.rows)
      diffs.push(`${key(e)} has ${a.rows} rows after restore, ${e.rows} in the backup`);
    else if (a.checksum !== e.checksum) diffs.push(`${key(e)} content differs (same row count ${e.rows})`);
  }
  for (const k of got.keys()) diffs.push(`${k} appears after restore but is not in the backup`);
  return diffs;
}

export function assertSameChecksums(id: string, expected: TableChecksum[], actual: TableChecksum[]): void {
  const diffs = checksumDifferences(expected, actual);
  if (diffs.length > 0) {
    throw new OmsBackupError(
      'ERR_OMS_BACKUP_VERIFY_MISMATCH',
      `backup ${id} did not restore to what was dumped: ${diffs.slice(0, 5).join('; ')}${diffs.length > 5 ? `; and ${diffs.length - 5} more` : ''}`,
    );
  }
}
