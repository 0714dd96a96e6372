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
select n.nspname as schema, c.relname as name, c.relkind as kind
from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'S') and c.relpersistence <> 't'
  and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_toast%'
  and n.nspname not like 'pg\\_temp%'
  and not exists (select 1 from pg_catalog.pg_depend d
                  where d.classid = 'pg_catalog.pg_class'::regclass and d.objid = c.oid and d.deptype = 'e')
order by 1, 2`;

const ident = (s: string) => `"${s.replace(/"/g, '""')}"`;

type Row = Record<string, unknown>;
const first = (r: { rows: unknown[] }): Row => (r.rows[0] ?? {}) as Row;

/**
 * Row counts and content checksums of every user table, sequence and the large objects. A table's checksum is
 * an md5 over the sums of its rows' 128-bit md5s, so it ignores physical order and catches any changed value.
 */
export async function tableChecksums(db: SqlDatabase): Promise<TableChecksum[]> {
  for (const s of CANONICAL_SETTINGS) await db.query(s);
  const objects = (await db.query(OBJECTS_SQL)).rows as { schema: string; name: string; kind: string }[];
  const out: TableChecksum[] = [];
  for (const o of objects) {
    const rel = `${ident(o.schema)}.${ident(o.name)}`;
    if (o.kind === 'S') {
      const r = first(
        await db.query(`select md5(last_value::text || ':' || is_called::text) as sum from ${rel}`),
      );
      out.push({ schema: o.schema, name: o.name, kind: 'sequence', rows: 1, checksum: String(r.sum) });
      continue;
    }
    // Each row's md5 split into two 64-bit halves, summed as numerics: order-independent, so no sort, and constant
    // memory on the server whatever the table's size (an ordered string_agg of every row hash is neither).
    const r = first(
      await db.query(
        `select count(*)::int8 as rows,
                md5(count(*)::text || ':' || coalesce(sum(('x' || substr(h, 1, 16))::bit(64)::int8::numeric), 0)::text
                    || ':' || coalesce(sum(('x' || substr(h, 17, 16))::bit(64)::int8::numeric), 0)::text) as sum
         from (select md5(row(t.*)::text) as h from only ${rel} as t) as x`,
      ),
    );
    out.push({
      schema: o.schema,
      name: o.name,
      kind: 'table',
      rows: Number(r.rows),
      checksum: String(r.sum),
    });
  }
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
