import {
  type Attributes,
  type Counter,
  type Histogram,
  type Meter,
  metrics,
  SpanStatusCode,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import { kRun, PolicyBase } from './context.js';
import type {
  AdaptiveConcurrency,
  Bulkhead,
  CircuitBreaker,
  Fallback,
  Operation,
  Pipeline,
  Policy,
  Retry,
  RetryBudget,
  Timeout,
  Unsubscribe,
} from './types.js';
import { VERSION } from './version.js';

/**
 * Anything `instrument()` knows how to observe: one policy, a retry budget, or a pipeline (every policy in it).
 *
 * @example
 * import { circuitBreaker, type Instrumentable, pipeline, timeout } from '@oms/breaker';
 * const target: Instrumentable = pipeline(timeout(1_000), circuitBreaker({ name: 'users' }));
 */
export type Instrumentable =
  | CircuitBreaker
  | Retry
  | Timeout
  | Bulkhead
  | AdaptiveConcurrency
  | Fallback<unknown>
  | RetryBudget
  | Pipeline<unknown>;

const STATE_VALUE = { closed: 0, 'half-open': 1, open: 2 } as const;

/**
 * Publishes a policy's events (every policy's, for a pipeline) as OpenTelemetry metrics on the meter
 * `@oms/breaker`:
 * - `oms.breaker.state` (observable gauge per breaker: 0 closed, 1 half-open, 2 open),
 * - `oms.breaker.calls` (counter by `oms.breaker.outcome`: success, failure, rejected),
 * - `oms.breaker.call.duration` (histogram, seconds, when the breaker measured it),
 * - `oms.breaker.transitions` (counter by `oms.breaker.to` and `oms.breaker.reason`),
 * - `oms.breaker.retries` (counter) and `oms.breaker.rejections` (counter by `oms.breaker.reason`).
 *
 * On the tracer, each breaker state change is a short span `breaker.transition` (they are rare); there is no
 * span per call unless you opt in with `traced()`. Attributes carry policy names and reasons only. Returns a
 * function that detaches every listener and the gauge callback.
 *
 * @example
 * import { circuitBreaker, instrument, pipeline, retry } from '@oms/breaker';
 * const users = pipeline(retry({ maxAttempts: 3 }), circuitBreaker({ name: 'users' }));
 * const detach = instrument(users);
 * // later, on shutdown
 * detach();
 */
export function instrument(
  target: Instrumentable,
  opts: { meter?: Meter; tracer?: Tracer } = {},
): () => void {
  const meter = opts.meter ?? metrics.getMeter('@oms/breaker', VERSION);
  const m = instruments(meter, opts.tracer ?? trace.getTracer('@oms/breaker', VERSION));
  const gauge = meter.createObservableGauge('oms.breaker.state', {
    description: 'Circuit breaker state: 0 closed, 1 half-open, 2 open',
  });
  const offs: Unsubscribe[] = [];
  const breakers: CircuitBreaker[] = [];
  const flat: Instrumentable[] =
    target.kind === 'pipeline' ? (target.policies.filter((p) => 'kind' in p) as Instrumentable[]) : [target];
  for (const t of flat) {
    if (t.kind === 'circuit-breaker') breakers.push(t);
    offs.push(...subscribe(t, m));
  }

  const observe = (r: { observe(v: number, a?: Attributes): void }) => {
    for (const b of breakers) r.observe(STATE_VALUE[b.state], { 'oms.breaker.name': b.name });
  };
  if (breakers.length) gauge.addCallback(observe);

  return () => {
    for (const off of offs.splice(0)) off();
    gauge.removeCallback(observe);
  };
}

interface Instruments {
  tracer: Tracer;
  calls: Counter;
  duration: Histogram;
  transitions: Counter;
  retries: Counter;
  rejections: Counter;
}

function instruments(meter: Meter, tracer: Tracer): Instruments {
  return {
    tracer,
    calls: meter.createCounter('oms.breaker.calls', {
      description: 'Calls through a circuit breaker, by outcome',
    }),
    duration: meter.createHistogram('oms.breaker.call.duration', {
      description: 'Duration of calls through a circuit breaker',
      unit: 's',
    }),
    transitions: meter.createCounter('oms.breaker.transitions', {
      description: 'Circuit breaker state changes',
    }),
    retries: meter.createCounter('oms.breaker.retries', {
      description: 'Retries scheduled by retry policies',
    }),
    rejections: meter.createCounter('oms.breaker.rejections', {
      description: 'Calls refused by a policy, by reason',
    }),
  };
}

/** The listeners that publish one policy's events; a policy kind with nothing to publish gets none. */
function subscribe(t: Instrumentable, m: Instruments): Unsubscribe[] {
  const rejected = (policy: string, reason: string) =>
    m.rejections.add(1, {
      'oms.breaker.name': (t as { name: string }).name,
      'oms.breaker.policy': policy,
      'oms.breaker.reason': reason,
    });
  switch (t.kind) {
    case 'circuit-breaker':
      return subscribeBreaker(t, m);
    case 'retry': {
      const base = { 'oms.breaker.name': t.name };
      return [
        t.on('retry', () => m.retries.add(1, base)),
        t.on('giveUp', (e) => {
          if (e.reason === 'budget-exhausted') rejected('retry', 'retry-budget');
        }),
      ];
    }
    case 'timeout':
      return [t.on('timeout', () => rejected('timeout', 'timeout'))];
    case 'bulkhead':
      return [
        t.on('rejected', (e) =>
          rejected('bulkhead', e.reason === 'full' ? 'bulkhead-full' : 'queue-timeout'),
        ),
      ];
    case 'adaptive-concurrency':
      return [t.on('rejected', () => rejected('adaptive-concurrency', 'concurrency-limit'))];
    default:
      // fallback and retry-budget publish nothing of their own.
      return [];
  }
}

function subscribeBreaker(t: CircuitBreaker, m: Instruments): Unsubscribe[] {
  const base = { 'oms.breaker.name': t.name };
  const outcome = (o: string, ms: number | undefined) => {
    m.calls.add(1, { ...base, 'oms.breaker.outcome': o });
    if (ms !== undefined) m.duration.record(ms / 1000, { ...base, 'oms.breaker.outcome': o });
  };
  return [
    t.on('success', (e) => outcome('success', e.durationMs)),
    t.on('failure', (e) => outcome('failure', e.durationMs)),
    t.on('rejected', (e) => {
      m.calls.add(1, { ...base, 'oms.breaker.outcome': 'rejected' });
      m.rejections.add(1, {
        ...base,
        'oms.breaker.policy': 'circuit-breaker',
        'oms.breaker.reason': e.reason,
      });
    }),
    t.on('stateChange', (e) => {
      m.transitions.add(1, { ...base, 'oms.breaker.to': e.to, 'oms.breaker.reason': e.reason });
      const span = m.tracer.startSpan('breaker.transition', {
        attributes: {
          ...base,
          'oms.breaker.from': e.from,
          'oms.breaker.to': e.to,
          'oms.breaker.reason': e.reason,
        },
      });
      span.end();
    }),
  ];
}

class TracedPolicy extends PolicyBase {
  constructor(
    readonly inner: Policy<unknown>,
    readonly spanName: string,
    readonly tracer: Tracer,
  ) {
    super();
  }

  override execute<T>(fn: Operation<T>, signal?: AbortSignal): Promise<T> {
    return this.tracer.startActiveSpan(this.spanName, async (span): Promise<T> => {
      try {
        const v = (await this.inner.execute(fn, signal)) as T;
        span.setStatus({ code: SpanStatusCode.OK });
        return v;
      } catch (e) {
        span.setStatus({ code: SpanStatusCode.ERROR, message: (e as { code?: string }).code ?? 'error' });
        if (e instanceof Error) span.recordException(e);
        throw e;
      } finally {
        span.end();
      }
    });
  }

  [kRun](
    ctx: Parameters<PolicyBase[typeof kRun]>[0],
    next: Parameters<PolicyBase[typeof kRun]>[1],
  ): Promise<unknown> {
    return this.execute((c) => next.call(ctx.adopt(c)), ctx.signal);
  }
}

/**
 * Opt-in tracing: one span per `execute` of `policy` (none by default, because a span per call costs more
 * than the policies themselves). Span status carries the error code on failure.
 *
 * @example
 * import { circuitBreaker, pipeline, timeout, traced } from '@oms/breaker';
 * declare function fetchUser(id: string): Promise<{ name: string }>;
 * const users = traced(pipeline(timeout(1_000), circuitBreaker({ name: 'users' })), 'breaker.users');
 * const user = await users.execute(() => fetchUser('42'));
 */
export function traced<F = never>(
  policy: Policy<F>,
  spanName = 'breaker.execute',
  opts: { tracer?: Tracer } = {},
): Policy<F> {
  return new TracedPolicy(policy, spanName, opts.tracer ?? trace.getTracer('@oms/breaker', VERSION));
}
