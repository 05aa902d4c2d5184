/**
 * solescope's onnxruntime inference: a TF.js LayersModel → ONNX exporter, an onnxruntime-node session
 * wrapper, a batching coalescer, and a backbone wrapper that puts them behind the existing interface.
 *
 * Wiring (see the module docs for details):
 * - `accelerateBackbone(backbone)` → the same backbone whose async paths run on onnxruntime;
 * - `compileLayersModel(model, { outputs })` → any LayersModel (e.g. a trained head) on onnxruntime;
 * - `inferenceStatus()` → what `status` reports (`inference: 'onnxruntime' | 'tfjs'`, why, threads).
 */
import { availableParallelism } from 'node:os';
import { openSessionCount } from './model.ts';
import { inferenceChoiceFromEnv, ortAvailability, type InferenceChoice, type InferenceEngine } from './ort.ts';

export { accelerateBackbone } from './backbone.ts';
export type { AccelerateOptions, BackboneLike, ImageLike, InferenceMethods } from './backbone.ts';
export { cachePath, dataDirFromEnv, exportCached } from './cache.ts';
export type { CachedExport, ExportCachedOptions } from './cache.ts';
export { Coalescer } from './coalescer.ts';
export type { CoalescerOptions, CoalescerStats } from './coalescer.ts';
export { EXPORTER_VERSION, exportLayersModel, modelFingerprint, samePads } from './export.ts';
export type { Dim, ExportOptions, ExportStats, ExportedModel, TensorSpec } from './export.ts';
export { compileLayersModel, openSessionCount } from './model.ts';
export type { CompileOptions, CompiledModel } from './model.ts';
export { inferenceChoiceFromEnv, loadOrt, OrtSession } from './ort.ts';
export type { InferenceChoice, InferenceEngine, Ort, OrtAvailability, OrtOutput, OrtSessionOptions } from './ort.ts';

/** What `status` shows about inference. */
export interface InferenceStatus {
  /** The engine running backbone inference, or null before the first model was compiled. */
  readonly inference: InferenceEngine | null;
  /** What `SOLESCOPE_INFERENCE` asked for. */
  readonly requested: InferenceChoice;
  /** onnxruntime-node's version when loaded. */
  readonly onnxruntime: string | null;
  /** onnxruntime intra-op threads (every available core). */
  readonly threads: number;
  /** Open onnxruntime sessions. */
  readonly sessions: number;
  /** Why inference is on tfjs, when it is. */
  readonly reason: string | null;
}

/** A cheap snapshot for `status`; loads nothing. */
export function inferenceStatus(): InferenceStatus {
  const settled = ortAvailability();
  let requested: InferenceChoice;
  try {
    requested = settled?.requested ?? inferenceChoiceFromEnv();
  } catch {
    requested = 'auto';
  }
  return {
    inference: settled === undefined ? null : settled.ort !== null ? 'onnxruntime' : 'tfjs',
    requested,
    onnxruntime: settled?.version ?? null,
    threads: settled?.ort ? availableParallelism() : 1,
    sessions: openSessionCount(),
    reason: settled?.reason ?? null,
  };
}
