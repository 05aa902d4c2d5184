/**
 * Pretrained image backbones behind one interface.
 *
 * The two built-ins are the Keras MobileNetV2 (224) and InceptionV3 (299) that ship inside the `nsfwjs` npm
 * package (fine-tuned from ImageNet for content moderation; their features are generic, not sneaker-specific).
 * They load offline through {@link nsfwjsModelHandler}. {@link loadBackboneFrom} loads any TF.js
 * LayersModel from a URL or a folder (e.g. a MobileNet a user downloaded from TF-Hub/Kaggle).
 *
 * Every backbone takes `[N,S,S,3]` floats in [0,1] (the output of `preprocess()`).
 */
import type * as tfTypes from '@tensorflow/tfjs';
import { EngineError } from '../errors.ts';
import { fileSystemHandler, nsfwjsModelHandler, type NsfwjsModelName } from './model-io.ts';
import { getTf, type Tf } from './runtime.ts';
import type { ModelInput, ProgressFn, RawImage } from './types.ts';
import { accelerateBackbone, type InferenceMethods } from './onnx/backbone.ts';

/** Names of the built-in backbones. */
export const BACKBONE_NAMES = ['mobilenet_v2', 'inception_v3', 'inception_v3_m7', 'inception_v3_m67'] as const;

const INCEPTION_LAYERS = ['mixed0', 'mixed1', 'mixed2', 'mixed3', 'mixed4', 'mixed5', 'mixed6', 'mixed7', 'mixed8', 'mixed9', 'mixed10'] as const;

/** A built-in backbone name. */
export type BackboneName = (typeof BACKBONE_NAMES)[number];

/** What a built-in backbone is, known without loading it (for schemas, docs and cache keys). */
export interface BackboneSpec {
  readonly name: BackboneName;
  readonly inputSize: number;
  readonly embedDim: number;
  /** The layer whose output is the embedding (a pooled, flattened vector). */
  readonly embeddingLayer: string;
  /** The last conv block, whose spatial mean IS the embedding: the layer for Grad-CAM / Score-CAM. */
  readonly camLayer: string;
  /** Mid-level layers worth probing (cluster maps, dream, style). */
  readonly featureLayers: readonly string[];
  /**
   * The conv layers whose spatial means, concatenated in this order, ARE the embedding: `[camLayer]` for a
   * plain backbone; several for a multi-level one (Grad-CAM then sums one map per layer).
   */
  readonly embeddingParts: readonly string[];
  /**
   * A multi-level variant: the pretrained model it is built from (same weights file, same layers, same shoe
   * localiser), with the spatial means of {@link pooled} concatenated before that model's own embedding.
   */
  readonly derivedFrom?: { readonly base: BackboneName; readonly pooled: readonly string[] };
}

