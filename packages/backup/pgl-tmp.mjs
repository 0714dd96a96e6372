import { PGlite } from '@electric-sql/pglite';
import { pgDump } from '@electric-sql/pglite-tools/pg_dump';

const t0 = Date.now();
const db = new PGlite();
await db.exec(
  "create table t (id int primary key, j jsonb, b bytea); insert into t select g, jsonb_build_object('g',g), '\\x0102' from generate_series(1,1000) g; create sequence s; select nextval('s');",
);
console.log('init', Date.now() - t0);
const c = await db.clone();
console.log('clone', Date.now() - t0);
const f = await pgDump({ pg: c, args: [] });
console.log('dump', Date.now() - t0, f.size, f.name);
const sql = await f.text();
console.log(sql.slice(0, 600));
await db.exec('insert into t values (5000, null, null)');
console.log('write ok');
const r = await c.query('show search_path');
console.log(r.rows);
const fresh = new PGlite();
await fresh.exec(sql);
await fresh.exec('set search_path to public');
console.log(
  (await fresh.query('select count(*) from t')).rows,
  (await fresh.query('select last_value from s')).rows,
);
