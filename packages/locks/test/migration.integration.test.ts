import { readFileSync } from 'node:fs';
import { usePostgres } from '@oms/testkit';
import { describe, expect, it } from 'vitest';
import { LOCKS_MIGRATION_SQL, postgresLocks } from '../src/postgres/index.js';

// The README lists what migrate() creates, for reviewers of a user's migration: the list must be complete.
const db = usePostgres();
const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const section = readme.slice(
  readme.indexOf('`migrate()` runs `LOCKS_MIGRATION_SQL`'),
  readme.indexOf('It is idempotent', readme.indexOf('`migrate()` runs `LOCKS_MIGRATION_SQL`')),
);

const OBJECTS = `
  select c.relname as name, case c.relkind when 'S' then 'sequence' else 'table' end as kind
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
   where n.nspname = current_schema() and c.relkind in ('r', 'S')
  union all
  select p.proname, 'function' from pg_proc p join pg_namespace n on n.oid = p.pronamespace
   where n.nspname = current_schema()
  order by 1`;

describe('migrate()', () => {
  it('creates exactly what the README lists, and running it again changes nothing', async () => {
    const pool = db.pool({ max: 2 });
    const before = (await pool.query(OBJECTS)).rows;
    expect(before).toEqual([]);
    const locks = postgresLocks({ pool, strategy: 'lease' });
    await locks.migrate();
    const created = (await pool.query<{ name: string; kind: string }>(OBJECTS)).rows;
    expect(created.length).toBeGreaterThan(0);
    expect(section.length).toBeGreaterThan(0);
    for (const o of created) {
      expect(section, `the README's migrate() list misses the ${o.kind} ${o.name}`).toContain(
        `${o.kind} \`${o.name}`,
      );
    }
    // and names nothing that is not created
    const listed = [...section.matchAll(/(sequence|table|function) `(\w+)/g)].map((m) => m[2]);
    expect(listed.sort()).toEqual(created.map((o) => o.name).sort());
    await locks.migrate();
    await pool.query(LOCKS_MIGRATION_SQL);
    expect((await pool.query(OBJECTS)).rows).toEqual(created);
    await locks.close();
  });
});