/** The built-in backbones' facts (measured on the nsfwjs 4.3 models). */
export const BACKBONE_SPECS: Readonly<Record<BackboneName, BackboneSpec>> = {
  mobilenet_v2: {
    name: 'mobilenet_v2',
    inputSize: 224,
    embedDim: 1280,
    embeddingLayer: 'flatten_1',
    camLayer: 'out_relu',
    featureLayers: ['block_3_expand_relu', 'block_6_expand_relu', 'block_13_expand_relu', 'out_relu'],
    embeddingParts: ['out_relu'],
  },
  inception_v3: {
    name: 'inception_v3',
    inputSize: 299,
    embedDim: 2048,
    embeddingLayer: 'flatten_1',
    camLayer: 'mixed10',
    featureLayers: INCEPTION_LAYERS,
    embeddingParts: ['mixed10'],
  },
  // InceptionV3 with mid-level features: the spatial mean of mixed7 (17×17×768, parts of a shoe: logos, stripes,
  // panels) before the usual 2048-d mean of mixed10. Brand depends on such details, which the last block's mean
  // washes out: with the shipped recipe it raised brand's held-out macro-F1 from 0.64 to 0.73 and the
  // hold-out-axelooc59 accuracy from 0.63 to 0.80 (assets/models/README.md, "Mid-level features";
  // scripts/probe-layers.ts compares the layers). Raw means: normalising each block first measured no better.
  inception_v3_m7: {
    name: 'inception_v3_m7',
    inputSize: 299,
    embedDim: 768 + 2048,
    embeddingLayer: 'solescope_embedding',
    camLayer: 'mixed10',
    featureLayers: INCEPTION_LAYERS,
    embeddingParts: ['mixed7', 'mixed10'],
    derivedFrom: { base: 'inception_v3', pooled: ['mixed7'] },
  },
  // The same with the block below mixed7 too (mixed6, also 17×17×768): a linear probe on plain + mirrored photos
  // (scripts/probe-layers.ts) scored it above mixed7 + mixed10 on every brand fold (held-out macro-F1 0.805 →
  // 0.836, the three left-out sources +0.14, +0.02, +0.04 accuracy) and on hype's held-out, axelooc59 and zjy-T
  // folds. Rebuilt with the shipped recipe it raised brand's held-out macro-F1 from 0.819 to 0.861 and every
  // left-out source for both tasks (assets/models/README.md, "Two mid-level blocks"). Same forward pass, one more
  // spatial mean.
  inception_v3_m67: {
    name: 'inception_v3_m67',
    inputSize: 299,
    embedDim: 768 + 768 + 2048,
    embeddingLayer: 'solescope_embedding',
    camLayer: 'mixed10',
    featureLayers: INCEPTION_LAYERS,
    embeddingParts: ['mixed6', 'mixed7', 'mixed10'],
    derivedFrom: { base: 'inception_v3', pooled: ['mixed6', 'mixed7'] },
  },
};

/**
 * The layers whose spatial means, concatenated, are a backbone's embedding (what Grad-CAM weighs): the
 * built-ins' {@link BackboneSpec.embeddingParts}; for a loaded model, its CAM layer (none without one).
 */
export function embeddingPartsOf(backbone: Pick<FeatureExtractor, 'name' | 'camLayer'>): readonly string[] {
  if (isBackboneName(backbone.name)) return BACKBONE_SPECS[backbone.name].embeddingParts;
  return backbone.camLayer !== null ? [backbone.camLayer] : [];
}

/** The built-in whose pretrained model file a built-in loads (a multi-level variant loads its base's). */
export function pretrainedOf(name: BackboneName): BackboneName {
  return BACKBONE_SPECS[name].derivedFrom?.base ?? name;
}

/** Options of {@link Backbone.embedImages}. */
export interface EmbedImagesOptions {
  /** Images per forward pass (default 16). */
  readonly batchSize?: number;
  /** Called after each batch. */
  readonly onProgress?: ProgressFn;
}

/** Images accepted by {@link Embedder.embedImages} and {@link Embedder.toBatch}. */
export type EmbedderImage = Float32Array | ModelInput | RawImage;

/**
 * Anything that turns `[N,S,S,3]` images in [0,1] into `[N,D]` embeddings. Tensors it returns belong to the
 * caller (dispose them or call inside `tf.tidy`); it never keeps references to caller tensors.
 */
export interface Embedder {
  /** `layers` ({@link Backbone}) or `graph` ({@link GraphBackbone}). */
  readonly kind: 'layers' | 'graph';
  /** `mobilenet_v2`, `inception_v3`, or the name given when loading. */
  readonly name: string;
  /** Side of the square input (224, 299, …). */
  readonly inputSize: number;
  /** Length of an embedding. */
  readonly embedDim: number;
  /** The tfjs namespace the model lives in. */
  readonly tf: Tf;
  /** `[N,S,S,3]` in [0,1] → `[N,embedDim]`. */
  embed(batch: tfTypes.Tensor4D): tfTypes.Tensor2D;
  /**
   * Embeds many images in batches and downloads the result: one Float32Array of `embedDim` per image.
   * Accepts model inputs (`Float32Array` of `S*S*3` in [0,1], e.g. `preprocess()` results) or raw images,
   * which are only resized (stretched) to `S`: run `preprocess()` first for the study's pipeline.
   */
  embedImages(images: readonly EmbedderImage[], opts?: EmbedImagesOptions): Promise<Float32Array[]>;
  /** Turns images into one `[N,S,S,3]` batch in [0,1] (same conversions as {@link embedImages}). */
  toBatch(images: readonly EmbedderImage[]): tfTypes.Tensor4D;
  /** Frees the weights. Built-ins are shared per process: prefer leaving them loaded. */
  dispose(): void;
}

