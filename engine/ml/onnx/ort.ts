/**
 * onnxruntime-node, loaded lazily and optionally, and a small session wrapper that speaks Float32Array.
 *
 * Which engine runs inference is decided once per process from `SOLESCOPE_INFERENCE`:
 * - `tfjs`: never load onnxruntime (the escape hatch when ORT misbehaves on a machine);
 * - `onnx`: onnxruntime is required — failing to load it is an `UNAVAILABLE` error, not a silent fallback;
 * - `auto` (default): onnxruntime when it loads, else tfjs, with the reason kept for `status`.
 */
import { availableParallelism } from 'node:os';
import type * as OrtTypes from 'onnxruntime-node';
import { configSchema } from '../../config.ts';
import { EngineError } from '../../errors.ts';

/** The onnxruntime-node module type. */
export type Ort = typeof OrtTypes;

/** What `SOLESCOPE_INFERENCE` may ask for. */
export type InferenceChoice = 'auto' | 'onnx' | 'tfjs';

/** The engine that actually runs backbone inference. */
export type InferenceEngine = 'onnxruntime' | 'tfjs';

/** Outcome of {@link loadOrt}. */
export interface OrtAvailability {
  readonly requested: InferenceChoice;
  /** The loaded module, or null when inference stays on tfjs. */
  readonly ort: Ort | null;
  /** onnxruntime's version when loaded. */
  readonly version: string | null;
  /** Why ORT is not used (`SOLESCOPE_INFERENCE=tfjs`, or the load error), null when it is. */
  readonly reason: string | null;
}

let loading: Promise<OrtAvailability> | undefined;
let settled: OrtAvailability | undefined;

/** The inference choice from the environment (`SOLESCOPE_INFERENCE`, default `auto`). */
export function inferenceChoiceFromEnv(env: Record<string, string | undefined> = process.env): InferenceChoice {
  const parsed = configSchema.shape.SOLESCOPE_INFERENCE.safeParse(env.SOLESCOPE_INFERENCE || undefined);
  if (!parsed.success) {
    throw new EngineError('BAD_INPUT', `SOLESCOPE_INFERENCE must be one of auto, onnx, tfjs (got "${env.SOLESCOPE_INFERENCE}")`);
  }
  return parsed.data;
}

/**
 * Loads onnxruntime-node once per process according to `choice` (default: `SOLESCOPE_INFERENCE`). Later calls
 * share the first result, whatever they pass. Rejects only for `onnx` when the module cannot load.
 */
export function loadOrt(choice: InferenceChoice = inferenceChoiceFromEnv()): Promise<OrtAvailability> {
  loading ??= (async (): Promise<OrtAvailability> => {
    if (choice === 'tfjs') return { requested: choice, ort: null, version: null, reason: 'SOLESCOPE_INFERENCE=tfjs' };
    try {
      const mod = (await import('onnxruntime-node')) as Ort & { default?: Ort };
      // CJS interop: the namespace may sit under `default`.
      const ort = typeof mod.InferenceSession?.create === 'function' ? mod : (mod.default ?? mod);
      if (typeof ort.InferenceSession?.create !== 'function') throw new Error('onnxruntime-node exports no InferenceSession');
      return { requested: choice, ort, version: ort.env.versions.node ?? ort.env.versions.common ?? null, reason: null };
    } catch (error) {
      const reason = `onnxruntime-node failed to load: ${firstLine(error)}`;
      if (choice === 'onnx') throw new EngineError('UNAVAILABLE', `SOLESCOPE_INFERENCE=onnx but ${reason}`, { cause: error });
      return { requested: choice, ort: null, version: null, reason };
    }
  })().then(
    (result) => (settled = result),
    (error: unknown) => {
      loading = undefined; // allow a retry after the environment is fixed
      throw error;
    },
  );
  return loading;
}

/** The settled result of {@link loadOrt}, or undefined before it finished (cheap, for `status`). */
export function ortAvailability(): OrtAvailability | undefined {
  return settled;
}

/** Forgets the loaded choice so the next {@link loadOrt} decides again (tests switch engines with it). */
export function resetOrtForTests(): void {
  loading = undefined;
  settled = undefined;
}

/** Options of {@link OrtSession.create}. */
export interface OrtSessionOptions {
  /** Threads inside one op (default: every available core). */
  readonly threads?: number;
}

/** A named float32 output of a run: flat data and its dims. */
export interface OrtOutput {
  readonly data: Float32Array;
  readonly dims: readonly number[];
}

/**
 * One onnxruntime inference session over float32 inputs. Concurrent {@link run}s are allowed (onnxruntime
 * sessions are thread-safe) though callers usually serialise them through a coalescer.
 */
export class OrtSession {
  /** Graph input names, in order. */
  readonly inputNames: readonly string[];
  /** Graph output names, in order. */
  readonly outputNames: readonly string[];
  /** Intra-op threads the session computes with. */
  readonly threads: number;
  private readonly ort: Ort;
  private session: OrtTypes.InferenceSession | null;

  private constructor(ort: Ort, session: OrtTypes.InferenceSession, threads: number) {
    this.ort = ort;
    this.session = session;
    this.threads = threads;
    this.inputNames = [...session.inputNames];
    this.outputNames = [...session.outputNames];
  }

  /** Creates a session from `.onnx` bytes or a file path. Invalid models are `MODEL_MISSING` errors. */
  static async create(ort: Ort, model: Uint8Array | string, opts: OrtSessionOptions = {}): Promise<OrtSession> {
    const threads = Math.max(1, Math.floor(opts.threads ?? availableParallelism()));
    const options: OrtTypes.InferenceSession.SessionOptions = {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    };
    try {
      const session =
        typeof model === 'string'
          ? await ort.InferenceSession.create(model, options)
          : await ort.InferenceSession.create(model, options);
      return new OrtSession(ort, session, threads);
    } catch (error) {
      throw new EngineError('MODEL_MISSING', `onnxruntime rejected the model: ${firstLine(error)}`, { cause: error });
    }
  }

  /**
   * Runs the graph on float32 inputs (one per graph input, in order, each with its dims) and returns the
   * requested outputs (default: all) by name. Output data is a fresh copy the caller owns.
   */
  async run(inputs: readonly { data: Float32Array; dims: readonly number[] }[], outputs?: readonly string[]): Promise<Record<string, OrtOutput>> {
    const session = this.session;
    if (session === null) throw new EngineError('UNAVAILABLE', 'The onnxruntime session was released');
    if (inputs.length !== this.inputNames.length) {
      throw new EngineError('BAD_INPUT', `The model takes ${this.inputNames.length} inputs, got ${inputs.length}`);
    }
    const feeds: Record<string, OrtTypes.Tensor> = {};
    inputs.forEach((input, i) => {
      feeds[this.inputNames[i]!] = new this.ort.Tensor('float32', input.data, [...input.dims]);
    });
    const wanted = outputs ?? this.outputNames;
    const result = await session.run(feeds, [...wanted]);
    const out: Record<string, OrtOutput> = {};
    for (const name of wanted) {
      const t = result[name];
      if (t === undefined) throw new EngineError('INTERNAL', `onnxruntime returned no output ${name}`);
      const data = t.data as Float32Array;
      out[name] = { data: data.slice(), dims: [...t.dims] };
      t.dispose?.();
    }
    return out;
  }

  /** Frees the native session. Later runs are `UNAVAILABLE`. */
  async release(): Promise<void> {
    const session = this.session;
    this.session = null;
    await session?.release();
  }
}

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0] ?? message;
}
