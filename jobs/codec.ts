/**
 * How engine values travel through BullMQ: errors as `CODE: message` strings (BullMQ stores a job's
 * failure as a string), progress as a flat JSON object, checkpoints as JSON with bytes in base64.
 */
import { ERROR_CODES, type ErrorCode, type ProgressEvent } from '../engine/index.ts';

/** Encode an error for BullMQ's `failedReason`. */
export function encodeError(code: ErrorCode, message: string): string {
  return `${code}: ${message}`;
}

/** Decode a `failedReason`; unknown shapes become INTERNAL with a generic message (no internals leak). */
export function decodeError(reason: string | undefined): { code: ErrorCode; message: string } {
  const m = /^([A-Z_]+): ([\s\S]*)$/.exec(reason ?? '');
  if (m && (ERROR_CODES as readonly string[]).includes(m[1] ?? '')) return { code: m[1] as ErrorCode, message: m[2] ?? '' };
  if (reason && /stalled more than allowable limit/.test(reason)) {
    return { code: 'UNAVAILABLE', message: 'The worker running this job died too many times.' };
  }
  return { code: 'INTERNAL', message: 'The job failed with an internal error; it has been logged.' };
}

/** The message used when a job is cancelled (also how a cancelled job is told apart from a failed one). */
export const CANCELLED_MESSAGE = 'The job was cancelled.';

/**
 * The progress object stored on a BullMQ job: the engine's {@link ProgressEvent} plus its well-known metrics
 * flattened (`epoch`, `loss`, `metric`, `etaS`) so the dashboard and other clients read them directly.
 * Preview images are not stored (they would bloat Redis); they stay in-process.
 */
export interface StoredProgress {
  readonly stage?: string;
  readonly fraction?: number;
  readonly message?: string;
  readonly epoch?: number;
  readonly loss?: number;
  readonly metric?: number;
  readonly etaS?: number;
  readonly metrics?: Record<string, number>;
}

/** Engine progress → stored progress. */
export function encodeProgress(event: ProgressEvent): StoredProgress {
  const metrics = event.metrics ?? {};
  const flat: Record<string, number> = {};
  for (const key of ['epoch', 'loss', 'metric', 'etaS'] as const) {
    const v = metrics[key];
    if (typeof v === 'number' && Number.isFinite(v)) flat[key] = v;
  }
  return {
    ...(event.stage !== undefined ? { stage: event.stage } : {}),
    ...(event.fraction !== undefined ? { fraction: event.fraction } : {}),
    ...(event.message !== undefined ? { message: event.message } : {}),
    ...flat,
    ...(Object.keys(metrics).length > 0 ? { metrics: { ...metrics } } : {}),
  };
}

/** Stored progress (or BullMQ's default numeric progress) → engine progress. */
export function decodeProgress(value: unknown): ProgressEvent | undefined {
  if (typeof value === 'number') return value > 0 ? { fraction: value > 1 ? value / 100 : value } : undefined;
  if (!value || typeof value !== 'object') return undefined;
  const v = value as Record<string, unknown>;
  const metrics: Record<string, number> = {};
  if (v.metrics && typeof v.metrics === 'object') {
    for (const [k, n] of Object.entries(v.metrics as Record<string, unknown>)) if (typeof n === 'number') metrics[k] = n;
  }
  for (const key of ['epoch', 'loss', 'metric', 'etaS']) if (typeof v[key] === 'number') metrics[key] = v[key] as number;
  return {
    ...(typeof v.stage === 'string' ? { stage: v.stage } : {}),
    ...(typeof v.fraction === 'number' ? { fraction: v.fraction } : {}),
    ...(typeof v.message === 'string' ? { message: v.message } : {}),
    ...(Object.keys(metrics).length > 0 ? { metrics } : {}),
  };
}

/** A checkpoint as stored (JSON): objects as they are, bytes wrapped in base64. */
export function encodeCheckpoint(state: Uint8Array | Record<string, unknown>): Record<string, unknown> {
  if (state instanceof Uint8Array) return { __bytes: Buffer.from(state.buffer, state.byteOffset, state.byteLength).toString('base64') };
  return state;
}

/** Inverse of {@link encodeCheckpoint}. */
export function decodeCheckpoint(value: unknown): Uint8Array | Record<string, unknown> | undefined {
  if (!value || typeof value !== 'object') return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v.__bytes === 'string' && Object.keys(v).length === 1) return new Uint8Array(Buffer.from(v.__bytes, 'base64'));
  return v;
}

/** What travels in a BullMQ job's data: the validated payload plus who asked (kept out of the payload). */
export interface JobEnvelope {
  readonly payload: unknown;
  readonly meta: { readonly guildId?: string; readonly requestedBy?: string };
}

/** Unwrap job data: envelopes from this runner, or raw payloads from any other producer. */
export function unwrapJobData(data: unknown): JobEnvelope {
  if (data && typeof data === 'object' && 'payload' in data && 'meta' in data) {
    const d = data as { payload: unknown; meta: unknown };
    const meta = d.meta && typeof d.meta === 'object' ? (d.meta as JobEnvelope['meta']) : {};
    return { payload: d.payload, meta };
  }
  return { payload: data, meta: {} };
}
