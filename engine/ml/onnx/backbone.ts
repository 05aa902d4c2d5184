/**
 * onnxruntime behind the backbone interface: {@link accelerateBackbone} wraps a tfjs backbone so that its
 * async paths (`embedImages`, and the new `embedOne` / `embedBatch` / `featuresAsync`) run on onnxruntime
 * when it is available, while every synchronous tfjs path (`embed`, `features`, `featureModel`, gradients
 * for Grad-CAM) stays on the tfjs model. Callers keep using the backbone as before and get ORT speed where
 * the work is: datasets, cluster maps, Score-CAM's many masked forward passes, single-image requests.
 *
 * Three paths:
 * - batch: `embedImages(images, { batchSize })` / `embedBatch(data, n)` — one forward pass per batch;
 * - latency: `embedOne(image)` — goes through a {@link Coalescer}, so concurrent requests (several Discord
 *   users at once) share one batch, and a lone request waits at most `maxWaitMs` (default 3 ms);
 * - features: `featuresAsync(data, n, layers)` — any layers, channels-last, one cached export per layer set.
 */
import type * as tfTypes from '@tensorflow/tfjs';
import { EngineError } from '../../errors.ts';
import { getTf } from '../runtime.ts';
import type { ModelInput, ProgressFn, RawImage } from '../types.ts';
import { Coalescer, type CoalescerOptions, type CoalescerStats } from './coalescer.ts';
import { compileLayersModel, type CompiledModel } from './model.ts';
import type { InferenceChoice, InferenceEngine, OrtOutput } from './ort.ts';

/** An image a backbone accepts: model input floats (`S*S*3` in [0,1], channels-last) or a raw 8-bit image. */
export type ImageLike = Float32Array | ModelInput | RawImage;

/** The part of `engine/ml/backbones.ts`'s `Backbone` the wrapper needs (structural, to avoid an import cycle). */
export interface BackboneLike {
  readonly name: string;
  readonly inputSize: number;
  readonly embedDim: number;
  readonly embeddingLayer: string;
  readonly model: tfTypes.LayersModel;
  toBatch(images: readonly ImageLike[]): tfTypes.Tensor4D;
  embedImages(images: readonly ImageLike[], opts?: { readonly batchSize?: number; readonly onProgress?: ProgressFn }): Promise<Float32Array[]>;
  dispose(): void;
}

/** What {@link accelerateBackbone} adds to a backbone. */
export interface InferenceMethods {
  /** The engine behind the async paths. */
  readonly inference: InferenceEngine;
  /** Why the async paths run on tfjs; null on onnxruntime. */
  readonly inferenceReason: string | null;
  /** Same contract as the tfjs backbone's, on the faster engine. */
  embedImages(images: readonly ImageLike[], opts?: { readonly batchSize?: number; readonly onProgress?: ProgressFn }): Promise<Float32Array[]>;
  /** One image → its embedding; concurrent calls are batched together. */
  embedOne(image: ImageLike): Promise<Float32Array>;
  /** `n` images as one flat channels-last Float32Array (`n*S*S*3`) → `n*embedDim` floats, one forward pass. */
  embedBatch(data: Float32Array, n: number): Promise<Float32Array>;
  /** Activations of `layerNames` for `n` images (flat channels-last input), channels-last like tfjs. */
  featuresAsync(data: Float32Array, n: number, layerNames: readonly string[]): Promise<OrtOutput[]>;
  /**
   * `embed()` on the faster engine, tensor in, tensor out (`[N,S,S,3]` → `[N,embedDim]`; the caller owns the
   * result and keeps its input). The drop-in for Score-CAM's masked batches: `await b.embedTensor(masked)`.
   */
  embedTensor(batch: tfTypes.Tensor4D): Promise<tfTypes.Tensor2D>;
  /** `features()` on the faster engine, tensor in, tensors out (the caller owns them). */
  featuresTensor(batch: tfTypes.Tensor4D, layerNames: readonly string[]): Promise<tfTypes.Tensor[]>;
  /** Counters of the single-image coalescer. */
  inferenceStats(): CoalescerStats;
  /** Frees the onnxruntime sessions (the tfjs model stays). */
  releaseInference(): Promise<void>;
  /** Frees the sessions and disposes the tfjs backbone. */
  dispose(): void;
}

/** Options of {@link accelerateBackbone}. */
export interface AccelerateOptions extends CoalescerOptions {
  /** Data dir for the export cache (default `SOLESCOPE_DATA_DIR`); null keeps exports in memory. */
  readonly dataDir?: string | null;
  /** onnxruntime intra-op threads (default: every available core). */
  readonly threads?: number;
  /** Overrides `SOLESCOPE_INFERENCE` for the first decision of the process (tests). */
  readonly choice?: InferenceChoice;
}

/**
 * Wraps `base` so its async inference runs on onnxruntime when available (see the module doc). The embedding
 * graph is exported (or read from the cache) and loaded now; feature graphs on first use. Returns `base`'s
 * own interface plus {@link InferenceMethods}; all other members are `base`'s.
 */
