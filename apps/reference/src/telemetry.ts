import { context, type Meter, metrics, propagation, type Tracer, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { BatchSpanProcessor, NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import type { Config } from './config.js';

/** The app's OpenTelemetry SDK: its own providers, so several apps in one process (tests) stay apart. */
export interface Telemetry {
  meter(name: string): Meter;
  tracer(name: string): Tracer;
  /** The Prometheus text of every metric, for GET /metrics. */
  scrape(): Promise<string>;
  readonly exportsTraces: boolean;
  shutdown(): Promise<void>;
}

let globalsSet = false;

/**
 * The process-wide parts, set once: the AsyncLocalStorage context manager (the active span follows a request
 * through every await) and the W3C trace-context propagator (traceparent in, traceparent out, and the outbox
 * carrying it across the broker).
 */
function setGlobals(): void {
  if (globalsSet) return;
  globalsSet = true;
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
}

/** Starts the SDK; the OTLP exporter is loaded only when OTEL_EXPORTER_OTLP_ENDPOINT is set. */
export async function startTelemetry(config: Config, version: string): Promise<Telemetry> {
  const otlp = config.otlpEndpoint
    ? new (await import('@opentelemetry/exporter-trace-otlp-http')).OTLPTraceExporter({
        url: `${config.otlpEndpoint.replace(/\/$/, '')}/v1/traces`,
      })
    : undefined;
  setGlobals();
  const resource = resourceFromAttributes({
    'service.name': 'oms-reference',
    'service.version': version,
    'service.instance.id': config.instanceId,
  });
  const exporter = new PrometheusExporter({ preventServerStart: true });
  const meterProvider = new MeterProvider({ resource, readers: [exporter] });
  // Spans always get real ids (so logs carry a trace_id); they leave the process only with an OTLP endpoint.
  const tracerProvider = new NodeTracerProvider({
    resource,
    spanProcessors: otlp ? [new BatchSpanProcessor(otlp)] : [],
  });
  // The first app of the process also becomes the global provider, for code that uses the global API.
  metrics.setGlobalMeterProvider(meterProvider);
  trace.setGlobalTracerProvider(tracerProvider);
  const serializer = new PrometheusSerializer();
  return {
    meter: (name) => meterProvider.getMeter(name),
    tracer: (name) => tracerProvider.getTracer(name),
    exportsTraces: config.otlpEndpoint !== undefined,
    async scrape() {
      const { resourceMetrics, errors } = await exporter.collect();
      if (errors.length > 0) throw new AggregateError(errors, 'metric collection failed');
      return serializer.serialize(resourceMetrics);
    },
    async shutdown() {
      await Promise.allSettled([meterProvider.shutdown(), tracerProvider.shutdown()]);
    },
  };
}
