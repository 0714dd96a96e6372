import { until, usePostgres, useRedis } from '@oms/testkit';
import { context, trace } from '@opentelemetry/api';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import type { Redis } from 'ioredis';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  enqueue,
  extractTraceContext,
  instrument,
  migrate,
  type OutboxDb,
  type OutboxMessage,
  relay,
} from '../src/index.js';
import { parseStreamEntry, redisStreamsConsumer, redisStreamsPublisher } from '../src/redis/index.js';
import { freshTables, openDb } from './fixtures/db.js';
import { useW3cPropagation } from './fixtures/otel.js';

const pgServer = usePostgres();
const redisServer = useRedis();
let db: OutboxDb;
let close: () => Promise<void>;
let redis: Redis;
useW3cPropagation();
beforeAll(() => {
  ({ db, close } = openDb(pgServer.url));
  redis = redisServer.client();
});
afterAll(() => close());

const message = (id: string, key = 'k'): OutboxMessage => ({
  id,
  topic: 'orders',
  key,
  type: 'order.created',
  payload: { id, n: [1, 'two'] },
  headers: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
  createdAt: new Date('2026-01-01T00:00:00Z'),
  attempts: 0,
});

async function entries(stream: string) {
  const res = (await redis.xrange(stream, '-', '+')) as [string, string[]][];
  return res.map(([, fields]) => parseStreamEntry(fields));
}

describe('redisStreamsPublisher', () => {
  it('adds a large batch over several streams in stream order, once per id, with one result per message', async () => {
    const a = `${redisServer.prefix}big-a`;
    const b = `${redisServer.prefix}big-b`;
    const publisher = redisStreamsPublisher({
      redis,
      stream: (m) => {
        if (m.key === 'bad') throw new Error('no stream for this one');
        return Number(m.id) % 2 === 0 ? a : b;
      },
    });
    const batch = Array.from({ length: 250 }, (_, i) => message(String(i + 1), `k${i}`));
    const results = await publisher.publish([...batch, message('999', 'bad')], AbortSignal.timeout(10_000));
    expect(results).toHaveLength(251);
    expect(results.slice(0, 250).every((r) => r.ok)).toBe(true);
    expect(results[250]).toMatchObject({ ok: false });
    // a re-publish of part of it (a relay that crashed before settling) adds nothing
    expect(
      (await publisher.publish(batch.slice(100, 180), AbortSignal.timeout(10_000))).every((r) => r.ok),
    ).toBe(true);
    const ids = (s: string) => entries(s).then((list) => list.map((m) => Number(m.id)));
    const even = batch.map((m) => Number(m.id)).filter((n) => n % 2 === 0);
    const odd = batch.map((m) => Number(m.id)).filter((n) => n % 2 === 1);
    expect(await ids(a)).toEqual(even);
    expect(await ids(b)).toEqual(odd);
  });

  it('adds one entry per message, and a re-publish of an outbox id adds nothing', async () => {
    const stream = `${redisServer.prefix}s1`;
    const p = redisStreamsPublisher({ redis, stream });
    const signal = new AbortController().signal;
    expect(await p.publish([message('1'), message('2')], signal)).toEqual([{ ok: true }, { ok: true }]);
    expect(await p.publish([message('2'), message('3')], signal)).toEqual([{ ok: true }, { ok: true }]);
    const got = await entries(stream);
    expect(got.map((m) => m.id)).toEqual(['1', '2', '3']);
    expect(got[0]).toEqual({ ...message('1'), attempts: 0 });
  });

  it('fails only the message whose XADD fails', async () => {
    const good = `${redisServer.prefix}good`;
    const bad = `${redisServer.prefix}not-a-stream`;
    await redis.set(bad, 'x');
    const p = redisStreamsPublisher({ redis, stream: (m) => (m.key === 'bad' ? bad : good) });
    const r = await p.publish(
      [message('1'), message('2', 'bad'), message('3')],
      new AbortController().signal,
    );
    expect(r[0]).toEqual({ ok: true });
    expect(r[1]).toMatchObject({
      ok: false,
      error: expect.objectContaining({ message: expect.stringMatching(/WRONGTYPE/) }),
    });
    expect(r[2]).toEqual({ ok: true });
  });

  it('trims with maxLen and validates its options', async () => {
    const stream = `${redisServer.prefix}trim`;
    const p = redisStreamsPublisher({ redis, stream, maxLen: 1 });
    const ids = Array.from({ length: 300 }, (_, i) => String(i + 1));
    await p.publish(
      ids.map((id) => message(id)),
      new AbortController().signal,
    );
    expect(await redis.xlen(stream)).toBeLessThan(300);
    expect(() => redisStreamsPublisher({ redis, stream: '' })).toThrow(
      expect.objectContaining({ code: 'ERR_OMS_OUTBOX_INVALID_OPTION' }),
    );
    expect(() => redisStreamsPublisher({ redis, stream, maxLen: 0 })).toThrow(/maxLen/);
  });
});

