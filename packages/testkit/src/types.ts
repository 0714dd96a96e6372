/** Fault injection on a server the testkit started. */
export interface FaultHandle {
  /** SIGKILL the server (every process of it) and wait until it is gone. Connections reset. */
  kill(): Promise<void>;
  /** Start it again on the same port with the same data directory; resolves once it answers. */
  restart(): Promise<void>;
  /** SIGSTOP: sockets stay open, nothing answers. Models a hung host or a long GC pause. */
  pause(): void;
  /** SIGCONT after `pause()`. */
  resume(): void;
}

/** The `Clock` every @oms package accepts: milliseconds since the epoch, plus timers the clock controls. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}