/** An {@link Embedder} that also exposes intermediate activations (enough for Grad-CAM and Score-CAM). */
export interface FeatureExtractor extends Embedder {
  /** The layer (or graph node) CAMs use by default (its spatial mean is the embedding), or null. */
  readonly camLayer: string | null;
  /** Activations of the named layers (graph nodes) for a batch, in the order asked. */
  features(batch: tfTypes.Tensor4D, layerNames: readonly string[]): tfTypes.Tensor[];
}

/** A pretrained Keras/Layers backbone: the built-ins and {@link loadBackboneFrom}. */
export interface Backbone extends FeatureExtractor, Partial<Omit<InferenceMethods, 'embedImages' | 'dispose'>> {
  readonly kind: 'layers';
  /** The layer producing the embedding. */
  readonly embeddingLayer: string;
  /** The whole Keras model (including the nsfwjs head for built-ins). Do not dispose it yourself. */
  readonly model: tfTypes.LayersModel;
  /** The cached sub-model input → named layers (use `.apply(x)` inside `tf.grad`/`tf.tidy`). */
  featureModel(layerNames: readonly string[]): tfTypes.LayersModel;
  /** Names of all layers, input to output. */
  layerNames(): string[];
}

/** A TF.js GraphModel used as a backbone ({@link loadGraphBackboneFrom}), e.g. a TF-Hub feature vector. */
export interface GraphBackbone extends FeatureExtractor {
  readonly kind: 'graph';
  /** The graph node whose output is the embedding. */
  readonly outputNode: string;
  readonly graph: tfTypes.GraphModel;
  /** Names of all graph nodes. */
  nodeNames(): string[];
}

/** Options of {@link loadBackboneFrom}. */
export interface LoadBackboneFromOptions {
  /** The layer whose output is the embedding (flattened if it is not 2-D). */
  readonly embeddingLayer: string;
  /** Side of the square input; default: read from the model's input shape. */
  readonly inputSize?: number;
  /** The layer for CAMs (its spatial mean should be the embedding). Default: none. */
  readonly camLayer?: string;
  /** Name reported by the backbone (default: the URL or folder). */
  readonly name?: string;
}

/** Options of {@link loadGraphBackboneFrom}. */
export interface LoadGraphBackboneOptions {
  /** The node whose output is the embedding; default: the model's (first) output. */
  readonly outputNode?: string;
  /** A spatial node for CAMs (its spatial mean should be the embedding). Default: none. */
  readonly camNode?: string;
  /** Side of the square input; default: read from the model's input shape. */
  readonly inputSize?: number;
  /** Name reported by the backbone (default: the URL or folder). */
  readonly name?: string;
}

const builtins = new Map<BackboneName, Promise<Backbone>>();

/** Whether a string names a built-in backbone. */
export function isBackboneName(name: string): name is BackboneName {
  return (BACKBONE_NAMES as readonly string[]).includes(name);
}

/**
 * A built-in backbone, loaded once per process and shared (concurrent callers await the same promise).
 * Unknown names are `BAD_INPUT`; a missing nsfwjs install is `MODEL_MISSING`.
 */
export function loadBackbone(name: BackboneName): Promise<Backbone> {
  if (!isBackboneName(name)) {
    return Promise.reject(
      new EngineError('BAD_INPUT', `Unknown backbone "${String(name)}" (expected one of ${BACKBONE_NAMES.join(', ')})`),
    );
  }
  let pending = builtins.get(name);
  if (pending === undefined) {
    pending = loadBuiltin(name);
    builtins.set(name, pending);
    // A failed load must not poison the cache for the rest of the process.
    pending.catch(() => builtins.delete(name));
  }
  return pending;
}