describe('trace context from writer to consumer, and instrument()', () => {
  it("links the relay's batch span to the writer's span, and the consumer restores the writer's trace", async () => {
    const spans = new InMemorySpanExporter();
    const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
    const tracer = tracerProvider.getTracer('test');
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 });
    const meterProvider = new MeterProvider({ readers: [reader] });

    const tables = freshTables();
    await migrate(db, { tables });
    const stream = `${redisServer.prefix}traced`;
    const r = relay({ db, tables, publisher: redisStreamsPublisher({ redis, stream }), pollMs: 50 });
    const detach = instrument(r, { meter: meterProvider.getMeter('@oms/outbox'), tracer });

    const writer = tracer.startSpan('POST /orders');
    await context.with(trace.setSpan(context.active(), writer), () =>
      enqueue(
        db,
        [
          { topic: 'orders', key: 'secret-key-1', type: 'order.created', payload: { n: 1 } },
          { topic: 'orders', key: 'secret-key-2', type: 'order.created', payload: { n: 2 } },
        ],
        { tables },
      ),
    );
    writer.end();
    r.start();
    await until(async () => (await redis.xlen(stream)) === 2, { what: 'two stream entries' });
    await until(() => spans.getFinishedSpans().some((s) => s.name === 'outbox.relay.batch'), {
      what: 'the batch span',
    });

    // the consumer side: read the entry, restore the context, start its span as a child of the writer's
    const [entry] = await entries(stream);
    const consumerSpan = tracer.startSpan('orders process', {}, extractTraceContext(entry!.headers));
    consumerSpan.end();

    await reader.forceFlush();
    await r.stop();
    detach();

    const writerCtx = writer.spanContext();
    const batch = spans.getFinishedSpans().find((s) => s.name === 'outbox.relay.batch')!;
    expect(batch.links.map((l) => l.context.spanId)).toEqual([writerCtx.spanId, writerCtx.spanId]);
    expect(batch.attributes).toMatchObject({ 'messaging.batch.message_count': 2, 'oms.outbox.published': 2 });
    expect(consumerSpan.spanContext().traceId).toBe(writerCtx.traceId);
    expect(spans.getFinishedSpans().find((s) => s.name === 'orders process')!.parentSpanContext?.spanId).toBe(
      writerCtx.spanId,
    );

    const metrics = exporter.getMetrics().flatMap((x) => x.scopeMetrics.flatMap((s) => s.metrics));
    const byName = Object.fromEntries(metrics.map((m) => [m.descriptor.name, m]));
    expect(Object.keys(byName).sort()).toEqual([
      'oms.outbox.backlog',
      'oms.outbox.enqueued',
      'oms.outbox.lag',
      'oms.outbox.published',
    ]);
    expect(byName['oms.outbox.lag']!.descriptor.unit).toBe('s');
    expect(byName['oms.outbox.enqueued']!.dataPoints[0]!.value).toBe(2);
    expect(byName['oms.outbox.published']!.dataPoints[0]).toMatchObject({
      value: 2,
      attributes: { 'messaging.destination.name': 'orders' },
    });
    expect(JSON.stringify(metrics)).not.toContain('secret-key');
    expect(JSON.stringify(batch.attributes)).not.toContain('secret-key');
    await meterProvider.shutdown();
    await tracerProvider.shutdown();
  });
});

