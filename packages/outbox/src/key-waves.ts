import type { OutboxMessage } from './types.js';

/**
 * Splits a per-key batch (in id order) into waves: wave n holds each key's n-th message, so one publish call
 * never carries two messages of a key and a key's message goes out only after its predecessor's result.
 */
export function keyWaves(batch: readonly OutboxMessage[]): OutboxMessage[][] {
  const waves: OutboxMessage[][] = [];
  const depth = new Map<string, number>();
  for (const m of batch) {
    const d = depth.get(m.key) ?? 0;
    depth.set(m.key, d + 1);
    const wave = waves[d];
    if (wave) wave.push(m);
    else waves[d] = [m];
  }
  return waves;
}
