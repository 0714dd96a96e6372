import { type Context, context, propagation, ROOT_CONTEXT } from '@opentelemetry/api';

const setter = {
  set(carrier: Record<string, string>, key: string, value: string) {
    carrier[key] = value;
  },
};

const getter = {
  get(carrier: Readonly<Record<string, string>>, key: string) {
    return carrier[key];
  },
  keys(carrier: Readonly<Record<string, string>>) {
    return Object.keys(carrier);
  },
};

/**
 * The propagation headers (`traceparent`, `tracestate`, `baggage`: whatever the registered propagator writes)
 * of the active context. Empty when no propagator is registered or no span is active.
 */
export function traceHeaders(): Record<string, string> {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier, setter);
  return carrier;
}

/**
 * Restores the writer's trace context from a message's headers, so a consumer's span can be a child of (or
 * link to) the span that enqueued the message.
 *
 * @example
 * import { extractTraceContext, type OutboxMessage } from '@oms/outbox';
 * import { context, trace } from '@opentelemetry/api';
 * declare const message: OutboxMessage;
 * const tracer = trace.getTracer('orders-consumer');
 * await context.with(extractTraceContext(message.headers), () =>
 *   tracer.startActiveSpan('orders process', async (span) => span.end()),
 * );
 */
export function extractTraceContext(headers: Readonly<Record<string, string>>, base?: Context): Context {
  return propagation.extract(base ?? ROOT_CONTEXT, headers, getter);
}