export async function accelerateBackbone<T extends BackboneLike>(base: T, opts: AccelerateOptions = {}): Promise<T & InferenceMethods> {
  const compileOpts = {
    ...(opts.dataDir === undefined ? {} : { dataDir: opts.dataDir }),
    ...(opts.threads === undefined ? {} : { threads: opts.threads }),
    ...(opts.choice === undefined ? {} : { choice: opts.choice }),
  };
  const embedder = await compileLayersModel(base.model, { ...compileOpts, outputs: [base.embeddingLayer], key: `${base.name}-embed` });
  const s = base.inputSize;
  const pixels = s * s * 3;
  const dim = base.embedDim;
  const featureModels = new Map<string, Promise<CompiledModel>>();

  const toData = (image: ImageLike, index: number): Float32Array => {
    if (image instanceof Float32Array || 'tensorData' in image) {
      const data = image instanceof Float32Array ? image : image.tensorData;
      if (data.length !== pixels) {
        throw new EngineError(
          'BAD_INPUT',
          `Image ${index} has ${data.length} values; ${base.name} needs ${s}x${s}x3 = ${pixels} (preprocess with size ${s})`,
        );
      }
      return data;
    }
    // Raw images go through the backbone's own tfjs resize, so both engines see identical inputs.
    const t = base.toBatch([image]);
    try {
      return t.dataSync() as Float32Array;
    } finally {
      t.dispose();
    }
  };

  const embedBatch = async (data: Float32Array, n: number): Promise<Float32Array> => {
    const out = await embedder.run(data, [n, s, s, 3]);
    const flat = out[base.embeddingLayer]?.data;
    if (flat === undefined || flat.length !== n * dim) {
      throw new EngineError('INTERNAL', `The ${base.name} embedding graph returned ${flat?.length ?? 0} values for ${n} images`);
    }
    return flat;
  };

  const runStacked = async (items: readonly Float32Array[]): Promise<Float32Array[]> => {
    const data = new Float32Array(items.length * pixels);
    items.forEach((item, i) => data.set(item, i * pixels));
    const flat = await embedBatch(data, items.length);
    return items.map((_, i) => flat.slice(i * dim, (i + 1) * dim));
  };

  const coalescer = new Coalescer<Float32Array, Float32Array>((items) => runStacked(items), opts);
  const tf = await getTf();
  const checkBatch = (batch: tfTypes.Tensor): number => {
    const [n, h, w, c] = batch.shape;
    if (batch.rank !== 4 || h !== s || w !== s || c !== 3 || n === undefined || n < 1) {
      throw new EngineError('BAD_INPUT', `${base.name} takes [N,${s},${s},3] in [0,1]; got [${batch.shape.join(',')}]`);
    }
    return n;
  };

  const methods: InferenceMethods = {
    inference: embedder.inference,
    inferenceReason: embedder.reason,
    async embedImages(images, embedOpts = {}) {
      if (embedder.inference === 'tfjs') return base.embedImages(images, embedOpts);
      if (images.length === 0) throw new EngineError('BAD_INPUT', 'No images to embed');
      const batchSize = Math.max(1, Math.floor(embedOpts.batchSize ?? 16));
      const out: Float32Array[] = [];
      for (let start = 0; start < images.length; start += batchSize) {
        const chunk = images.slice(start, start + batchSize).map((img, i) => toData(img, start + i));
        out.push(...(await runStacked(chunk)));
        embedOpts.onProgress?.(out.length, images.length);
      }
      return out;
    },
    embedOne(image) {
      let data: Float32Array;
      try {
        data = toData(image, 0);
      } catch (error) {
        return Promise.reject(error);
      }
      return coalescer.submit(data);
    },
    async embedBatch(data, n) {
      if (!Number.isInteger(n) || n < 1 || data.length !== n * pixels) {
        throw new EngineError('BAD_INPUT', `embedBatch needs ${n}x${s}x${s}x3 floats; got ${data.length}`);
      }
      return embedBatch(data, n);
    },
    async featuresAsync(data, n, layerNames) {
      if (layerNames.length === 0) throw new EngineError('BAD_INPUT', 'featuresAsync needs at least one layer name');
      const key = layerNames.join('\u0000');
      let compiled = featureModels.get(key);
      if (compiled === undefined) {
        compiled = compileLayersModel(base.model, {
          ...compileOpts,
          outputs: layerNames,
          key: `${base.name}-features`,
        });
        featureModels.set(key, compiled);
        compiled.catch(() => featureModels.delete(key));
      }
      const model = await compiled;
      const out = await model.run(data, [n, s, s, 3]);
      return layerNames.map((name) => out[name]!);
    },
    async embedTensor(batch) {
      const n = checkBatch(batch);
      const flat = await embedBatch((await batch.data()) as Float32Array, n);
      return tf.tensor2d(flat, [n, dim]);
    },
    async featuresTensor(batch, layerNames) {
      const n = checkBatch(batch);
      const outs = await methods.featuresAsync((await batch.data()) as Float32Array, n, layerNames);
      return outs.map((o) => tf.tensor(o.data, [...o.dims]));
    },
    inferenceStats: () => coalescer.stats(),
    async releaseInference() {
      coalescer.close();
      const models = [embedder, ...(await Promise.allSettled(featureModels.values())).flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []))];
      featureModels.clear();
      await Promise.all(models.map((m) => m.release()));
    },
    dispose() {
      void methods.releaseInference();
      base.dispose();
    },
  };

  return new Proxy(base, {
    get(target, prop) {
      if (Object.hasOwn(methods, prop)) return (methods as unknown as Record<PropertyKey, unknown>)[prop];
      const value: unknown = Reflect.get(target, prop, target);
      // Methods run against the real backbone (they use its private fields).
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
    has(target, prop) {
      return Object.hasOwn(methods, prop) || Reflect.has(target, prop);
    },
  }) as T & InferenceMethods;
}
