import { OmsOutboxError } from './errors.js';
import type { OutboxMessage, Publisher, PublishResult } from './types.js';

/**
 * Calls the publisher for one wave of a batch; every failure mode (a throw, a wrong-length or malformed result,
 * an abort) becomes one result per message. A publisher that ignores the signal must not hold a non-draining
 * stop hostage, so an abort wins the race and yields `'aborted'` for each message.
 */
export async function callPublisher(
  publisher: Publisher,
  messages: readonly OutboxMessage[],
  signal: AbortSignal,
): Promise<readonly (PublishResult | 'aborted')[]> {
  let onAbort: (() => void) | undefined;
  // a publisher that ignores the signal must not hold a non-draining stop hostage
  const aborted = new Promise<'aborted'>((resolve) => {
    onAbort = () => resolve('aborted');
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    const call = Promise.resolve().then(() => publisher.publish(messages, signal));
    call.catch(() => {});
    const results = await Promise.race([call, aborted]);
    if (results === 'aborted') return messages.map(() => 'aborted');
    if (!Array.isArray(results) || results.length !== messages.length) {
      const error = new OmsOutboxError(
        'ERR_OMS_OUTBOX_PUBLISHER',
        `the publisher must resolve to one result per message (${messages.length}), got ${Array.isArray(results) ? results.length : typeof results}`,
        true,
      );
      return messages.map(() => ({ ok: false, error }));
    }
    return results.map((r: unknown) =>
      typeof r === 'object' && r !== null && typeof (r as PublishResult).ok === 'boolean'
        ? (r as PublishResult)
        : {
            ok: false,
            error: new OmsOutboxError(
              'ERR_OMS_OUTBOX_PUBLISHER',
              'a publish result must be { ok: boolean }',
              true,
            ),
          },
    );
  } catch (error) {
    if (signal.aborted) return messages.map(() => 'aborted');
    return messages.map(() => ({ ok: false, error }));
  } finally {
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }
}
