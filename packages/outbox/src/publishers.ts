import type { OutboxMessage, Publisher, PublishResult } from './types.js';

/**
 * A publisher from any async function of one message. Messages of one call run concurrently (with per-key
 * ordering, one call never holds two messages of a key). A throw fails that message alone; an error with
 * `retryable: false` sends it to the dead letters at once.
 *
 * @example
 * import { fnPublisher } from '@oms/outbox';
 * const publisher = fnPublisher(async (message, signal) => {
 *   const res = await fetch('https://events.example.com', { method: 'POST', body: JSON.stringify(message), signal });
 *   if (res.status === 422) throw Object.assign(new Error('rejected'), { retryable: false });
 *   if (!res.ok) throw new Error(`HTTP ${res.status}`);
 * });
 */
export function fnPublisher(fn: (message: OutboxMessage, signal: AbortSignal) => unknown): Publisher {
  if (typeof fn !== 'function')
    throw new TypeError('fnPublisher needs a function (message, signal) => Promise');
  return {
    async publish(messages, signal) {
      const settled = await Promise.allSettled(messages.map(async (m) => fn(m, signal)));
      return settled.map(
        (s): PublishResult =>
          s.status === 'fulfilled'
            ? { ok: true }
            : (s.reason as { retryable?: unknown } | null)?.retryable === false
              ? { ok: false, error: s.reason, retryable: false }
              : { ok: false, error: s.reason },
      );
    },
  };
}