/** Disposes the shared built-in backbones (tests and graceful shutdown). */
export async function disposeBackbones(): Promise<void> {
  const loaded = [...builtins.values()];
  builtins.clear();
  for (const result of await Promise.allSettled(loaded)) {
    if (result.status === 'fulfilled') result.value.dispose();
  }
}

async function loadBuiltin(name: BackboneName): Promise<Backbone> {
  const tf = await getTf();
  const spec = BACKBONE_SPECS[name];
  let model: tfTypes.LayersModel;
  try {
    model = await tf.loadLayersModel(nsfwjsModelHandler(pretrainedOf(name) as NsfwjsModelName));
  } catch (error) {
    if (error instanceof EngineError) throw error;
    throw new EngineError('MODEL_MISSING', `Cannot load the ${name} backbone from nsfwjs: ${messageOf(error)}`, {
      cause: error,
    });
  }
  fixScalelessBatchNorm(tf, model);
  if (spec.derivedFrom) model = withPooledLayers(tf, model, spec.derivedFrom.pooled, BACKBONE_SPECS[spec.derivedFrom.base].embeddingLayer, spec.embeddingLayer);
  // Forward passes (embedImages, embedTensor, …) run on onnxruntime when it is available; gradients stay
  // on tfjs. Results match tfjs within 1e-4 (test/onnx), so cached embeddings stay valid.
  return accelerateBackbone(
    new LayersBackbone(tf, model, {
      name,
      inputSize: spec.inputSize,
      embeddingLayer: spec.embeddingLayer,
      camLayer: spec.camLayer,
    }),
  );
}

/**
 * A model whose extra output `name` is the concatenation of the spatial means of `pooled` and the existing
 * embedding layer (own copy of the weights: the caller loaded the model for it). The model's first output
 * stays the original one (the nsfwjs head).
 */
function withPooledLayers(tf: Tf, model: tfTypes.LayersModel, pooled: readonly string[], embeddingLayer: string, name: string): tfTypes.LayersModel {
  const means = pooled.map((layer) =>
    tf.layers.globalAveragePooling2d({ name: `solescope_mean_${layer}` }).apply(model.getLayer(layer).output as tfTypes.SymbolicTensor) as tfTypes.SymbolicTensor,
  );
  const embedding = tf.layers.concatenate({ name, axis: -1 }).apply([...means, model.getLayer(embeddingLayer).output as tfTypes.SymbolicTensor]) as tfTypes.SymbolicTensor;
  return tf.model({ inputs: model.inputs, outputs: [...model.outputs, embedding], name: `${model.name}_${name}` });
}

/**
 * Loads a TF.js LayersModel from an http(s) URL of its `model.json`, a `file://` URL, a folder holding
 * `model.json` + shards, or the path of the `model.json`, as a {@link Backbone}. Not cached: the caller owns
 * it. A GraphModel (`format: graph-model`, e.g. most TF-Hub exports) is BAD_INPUT pointing to
 * {@link loadGraphBackboneFrom}.
 */
export async function loadBackboneFrom(urlOrDir: string, opts: LoadBackboneFromOptions): Promise<Backbone> {
  const tf = await getTf();
  const artifacts = await readArtifacts(tf, urlOrDir);
  if (artifacts.format === 'graph-model') {
    throw new EngineError(
      'BAD_INPUT',
      `${urlOrDir} is a TF.js GraphModel: load it with loadGraphBackboneFrom (features by node name)`,
    );
  }
  let model: tfTypes.LayersModel;
  try {
    model = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
  } catch (error) {
    throw new EngineError('MODEL_MISSING', `Cannot build a TF.js LayersModel from ${urlOrDir}: ${messageOf(error)}`, {
      cause: error,
    });
  }
  fixScalelessBatchNorm(tf, model);
  try {
    const inputSize = squareRgbInput(model.inputs[0]?.shape, opts.inputSize, urlOrDir);
    return new LayersBackbone(tf, model, {
      name: opts.name ?? urlOrDir,
      inputSize,
      embeddingLayer: opts.embeddingLayer,
      camLayer: opts.camLayer ?? null,
    });
  } catch (error) {
    model.dispose();
    throw error;
  }
}

