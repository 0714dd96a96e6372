// The payments service as its own process: `node dist/payments/main.js --port 3100 [--host 127.0.0.1]`.
// Prints one JSON line `{"msg":"listening","url":...}` once it listens; SIGTERM/SIGINT close it and exit 0.
import { parseArgs } from 'node:util';
import { startPaymentsServer } from './server.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.PAYMENTS_PORT ?? '3100' },
    host: { type: 'string', default: process.env.PAYMENTS_HOST ?? '127.0.0.1' },
  },
});
const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`payments: --port must be an integer in 0..65535 (got ${values.port})\n`);
  process.exit(2);
}

const server = await startPaymentsServer({ host: values.host, port });
process.stdout.write(
  `${JSON.stringify({ msg: 'listening', service: 'payments', url: server.url, pid: process.pid })}\n`,
);

let closing = false;
const stop = (signal: string) => {
  if (closing) return;
  closing = true;
  server.close().then(
    () => {
      process.stdout.write(`${JSON.stringify({ msg: 'stopped', service: 'payments', signal })}\n`);
      process.exit(0);
    },
    (e) => {
      process.stderr.write(`payments: close failed: ${(e as Error).message}\n`);
      process.exit(1);
    },
  );
};
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
