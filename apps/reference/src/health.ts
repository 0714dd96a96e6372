import type { BackupManager } from '@oms/backup';
import { checks, type HealthRegistry, healthRegistry } from '@oms/health';
import type { Relay } from '@oms/outbox';
import { sql } from 'kysely';
import type { Backends } from './backends.js';
import type { PaymentGateway } from './payment-gateway.js';

export const VERSION = '0.0.0';

/**
 * The probes: liveness is the process itself (event loop, memory, the registry's defaults); readiness is what
 * this instance needs to serve (PostgreSQL, Redis) plus what only warns (the relay backlog, the payments
 * breaker, the backup age against the RPO); startup waits for the migrations.
 */
export function createHealth(o: {
  backends: Backends;
  relay: Relay;
  payments: PaymentGateway;
  backups: BackupManager;
  instanceId: string;
}): HealthRegistry {
  const { backends } = o;
  const registry = healthRegistry({ service: 'oms-reference', version: VERSION, description: o.instanceId });
  const db = backends.kysely;
  registry.register({
    name: `${backends.db}:responseTime`,
    check: checks.postgres({ query: (q: string) => sql.raw(q).execute(db) }, { warnMs: 200 }),
    kinds: ['readiness', 'startup'],
    critical: true,
    timeoutMs: 2_000,
  });
  if (backends.redis) {
    registry.register({
      name: 'redis:responseTime',
      check: checks.redis(backends.redis),
      kinds: ['readiness', 'startup'],
      critical: true,
      timeoutMs: 1_000,
    });
  }
  registry.register({
    name: 'outbox:backlog',
    check: async () => {
      const s = await o.relay.stats();
      const old = s.oldestAgeMs ?? 0;
      return {
        status: old > 60_000 ? 'warn' : 'pass',
        observedValue: s.backlog,
        observedUnit: 'messages',
        output: old > 60_000 ? `oldest message waits ${Math.round(old / 1000)} s` : undefined,
        componentType: 'component',
      };
    },
    kinds: ['readiness'],
    critical: false,
    timeoutMs: 2_000,
  });
  registry.register({
    name: 'breaker:payments',
    check: async () => {
      const state = o.payments.breaker.state;
      return {
        status: state === 'closed' ? 'pass' : 'warn',
        observedValue: state,
        componentType: 'component',
        output: state === 'closed' ? undefined : `payments breaker ${state}`,
      };
    },
    kinds: ['readiness'],
    critical: false,
    timeoutMs: 500,
  });
  registry.register({
    name: 'backup:age',
    check: o.backups.healthCheck(),
    kinds: ['readiness'],
    critical: false,
    timeoutMs: 5_000,
    intervalMs: 30_000,
  });
  return registry;
}
