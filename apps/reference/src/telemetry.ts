import { context, type Meter, metrics, propagation, type Tracer, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
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

export function startTelemetry(config: Config, version: string): Telemetry {
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
    spanProcessors: config.otlpEndpoint
      ? [
          new BatchSpanProcessor(
            new OTLPTraceExporter({ url: `${config.otlpEndpoint.replace(/\/$/, '')}/v1/traces` }),
          ),
        ]
      : [],
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
