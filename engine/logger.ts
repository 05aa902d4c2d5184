/**
 * winston logging: JSON lines in production, coloured text on a TTY, with tokens and secrets redacted
 * from messages and metadata before anything is written.
 */
import winston from 'winston';

/** The logging interface the engine and plugins use (winston's, reduced to what we call). */
export interface Logger {
  error(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
  info(message: string, meta?: Record<string, unknown>): void;
  debug(message: string, meta?: Record<string, unknown>): void;
  child(meta: Record<string, unknown>): Logger;
}

const SECRET_KEY = /(token|secret|password|authorization|api[-_]?key|cookie)/i;
// Discord bot tokens, bearer headers and credentials inside URLs.
const SECRET_PATTERNS: readonly RegExp[] = [
  /[MNO][A-Za-z\d_-]{23,27}\.[A-Za-z\d_-]{6}\.[A-Za-z\d_-]{27,40}/g,
  // Case-sensitive and long enough to be a credential, so prose like "bot ready" is left alone.
  /\b(Bearer|Bot) [A-Za-z0-9._~+/-]{16,}=*/g,
  /(\/\/[^:/@\s]+:)[^@/\s]+@/g,
  /(\/api\/webhooks\/[^/\s]+\/)[A-Za-z0-9_-]{8,}/g,
];

/** Redact secrets from a string. */
export function redactString(text: string): string {
  let out = text;
  for (const re of SECRET_PATTERNS) {
    out = out.replace(re, (match, p1: unknown) => (typeof p1 === 'string' && p1.length > 0 && match.startsWith(p1) ? `${p1}[redacted]` : '[redacted]'));
  }
  return out;
}

/** Deep-redact a value: secret-looking keys are masked, strings scrubbed of token patterns. */
export function redact(value: unknown, depth = 0): unknown {
  if (depth > 6) return '[deep]';
  if (typeof value === 'string') return redactString(value);
  if (value instanceof Error) {
    return { name: value.name, message: redactString(value.message), stack: value.stack ? redactString(value.stack) : undefined };
  }
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  if (value && typeof value === 'object') {
    if (Buffer.isBuffer(value) || value instanceof Uint8Array) return `[${value.byteLength} bytes]`;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEY.test(k) ? '[redacted]' : redact(v, depth + 1);
    return out;
  }
  return value;
}

const redactFormat = winston.format((info) => {
  const i = info as Record<string | symbol, unknown>;
  for (const key of Object.keys(i)) {
    if (key === 'level') continue;
    i[key] = SECRET_KEY.test(key) ? '[redacted]' : redact(i[key]);
  }
  return info;
});

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  readonly level?: string;
  /** Force JSON (default: JSON unless stderr is a TTY). */
  readonly json?: boolean;
  /** Silence all output (tests). */
  readonly silent?: boolean;
}

/** Create the process logger. Logs go to stderr so CLI `--json` output on stdout stays clean. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const json = options.json ?? !process.stderr.isTTY;
  return winston.createLogger({
    level: options.level ?? 'info',
    silent: options.silent ?? false,
    format: winston.format.combine(
      redactFormat(),
      winston.format.timestamp(),
      json
        ? winston.format.json()
        : winston.format.combine(
            winston.format.colorize(),
            winston.format.printf(({ level, message, timestamp, ...meta }) => {
              const rest = Object.keys(meta).length > 0 ? ` ${JSON.stringify(meta)}` : '';
              return `${String(timestamp)} ${level} ${String(message)}${rest}`;
            }),
          ),
    ),
    transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly'] })],
  }) as unknown as Logger;
}

/** A logger that drops everything (tests, library use). */
export function silentLogger(): Logger {
  return createLogger({ silent: true });
}
