export type TestkitErrorCode =
  | 'ERR_OMS_TESTKIT_MISSING_BINARY'
  | 'ERR_OMS_TESTKIT_SERVER_START'
  | 'ERR_OMS_TESTKIT_NOT_OWNED'
  | 'ERR_OMS_TESTKIT_NOT_READY'
  | 'ERR_OMS_TESTKIT_WORKER';

/** Any failure of the testkit itself (as opposed to a failure of the code under test). */
export class TestkitError extends Error {
  readonly isTestkitError = true;
  constructor(
    readonly code: TestkitErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** True for any error thrown by @oms/testkit. */
export const isTestkitError = (e: unknown): e is TestkitError =>
  e instanceof Error && (e as Partial<TestkitError>).isTestkitError === true;
