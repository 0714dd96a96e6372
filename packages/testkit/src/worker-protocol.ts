/** Messages between `forkWorkers` and its children. Internal. */
export type ToWorker =
  | { type: 'init'; modulePath: string; input: unknown; index: number; n: number }
  | { type: 'go' }
  | { type: 'message'; data: unknown };

export type FromWorker =
  | { type: 'ready' }
  | { type: 'message'; data: unknown }
  | { type: 'result'; value: unknown }
  | { type: 'error'; message: string; stack?: string; code?: string };
