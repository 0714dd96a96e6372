import { fakeClock } from '@oms/testkit';
import type { Span, SpanOptions, Tracer } from '@opentelemetry/api';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { describe, expect, it } from 'vitest';
import { createVerifier, instrument, type Jwk, remoteJwks } from '../src/index.js';
import { jwksServer } from './fixtures/jwks-server.js';
import { AUD, ISS, makeKey, NOW_MS, sign } from './fixtures/tokens.js';

/** Records span names, attributes and status; the API's own no-op span does the rest. */
function recordingTracer() {
  const spans: { name: string; attributes: unknown; status?: unknown; ended: boolean }[] = [];
  const tracer = {
    startSpan(name: string, o?: SpanOptions): Span {
      const rec: (typeof spans)[number] = { name, attributes: o?.attributes, ended: false };
      spans.push(rec);
      const span = {
        setStatus: (s: unknown) => {
          rec.status = s;
          return span;
        },
        end: () => {
          rec.ended = true;
        },
      };
      return span as unknown as Span;
    },
  } as unknown as Tracer;
  return { tracer, spans };
}

describe('instrument(verifier)', () => {
  it('counts verifications by outcome, cache hits and JWKS fetches, with no token, subject or kid', async () => {
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 });
    const meter = new MeterProvider({ readers: [reader] }).getMeter('@oms/auth');
    const { tracer, spans } = recordingTracer();
    const key = await makeKey('RS256', 'kid-secret-ish');
    const server = await jwksServer([key.publicJwk as Jwk]);
    const clock = fakeClock(NOW_MS);
    const verifier = createVerifier({
      issuer: ISS,
      audience: AUD,
      algorithms: ['RS256'],
      keys: remoteJwks(server.url, { clock }),
      clock,
    });
    const detach = instrument(verifier, { meter, tracer });
    const token = await sign(key, { claims: { sub: 'alice@example.com' } });
    await verifier.verify(token);
    await verifier.verify(token);
    await verifier.verify(await sign(key, { claims: { exp: 1 } })).catch(() => {});
    detach();
    await verifier.verify(token); // not recorded
    await reader.forceFlush();
    const metrics = exporter.getMetrics().flatMap((m) => m.scopeMetrics.flatMap((s) => s.metrics));
    const points = (name: string) =>
      metrics
        .filter((m) => m.descriptor.name === name)
        .flatMap((m) => m.dataPoints.map((d) => [d.attributes, d.value]));
    expect(points('oms.auth.verifications')).toEqual(
      expect.arrayContaining([
        [{ 'oms.auth.outcome': 'ok', 'oms.auth.cached': false }, 1],
        [{ 'oms.auth.outcome': 'ok', 'oms.auth.cached': true }, 1],
        [{ 'oms.auth.outcome': 'ERR_OMS_AUTH_TOKEN_EXPIRED', 'oms.auth.cached': false }, 1],
      ]),
    );
    expect(points('oms.auth.cache.hits')).toEqual([[{}, 1]]);
    expect(points('oms.auth.jwks.fetches')).toEqual([
      [{ 'oms.auth.outcome': 'ok', 'oms.auth.reason': 'initial' }, 1],
    ]);
    expect(metrics.find((m) => m.descriptor.name === 'oms.auth.verify.duration')?.descriptor.unit).toBe('s');
    expect(spans.map((s) => [s.name, s.ended])).toEqual([
      ['auth.verify', true],
      ['auth.verify', true],
      ['auth.verify', true],
    ]);
    expect(spans[2]?.status).toMatchObject({ message: 'ERR_OMS_AUTH_TOKEN_EXPIRED' });
    const everything = JSON.stringify([exporter.getMetrics(), spans]);
    for (const secret of ['alice@example.com', 'kid-secret-ish', token.split('.')[2] as string]) {
      expect(everything).not.toContain(secret);
    }
    await verifier.close();
    await server.stop();
  });
});
