// A small JSON Schema validator for the keywords our health+json schema uses, and no others: an unknown
// keyword throws, so the schema cannot silently ask for a check this validator does not make.
type Schema = { [k: string]: unknown } | boolean;

const SUPPORTED = new Set([
  '$schema',
  '$id',
  '$defs',
  '$ref',
  'title',
  'description',
  'type',
  'enum',
  'required',
  'properties',
  'additionalProperties',
  'propertyNames',
  'items',
  'minItems',
  'minLength',
  'pattern',
  'format',
]);

// RFC 3339 date-time (section 5.6), which is what JSON Schema's "date-time" format means
const DATE_TIME = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

const typeOf = (v: unknown): string => {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
};

const matchesType = (v: unknown, t: string) => {
  const actual = typeOf(v);
  return actual === t || (t === 'number' && actual === 'integer');
};

export function validate(root: Schema, value: unknown): string[] {
  const errors: string[] = [];
  const resolve = (ref: string): Schema => {
    if (!ref.startsWith('#/')) throw new Error(`unsupported $ref ${ref}`);
    let node: unknown = root;
    for (const part of ref.slice(2).split('/')) node = (node as Record<string, unknown>)?.[part];
    if (node === undefined) throw new Error(`unresolvable $ref ${ref}`);
    return node as Schema;
  };

  const walk = (schema: Schema, v: unknown, at: string): void => {
    if (schema === true) return;
    if (schema === false) {
      errors.push(`${at}: no value is allowed here`);
      return;
    }
    for (const k of Object.keys(schema)) {
      if (!SUPPORTED.has(k)) throw new Error(`validator does not support keyword ${k} (at schema for ${at})`);
    }
    if (typeof schema.$ref === 'string') walk(resolve(schema.$ref), v, at);
    if (schema.type !== undefined) {
      const types = Array.isArray(schema.type) ? (schema.type as string[]) : [schema.type as string];
      if (!types.some((t) => matchesType(v, t))) {
        errors.push(`${at}: expected ${types.join(' or ')}, got ${typeOf(v)}`);
        return;
      }
    }
    if (Array.isArray(schema.enum) && !schema.enum.some((e) => e === v)) {
      errors.push(`${at}: ${JSON.stringify(v)} is not one of ${JSON.stringify(schema.enum)}`);
    }
    if (typeof v === 'string') {
      if (typeof schema.minLength === 'number' && [...v].length < schema.minLength) {
        errors.push(`${at}: shorter than ${schema.minLength}`);
      }
      if (typeof schema.pattern === 'string' && !new RegExp(schema.pattern, 'u').test(v)) {
        errors.push(`${at}: ${JSON.stringify(v)} does not match ${schema.pattern}`);
      }
      if (schema.format === 'date-time' && (!DATE_TIME.test(v) || Number.isNaN(Date.parse(v)))) {
        errors.push(`${at}: ${JSON.stringify(v)} is not an RFC 3339 date-time`);
      }
    }
    if (Array.isArray(v)) {
      if (typeof schema.minItems === 'number' && v.length < schema.minItems) {
        errors.push(`${at}: fewer than ${schema.minItems} items`);
      }
      if (schema.items !== undefined) {
        for (const [i, item] of v.entries()) walk(schema.items as Schema, item, `${at}[${i}]`);
      }
    }
    if (typeOf(v) === 'object') {
      const obj = v as Record<string, unknown>;
      const props = (schema.properties ?? {}) as Record<string, Schema>;
      for (const r of (schema.required ?? []) as string[]) {
        if (!(r in obj)) errors.push(`${at}: missing required property ${r}`);
      }
      for (const [k, val] of Object.entries(obj)) {
        if (schema.propertyNames !== undefined)
          walk(schema.propertyNames as Schema, k, `${at} key ${JSON.stringify(k)}`);
        if (k in props) walk(props[k] as Schema, val, `${at}.${k}`);
        else if (schema.additionalProperties !== undefined) {
          if (schema.additionalProperties === false) errors.push(`${at}: unexpected property ${k}`);
          else walk(schema.additionalProperties as Schema, val, `${at}.${k}`);
        }
      }
    }
  };
  walk(root, value, '$');
  return errors;
}
