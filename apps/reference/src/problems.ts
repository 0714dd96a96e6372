import type { FastifyReply } from 'fastify';

/** The content type of every error body (RFC 9457). */
export const PROBLEM_JSON = 'application/problem+json';

/** Every error the app answers, by code: its HTTP status, its stable type slug and its title. */
export const PROBLEMS = {
  VALIDATION: { status: 400, slug: 'validation', title: 'The request is invalid' },
  FORBIDDEN: { status: 403, slug: 'forbidden', title: 'Not allowed' },
  NOT_FOUND: { status: 404, slug: 'not-found', title: 'Not found' },
  INVALID_TRANSITION: {
    status: 409,
    slug: 'invalid-transition',
    title: 'The order cannot make this transition',
  },
  CONFLICT: { status: 409, slug: 'conflict', title: 'A concurrent change won' },
  NOT_FROZEN_HERE: { status: 409, slug: 'not-frozen-here', title: 'This instance does not hold the freeze' },
  PAYLOAD_TOO_LARGE: { status: 413, slug: 'payload-too-large', title: 'The body is too large' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, slug: 'unsupported-media-type', title: 'Send application/json' },
  IDEMPOTENCY_KEY_REUSED: {
    status: 422,
    slug: 'idempotency-key-reused',
    title: 'This Idempotency-Key was used with a different request',
  },
  RATE_LIMITED: { status: 429, slug: 'rate-limited', title: 'Too Many Requests' },
  MAINTENANCE: { status: 423, slug: 'maintenance', title: 'Writes are frozen for maintenance' },
  INTERNAL: { status: 500, slug: 'internal', title: 'Internal error' },
  PAYMENTS_UNAVAILABLE: { status: 503, slug: 'payments-unavailable', title: 'Payments are unavailable' },
  BUSY: { status: 503, slug: 'busy', title: 'The resource is busy; retry' },
  BACKUP_FAILED: { status: 500, slug: 'backup-failed', title: 'The backup failed' },
} as const;

export type ProblemCode = keyof typeof PROBLEMS;

/** The stable `type` URI of a problem code. */
export const problemType = (code: ProblemCode): string => `https://oms.dev/problems/${PROBLEMS[code].slug}`;

/** An error a handler throws to answer with a problem+json body. */
export class Problem extends Error {
  constructor(
    readonly code: ProblemCode,
    readonly detail?: string,
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(detail ?? PROBLEMS[code].title);
    this.name = 'Problem';
  }
  get status(): number {
    return PROBLEMS[this.code].status;
  }
}

/** The RFC 9457 body of a problem. */
export function problemBody(code: ProblemCode, detail?: string, extra: Record<string, unknown> = {}) {
  const p = PROBLEMS[code];
  return {
    type: problemType(code),
    title: p.title,
    status: p.status,
    code,
    ...(detail === undefined ? {} : { detail }),
    ...extra,
  };
}

/** Sends a problem on a reply. */
export function sendProblem(reply: FastifyReply, p: Problem): FastifyReply {
  return reply
    .code(p.status)
    .headers(p.headers)
    .type(PROBLEM_JSON)
    .send(Buffer.from(JSON.stringify(problemBody(p.code, p.detail, p.extra))));
}
