import { hostname } from 'node:os';

/** The app's configuration, read once from the environment by {@link loadConfig}. */
export interface Config {
  port: number;
  host: string;
  dataDir: string;
  databaseUrl: string | undefined;
  redisUrl: string | undefined;
  jwksUrl: string | undefined;
  paymentsUrl: string;
  otlpEndpoint: string | undefined;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  instanceId: string;
  backupEveryMs: number;
  rpoMs: number;
  rate: { globalPerMin: number; principalPerMin: number; ipPerMin: number; routePerMin: number };
  shutdownDrainMs: number;
  shutdownTimeoutMs: number;
  /** Bound of one POST /pay call to the payments service, retries included (PAYMENTS_TIMEOUT_MS). */
  paymentsTimeoutMs: number;
  /** How long the payments breaker stays open before a probe (BREAKER_OPEN_MS). */
  breakerOpenMs: number;
  /** Failed payment calls in a row that open the breaker (BREAKER_FAILURES). */
  breakerFailures: number;
  /** `iss` and `aud` tokens must carry (JWT_ISSUER, JWT_AUDIENCE; default the dev keys' ones). */
  jwtIssuer: string;
  jwtAudience: string;
  /** Prefix of every Redis key and stream of the app (REDIS_PREFIX, default `oms:`). */
  redisPrefix: string;
  /** Where verify restores a PostgreSQL backup (BACKUP_SCRATCH_URL, default DATABASE_URL's server). */
  backupScratchUrl: string | undefined;
}

/** A configuration value is missing or invalid; `variable` names the environment variable. */
export class ConfigError extends Error {
  readonly code = 'ERR_OMS_REFERENCE_CONFIG';
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

type Env = Readonly<Record<string, string | undefined>>;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

function str(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

function int(env: Env, name: string, def: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = str(env, name);
  if (raw === undefined) return def;
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `must be an integer, got ${JSON.stringify(raw)}`);
  const n = Number(raw);
  if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
  return n;
}

function url(env: Env, name: string, protocols: readonly string[], def?: string): string | undefined {
  const raw = str(env, name) ?? def;
  if (raw === undefined) return undefined;
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    // never echo the value: a URL may carry a password
    throw new ConfigError(name, 'must be an absolute URL');
  }
  if (!protocols.includes(u.protocol)) {
    throw new ConfigError(name, `must use ${protocols.join(' or ')}, got ${u.protocol}`);
  }
  return raw;
}

function prefix(env: Env): string {
  const p = str(env, 'REDIS_PREFIX') ?? 'oms:';
  if (!/^[A-Za-z0-9:_.-]{1,64}$/.test(p))
    throw new ConfigError('REDIS_PREFIX', 'must be 1-64 of A-Z a-z 0-9 : _ . -');
  return p;
}

/**
 * Reads and validates the configuration. Throws a {@link ConfigError} naming the first bad variable, so the
 * process fails at start instead of at the first request.
 */
export function loadConfig(env: Env = process.env): Config {
  const host = str(env, 'HOST') ?? '127.0.0.1';
  if (!/^[A-Za-z0-9.:_-]+$/.test(host)) throw new ConfigError('HOST', 'must be a host name or an address');
  const logLevel = (str(env, 'LOG_LEVEL') ?? 'info') as Config['logLevel'];
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError(
      'LOG_LEVEL',
      `must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(logLevel)}`,
    );
  }
  const instanceId = str(env, 'INSTANCE_ID') ?? `${hostname()}:${process.pid}`;
  if (instanceId.length > 128) throw new ConfigError('INSTANCE_ID', 'must be at most 128 characters');
  const databaseUrl = url(env, 'DATABASE_URL', ['postgres:', 'postgresql:']);
  return {
    port: int(env, 'PORT', 3000, 0, 65535),
    host,
    dataDir: str(env, 'DATA_DIR') ?? './.data',
    databaseUrl,
    redisUrl: url(env, 'REDIS_URL', ['redis:', 'rediss:']),
    jwksUrl: url(env, 'JWKS_URL', ['http:', 'https:']),
    paymentsUrl: url(env, 'PAYMENTS_URL', ['http:', 'https:'], 'http://127.0.0.1:3100') as string,
    otlpEndpoint: url(env, 'OTEL_EXPORTER_OTLP_ENDPOINT', ['http:', 'https:']),
    logLevel,
    instanceId,
    backupEveryMs: int(env, 'BACKUP_EVERY_MS', 0, 0),
    rpoMs: int(env, 'RPO_MS', 86_400_000, 1),
    rate: {
      globalPerMin: int(env, 'RATE_GLOBAL_PER_MIN', 60_000, 1),
      principalPerMin: int(env, 'RATE_PRINCIPAL_PER_MIN', 6_000, 1),
      ipPerMin: int(env, 'RATE_IP_PER_MIN', 12_000, 1),
      routePerMin: int(env, 'RATE_ROUTE_PER_MIN', 3_000, 1),
    },
    shutdownDrainMs: int(env, 'SHUTDOWN_DRAIN_MS', 5_000, 0),
    shutdownTimeoutMs: int(env, 'SHUTDOWN_TIMEOUT_MS', 25_000, 1),
    paymentsTimeoutMs: int(env, 'PAYMENTS_TIMEOUT_MS', 3_000, 1),
    breakerOpenMs: int(env, 'BREAKER_OPEN_MS', 5_000, 1),
    breakerFailures: int(env, 'BREAKER_FAILURES', 5, 1, 1_000),
    jwtIssuer: str(env, 'JWT_ISSUER') ?? 'https://oms-reference.local',
    jwtAudience: str(env, 'JWT_AUDIENCE') ?? 'oms-reference',
    redisPrefix: prefix(env),
    backupScratchUrl: url(env, 'BACKUP_SCRATCH_URL', ['postgres:', 'postgresql:']) ?? databaseUrl,
  };
}
