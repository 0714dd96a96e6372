import { type CallContext, kRun, type Next, PolicyBase, TERMINAL } from './context.js';
import { invalid } from './errors.js';
import type { Pipeline, Policy, Substitute } from './types.js';

/** Runs one of our policies with the rest of the chain behind it. */
class Link implements Next {
  constructor(
    readonly policy: PolicyBase,
    readonly next: Next,
  ) {}
  call(ctx: CallContext): unknown {
    return this.policy[kRun](ctx, this.next);
  }
}

/** Runs someone else's `Policy`: it only knows `execute`, so its context is adopted for the inner layers. */
class ForeignLink implements Next {
  constructor(
    readonly policy: Policy<unknown>,
    readonly next: Next,
  ) {}
  call(ctx: CallContext): unknown {
    return this.policy.execute((c) => this.next.call(ctx.adopt(c)), ctx.signal);
  }
}

const isOurs = (p: Policy<unknown>): p is PolicyBase => p instanceof PolicyBase;

function chain(policies: readonly Policy<unknown>[], end: Next): Next {
  let next = end;
  for (let i = policies.length - 1; i >= 0; i--) {
    const p = policies[i]!;
    next = isOurs(p) ? new Link(p, next) : new ForeignLink(p, next);
  }
  return next;
}

class PipelineImpl extends PolicyBase implements Pipeline<unknown> {
  readonly kind = 'pipeline' as const;
  readonly policies: readonly Policy<unknown>[];
  readonly #chain: Next;

  constructor(policies: readonly Policy<unknown>[]) {
    super();
    const flat: Policy<unknown>[] = [];
    for (const [i, p] of policies.entries()) {
      if (p === null || typeof p !== 'object' || typeof (p as Policy<unknown>).execute !== 'function') {
        throw invalid(`pipeline argument ${i} is not a policy (it needs execute(fn, signal))`);
      }
      if (p instanceof PipelineImpl) flat.push(...p.policies);
      else flat.push(p);
    }
    this.policies = Object.freeze(flat);
    this.#chain = chain(flat, TERMINAL);
  }

  [kRun](ctx: CallContext, next: Next): Promise<unknown> {
    const c = next === TERMINAL ? this.#chain : chain(this.policies, next);
    try {
      return Promise.resolve(c.call(ctx));
    } catch (e) {
      // Only an empty pipeline reaches the user's function synchronously.
      return Promise.reject(e);
    }
  }

  override async close(): Promise<void> {
    await Promise.all(
      this.policies.map((p) =>
        typeof (p as PolicyBase).close === 'function' ? (p as PolicyBase).close() : undefined,
      ),
    );
  }
}

/**
 * Composes policies, outermost first: `pipeline(fallback, timeout, retry, breaker)` times the whole retry
 * loop and lets the breaker see every attempt. `ctx.attempt` and `ctx.signal` flow inward. Your own
 * `Policy` implementations compose too.
 *
 * @example
 * declare function fetchUser(id: string, o: { signal: AbortSignal }): Promise<{ name: string }>;
 * const resilient = pipeline(timeout(5_000), retry({ maxAttempts: 3 }), circuitBreaker({ name: 'users' }));
 * const user = await resilient.execute(({ signal }) => fetchUser('42', { signal }));
 */
export function pipeline<P extends Policy<unknown>[]>(...policies: P): Pipeline<Substitute<P[number]>> {
  return new PipelineImpl(policies) as Pipeline<Substitute<P[number]>>;
}
