import { ERROR_CODES, type ErrorCode } from './codes.ts';

/** Options for {@link RelayError}. */
export interface RelayErrorOptions {
  cause?: unknown;
  /** Structured values (ids, sizes) so logs stay queryable. Never secrets. */
  details?: Record<string, unknown>;
}

/**
 * The one base class for every error relaymesh raises on purpose. Check errors by
 * `code` (see {@link isRelayError}), never by message text or `instanceof` across packages.
 */
export class RelayError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: RelayErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RelayError';
    this.code = code;
    this.retryable = ERROR_CODES[code].retryable;
    this.details = options.details;
  }
}

/** True when `err` is a RelayError, optionally with the given code. */
export function isRelayError(err: unknown, code?: ErrorCode): err is RelayError {
  if (typeof err !== 'object' || err === null) return false;
  const c = (err as { code?: unknown }).code;
  if (typeof c !== 'string' || !(c in ERROR_CODES)) return false;
  return code === undefined || c === code;
}
