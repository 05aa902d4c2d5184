/**
 * A TF.js LayersModel compiled for inference: onnxruntime when it is available (exported once, cached in the
 * data dir), else the tfjs model itself — one async interface either way, so callers never branch.
 */
import { availableParallelism } from 'node:os';
import type * as tfTypes from '@tensorflow/tfjs';
import { EngineError } from '../../errors.ts';
import { getTf } from '../runtime.ts';
import { dataDirFromEnv, exportCached } from './cache.ts';
import type { Dim, TensorSpec } from './export.ts';
import { loadOrt, OrtSession, type InferenceChoice, type InferenceEngine, type OrtOutput } from './ort.ts';

/** Options of {@link compileLayersModel}. */
export interface CompileOptions {
  /** Layer names to output (default: the model's outputs). */
  readonly outputs?: readonly string[];
  /** Cache file prefix (default: the model name). */
  readonly key?: string;
  /** Data dir for the export cache (default `SOLESCOPE_DATA_DIR`); null keeps exports in memory. */
  readonly dataDir?: string | null;
  /** onnxruntime intra-op threads (default: every available core). */
  readonly threads?: number;
  /** Overrides `SOLESCOPE_INFERENCE` for the first decision of the process (tests). */
  readonly choice?: InferenceChoice;
}

/** A model ready to run on float32 batches. */
export interface CompiledModel {
  /** Which engine runs it. */
  readonly inference: InferenceEngine;
  /** The model input (channels-last; `null` dims are free). */
  readonly input: TensorSpec;
  /** The outputs, in the order asked. */
  readonly outputs: readonly TensorSpec[];
  /** Threads per run (tfjs-wasm in Node: 1). */
  readonly threads: number;
  /** Where the ONNX export lives, when there is one on disk. */
  readonly exportPath: string | null;
  /** Why this model runs on tfjs (ORT off or unavailable, or its export failed); null on onnxruntime. */
  readonly reason: string | null;
  /**
   * Runs a batch: `data` is the flat channels-last input with `dims` (`[N, ...input dims]`); returns every
   * output by layer name as flat float32 data and dims (4-D outputs channels-last, as tfjs gives them).
   */
  run(data: Float32Array, dims: readonly number[]): Promise<Record<string, OrtOutput>>;
  /** Frees the native session (the tfjs model is the caller's and is left alone). */
  release(): Promise<void>;
}

let liveSessions = 0;

/** How many onnxruntime sessions are open in this process (for `status`). */
export function openSessionCount(): number {
  return liveSessions;
}

/**
 * Compiles `model` for inference on the best available engine. With onnxruntime, the export is cached in
 * `<dataDir>/onnx/`; an export failure (an unsupported layer) falls back to tfjs unless
 * `SOLESCOPE_INFERENCE=onnx` demanded onnxruntime, in which case it is thrown.
 */
export async function compileLayersModel(model: tfTypes.LayersModel, opts: CompileOptions = {}): Promise<CompiledModel> {
  const outputNames = opts.outputs ?? model.outputs.map((t) => t.sourceLayer.name);
  const inputTensor = model.inputs[0];
  if (inputTensor === undefined || model.inputs.length !== 1) {
    throw new EngineError('BAD_INPUT', `compileLayersModel needs a single-input model (got ${model.inputs.length})`);
  }
  const input: TensorSpec = { name: inputTensor.sourceLayer.name, shape: [...inputTensor.shape] as Dim[] };
  const outputs: TensorSpec[] = outputNames.map((name) => {
    let layer: tfTypes.layers.Layer;
    try {
      layer = model.getLayer(name);
    } catch {
      throw new EngineError('BAD_INPUT', `The model has no layer "${name}"`, { details: { layer: name } });
    }
    const out = layer.output as tfTypes.SymbolicTensor;
    return { name, shape: [...out.shape] as Dim[] };
  });

  const availability = await loadOrt(opts.choice);
  let reason = availability.reason;
  if (availability.ort !== null) {
    try {
      const cached = await exportCached(model, {
        key: opts.key ?? model.name,
        dataDir: opts.dataDir === undefined ? dataDirFromEnv() : opts.dataDir,
        outputs: outputNames,
      });
      const source = cached.path ?? cached.exported?.bytes;
      if (source === undefined) throw new EngineError('INTERNAL', 'Export produced neither a file nor bytes');
      const session = await OrtSession.create(availability.ort, source, opts.threads === undefined ? {} : { threads: opts.threads });
      liveSessions++;
      return ortModel(session, input, outputs, cached.path);
    } catch (error) {
      if (availability.requested === 'onnx') throw error;
      // auto: an unexportable model still runs, on tfjs.
      reason = `ONNX export failed: ${error instanceof Error ? error.message : String(error)}`;
    }
  }
  return tfjsModel(await getTf(), model, input, outputs, reason ?? 'onnxruntime unavailable');
}

function ortModel(session: OrtSession, input: TensorSpec, outputs: readonly TensorSpec[], exportPath: string | null): CompiledModel {
  let released = false;
  // One session with intra-op threads = cores for every batch size. (Measured on a quiet 2-core machine:
  // two single-threaded sessions run concurrently are NOT faster — onnxruntime-node serialises their runs —
  // while one 2-thread session gives MobileNetV2 273 img/s at batch 16 against 153 on one thread.)
  return {
    inference: 'onnxruntime',
    input,
    outputs,
    threads: session.threads,
    exportPath,
    reason: null,
    async run(data, dims) {
      checkInput(input, data, dims);
      return session.run([{ data, dims }], outputs.map((o) => o.name));
    },
    async release() {
      if (released) return;
      released = true;
      liveSessions--;
      await session.release();
    },
  };
}

function tfjsModel(
  tf: typeof tfTypes,
  model: tfTypes.LayersModel,
  input: TensorSpec,
  outputs: readonly TensorSpec[],
  reason: string,
): CompiledModel {
  const sub = tf.model({ inputs: model.inputs, outputs: outputs.map((o) => model.getLayer(o.name).output as tfTypes.SymbolicTensor) });
  const threads = tf.getBackend() === 'tensorflow' ? availableParallelism() : 1;
  return {
    inference: 'tfjs',
    input,
    outputs,
    threads,
    exportPath: null,
    reason,
    async run(data, dims) {
      checkInput(input, data, dims);
      const results = tf.tidy(() => {
        const out = sub.predict(tf.tensor(data, [...dims]));
        return Array.isArray(out) ? out : [out];
      });
      try {
        const record: Record<string, OrtOutput> = {};
        for (let i = 0; i < outputs.length; i++) {
          const t = results[i]!;
          record[outputs[i]!.name] = { data: (await t.data()) as Float32Array, dims: [...t.shape] };
        }
        return record;
      } finally {
        for (const t of results) t.dispose();
      }
    },
    async release() {
      // The sub-model shares the caller's weights: nothing of its own to free.
    },
  };
}

function checkInput(input: TensorSpec, data: Float32Array, dims: readonly number[]): void {
  const expected = input.shape;
  const ok =
    dims.length === expected.length &&
    dims.every((d, i) => Number.isInteger(d) && d > 0 && (expected[i] === null || expected[i] === d)) &&
    data.length === dims.reduce((a, b) => a * b, 1);
  if (!ok) {
    throw new EngineError(
      'BAD_INPUT',
      `The model takes [${expected.map((d) => d ?? 'N').join(',')}]; got ${data.length} values as [${dims.join(',')}]`,
    );
  }
}
