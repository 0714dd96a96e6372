// A tiny JSON client for the tour: every call resolves to status, headers, parsed body and its duration.

export interface Reply<T = Record<string, unknown>> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
  ms: number;
}

export interface CallOptions {
  token?: string;
  body?: unknown;
  headers?: Record<string, string>;
  timeoutMs?: number;
}

/** Any JSON-ish value the tour reads fields off; loose on purpose, every use checks what it reads. */
// biome-ignore lint/suspicious/noExplicitAny: the tour inspects arbitrary JSON bodies
export type Json = any;

export async function call(
  method: string,
  url: string,
  { token, body, headers = {}, timeoutMs = 30_000 }: CallOptions = {},
): Promise<Reply<Json>> {
  const t0 = performance.now();
  const h: Record<string, string> = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  if (body !== undefined) h['content-type'] = 'application/json';
  const r = await fetch(url, {
    method,
    headers: h,
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await r.text();
  let parsed: Json = {};
  if (text && /json/.test(r.headers.get('content-type') ?? '')) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = {};
    }
  }
  return { status: r.status, headers: r.headers, body: parsed, text, ms: performance.now() - t0 };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Retry-After in ms (seconds form or HTTP date), or undefined. */
export function retryAfterMs(h: Headers): number | undefined {
  const v = h.get('retry-after');
  if (v === null) return undefined;
  const s = Number(v);
  if (Number.isFinite(s)) return s * 1000;
  const d = Date.parse(v);
  return Number.isFinite(d) ? Math.max(0, d - Date.now()) : undefined;
}
