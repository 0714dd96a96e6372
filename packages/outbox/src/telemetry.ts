import {
  type Link,
  type Meter,
  metrics,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import { enqueueEvents } from './enqueue.js';
import {
  ATTR_ERROR_TYPE,
  ATTR_MESSAGING_BATCH_MESSAGE_COUNT,
  ATTR_MESSAGING_DESTINATION_NAME,
  ATTR_MESSAGING_OPERATION_NAME,
  ATTR_MESSAGING_OPERATION_TYPE,
  ATTR_MESSAGING_SYSTEM,
} from './semconv.js';
import { extractTraceContext } from './trace.js';
import type { Relay } from './types.js';
import { VERSION } from './version.js';

/**
 * Options of `instrument`.
 *
 * @example
 * import type { InstrumentOptions } from '@oms/outbox';
 * import { metrics, trace } from '@opentelemetry/api';
 * const opts: InstrumentOptions = { meter: metrics.getMeter('app'), tracer: trace.getTracer('app') };
 */
export interface InstrumentOptions {
  /** Default: `metrics.getMeter('@oms/outbox', VERSION)` from the global provider. */
  meter?: Meter;
  /** Default: `trace.getTracer('@oms/outbox', VERSION)` from the global provider. */
  tracer?: Tracer;
}

/** Span links per batch span; a batch of 10 000 must not make a span of 10 000 links. */
const MAX_LINKS = 128;

/** The enqueue counter is process-wide: one subscription per meter, however many relays it instruments. */
const enqueueSubscriptions = new WeakMap<Meter, { refs: number; off: () => void }>();

function countEnqueues(meter: Meter): () => void {
  let sub = enqueueSubscriptions.get(meter);
  if (!sub) {
    const enqueued = meter.createCounter('oms.outbox.enqueued', {
      description: 'Messages written by enqueue in this process',
    });
    const off = enqueueEvents.on('enqueued', (e) =>
      enqueued.add(e.count, { [ATTR_MESSAGING_DESTINATION_NAME]: e.topic }),
    );
    sub = { refs: 0, off };
    enqueueSubscriptions.set(meter, sub);
  }
  sub.refs++;
  let live = true;
  return () => {
    if (!live || !sub) return;
    live = false;
    if (--sub.refs === 0) {
      sub.off();
      enqueueSubscriptions.delete(meter);
    }
  };
}

/**
 * Records a relay as OpenTelemetry metrics and spans:
 * - `oms.outbox.enqueued`, `oms.outbox.published`, `oms.outbox.failed` (counters by topic; failures also by
 *   `oms.outbox.outcome`: `retry` or `dead`);
 * - `oms.outbox.lag` (histogram, seconds from `created_at` to publish, by topic);
 * - `oms.outbox.backlog` (observable gauge, read with `stats()` at each collection);
 * - one `outbox.relay.batch` span per batch, linked to the spans that enqueued its messages (from their
 *   `traceparent`), so a trace shows writer, relay and consumer together.
 *
 * Message ids and keys are never attributes. Returns the function that detaches it.
 *
 * @example
 * import { instrument, relay, fnPublisher } from '@oms/outbox';
 * import type { Kysely } from 'kysely';
 * declare const db: Kysely<unknown>;
 * const r = relay({ db, publisher: fnPublisher(async () => {}) });
 * const detach = instrument(r);
 * r.start();
 * // on shutdown: await r.stop(); detach();
 */
export function instrument(target: Relay, opts: InstrumentOptions = {}): () => void {
  const meter = opts.meter ?? metrics.getMeter('@oms/outbox', VERSION);
  const tracer = opts.tracer ?? trace.getTracer('@oms/outbox', VERSION);
  const published = meter.createCounter('oms.outbox.published', {
    description: 'Messages the publisher accepted',
  });
  const failed = meter.createCounter('oms.outbox.failed', { description: 'Failed publish attempts' });
  const lag = meter.createHistogram('oms.outbox.lag', {
    unit: 's',
    description: 'Time from enqueue (created_at) to publish',
  });
  const backlog = meter.createObservableGauge('oms.outbox.backlog', {
    description: 'Messages in the outbox table, claimed or not',
  });
  const observeBacklog = async (result: { observe(value: number): void }) => {
    try {
      result.observe((await target.stats()).backlog);
    } catch {
      // an unreachable database skips this collection; the relay reports the error itself
    }
  };
  backlog.addCallback(observeBacklog);

  const offs = [
    countEnqueues(meter),
    () => backlog.removeCallback(observeBacklog),
    target.on('published', (e) => {
      for (const m of e.messages) {
        const a = { [ATTR_MESSAGING_DESTINATION_NAME]: m.topic };
        published.add(1, a);
        lag.record(Math.max(0, e.at - m.createdAt.getTime()) / 1000, a);
      }
    }),
    target.on('failed', (e) =>
      failed.add(1, {
        [ATTR_MESSAGING_DESTINATION_NAME]: e.message.topic,
        'oms.outbox.outcome': e.dead ? 'dead' : 'retry',
      }),
    ),
    target.on('batch', (e) => {
      const links: Link[] = [];
      for (const h of e.headers) {
        if (links.length === MAX_LINKS) break;
        const ctx = trace.getSpanContext(extractTraceContext(h));
        if (ctx && trace.isSpanContextValid(ctx)) links.push({ context: ctx });
      }
      const span = tracer.startSpan('outbox.relay.batch', {
        kind: SpanKind.PRODUCER,
        startTime: e.startedAt,
        links,
        attributes: {
          [ATTR_MESSAGING_SYSTEM]: 'oms_outbox',
          [ATTR_MESSAGING_OPERATION_TYPE]: 'send',
          [ATTR_MESSAGING_OPERATION_NAME]: 'publish',
          [ATTR_MESSAGING_BATCH_MESSAGE_COUNT]: e.size,
          'oms.outbox.published': e.published,
          'oms.outbox.failed': e.failed,
          'oms.outbox.dead_lettered': e.deadLettered,
        },
      });
      if (e.failed > 0) {
        span.setStatus({ code: SpanStatusCode.ERROR });
        span.setAttribute(ATTR_ERROR_TYPE, 'publish_failed');
      }
      span.end(e.endedAt);
    }),
  ];
  return () => {
    for (const off of offs.splice(0)) off();
  };
}
