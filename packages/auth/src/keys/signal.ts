import { fail } from '../errors.js';

const aborted = (signal: AbortSignal) =>
  fail('ERR_OMS_AUTH_ABORTED', 'the verification was aborted by its signal', signal.reason);

/** Settles with `promise`, or rejects with `ERR_OMS_AUTH_ABORTED` once `signal` aborts; the work goes on for others. */
export function raceSignal<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.reject(aborted(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(aborted(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
