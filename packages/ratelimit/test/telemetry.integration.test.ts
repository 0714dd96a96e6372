import { useRedis } from '@oms/testkit';
import type { Span, SpanOptions, Tracer } from '@opentelemetry/api';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { describe, expect, it } from 'vitest';
import { fixedWindow, instrument, rateLimiter } from '../src/index.js';
import { redisStore } from '../src/redis/index.js';

const redis = useRedis();

interface Recorded {
  name: string;
  options: SpanOptions | undefined;
  status?: unknown;
  ended: boolean;
}

/** Records what instrument() asks of a tracer; the SDK's exporter is not a dependency of this package. */
function recordingTracer(spans: Recorded[]): Tracer {
  return {
    startSpan(name: string, options?: SpanOptions) {
      const r: Recorded = { name, options, ended: false };
      spans.push(r);
      const span = {
        setStatus(s: unknown) {
          r.status = s;
          return span;
        },
        end() {
          r.ended = true;
        },
      };
      return span as unknown as Span;
    },
    startActiveSpan() {
      throw new Error('instrument() starts no active span');
    },
  } as Tracer;
}

describe('instrument(target, { meter, tracer })', () => {
  it('traces each Redis round trip as a short ratelimit.store span without the key, and detaches', async () => {
    const spans: Recorded[] = [];
    const provider = new MeterProvider();
    const l = rateLimiter({
      name: 'traced',
      algorithm: fixedWindow({ limit: 5, windowMs: 60_000 }),
      store: redisStore({ redis: redis.client(), prefix: `${redis.prefix}tel:` }),
      timeoutMs: 10_000,
    });
    const detach = instrument(l, { meter: provider.getMeter('test'), tracer: recordingTracer(spans) });
    await l.consume('secret-user-key');
    expect(spans).toHaveLength(1);
    expect(spans[0]).toMatchObject({
      name: 'ratelimit.store',
      ended: true,
      options: {
        attributes: {
          'oms.ratelimit.policy': 'traced',
          'oms.ratelimit.store': 'redis',
          'oms.ratelimit.outcome': 'ok',
        },
      },
    });
    expect(JSON.stringify(spans)).not.toContain('secret-user-key');
    detach();
    await l.consume('secret-user-key');
    expect(spans).toHaveLength(1);
    await l.close();
    await provider.shutdown();
  });
});
