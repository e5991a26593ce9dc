import { ErrorCodes, StoreError, errorMessage } from '../../core/errors.js';

/** The errno code of a failed file operation (`ENOSPC`), if it has one. */
export function errnoOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * A file operation of the embedded store failed: STORE_UNAVAILABLE naming the path and the errno,
 * e.g. `embedded store: cannot write the journal /var/lib/fedgate/store.journal: ENOSPC (no space left on device)`.
 */
export function diskError(action: string, path: string, error: unknown): StoreError {
  if (error instanceof StoreError) return error;
  const code = errnoOf(error);
  // Node's message is "ENOSPC: no space left on device, write": keep the middle part.
  const text = /^[A-Z0-9_]+: ([^,]+)/.exec(errorMessage(error))?.[1];
  const detail = code ? `${code}${text ? ` (${text})` : ''}` : errorMessage(error);
  return new StoreError(ErrorCodes.STORE_UNAVAILABLE, `embedded store: cannot ${action} ${path}: ${detail}`, { cause: error });
}