describe('redisStreamsConsumer', () => {
  async function setup(name: string) {
    const tables = freshTables();
    await migrate(db, { tables });
    await sql`create table ${sql.id(tables.schema!, 'applied')} (n serial, id text, key text, trace text)`.execute(
      db,
    );
    const stream = `${redisServer.prefix}${name}`;
    const applied = async () =>
      (
        await sql<{
          id: string;
          key: string;
          trace: string | null;
        }>`select id, key, trace from ${sql.id(tables.schema!, 'applied')} a order by a.n`.execute(db)
      ).rows;
    return { tables, stream, applied };
  }

  it('applies each message once in stream order, acks after the commit, and runs the handler in the writer trace', async () => {
    const { tables, stream, applied } = await setup('consume');
    const p = redisStreamsPublisher({ redis, stream });
    const signal = new AbortController().signal;
    await p.publish([message('1', 'a'), message('2', 'b'), message('3', 'a')], signal);
    // a duplicate entry of message 2, as a republish past the publisher's dedup window would add
    const [, fields] = ((await redis.xrange(stream, '-', '+')) as [string, string[]][])[1]!;
    await redis.xadd(stream, '*', ...fields);
    let fail = true;
    const c = redisStreamsConsumer({
      redis: redisServer.client(),
      stream,
      group: 'billing',
      consumer: 'c1',
      db,
      tables,
      blockMs: 50,
      handler: async (m, trx) => {
        if (m.id === '3' && fail) {
          fail = false;
          throw new Error('first try fails');
        }
        const traceId = activeTraceId() ?? null;
        await sql`insert into ${sql.id(tables.schema!, 'applied')} (id, key, trace) values (${m.id}, ${m.key}, ${traceId})`.execute(
          trx,
        );
      },
    });
    const statuses: string[] = [];
    const errors: unknown[] = [];
    c.on('handled', (e) => statuses.push(`${e.message.id}:${e.status}`));
    c.on('error', (e) => errors.push(e.error));
    c.start();
    await until(() => statuses.length === 4, { what: 'four entries handled' });
    await c.stop();
    expect(statuses).toEqual(['1:processed', '2:processed', '3:processed', '2:duplicate']);
    expect(errors).toHaveLength(1);
    expect((await applied()).map((r) => r.id)).toEqual(['1', '2', '3']);
    expect((await applied())[0]!.trace).toBe('0af7651916cd43dd8448eb211c80319c');
    const pending = (await redis.xpending(stream, 'billing')) as [number, ...unknown[]];
    expect(pending[0]).toBe(0);
  });

  it("takes over a dead consumer's pending entries after claimIdleMs", async () => {
    const { tables, stream, applied } = await setup('autoclaim');
    const p = redisStreamsPublisher({ redis, stream });
    await p.publish([message('1'), message('2')], new AbortController().signal);
    await redis.xgroup('CREATE', stream, 'billing', '0');
    // a consumer that read both entries and died before acknowledging them
    await redis.xreadgroup('GROUP', 'billing', 'dead', 'COUNT', 10, 'STREAMS', stream, '>');
    const c = redisStreamsConsumer({
      redis: redisServer.client(),
      stream,
      group: 'billing',
      consumer: 'alive',
      db,
      tables,
      blockMs: 50,
      claimIdleMs: 300,
      handler: async (m, trx) => {
        await sql`insert into ${sql.id(tables.schema!, 'applied')} (id, key) values (${m.id}, ${m.key})`.execute(
          trx,
        );
      },
    });
    c.start();
    await until(async () => (await applied()).length === 2, {
      timeoutMs: 10_000,
      what: "the dead consumer's entries",
    });
    await c.stop();
    expect((await applied()).map((r) => r.id)).toEqual(['1', '2']);
  });

  it('moves an entry that fails maxDeliveries times to the dead-letter stream, acks it, and goes on behind it', async () => {
    const { tables, stream, applied } = await setup('poison');
    const p = redisStreamsPublisher({ redis, stream });
    await p.publish([message('1', 'a'), message('2', 'b'), message('3', 'a')], new AbortController().signal);
    // an entry that is not an outbox message at all fails every delivery too
    await redis.xadd(stream, '*', 'junk', 'yes');
    let tries = 0;
    const c = redisStreamsConsumer({
      redis: redisServer.client(),
      stream,
      group: 'billing',
      consumer: 'c1',
      db,
      tables,
      blockMs: 50,
      maxDeliveries: 3,
      handler: async (m, trx) => {
        if (m.id === '2') {
          tries++;
          throw new Error('poison');
        }
        await sql`insert into ${sql.id(tables.schema!, 'applied')} (id, key) values (${m.id}, ${m.key})`.execute(
          trx,
        );
      },
    });
    const dead: { entryId: string; deliveries: number; id?: string }[] = [];
    c.on('deadLettered', (e) =>
      dead.push({ entryId: e.entryId, deliveries: e.deliveries, ...(e.message ? { id: e.message.id } : {}) }),
    );
    c.start();
    await until(() => dead.length === 2, { timeoutMs: 20_000, what: 'two entries dead-lettered' });
    await until(async () => (await applied()).length === 2, { what: 'the entries behind the poison one' });
    await c.stop();
    expect(tries).toBe(3);
    expect(dead.map((d) => [d.id, d.deliveries])).toEqual([
      ['2', 3],
      [undefined, 3],
    ]);
    expect((await applied()).map((r) => r.id)).toEqual(['1', '3']);
    const pending = (await redis.xpending(stream, 'billing')) as [number, ...unknown[]];
    expect(pending[0]).toBe(0);
    const deadEntries = (await redis.xrange(`${stream}:dead`, '-', '+')) as [string, string[]][];
    expect(deadEntries).toHaveLength(2);
    const [, fields] = deadEntries[0]!;
    expect(parseStreamEntry(fields)).toMatchObject({ id: '2', key: 'b' });
    const f = Object.fromEntries(
      Array.from({ length: fields.length / 2 }, (_, i) => [fields[2 * i], fields[2 * i + 1]]),
    );
    expect(f).toMatchObject({
      dead_error: 'Error: poison',
      dead_source_id: dead[0]!.entryId,
      dead_group: 'billing',
      dead_deliveries: '3',
    });
    expect(() =>
      redisStreamsConsumer({
        redis,
        stream,
        group: 'g',
        consumer: 'c',
        db,
        handler: () => {},
        maxDeliveries: 0,
      }),
    ).toThrow(/maxDeliveries/);
  });
});

/** The trace id of the active context: inside the handler, the writer's. */
function activeTraceId(): string | undefined {
  return trace.getSpanContext(context.active())?.traceId;
}
