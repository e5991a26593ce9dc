import { ErrorCodes, FedgateError } from '../core/errors.js';

/** A mistake in how a command was called; printed with the command's usage hint, exit code 2. */
export class UsageError extends FedgateError {
  constructor(message: string) {
    super(ErrorCodes.USAGE, message);
  }
}

/** The command has printed its result and ends with this exit code (a validation that found errors). */
export class ExitWith extends Error {
  constructor(readonly exitCode: number) {
    super(`exit ${exitCode}`);
  }
}
