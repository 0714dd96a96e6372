import {
  type BreakerStore,
  bulkhead,
  type CircuitBreaker,
  circuitBreaker,
  exponentialBackoff,
  isOmsBreakerError,
  type Pipeline,
  pipeline,
  retry,
  retryBudget,
  timeout,
} from '@oms/breaker';

/** The payments service answered with an HTTP error. */
export class PaymentsHttpError extends Error {
  constructor(
    readonly status: number,
    readonly retryAfterMs?: number,
  ) {
    super(`payments answered HTTP ${status}`);
    this.name = 'PaymentsHttpError';
  }
}

export interface Charge {
  chargeId: string;
  orderId: string;
}

export interface PaymentGatewayOptions {
  baseUrl: string;
  timeoutMs: number;
  openMs: number;
  /** Failures in a row that open the breaker. */
  failures: number;
  store?: BreakerStore | undefined;
}

/** What /pay tells the caller when payments could not be reached. */
export interface Unavailable {
  retryAfterSec: number;
  reason: string;
}

/**
 * The client of the payments service: every charge goes through timeout (the whole call, retries included),
 * retry with a shared budget, the `payments` circuit breaker (shared through Redis when configured) and a
 * bulkhead, outermost first. A charge carries an Idempotency-Key, so a retry never charges twice.
 */
export class PaymentGateway {
  readonly breaker: CircuitBreaker;
  readonly policy: Pipeline;
  readonly #baseUrl: string;
  readonly #openMs: number;

  constructor(o: PaymentGatewayOptions) {
    this.#baseUrl = o.baseUrl.replace(/\/$/, '');
    this.#openMs = o.openMs;
    this.breaker = circuitBreaker({
      name: 'payments',
      consecutiveFailures: o.failures,
      openMs: o.openMs,
      halfOpen: { maxConcurrent: 1, successesToClose: 1, maxWaitMs: Math.max(5_000, o.timeoutMs * 2) },
      // a 4xx means the service answered: it is the request that is wrong, not the dependency
      isFailure: (e) => !(e instanceof PaymentsHttpError && e.status < 500),
      ...(o.store ? { store: o.store } : {}),
    });
    this.policy = pipeline(
      timeout(o.timeoutMs),
      retry({
        maxAttempts: 3,
        backoff: exponentialBackoff({ initialMs: 50 }),
        maxDelayMs: 1_000,
        budget: retryBudget({ ratio: 0.2, minPerSec: 5 }),
        shouldRetry: (e) => !isOmsBreakerError(e) && !(e instanceof PaymentsHttpError && e.status < 500),
      }),
      this.breaker,
      bulkhead({ maxConcurrent: 32, maxQueue: 64, queueTimeoutMs: 1_000 }),
    );
  }

  /** Charges an order once (the key makes a repeat return the first charge). */
  async charge(
    input: {
      orderId: string;
      amountCents: number;
      currency: string;
      idempotencyKey: string;
      traceHeaders: Record<string, string>;
    },
    signal?: AbortSignal,
  ): Promise<Charge> {
    return this.policy.execute(async ({ signal: s }) => {
      const res = await fetch(`${this.#baseUrl}/charges`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'idempotency-key': input.idempotencyKey,
          ...input.traceHeaders,
        },
        body: JSON.stringify({
          orderId: input.orderId,
          amountCents: input.amountCents,
          currency: input.currency,
        }),
        signal: s,
      });
      if (!res.ok) {
        await res.body?.cancel();
        const after = Number(res.headers.get('retry-after'));
        throw new PaymentsHttpError(
          res.status,
          Number.isFinite(after) && after > 0 ? after * 1000 : undefined,
        );
      }
      return (await res.json()) as Charge;
    }, signal);
  }

  /** How to answer a failed charge: Retry-After from the open breaker, else the open period. */
  unavailable(e: unknown): Unavailable {
    if (isOmsBreakerError(e)) {
      const ms = e.code === 'ERR_OMS_BREAKER_OPEN' ? (e.retryAfterMs ?? this.#openMs) : this.#openMs;
      return { retryAfterSec: Math.max(1, Math.ceil(ms / 1000)), reason: e.code };
    }
    if (e instanceof PaymentsHttpError) return { retryAfterSec: 1, reason: `HTTP ${e.status}` };
    const cause = (e as { cause?: { code?: unknown } } | undefined)?.cause?.code;
    return {
      retryAfterSec: 1,
      reason: typeof cause === 'string' ? cause : e instanceof Error ? e.name : 'error',
    };
  }

  async close(): Promise<void> {
    await (this.policy as unknown as { close?: () => Promise<void> }).close?.();
  }
}
