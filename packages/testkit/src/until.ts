/**
 * Polls `cond` every 10 ms until it returns a truthy value, and resolves to that value. Rejects with
 * `timed out after <timeoutMs> ms waiting for <what>` once the deadline passes, so a failing test says what
 * never happened.
 *
 * @example
 * await until(() => breaker.state === 'open', { timeoutMs: 2_000, what: 'the breaker to open' });
 */
export async function until<T>(
  cond: () => T | Promise<T>,
  {
    timeoutMs = 5_000,
    what = 'the condition',
    intervalMs = 10,
  }: { timeoutMs?: number; what?: string; intervalMs?: number } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
