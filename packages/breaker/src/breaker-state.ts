/**
 * A breaker's state: one object per state, carrying only that state's data (cockatiel's `InnerState` is the
 * model). Every transition installs a new object, so a call remembers the object it was admitted under and
 * knows it is stale when the breaker's current state is a different object: no generation counter. A state
 * only mutates its own object in place for changes that are not transitions (a failure counted, a probe
 * slot taken, an open deadline moved by another instance).
 *
 * `trips` (the opens since the breaker last closed, which escalate the open period) is in every state: it
 * survives open -> half-open -> open, and a restored closed breaker may carry it.
 */

/** This instance's claim on the probe lease of a half-open state shared through a store. */
export type Lease = 'none' | 'pending' | 'held';

export interface Closed {
  readonly kind: 'closed';
  trips: number;
  /** Failures in a row (0 when the consecutive trigger is off). */
  consecutive: number;
}

export interface Open {
  readonly kind: 'open';
  trips: number;
  /** When the open period ends (+Infinity while isolated). */
  until: number;
  /** This open is known to the store: ours went global, or it came from another instance. */
  shared: boolean;
  /** Held open by isolate() until reset(). */
  isolated: boolean;
}

export interface HalfOpen {
  readonly kind: 'half-open';
  readonly trips: number;
  /** The deadline of the open period that ended here (what a snapshot reports). */
  readonly openUntil: number;
  /** The open that ended here was shared, so the probe needs the store's lease. */
  readonly shared: boolean;
  readonly since: number;
  /** Probes running now. */
  probes: number;
  /** Probes that succeeded. */
  successes: number;
  lease: Lease;
  /** Do not ask the store for the lease again before this time (it just said no). */
  leaseRetryAt: number;
}

export type State = Closed | Open | HalfOpen;

export const closed = (trips = 0, consecutive = 0): Closed => ({ kind: 'closed', trips, consecutive });

export const open = (until: number, trips: number, shared: boolean, isolated = false): Open => ({
  kind: 'open',
  trips,
  until,
  shared,
  isolated,
});

/** The half-open state that follows `from` once its open period elapsed at `now`. */
export const halfOpen = (from: Open, now: number): HalfOpen => ({
  kind: 'half-open',
  trips: from.trips,
  openUntil: from.until,
  shared: from.shared,
  since: now,
  probes: 0,
  successes: 0,
  lease: 'none',
  leaseRetryAt: 0,
});
