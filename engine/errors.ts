/**
 * The one error catalogue of solescope.
 *
 * Every failure a user can meet has exactly one code here. Each transport maps the code to its medium:
 * the HTTP adapter uses {@link ERROR_CATALOGUE}[code].status, the CLI uses `.exitCode`, the Discord bot
 * sends `.userMessage` (plus the specific message) as an ephemeral reply. Nothing outside this closed set
 * reaches a user: {@link toEngineError} folds anything unknown into `INTERNAL` without its stack.
 */

/** The closed set of error codes. */
export const ERROR_CODES = [
  'BAD_INPUT',
  'UNKNOWN_COMMAND',
  'NOT_AN_IMAGE',
  'TOO_LARGE',
  'NOT_FOUND',
  'UNAUTHORIZED',
  'FORBIDDEN',
  'RATE_LIMITED',
  'CONFLICT',
  'MODEL_MISSING',
  'UNAVAILABLE',
  'TIMEOUT',
  'UNSUPPORTED_MEDIA_TYPE',
  'INTERNAL',
] as const;

/** One code of the catalogue. */
export type ErrorCode = (typeof ERROR_CODES)[number];

/** How a code is rendered by each transport. */
export interface ErrorSpec {
  /** HTTP status the API answers with. */
  readonly status: number;
  /** CLI exit code (1 is reserved for INTERNAL, 2 for usage errors as most CLIs do). */
  readonly exitCode: number;
  /** A short, human sentence shown before the specific message. */
  readonly userMessage: string;
  /** Whether a retry of the same request may succeed (jobs use this to decide on retries). */
  readonly retryable: boolean;
}

/** Code → rendering for every transport. */
export const ERROR_CATALOGUE: Readonly<Record<ErrorCode, ErrorSpec>> = {
  BAD_INPUT: { status: 400, exitCode: 2, userMessage: 'That input is not valid.', retryable: false },
  UNKNOWN_COMMAND: { status: 404, exitCode: 2, userMessage: 'There is no such command.', retryable: false },
  NOT_AN_IMAGE: { status: 415, exitCode: 3, userMessage: 'That file is not an image I can read.', retryable: false },
  TOO_LARGE: { status: 413, exitCode: 4, userMessage: 'That is too large.', retryable: false },
  NOT_FOUND: { status: 404, exitCode: 5, userMessage: 'Not found.', retryable: false },
  UNAUTHORIZED: { status: 401, exitCode: 6, userMessage: 'Authentication failed.', retryable: false },
  FORBIDDEN: { status: 403, exitCode: 7, userMessage: 'You are not allowed to do that.', retryable: false },
  RATE_LIMITED: { status: 429, exitCode: 8, userMessage: 'Slow down a little.', retryable: true },
  CONFLICT: { status: 409, exitCode: 9, userMessage: 'That conflicts with the current state.', retryable: false },
  MODEL_MISSING: { status: 503, exitCode: 10, userMessage: 'A model this needs is not available.', retryable: false },
  UNAVAILABLE: { status: 503, exitCode: 11, userMessage: 'A service this needs is unavailable.', retryable: true },
  TIMEOUT: { status: 504, exitCode: 12, userMessage: 'That took too long.', retryable: true },
  UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    exitCode: 13,
    userMessage: 'That content type is not supported.',
    retryable: false,
  },
  INTERNAL: { status: 500, exitCode: 1, userMessage: 'Something went wrong on our side.', retryable: true },
};

/** Options of an {@link EngineError}. */
export interface EngineErrorOptions {
  /** Extra machine-readable context (e.g. `retryAfterMs`, the offending field). Never secrets. */
  readonly details?: Record<string, unknown>;
  /** The underlying error, kept for logs only. */
  readonly cause?: unknown;
}

/**
 * An expected, user-facing failure. Carries a catalogue code and a one-line message written for the user.
 */
export class EngineError extends Error {
  /** The catalogue code. */
  readonly code: ErrorCode;
  /** Machine-readable context for clients. */
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: EngineErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'EngineError';
    this.code = code;
    this.details = options.details ?? {};
  }

  /** The rendering of this error's code. */
  get spec(): ErrorSpec {
    return ERROR_CATALOGUE[this.code];
  }

  /** JSON shape used in every envelope: `{ code, message, details? }`. */
  toJSON(): { code: ErrorCode; message: string; details?: Record<string, unknown> } {
    return Object.keys(this.details).length > 0
      ? { code: this.code, message: this.message, details: this.details }
      : { code: this.code, message: this.message };
  }
}

/** True when `value` is an {@link EngineError} (also across module copies). */
export function isEngineError(value: unknown): value is EngineError {
  return (
    value instanceof EngineError ||
    (typeof value === 'object' &&
      value !== null &&
      (value as { name?: unknown }).name === 'EngineError' &&
      typeof (value as { code?: unknown }).code === 'string' &&
      (ERROR_CODES as readonly string[]).includes((value as { code: string }).code))
  );
}

/**
 * Normalise anything thrown into an {@link EngineError}. Unknown errors become `INTERNAL` with a generic
 * message so no stack trace or internal detail leaks to a user; the original is kept as `cause` for logs.
 */
export function toEngineError(value: unknown): EngineError {
  if (value instanceof EngineError) return value;
  if (isEngineError(value)) {
    const v = value as EngineError;
    return new EngineError(v.code, v.message, { details: v.details ?? {}, cause: value });
  }
  if (typeof value === 'object' && value !== null) {
    const name = (value as { name?: unknown }).name;
    if (name === 'AbortError' || name === 'TimeoutError') {
      return new EngineError('TIMEOUT', 'The operation was aborted or timed out.', { cause: value });
    }
  }
  return new EngineError('INTERNAL', 'An internal error occurred; it has been logged.', { cause: value });
}

/** Shorthand to throw a coded error: `fail('NOT_FOUND', 'No model with id 12.')`. */
export function fail(code: ErrorCode, message: string, details?: Record<string, unknown>): never {
  throw new EngineError(code, message, details === undefined ? {} : { details });
}
