import { type Meter, metrics, type Span, SpanStatusCode, type Tracer, trace } from '@opentelemetry/api';
import type { BackupManager } from './types.js';
import { VERSION } from './version.js';

/**
 * Options of `instrument`.
 *
 * @example
 * import { metrics, trace } from '@opentelemetry/api';
 * import type { InstrumentOptions } from '@oms/backup';
 * const o: InstrumentOptions = { meter: metrics.getMeter('app'), tracer: trace.getTracer('app') };
 */
export interface InstrumentOptions {
  /** Default: `metrics.getMeter('@oms/backup', VERSION)`. */
  meter?: Meter;
  /** Default: `trace.getTracer('@oms/backup', VERSION)`. */
  tracer?: Tracer;
}

/**
 * Records a manager's events as OpenTelemetry signals: `oms.backup.duration` (histogram, seconds, by operation and
 * outcome), `oms.backup.bytes` (histogram of archive sizes), `oms.backup.last_success` (observable gauge, unix
 * seconds of the newest backup) and `oms.backup.verify.failures` (counter by error code), plus one span per
 * operation (`backup.create`, `backup.verify`, `backup.restore`, `backup.prune`). Backup ids, URLs and keys are
 * never attributes. Returns the function that detaches it.
 *
 * @example
 * import { backupManager, fileStorage, instrument } from '@oms/backup';
 * import { postgresSource } from '@oms/backup/postgres';
 * const backups = backupManager({
 *   source: postgresSource({ connectionString: 'postgres://app@localhost/app' }),
 *   storage: fileStorage('/var/backups/app'),
 * });
 * const detach = instrument(backups);
 * // on shutdown: detach(); await backups.close();
 */
export function instrument(manager: BackupManager, opts: InstrumentOptions = {}): () => void {
  const meter = opts.meter ?? metrics.getMeter('@oms/backup', VERSION);
  const tracer = opts.tracer ?? trace.getTracer('@oms/backup', VERSION);
  const duration = meter.createHistogram('oms.backup.duration', {
    unit: 's',
    description: 'Duration of backup operations (create, verify, restore, prune)',
  });
  const bytes = meter.createHistogram('oms.backup.bytes', {
    unit: 'By',
    description: 'Stored size of each new backup',
  });
  const failures = meter.createCounter('oms.backup.verify.failures', {
    description: 'Verifications that failed',
  });
  const lastSuccess = meter.createObservableGauge('oms.backup.last_success', {
    unit: 's',
    description: 'Unix time of the newest backup',
  });
  const backup = { 'oms.backup.name': manager.name };
  const observe = (r: { observe(v: number, a?: Record<string, string>): void }) => {
    const at = manager.lastSuccessAt;
    if (at !== undefined) r.observe(at / 1000, backup);
  };
  lastSuccess.addCallback(observe);
  const spans = new Map<number, Span>();
  const offs = [
    manager.on('start', (e) => {
      spans.set(
        e.run,
        tracer.startSpan(`backup.${e.operation}`, {
          attributes: { ...backup, 'oms.backup.operation': e.operation },
        }),
      );
    }),
    manager.on('end', (e) => {
      const attrs = {
        ...backup,
        'oms.backup.operation': e.operation,
        'oms.backup.outcome': e.ok ? 'success' : 'failure',
        ...(e.code ? { 'error.type': e.code } : {}),
      };
      duration.record(e.durationMs / 1000, attrs);
      if (e.ok && e.operation === 'create' && e.bytes !== undefined) bytes.record(e.bytes, backup);
      if (!e.ok && e.operation === 'verify')
        failures.add(1, { ...backup, 'error.type': e.code ?? 'ERR_UNKNOWN' });
      const span = spans.get(e.run);
      spans.delete(e.run);
      if (span) {
        if (e.bytes !== undefined) span.setAttribute('oms.backup.bytes', e.bytes);
        if (!e.ok) span.setStatus({ code: SpanStatusCode.ERROR, message: e.code ?? 'ERR_UNKNOWN' });
        span.end();
      }
    }),
  ];
  return () => {
    for (const off of offs) off();
    lastSuccess.removeCallback(observe);
    for (const s of spans.values()) s.end();
    spans.clear();
  };
}
