import { OmsOutboxError } from './errors.js';

/**
 * 1 MiB: the default largest serialised payload (`maxPayloadBytes`).
 *
 * @example
 * import { DEFAULT_MAX_PAYLOAD_BYTES } from '@oms/outbox';
 * const maxPayloadBytes = DEFAULT_MAX_PAYLOAD_BYTES / 4;
 */
export const DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024;

const notJson = (where: string, what: string) =>
  new OmsOutboxError('ERR_OMS_OUTBOX_PAYLOAD_NOT_JSON', `${where} is not JSON-serialisable: ${what}`);

/**
 * Serialises `value` to JSON text that PostgreSQL's jsonb accepts, or throws a typed error. JSON.stringify
 * alone would turn NaN into null and drop a function silently, and jsonb rejects "\u0000" only at insert time,
 * which would abort the caller's transaction instead of failing this one call.
 */
export function toJson(where: string, value: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value, function check(this: unknown, k, v: unknown) {
      switch (typeof v) {
        case 'number':
          if (!Number.isFinite(v)) throw notJson(where, `${pathOf(k)} is ${v}`);
          return v;
        case 'string':
          if (v.includes('\u0000')) throw notJson(where, `${pathOf(k)} contains a NUL character`);
          return v;
        case 'function':
        case 'symbol':
          throw notJson(where, `${pathOf(k)} is a ${typeof v}`);
        case 'undefined':
          // an absent optional property is dropped, as JSON does; in an array it would become null
          if (Array.isArray(this)) throw notJson(where, `${pathOf(k)} is undefined inside an array`);
          return v;
        default:
          return v;
      }
    });
  } catch (e) {
    if (e instanceof OmsOutboxError) throw e;
    // BigInt and cycles make JSON.stringify itself throw a TypeError
    throw new OmsOutboxError(
      'ERR_OMS_OUTBOX_PAYLOAD_NOT_JSON',
      `${where} is not JSON-serialisable: ${(e as Error).message}`,
      false,
      { cause: e },
    );
  }
  if (text === undefined) throw notJson(where, 'the value itself is undefined, a function or a symbol');
  return text;
}

const pathOf = (k: string) => (k === '' ? 'the value' : `property ${JSON.stringify(k)}`);
