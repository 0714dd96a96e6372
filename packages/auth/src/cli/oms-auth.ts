#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { isOmsAuthError } from '../errors.js';
import { devToken } from './dev-token.js';

const USAGE = `usage: oms-auth dev-token --role <role> [--role <role>...] [--sub <subject>] [--iss <issuer>]
                          [--aud <audience>] [--tenant <tenant>] [--scope <scope>...] [--ttl <seconds>]
Signs an HS256 development token with OMS_AUTH_DEV_SECRET. Refuses to run with NODE_ENV=production.
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command !== 'dev-token') {
    process.stderr.write(USAGE);
    return command === undefined || command === '--help' ? 0 : 2;
  }
  const { values } = parseArgs({
    args: rest,
    options: {
      role: { type: 'string', multiple: true },
      sub: { type: 'string' },
      iss: { type: 'string' },
      aud: { type: 'string' },
      tenant: { type: 'string' },
      scope: { type: 'string', multiple: true },
      ttl: { type: 'string' },
    },
    strict: true,
  });
  const token = await devToken(
    {
      roles: values.role ?? [],
      ...(values.sub === undefined ? {} : { subject: values.sub }),
      ...(values.iss === undefined ? {} : { issuer: values.iss }),
      ...(values.aud === undefined ? {} : { audience: values.aud }),
      ...(values.tenant === undefined ? {} : { tenant: values.tenant }),
      ...(values.scope === undefined ? {} : { scopes: values.scope }),
      ...(values.ttl === undefined ? {} : { ttlSec: Number(values.ttl) }),
    },
    process.env,
  );
  process.stdout.write(`${token}\n`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(
      `oms-auth: ${isOmsAuthError(e) || e instanceof TypeError ? e.message : String(e)}\n`,
    );
    process.exitCode = 1;
  },
);