/**
 * Loads a TF.js GraphModel (same sources as {@link loadBackboneFrom}) as a {@link GraphBackbone}: the
 * embedding is the output of `outputNode` (default: the model's output, which for a TF-Hub "feature
 * vector" model is the embedding). Not cached: the caller owns it.
 */
export async function loadGraphBackboneFrom(urlOrDir: string, opts: LoadGraphBackboneOptions = {}): Promise<GraphBackbone> {
  const tf = await getTf();
  const artifacts = await readArtifacts(tf, urlOrDir);
  if (artifacts.format !== 'graph-model') {
    throw new EngineError('BAD_INPUT', `${urlOrDir} is not a TF.js GraphModel: load it with loadBackboneFrom`);
  }
  let graph: tfTypes.GraphModel;
  try {
    graph = await tf.loadGraphModel(tf.io.fromMemory(artifacts));
  } catch (error) {
    throw new EngineError('MODEL_MISSING', `Cannot build a TF.js GraphModel from ${urlOrDir}: ${messageOf(error)}`, {
      cause: error,
    });
  }
  try {
    const inputSize = squareRgbInput(graph.inputs[0]?.shape, opts.inputSize, urlOrDir);
    return new GraphModelBackbone(tf, graph, {
      name: opts.name ?? urlOrDir,
      inputSize,
      outputNode: opts.outputNode ?? graph.outputNodes[0] ?? '',
      camLayer: opts.camNode ?? null,
    });
  } catch (error) {
    graph.dispose();
    throw error;
  }
}

