#!/usr/bin/env node
// pnpm dev-token --role admin [--sub alice] [--ttl 3600] [--data-dir ./.data]: prints one development token.
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { mintDevToken, ROLES, type Role } from '../dev-keys.js';

const { values } = parseArgs({
  options: {
    role: { type: 'string', default: 'customer' },
    sub: { type: 'string' },
    ttl: { type: 'string', default: '3600' },
    'data-dir': { type: 'string' },
  },
});
const role = values.role as Role;
if (!ROLES.includes(role)) {
  process.stderr.write(`--role must be one of ${ROLES.join(', ')}\n`);
  process.exit(2);
}
const ttlSec = Number(values.ttl);
try {
  const token = await mintDevToken({
    // pnpm runs scripts in the package directory; INIT_CWD is where the user typed the command, which is where
    // `node apps/reference/dist/main.js` keeps its ./.data
    dataDir: resolve(
      process.env.INIT_CWD ?? process.cwd(),
      values['data-dir'] ?? process.env.DATA_DIR ?? '.data',
    ),
    role,
    ttlSec,
    ...(values.sub ? { subject: values.sub } : {}),
  });
  process.stdout.write(`${token}\n`);
} catch (e) {
  process.stderr.write(`${(e as Error).message}\n`);
  process.exit(2);
}
