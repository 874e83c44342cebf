/**
 * Errors thrown by the native façade. The hot path never throws: oversize or
 * unsendable packets are counted in `stats` instead.
 */

/** The compiled addon is not there (or not loadable on this platform). */
export class NativeBindingMissingError extends Error {
  override readonly name = 'NativeBindingMissingError';
  readonly code = 'ENATIVEMISSING';
  constructor(detail: string) {
    super(
      'the isthmus native addon (native-bindings/build/Release/isthmus_native.node) is not built: ' +
        'run `npm run install` (or `npm ci`) in the project root; it needs Linux, python3, make and a C compiler. ' +
        `(${detail})`,
    );
  }
}

/** A system call failed; `code` is the errno name (`EPERM`, `EADDRINUSE`, ...). */
export class NativeIoError extends Error {
  override readonly name = 'NativeIoError';
  readonly code: string;
  readonly syscall: string | undefined;
  constructor(code: string, message: string, syscall?: string) {
    super(message);
    this.code = code;
    this.syscall = syscall;
  }

  /** Re-types an error thrown by the addon (it carries code/syscall already). */
  static from(err: unknown): unknown {
    if (err instanceof Error && typeof (err as { code?: unknown }).code === 'string') {
      const e = err as Error & { code: string; syscall?: string };
      return new NativeIoError(e.code, e.message, e.syscall);
    }
    return err;
  }
}

/** An option or argument is malformed (bad address string, out-of-range size, ...). */
export class InvalidOptionError extends Error {
  override readonly name = 'InvalidOptionError';
  readonly code = 'EINVAL';
}