async function readArtifacts(tf: Tf, urlOrDir: string): Promise<tfTypes.io.ModelArtifacts> {
  let handler: tfTypes.io.IOHandler;
  if (/^https?:\/\//i.test(urlOrDir)) handler = tf.io.http(urlOrDir);
  else if (/^file:\/\//i.test(urlOrDir)) handler = fileSystemHandler(new URL(urlOrDir).pathname);
  else handler = fileSystemHandler(urlOrDir);
  try {
    const artifacts = await handler.load!();
    if (artifacts.modelTopology === undefined) throw new Error('no modelTopology in model.json');
    return artifacts;
  } catch (error) {
    if (error instanceof EngineError) throw error;
    throw new EngineError('MODEL_MISSING', `Cannot load a TF.js model from ${urlOrDir}: ${messageOf(error)}`, {
      cause: error,
    });
  }
}

function squareRgbInput(shape: readonly (number | null)[] | undefined, wanted: number | undefined, where: string): number {
  const h = shape?.[1] ?? null;
  const w = shape?.[2] ?? null;
  const c = shape?.[3] ?? null;
  const size = wanted ?? h;
  if (shape?.length !== 4 || size === null || size < 1 || h !== w || (c !== null && c !== 3)) {
    throw new EngineError('BAD_INPUT', `The model at ${where} does not take square RGB images (input ${JSON.stringify(shape)})`);
  }
  return size;
}

/**
 * Keras BatchNormalization with `scale=false` has no gamma, and tfjs's batchNorm gradient then fails. Give
 * each such layer a frozen gamma of ones (numerically identical) and mark it scaled so config and weights agree.
 */
export function fixScalelessBatchNorm(tf: Tf, model: tfTypes.LayersModel): number {
  let fixed = 0;
  for (const layer of model.layers) {
    if (layer.getClassName() !== 'BatchNormalization') continue;
    const bn = layer as unknown as {
      scale: boolean;
      gamma: unknown;
      movingMean: { shape: number[] } | null;
      addWeight: (
        name: string,
        shape: number[],
        dtype: 'float32',
        initializer: ReturnType<Tf["initializers"]["ones"]>,
        regularizer: null,
        trainable: boolean,
      ) => { write(value: tfTypes.Tensor): void };
    };
    if (bn.gamma != null || bn.movingMean === null) continue;
    const gamma = bn.addWeight('gamma', bn.movingMean.shape, 'float32', tf.initializers.ones(), null, false);
    // Layers of a loaded model initialise new weights to zeros (`fastWeightInitDuringBuild`): write the ones.
    const ones = tf.ones(bn.movingMean.shape);
    gamma.write(ones);
    ones.dispose();
    bn.gamma = gamma;
    bn.scale = true;
    fixed++;
  }
  return fixed;
}

interface BackboneConfig {
  readonly name: string;
  readonly inputSize: number;
  readonly embeddingLayer: string;
  readonly camLayer: string | null;
}

/** Batching, input conversion and lifecycle shared by both kinds of backbone. */
abstract class BaseBackbone {
  abstract readonly kind: 'layers' | 'graph';
  abstract readonly embedDim: number;
  protected disposed = false;

  constructor(
    readonly tf: Tf,
    readonly name: string,
    readonly inputSize: number,
    readonly camLayer: string | null,
  ) {}

  abstract embed(batch: tfTypes.Tensor4D): tfTypes.Tensor2D;
  abstract features(batch: tfTypes.Tensor4D, layerNames: readonly string[]): tfTypes.Tensor[];
  protected abstract release(): void;

  async embedImages(images: readonly EmbedderImage[], opts: EmbedImagesOptions = {}): Promise<Float32Array[]> {
    this.assertAlive();
    const batchSize = Math.max(1, Math.floor(opts.batchSize ?? 16));
    const out: Float32Array[] = [];
    for (let start = 0; start < images.length; start += batchSize) {
      const chunk = images.slice(start, start + batchSize);
      const embedded = this.tf.tidy(() => this.embed(this.toBatch(chunk)));
      const flat = (await embedded.data()) as Float32Array;
      embedded.dispose();
      for (let i = 0; i < chunk.length; i++) out.push(flat.slice(i * this.embedDim, (i + 1) * this.embedDim));
      opts.onProgress?.(out.length, images.length);
      // Let timers and I/O run between batches (a long embed otherwise starves the event loop).
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    return out;
  }

  toBatch(images: readonly EmbedderImage[]): tfTypes.Tensor4D {
    const s = this.inputSize;
    if (images.length === 0) throw new EngineError('BAD_INPUT', 'No images to embed');
    return this.tf.tidy(() => {
      const tensors = images.map((img, i) => {
        if (img instanceof Float32Array || 'tensorData' in img) {
          const data = img instanceof Float32Array ? img : img.tensorData;
          if (data.length !== s * s * 3) {
            throw new EngineError(
              'BAD_INPUT',
              `Image ${i} has ${data.length} values; ${this.name} needs ${s}x${s}x3 = ${s * s * 3} (preprocess with size ${s})`,
            );
          }
          return this.tf.tensor3d(data, [s, s, 3]);
        }
        return rawToTensor(this.tf, img, s);
      });
      return this.tf.stack(tensors) as tfTypes.Tensor4D;
    });
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.release();
  }

  protected assertBatch(batch: tfTypes.Tensor): void {
    const [, h, w, c] = batch.shape;
    if (batch.rank !== 4 || h !== this.inputSize || w !== this.inputSize || c !== 3) {
      throw new EngineError(
        'BAD_INPUT',
        `${this.name} takes [N,${this.inputSize},${this.inputSize},3] in [0,1]; got [${batch.shape.join(',')}]`,
      );
    }
  }

  protected assertAlive(): void {
    if (this.disposed) throw new EngineError('UNAVAILABLE', `The ${this.name} backbone was disposed`);
  }
}

class LayersBackbone extends BaseBackbone implements Backbone {
  readonly kind = 'layers' as const;
  readonly embedDim: number;
  readonly embeddingLayer: string;
  readonly model: tfTypes.LayersModel;
  private readonly embedder: tfTypes.LayersModel;
  private readonly subModels = new Map<string, tfTypes.LayersModel>();

  constructor(tf: Tf, model: tfTypes.LayersModel, config: BackboneConfig) {
    super(tf, config.name, config.inputSize, config.camLayer);
    this.model = model;
    this.embeddingLayer = config.embeddingLayer;
    const out = this.layer(config.embeddingLayer).output as tfTypes.SymbolicTensor;
    const dims = out.shape.slice(1);
    if (dims.some((d) => d === null)) {
      throw new EngineError('BAD_INPUT', `Embedding layer ${config.embeddingLayer} has an unknown size ${JSON.stringify(out.shape)}`);
    }
    this.embedDim = (dims as number[]).reduce((a, b) => a * b, 1);
    this.embedder = tf.model({ inputs: model.inputs, outputs: out });
    if (config.camLayer !== null) this.layer(config.camLayer);
  }

  embed(batch: tfTypes.Tensor4D): tfTypes.Tensor2D {
    this.assertAlive();
    this.assertBatch(batch);
    return this.tf.tidy(() => {
      const out = this.embedder.predict(batch) as tfTypes.Tensor;
      return out.reshape([batch.shape[0], this.embedDim]) as tfTypes.Tensor2D;
    });
  }

  features(batch: tfTypes.Tensor4D, layerNames: readonly string[]): tfTypes.Tensor[] {
    this.assertAlive();
    this.assertBatch(batch);
    const out = this.featureModel(layerNames).predict(batch);
    return Array.isArray(out) ? out : [out as tfTypes.Tensor];
  }

  featureModel(layerNames: readonly string[]): tfTypes.LayersModel {
    this.assertAlive();
    if (layerNames.length === 0) throw new EngineError('BAD_INPUT', 'features() needs at least one layer name');
    const key = layerNames.join('\u0000');
    let sub = this.subModels.get(key);
    if (sub === undefined) {
      const outputs = layerNames.map((n) => this.layer(n).output as tfTypes.SymbolicTensor);
      sub = this.tf.model({ inputs: this.model.inputs, outputs: outputs.length === 1 ? outputs[0]! : outputs });
      this.subModels.set(key, sub);
    }
    return sub;
  }

  layerNames(): string[] {
    return this.model.layers.map((l) => l.name);
  }

  protected release(): void {
    // Sub-models share the weights of `model`: disposing `model` frees them all.
    this.subModels.clear();
    this.model.dispose();
  }

  private layer(name: string): tfTypes.layers.Layer {
    try {
      return this.model.getLayer(name);
    } catch {
      throw new EngineError('BAD_INPUT', `The ${this.name} backbone has no layer "${name}"`, {
        details: { layer: name },
      });
    }
  }
}

interface GraphBackboneConfig {
  readonly name: string;
  readonly inputSize: number;
  readonly outputNode: string;
  readonly camLayer: string | null;
}

class GraphModelBackbone extends BaseBackbone implements GraphBackbone {
  readonly kind = 'graph' as const;
  readonly embedDim: number;
  readonly outputNode: string;
  readonly graph: tfTypes.GraphModel;
  private readonly nodes: Set<string>;

  constructor(tf: Tf, graph: tfTypes.GraphModel, config: GraphBackboneConfig) {
    super(tf, config.name, config.inputSize, config.camLayer);
    this.graph = graph;
    this.outputNode = config.outputNode;
    const topology = (graph as unknown as { artifacts?: { modelTopology?: { node?: { name: string }[] } } }).artifacts
      ?.modelTopology?.node;
    this.nodes = new Set((topology ?? []).map((n) => n.name));
    this.node(config.outputNode);
    if (config.camLayer !== null) this.node(config.camLayer);
    // The output size is rarely in the signature: measure it once on a blank image.
    this.embedDim = tf.tidy(() => {
      const out = graph.execute(tf.zeros([1, config.inputSize, config.inputSize, 3]), config.outputNode) as tfTypes.Tensor;
      return out.size;
    });
  }

  embed(batch: tfTypes.Tensor4D): tfTypes.Tensor2D {
    this.assertAlive();
    this.assertBatch(batch);
    return this.tf.tidy(() => {
      const out = this.graph.execute(batch, this.outputNode) as tfTypes.Tensor;
      return out.reshape([batch.shape[0], this.embedDim]) as tfTypes.Tensor2D;
    });
  }

  features(batch: tfTypes.Tensor4D, layerNames: readonly string[]): tfTypes.Tensor[] {
    this.assertAlive();
    this.assertBatch(batch);
    if (layerNames.length === 0) throw new EngineError('BAD_INPUT', 'features() needs at least one node name');
    for (const n of layerNames) this.node(n);
    const out = this.graph.execute(batch, [...layerNames]);
    return Array.isArray(out) ? out : [out];
  }

  nodeNames(): string[] {
    return [...this.nodes];
  }

  protected release(): void {
    this.graph.dispose();
  }

  private node(name: string): string {
    const bare = name.replace(/:\d+$/, '');
    if (this.nodes.size > 0 && !this.nodes.has(bare)) {
      throw new EngineError('BAD_INPUT', `The ${this.name} graph has no node "${name}"`, { details: { node: name } });
    }
    return name;
  }
}

/**
 * A raw 8-bit image → `[size,size,3]` float in [0,1], stretched with bilinear resampling (alpha composited on
 * white; grayscale replicated to RGB).
 */
export function rawToTensor(tf: Tf, img: RawImage, size: number): tfTypes.Tensor3D {
  const channels = img.channels ?? 3;
  if (img.data.length !== img.width * img.height * channels) {
    throw new EngineError(
      'BAD_INPUT',
      `Raw image data has ${img.data.length} bytes, expected ${img.width}x${img.height}x${channels}`,
    );
  }
  return tf.tidy(() => {
    let t: tfTypes.Tensor3D = tf.tensor3d(Uint8Array.from(img.data), [img.height, img.width, channels], 'int32');
    let f: tfTypes.Tensor3D = t.toFloat().div(255);
    if (channels === 4) {
      const [rgb, alpha] = tf.split(f, [3, 1], 2) as [tfTypes.Tensor3D, tfTypes.Tensor3D];
      f = rgb.mul(alpha).add(tf.scalar(1).sub(alpha));
    } else if (channels === 1) {
      f = tf.tile(f, [1, 1, 3]);
    }
    t = f;
    if (img.width === size && img.height === size) return t;
    return tf.image.resizeBilinear(t, [size, size], true);
  });
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The classes of the nsfwjs models' own head, in output order. */
export const NSFW_CLASSES = ['drawing', 'hentai', 'neutral', 'porn', 'sexy'] as const;

/** One of {@link NSFW_CLASSES}. */
export type NsfwClass = (typeof NSFW_CLASSES)[number];

/**
 * The built-in backbones' original 5-way content-moderation head (the reason these models exist): one
 * probability per class for each image. Used to refuse explicit uploads before analysing or storing them.
 */
export async function nsfwScores(
  backbone: Backbone,
  images: readonly (Float32Array | ModelInput | RawImage)[],
): Promise<Record<NsfwClass, number>[]> {
  const outShape = backbone.model.outputs[0]?.shape;
  if (outShape?.[1] !== NSFW_CLASSES.length) {
    throw new EngineError('BAD_INPUT', `The ${backbone.name} backbone has no nsfwjs head (output ${JSON.stringify(outShape)})`);
  }
  const tf = backbone.tf;
  // A multi-level variant has its embedding as a second output; the nsfwjs head is always the first.
  const probs = tf.tidy(() => {
    const out = backbone.model.predict(backbone.toBatch(images));
    return (Array.isArray(out) ? out[0] : out) as tfTypes.Tensor2D;
  });
  const flat = await probs.data();
  probs.dispose();
  return images.map((_, i) => {
    const row = {} as Record<NsfwClass, number>;
    NSFW_CLASSES.forEach((c, k) => (row[c] = flat[i * NSFW_CLASSES.length + k]!));
    return row;
  });
}
