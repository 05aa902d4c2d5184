/**
 * The `vision` service: everything the vision commands do, as functions other plugins call through
 * `ctx.services.vision` (training jobs, the Discord mention handler, webhooks). Also provided as
 * `embedder`, the contract the training plugin uses to embed stored images.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EngineError, isEngineError } from '../../engine/errors.ts';
import type { Store } from '../../engine/store/index.ts';
import type { ReplyImage } from '../../engine/reply.ts';
import { embeddingPartsOf, loadBackbone, isBackboneName, type Backbone } from '../../engine/ml/backbones.ts';
import type * as tfTypes from '@tensorflow/tfjs';
import { gradCam, gradCamFromGradientParts, scoreCam, filterGrid, layersActivations, overlayHeatmapRaw, type CamResult, type HeadFn } from '../../engine/ml/cam.ts';
import { getTf } from '../../engine/ml/runtime.ts';
import { applyLabelOverlays, readLabelledSource, type DatasetRow, type NamedOverlayReport } from './lib/dataset.ts';
import { embedItems, embedOne, embedTurnedCopy, locatorFor, turnerFor, mirrorInput, normaliseKey, prepareInputKeepingLook, prepKey, shoeFoundIn, turnedCopyKey, variantOf, type EmbedItem, type Framing } from './lib/features.ts';
import { ANGLE_REBUILD, angleFileKey, angleFileName, makeTurner, shippedAngleModel } from './lib/angle.ts';
import { DEFAULT_LOCALISER_DIR } from './lib/localise.ts';
import { DEFAULT_HEAD_FILES, denseForward, headInput, headLogitGradient, headLogitsTf, loadHeadFile, parseHead, predictHead, type FeatureSpec, type HeadModel, type HeadPrediction } from './lib/head.ts';
import { decodeBytes, isPicture, isRawImage, loadPicture, pictureFromRaw, DEFAULT_LIMITS, type DecodeLimits, type Picture, type VisionImage } from './lib/input.ts';
import { BRANDS, HYPES, labelsOf, type Task } from './lib/labels.ts';
import { bootstrapInterval, classificationReport, formatReport, type BootstrapInterval, type ClassificationReport } from './lib/metrics.ts';
import { calibrationReport, type CalibrationReport } from '../../engine/ml/calibration.ts';
import { renderConfusionMatrix, renderReliability, renderStrip, captionRgb } from './lib/render.ts';
import { fuzzyGroups, groupSplit } from './lib/split.ts';
import { trainHead, type TrainHeadOptions } from './lib/train.ts';

/** Where the shipped default heads live: assets/models inside the repository (never the dev data folder). */
export const DEFAULT_MODELS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../assets/models');

/**
 * The backbone of new heads and of the `embedder` service, the same as the shipped heads' (see
 * assets/models/README.md for why: InceptionV3 generalises across sources far better than MobileNetV2, and its
 * multi-level variants — the means of mid-level blocks next to the usual embedding — tell brands apart better
 * still: mixed7's since the seventh session, mixed6's and mixed7's since the twenty-third).
 */
export const DEFAULT_BACKBONE = 'inception_v3_m67';

/**
 * The default feature pipeline of new heads, the same as the shipped heads': study normalisation (background
 * whitening + crop to the shoe, no orientation flip), starting from the shoe localiser's box off studio
 * backdrops (both built-in backbones ship one), a steeply tilted shoe turned upright first — see
 * assets/models/README.md and scripts/eval-shift.ts.
 */
export const DEFAULT_FEATURES: FeatureSpec = { trim: false, flipAverage: false, l2: true, normalise: true, orient: false, locate: true, upright: true };

/** Feature-space key used for cached, pipeline-complete embeddings (and the `embedder` service). */
export function featureKey(spec: FeatureSpec): string {
  return `vprep-1${normaliseKey(spec)}${spec.trim && !spec.normalise ? '+trim' : ''}${spec.flipAverage ? '+flipavg' : ''}`;
}

/** The answer of {@link VisionService.classify}. */
export interface Classification extends HeadPrediction {
  readonly task: Task;
  /** P(hyped) for hype; the top probability for brand. */
  readonly probability: number;
  /** The model's id (file id or `store:<id>`). */
  readonly model: string;
  readonly backbone: string;
  readonly imageSha: string;
  /** Why the answer is low-confidence, in words; undefined when it is not. */
  readonly lowConfidenceReason?: string;
  /**
   * Whether the shoe localiser found a shoe in the photo; undefined when it did not look (a studio backdrop,
   * or a head without `locate`). False makes the answer low-confidence.
   */
  readonly shoeFound?: boolean;
}

/** Options of {@link VisionService.classify}. */
export interface ClassifyOptions {
  /** A store model id (number) or `default`; default: the registry champion, else the shipped default. */
  readonly modelId?: string | number;
  readonly allowLocalPaths?: boolean;
  readonly signal?: AbortSignal;
}

/** A nearest neighbour of {@link VisionService.similar}. */
export interface Neighbour {
  readonly id: string;
  readonly name: string | null;
  readonly brand: string | null;
  readonly hype: string | null;
  readonly distance: number;
}

/** Result of {@link VisionService.evaluate}. */
export interface EvaluationResult extends ClassificationReport {
  readonly task: Task;
  readonly model: string;
  /** How the model answered each photo: from the photo alone, or from the photo and its mirror (a `tta` head). */
  readonly tta: 'mirror' | 'none';
  /** 95 % percentile-bootstrap interval of accuracy and macro-F1 over the evaluated photos (seeded). */
  readonly interval: BootstrapInterval;
  /** Rows without a label for the task (skipped and counted). */
  readonly skipped: number;
  /** Rows whose image could not be read. */
  readonly unreadable: number;
  /**
   * Files that were not scored and why, so a user can fix them: the unreadable rows (the loader's message, e.g. a
   * HEIC photo or a corrupt JPEG) and a folder's files that are not images by name. At most 50; `unreadable` counts all.
   */
  readonly notScored: readonly { readonly item: string; readonly reason: string }[];
  /** What each label overlay (`labels`) added to the data, in order. */
  readonly labelOverlays: readonly NamedOverlayReport[];
  /**
   * How far the stated probabilities can be taken at their word (10 confidence bins of the top answer; see
   * engine/ml/calibration.ts): an ECE of 0.05 means the answers were, on average, 5 points more or less sure than right.
   */
  readonly calibration: CalibrationReport;
  /** The softmax temperature the head answers at (its file's `temperature`; 1 = as trained), which the calibration is of. */
  readonly temperature: number;
  /**
   * The answers serving would mark low confidence (top probability under the head's `minConfidence`, or the photo
   * outside what the head was trained on), and how often the others were right.
   */
  readonly warnings: { readonly lowConfidence: number; readonly accuracyWithoutWarning: number | null };
  readonly text: string;
  readonly png: Buffer;
  /** The reliability diagram of {@link calibration}. */
  readonly reliabilityPng: Buffer;
}

/** Result of {@link VisionService.importDataset}. */
export interface ImportResult {
  readonly dataset: string;
  readonly rows: number;
  readonly added: number;
  readonly duplicates: number;
  readonly labels: number;
  /** What each label overlay (`labels`) added to the data, in order. */
  readonly labelOverlays: readonly NamedOverlayReport[];
  readonly skipped: readonly { readonly item: string; readonly reason: string }[];
}

/** Result of {@link VisionService.datasetStats}. */
export interface DatasetStats {
  readonly dataset: string | null;
  readonly images: number;
  readonly brand: Record<string, number>;
  readonly hype: Record<string, number>;
  readonly sources: Record<string, number>;
  readonly sizes: { readonly width: { min: number; median: number; max: number }; readonly height: { min: number; median: number; max: number } };
}

/** Options of {@link VisionService.train}. */
export interface VisionTrainOptions extends TrainHeadOptions {
  /** Datasets to train on (default: every labelled image in the store). */
  readonly datasets?: readonly string[];
  readonly backbone?: string;
  readonly features?: FeatureSpec;
  readonly testSize?: number;
  /** Augmented copies per training image (crop, colour and background jitter; embedded separately; default 0). */
  readonly augmentCopies?: number;
  /** Add each training image's mirror as an extra row (default: true unless the features flip-average). */
  readonly flipAugment?: boolean;
  readonly id?: string;
  readonly signal?: AbortSignal;
}

/** Result of {@link VisionService.train}. */
export interface VisionTrainResult {
  readonly head: HeadModel;
  /** The head as JSON bytes (store it as a model artifact). */
  readonly artifact: Buffer;
  readonly report: ClassificationReport;
  readonly split: { readonly train: number; readonly test: number; readonly groups: number };
}

/** Progress reporter of long operations. */
export type VisionProgress = (event: { stage: string; fraction?: number; message?: string }) => void;

/** Options of {@link createVisionService}. */
export interface VisionServiceOptions {
  /** The store (a getter: the engine may receive it after plugins register). */
  readonly store: () => Store | undefined;
  /** Folder of the default heads (default: assets/models). */
  readonly modelsDir?: string;
  readonly limits?: Partial<DecodeLimits>;
  /** Operator setting SOLESCOPE_ALLOW_PRIVATE_URLS: let image URLs point at private addresses. */
  readonly allowPrivateUrls?: boolean;
  /** The training plugin's registry, when loaded (champion heads). */
  readonly registry?: () => RegistryLike | undefined;
}

/** The part of the training plugin's registry the vision service uses. */
export interface RegistryLike {
  champion(task: string): Promise<number | undefined>;
}

/** What `ctx.services.vision` offers. */
export interface VisionService {
  /** Decode anything image-like into a {@link Picture} (NOT_AN_IMAGE / TOO_LARGE / BAD_INPUT on bad input). */
  picture(image: VisionImage, opts?: { allowLocalPaths?: boolean; signal?: AbortSignal }): Promise<Picture>;
  /** Hype or brand for one image. */
  classify(image: VisionImage, task: Task, opts?: ClassifyOptions): Promise<Classification>;
  /** The pipeline-complete embedding of one image (default backbone and features). */
  embed(image: VisionImage, opts?: { backbone?: string; features?: FeatureSpec; allowLocalPaths?: boolean }): Promise<Float32Array>;
  /**
   * Heatmaps / filter grid PNGs explaining the task's answer. `layer`: where the explanation looked (`mixed10`;
   * `mixed6+mixed7+mixed10` for the default multi-level backbone; the filters' conv). `framing` (heads that normalise): how the
   * photo was framed — background handling, the upright turn, the shoe's box in the photo.
   */
  explain(image: VisionImage, opts: { method: 'gradcam' | 'scorecam' | 'filters'; task: Task; modelId?: string | number; allowLocalPaths?: boolean }): Promise<{ images: ReplyImage[]; classification: Classification; layer: string; framing?: Framing }>;
  /** Nearest stored images by embedding, plus the labelled strip PNG. */
  similar(image: VisionImage, opts?: { k?: number; allowLocalPaths?: boolean }): Promise<{ neighbours: Neighbour[]; png: Buffer; searched: number }>;
  /** Evaluate a model on a labelled folder or manifest. */
  evaluate(task: Task, data: string, opts?: { modelId?: string | number; labels?: readonly string[]; progress?: VisionProgress; signal?: AbortSignal }): Promise<EvaluationResult>;
  /** Import a labelled folder or manifest into the store (idempotent; dedupe by content). */
  importDataset(source: string, opts?: { name?: string; by?: string; embed?: boolean; labels?: readonly string[]; progress?: VisionProgress; signal?: AbortSignal }): Promise<ImportResult>;
  /** Counts per label, per source, and image sizes. */
  datasetStats(name?: string): Promise<DatasetStats>;
  /** Train a head on stored labelled images (group-aware split, cached embeddings). */
  train(task: Task, opts?: VisionTrainOptions, progress?: VisionProgress): Promise<VisionTrainResult>;
  /** The head a task uses now (store model, champion, or shipped default). */
  model(task: Task, modelId?: string | number): Promise<HeadModel>;
  /** Store a user's vote on an answer as a label (one per user per image and task). */
  vote(input: { imageSha: string; task: Task; value: string; by: string; guildId?: string }): Promise<void>;
}

/**
 * A training view of a photo: extra training rows with the photo's label and source. `turned` is two rows, the
 * turned composite and its mirror (see {@link ViewRow}).
 */
export type TrainingView = 'mirror' | 'scene' | 'turned';

/** One row kind a view adds: `turned` adds `turned` and `turned-mirror`. */
export type ViewRow = 'mirror' | 'scene' | 'turned' | 'turned-mirror';

/** The `embedder` contract of the training plugin (structurally the same as plugins/training's). */
export interface Embedder {
  readonly backbone: string;
  readonly prepVersion: string;
  embedImages(shas: readonly string[], signal?: AbortSignal): Promise<Map<string, Float32Array>>;
  /** The store key (prepVersion) a view row's embeddings are cached under; undefined when this embedder cannot make it. */
  viewPrepVersion(view: ViewRow): string | undefined;
  /** Embeddings of a training view row of stored images, read from and written to the store's cache. */
  embedViews(shas: readonly string[], view: ViewRow, signal?: AbortSignal): Promise<Map<string, Float32Array>>;
}

/**
 * The feature pipeline of the `embedder` service, which community training runs embed with: the shipped heads'
 * (DEFAULT_FEATURES served with the learnt turn, which DEFAULT_BACKBONE ships). A promoted version is then embedded
 * in training as it is served — a phone photo voted on in Discord goes through the same learnt turn both times — and
 * the gate scores the shipped default heads in the run's own feature space.
 */
export const EMBEDDER_FEATURES: FeatureSpec = { ...DEFAULT_FEATURES, learntTurn: true };

/**
 * Seed of the embedder's turned views: train:defaults' default seed, so a photo gets the same turn (drawn from the
 * seed and its hash, features.ts `embedTurnedCopy`) in a community run as in the shipped heads' training.
 */
export const TURNED_VIEW_SEED = 42;

/**
 * The spec and embedItems options of a training view, as `npm run train:defaults` makes them (`--flip-augment`,
 * scene copy 0): the mirror of the photo through the serving pipeline; the shoe pasted onto a generated scene,
 * normalised from the whole frame (unlocated: its looser crops transfer better, assets/models/README.md).
 */
function viewSpec(view: 'mirror' | 'scene'): { spec: FeatureSpec; options: { mirror?: boolean; scene?: number } } {
  const { locate: _locate, ...unlocated } = DEFAULT_FEATURES;
  return view === 'mirror' ? { spec: { ...EMBEDDER_FEATURES, flipAverage: false }, options: { mirror: true } } : { spec: { ...unlocated, flipAverage: false }, options: { scene: 0 } };
}

function median(values: number[]): number {
  if (values.length === 0) return 0;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function pct(p: number): string {
  return `${(p * 100).toFixed(0)}%`;
}

/** Create the service. */
export function createVisionService(options: VisionServiceOptions): VisionService & { embedder: Embedder } {
  const modelsDir = options.modelsDir ?? DEFAULT_MODELS_DIR;
  const limits: DecodeLimits = { ...DEFAULT_LIMITS, ...options.limits };
  const storeOrThrow = (): Store => {
    const s = options.store();
    if (!s) throw new EngineError('UNAVAILABLE', 'This needs the store (SQLite or Postgres), and none is configured.');
    return s;
  };
  const headCache = new Map<string, { head: HeadModel; mtimeKey: string }>();

  async function picture(image: VisionImage, opts: { allowLocalPaths?: boolean; signal?: AbortSignal } = {}): Promise<Picture> {
    if (isPicture(image)) return image;
    if (image instanceof Uint8Array) return decodeBytes(image, limits);
    if (isRawImage(image)) return pictureFromRaw(image, limits);
    return loadPicture(image, limits, {
      allowLocalPaths: opts.allowLocalPaths ?? false,
      allowPrivateUrls: options.allowPrivateUrls ?? false,
      signal: opts.signal,
    });
  }

  async function model(task: Task, modelId?: string | number): Promise<HeadModel> {
    const store = options.store();
    let id: number | undefined;
    if (modelId !== undefined && modelId !== 'default') {
      id = typeof modelId === 'number' ? modelId : Number(String(modelId).replace(/^store:/, ''));
      if (!Number.isInteger(id)) throw new EngineError('BAD_INPUT', `"${modelId}" is not a model id (use a number from \`models list\` or "default").`);
    } else if (modelId === undefined && store) {
      id = (await options.registry?.()?.champion(task)) ?? (await store.models.getAlias(task, 'champion'));
    }
    if (id !== undefined && store) {
      const key = `store:${id}`;
      const cached = headCache.get(key);
      if (cached) return cached.head;
      const rec = await store.models.get(id);
      if (!rec) throw new EngineError('NOT_FOUND', `There is no model ${id}.`);
      if (rec.task !== task) throw new EngineError('BAD_INPUT', `Model ${id} is a ${rec.task} model, not ${task}.`);
      let json: unknown;
      try {
        json = JSON.parse(rec.artifact.toString('utf8'));
      } catch {
        throw new EngineError('MODEL_MISSING', `Model ${id}'s artifact is not JSON.`);
      }
      if ((json as { format?: unknown }).format !== 'solescope-head') {
        // A head in another format (e.g. the training plugin's own): serve the shipped default instead of guessing.
        if (modelId !== undefined) throw new EngineError('MODEL_MISSING', `Model ${id} is not a vision head this service can serve.`);
        return model(task, 'default');
      }
      const head = { ...parseHead(json, key), id: key };
      headCache.set(key, { head, mtimeKey: key });
      return head;
    }
    if (id !== undefined && !store) throw new EngineError('UNAVAILABLE', 'Store models need the store, and none is configured.');
    const file = path.join(modelsDir, DEFAULT_HEAD_FILES[task]);
    if (!existsSync(file)) {
      throw new EngineError('MODEL_MISSING', `The default ${task} model (${path.relative(process.cwd(), file) || file}) is missing. Rebuild it with \`npm run train:defaults\`.`, {
        details: { rebuild: 'npm run train:defaults -- --data <manifest.csv>' },
      });
    }
    const { statSync } = await import('node:fs');
    const mtimeKey = String(statSync(file).mtimeMs);
    const cached = headCache.get(file);
    if (cached && cached.mtimeKey === mtimeKey) return cached.head;
    const head = loadHeadFile(file);
    if (head.task !== task) throw new EngineError('MODEL_MISSING', `${file} holds a ${head.task} model, not ${task}. Rebuild it with \`npm run train:defaults\`.`);
    headCache.set(file, { head, mtimeKey });
    return head;
  }

  async function backboneFor(name: string): Promise<Backbone> {
    if (!isBackboneName(name)) throw new EngineError('MODEL_MISSING', `Unknown backbone "${name}" in the model file.`);
    return loadBackbone(name);
  }

  async function featureEmbedding(
    pic: Picture,
    backbone: Backbone,
    spec: FeatureSpec,
    computed?: { embedding: Float32Array; shoeFound?: boolean },
  ): Promise<{ embedding: Float32Array; inputs: Float32Array[]; shoeFound?: boolean }> {
    const store = options.store();
    const key = featureKey(spec);
    const cached = await store?.embeddings.get(pic.sha256, backbone.name, key);
    if (cached) {
      // Inputs are still needed by explanations; recomputing one is cheap next to a forward pass. Whether the
      // photo shows a shoe is asked again (the cache holds vectors only), so a repeat gets the same answer.
      const variant = variantOf(spec, false);
      const shoeFound = computed ? computed.shoeFound : await shoeFoundIn(pic.raw, variant, locatorFor(backbone, variant));
      return { embedding: cached, inputs: [], ...(shoeFound !== undefined ? { shoeFound } : {}) };
    }
    const out = computed ? { ...computed, inputs: [] } : await embedOne(backbone, pic.raw, spec);
    await store?.embeddings.put(pic.sha256, backbone.name, key, out.embedding).catch(() => undefined);
    return out;
  }

  function describe(task: Task, head: HeadModel, pred: HeadPrediction, pic: Picture, backbone: string, shoeFound?: boolean): Classification {
    const probability = task === 'hype' ? (pred.probabilities.hyped ?? 0) : pred.confidence;
    let reason: string | undefined;
    if (pred.ood.outside) reason = "this photo is unlike the sneaker photos I was trained on — maybe there is no sneaker in it, or it is framed very differently";
    else if (shoeFound === false) reason = 'I could not find a sneaker in this photo — maybe there is none, or it is very small or hidden';
    else if (pred.lowConfidence) reason = `my top answer has only ${pct(pred.confidence)} probability`;
    return {
      ...pred,
      // No shoe found: the heads still answer (on the whole-frame crop), but the answer is a guess.
      lowConfidence: pred.lowConfidence || shoeFound === false,
      ...(shoeFound !== undefined ? { shoeFound } : {}),
      task,
      probability,
      model: head.id,
      backbone,
      imageSha: pic.sha256,
      ...(reason !== undefined ? { lowConfidenceReason: reason } : {}),
    };
  }

  /**
   * The test-time views a head asks for (`tta`): for `mirror`, the embedding of the photo's mirror image through
   * the head's own pipeline, cached under the mirrored variant's key (the one flip augmentation trained on).
   * `input`, the photo's prepared model input when at hand, spares a second normalisation: for a normalised
   * pipeline the mirrored variant's input is that input mirrored.
   */
  async function testTimeViews(pic: Picture, backbone: Backbone, head: HeadModel, input?: Float32Array): Promise<Float32Array[]> {
    if (head.tta !== 'mirror' || head.features.flipAverage) return [];
    const store = options.store();
    if (!input || !head.features.normalise) {
      // embedItems reads and fills the same cache entry.
      return embedItems(backbone, [{ sha256: pic.sha256, load: async () => pic.raw }], head.features, { mirror: true, ...(store ? { store } : {}) });
    }
    const key = prepKey(variantOf(head.features, true));
    const cached = await store?.embeddings.get(pic.sha256, backbone.name, key);
    if (cached) return [cached];
    const [vector] = await backbone.embedImages([mirrorInput(input, backbone.inputSize)], { batchSize: 1 });
    await store?.embeddings.put(pic.sha256, backbone.name, key, vector!).catch(() => undefined);
    return [vector!];
  }

  async function classifyPicture(
    pic: Picture,
    task: Task,
    modelId?: string | number,
    computed?: { head: HeadModel; backbone: Backbone; embedding?: Float32Array; shoeFound?: boolean; input?: Float32Array },
  ): Promise<{ cls: Classification; head: HeadModel; backbone: Backbone; inputs: Float32Array[]; embedding: Float32Array }> {
    const head = computed?.head ?? (await model(task, modelId));
    const backbone = computed?.backbone ?? (await backboneFor(head.backbone));
    const given = computed?.embedding ? { embedding: computed.embedding, ...(computed.shoeFound !== undefined ? { shoeFound: computed.shoeFound } : {}) } : undefined;
    const { embedding, inputs, shoeFound } = await featureEmbedding(pic, backbone, head.features, given);
    const pred = predictHead(head, embedding, await testTimeViews(pic, backbone, head, computed?.input ?? (inputs.length === 1 ? inputs[0] : undefined)));
    return { cls: describe(task, head, pred, pic, backbone.name, shoeFound), head, backbone, inputs, embedding };
  }

  async function classify(image: VisionImage, task: Task, opts: ClassifyOptions = {}): Promise<Classification> {
    const pic = await picture(image, { ...(opts.allowLocalPaths !== undefined ? { allowLocalPaths: opts.allowLocalPaths } : {}), ...(opts.signal ? { signal: opts.signal } : {}) });
    return (await classifyPicture(pic, task, opts.modelId)).cls;
  }

  async function explain(
    image: VisionImage,
    opts: { method: 'gradcam' | 'scorecam' | 'filters'; task: Task; modelId?: string | number; allowLocalPaths?: boolean },
  ): Promise<{ images: ReplyImage[]; classification: Classification; layer: string; framing?: Framing }> {
    const pic = await picture(image, { allowLocalPaths: opts.allowLocalPaths ?? false });
    const head = await model(opts.task, opts.modelId);
    const backbone = await backboneFor(head.backbone);
    const tf = backbone.tf;
    // Explanations look at the unmirrored view: the heatmap must sit on the picture the user sent.
    const variant = variantOf(head.features, false);
    // Grad-CAM (what `hype` and `brand` send) needs the activations of the layers whose spatial means ARE the
    // embedding (the CAM layer; mixed6, mixed7 and mixed10 for the multi-level inception_v3_m67): one forward pass (on
    // onnxruntime when available) serves both the answer and the heatmap.
    const parts = embeddingPartsOf(backbone);
    /** One forward pass: the embedding parts' activations of a model input, and their spatial means (the embedding). */
    const activationsOf = async (input: Float32Array): Promise<{ acts: tfTypes.Tensor4D[]; embedding: Float32Array }> => {
      const x = tf.tensor4d(input, [1, backbone.inputSize, backbone.inputSize, 3]);
      let acts: tfTypes.Tensor4D[] = [];
      try {
        acts = await layersActivations(backbone, x, parts);
        const pooled = tf.tidy(() => tf.concat(acts.map((a) => tf.mean(a, [1, 2])), 1));
        const embedding = new Float32Array(await pooled.data());
        pooled.dispose();
        return { acts, embedding };
      } catch (err) {
        for (const a of acts) a.dispose();
        throw err;
      } finally {
        x.dispose();
      }
    };
    // The learnt turn looks at the photo through the backbone before the answer: here each look keeps its
    // activations, so the look at the view that is served is also the Grad-CAM pass (one forward pass fewer
    // for every photo it is asked about).
    const reuseLooks = opts.method === 'gradcam' && parts.length > 0 && !head.features.flipAverage;
    const { placed, kept: served } = await prepareInputKeepingLook(
      pic.raw,
      backbone.inputSize,
      variant,
      locatorFor(backbone, variant),
      turnerFor(backbone, variant),
      reuseLooks
        ? {
            look: async (x) => {
              const seen = await activationsOf(x);
              return { embedding: seen.embedding, keep: seen };
            },
            release: (seen) => seen.acts.forEach((a) => a.dispose()),
          }
        : undefined,
    );
    const { input, placement, framing, shoeFound } = placed;
    const modelInput = { tensorData: input, size: backbone.inputSize };
    let partActivations: tfTypes.Tensor4D[] | undefined;
    let computed: Float32Array | undefined;
    if (served) {
      partActivations = served.acts;
      computed = served.embedding;
    } else if (opts.method === 'gradcam' && parts.length > 0) {
      const seen = await activationsOf(input);
      partActivations = seen.acts;
      if (!head.features.flipAverage) computed = seen.embedding;
    }
    // The single-layer tf.grad path below takes the CAM layer's activations.
    const activations = parts.length === 1 ? partActivations?.[0] : undefined;
    try {
      const { cls, embedding } = await classifyPicture(pic, opts.task, opts.modelId, { head, backbone, input, ...(computed ? { embedding: computed } : {}), ...(shoeFound !== undefined ? { shoeFound } : {}) });
      const headFn: HeadFn = (emb) => headLogitsTf(tf, head, emb);
      const labelIndex = head.labels.indexOf(cls.label);
      const classIndex = labelIndex >= 0 ? labelIndex : undefined;
      const caption = [
        `${opts.task}: ${cls.label} (${pct(cls.task === 'hype' ? cls.probability : cls.confidence)})${cls.lowConfidence ? ' — low confidence' : ''}`,
        `model ${head.id} on ${backbone.name}`,
      ];
      if (opts.method === 'filters') {
        const grid = await filterGrid(backbone, modelInput, { limit: 32 });
        return { images: [{ name: `filters-${grid.layer}.png`, png: grid.png, alt: `First-layer filters (${grid.layer}) applied to the image` }], classification: cls, layer: grid.layer, ...(framing ? { framing } : {}) };
      }
      let cam: CamResult;
      if (opts.method === 'gradcam' && partActivations && (computed || parts.length > 1)) {
        // Closed-form head gradient: the same heatmap as tf.grad, without a tfjs gradient pass (~60 ms). A
        // multi-level embedding always goes this way (a flip-averaging head's gradient is taken at the averaged
        // embedding it answered from; the unmirrored view carries half of it, a factor the normalisation removes).
        const at = computed ?? embedding;
        const scores = denseForward(head.layers, headInput(head, at));
        let top = 0;
        for (let k = 1; k < scores.length; k++) if (scores[k]! > scores[top]!) top = k;
        const index = classIndex ?? top;
        cam = await gradCamFromGradientParts(
          parts.map((layer, i) => ({ layer, activations: partActivations![i]! })),
          headLogitGradient(head, at, index),
          { classIndex: index, scores: Array.from(scores) },
        );
      } else {
        cam =
          opts.method === 'gradcam'
            ? await gradCam(backbone, modelInput, headFn, { ...(classIndex !== undefined ? { classIndex } : {}), ...(activations ? { activations } : {}) })
            : await scoreCam(backbone, modelInput, headFn, { maps: 16, ...(classIndex !== undefined ? { classIndex } : {}) });
      }
      // Normalised inputs are a crop of the photo: draw the heatmap back onto the user's own photo.
      const overlay = placement ? await overlayHeatmapRaw(pic.raw, cam.heatmap, { size: 448, placement }) : await overlayHeatmapRaw(modelInput, cam.heatmap, { size: 448 });
      const png = await captionRgb(overlay, [`${opts.method === 'gradcam' ? 'Grad-CAM' : 'Score-CAM'} at ${cam.layer} for "${head.labels[cam.classIndex] ?? cls.label}"`, ...caption]);
      return { images: [{ name: `${opts.task}-${opts.method}.png`, png, alt: `${opts.method} heatmap: where the ${opts.task} model looked` }], classification: cls, layer: cam.layer, ...(framing ? { framing } : {}) };
    } finally {
      for (const a of partActivations ?? []) a.dispose();
    }
  }

  async function embed(image: VisionImage, opts: { backbone?: string; features?: FeatureSpec; allowLocalPaths?: boolean } = {}): Promise<Float32Array> {
    const pic = await picture(image, { allowLocalPaths: opts.allowLocalPaths ?? false });
    const backboneName = opts.backbone ?? (await model('hype').catch(() => undefined))?.backbone ?? DEFAULT_BACKBONE;
    const backbone = await backboneFor(backboneName);
    return (await featureEmbedding(pic, backbone, opts.features ?? (await model('hype').catch(() => undefined))?.features ?? DEFAULT_FEATURES)).embedding;
  }

  async function similar(image: VisionImage, opts: { k?: number; allowLocalPaths?: boolean } = {}): Promise<{ neighbours: Neighbour[]; png: Buffer; searched: number }> {
    const store = storeOrThrow();
    const k = Math.max(1, Math.min(20, opts.k ?? 5));
    const pic = await picture(image, { allowLocalPaths: opts.allowLocalPaths ?? false });
    const head = await model('hype').catch(() => undefined);
    const spec = head?.features ?? DEFAULT_FEATURES;
    const backbone = await backboneFor(head?.backbone ?? DEFAULT_BACKBONE);
    const { embedding } = await featureEmbedding(pic, backbone, spec);
    const q = unit(embedding);
    const best: { sha: string; d: number }[] = [];
    let searched = 0;
    for await (const entry of store.embeddings.iterate(backbone.name, featureKey(spec))) {
      if (entry.imageSha === pic.sha256) continue;
      searched++;
      const d = 1 - dot(q, unit(entry.vector));
      if (best.length < k || d < best[best.length - 1]!.d) {
        best.push({ sha: entry.imageSha, d });
        best.sort((a, b) => a.d - b.d);
        if (best.length > k) best.pop();
      }
    }
    const rows = new Map((await store.images.getMany(best.map((b) => b.sha))).map((r) => [r.sha256, r]));
    const neighbours: Neighbour[] = best.map((b) => {
      const r = rows.get(b.sha);
      return { id: b.sha, name: r?.name ?? null, brand: r?.brand ?? null, hype: r?.hype ?? null, distance: Number(b.d.toFixed(4)) };
    });
    const items = [{ bytes: pic.bytes, lines: ['your image', pic.name ?? ''] }];
    for (const n of neighbours) {
      const bytes = await store.images.bytes(n.id);
      if (!bytes) continue;
      items.push({ bytes, lines: [n.name ?? n.id.slice(0, 12), `${n.brand ?? '?'} · ${n.hype ?? '?'}`, `distance ${n.distance.toFixed(3)}`] });
    }
    const png = await renderStrip(items, `${neighbours.length} nearest of ${searched} stored images (${backbone.name}, cosine)`);
    return { neighbours, png, searched };
  }

  async function evaluate(task: Task, data: string, opts: { modelId?: string | number; labels?: readonly string[]; progress?: VisionProgress; signal?: AbortSignal } = {}): Promise<EvaluationResult> {
    const { source, reports: labelOverlays } = applyLabelOverlays(await readLabelledSource(data), opts.labels ?? []);
    const head = await model(task, opts.modelId);
    const backbone = await backboneFor(head.backbone);
    const labelled = source.rows.filter((r) => r[task] !== undefined);
    const skipped = source.rows.length - labelled.length;
    if (labelled.length === 0) throw new EngineError('BAD_INPUT', `${data} has no rows labelled for ${task} (${skipped} rows without a ${task} label).`);
    const pics: { row: DatasetRow; pic: Picture }[] = [];
    let unreadable = 0;
    // Named relative to the data, as the user laid it out, so a listed file can be found and fixed.
    const base = source.kind === 'manifest' ? path.dirname(source.location) : source.location;
    const notScored: { item: string; reason: string }[] = source.skipped.map((s) => ({ item: s.item, reason: s.reason }));
    for (const row of labelled) {
      try {
        pics.push({ row, pic: await decodeBytes(await readFile(row.file), limits, path.basename(row.file)) });
      } catch (err) {
        unreadable++;
        const code = (err as { code?: unknown }).code;
        const reason = isEngineError(err) ? err.message : code === 'ENOENT' ? 'no such file' : `cannot be read (${String(code ?? err)})`;
        notScored.push({ item: path.relative(base, row.file), reason });
      }
    }
    if (pics.length === 0) {
      const why = notScored.slice(0, 3).map((s) => `${s.item}: ${s.reason}`).join('; ');
      throw new EngineError('BAD_INPUT', `Nothing to evaluate: none of the ${labelled.length} rows labelled for ${task} in ${data} could be read (${why}${notScored.length > 3 ? '; …' : ''}).`);
    }
    const store = options.store();
    const items: EmbedItem[] = pics.map(({ pic }) => ({ sha256: pic.sha256, load: async () => pic.raw }));
    const embeddings = await embedFeatureItems(backbone, items, head.features, store, opts.progress, opts.signal);
    // The figures must be serving's: a head with a mirror test-time view is evaluated with it.
    const mirrors =
      head.tta === 'mirror' && !head.features.flipAverage
        ? await embedItems(backbone, items, head.features, { mirror: true, ...(store ? { store } : {}), ...(opts.signal ? { signal: opts.signal } : {}) })
        : undefined;
    const yTrue = pics.map(({ row }) => row[task]!);
    const preds = embeddings.map((e, i) => predictHead(head, e, mirrors ? [mirrors[i]!] : []));
    const yPred = preds.map((p) => p.label);
    const report = classificationReport(yTrue, yPred, labelsOf(task));
    const text = formatReport(report);
    const png = await renderConfusionMatrix(report.confusion.labels, report.confusion.matrix, `${task} · ${head.id} · n=${report.n}`);
    // A figure on a few hundred photos moves by several points with another sample: say how far.
    const interval = bootstrapInterval(report.confusion);
    // Users read the probability, not only the label: say how far it can be trusted, and what the warning buys.
    const calibration = calibrationReport(yTrue, preds.map((p) => p.probabilities));
    const unwarned = preds.map((p, i) => (p.lowConfidence ? -1 : i)).filter((i) => i >= 0);
    const warnings = {
      lowConfidence: preds.length - unwarned.length,
      accuracyWithoutWarning: unwarned.length > 0 ? unwarned.filter((i) => yPred[i] === yTrue[i]).length / unwarned.length : null,
    };
    const reliabilityPng = await renderReliability(
      calibration.bins,
      `${task} · ${head.id} · reliability`,
      `ECE ${calibration.ece.toFixed(3)} · said ${(calibration.meanConfidence * 100).toFixed(0)} % sure on average, right ${(calibration.accuracy * 100).toFixed(0)} % · n=${calibration.n}`,
    );
    return { ...report, task, model: head.id, tta: mirrors ? 'mirror' : 'none', interval, skipped, unreadable, notScored: notScored.slice(0, 50), labelOverlays, calibration, temperature: head.temperature, warnings, text, png, reliabilityPng };
  }

  /** Pipeline-complete embeddings with a cache of the final vectors too (what `similar` searches). */
  async function embedFeatureItems(backbone: Backbone, items: readonly EmbedItem[], spec: FeatureSpec, store: Store | undefined, progress?: VisionProgress, signal?: AbortSignal): Promise<Float32Array[]> {
    const key = featureKey(spec);
    const have = store ? await store.embeddings.getMany(items.map((i) => i.sha256), backbone.name, key) : new Map<string, Float32Array>();
    const missing = items.filter((i) => !have.has(i.sha256));
    if (missing.length > 0) {
      const vectors = await embedItems(backbone, missing, spec, {
        ...(store ? { store } : {}),
        ...(signal ? { signal } : {}),
        onProgress: (done, total) => progress?.({ stage: 'embedding', fraction: done / Math.max(1, total), message: `${done}/${total} (${backbone.name})` }),
      });
      for (let i = 0; i < missing.length; i++) {
        have.set(missing[i]!.sha256, vectors[i]!);
        await store?.embeddings.put(missing[i]!.sha256, backbone.name, key, vectors[i]!);
      }
    }
    return items.map((i) => have.get(i.sha256)!);
  }

  async function importDataset(src: string, opts: { name?: string; by?: string; embed?: boolean; labels?: readonly string[]; progress?: VisionProgress; signal?: AbortSignal } = {}): Promise<ImportResult> {
    const store = storeOrThrow();
    // Overlays (assets/labels/) carry hand labels into the store, so `train` retrains on what the shipped heads learnt from.
    const { source, reports: labelOverlays } = applyLabelOverlays(await readLabelledSource(src), opts.labels ?? []);
    const name = opts.name ?? path.basename(source.kind === 'manifest' ? path.dirname(source.location) : source.location);
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(name)) throw new EngineError('BAD_INPUT', `Dataset name "${name}" must be letters, digits, dot, dash or underscore.`);
    await store.datasets.ensure({ name, description: `imported from ${path.basename(source.location)}`, ...(opts.by !== undefined ? { createdBy: opts.by } : {}) });
    const skipped = [...source.skipped];
    let added = 0;
    let duplicates = 0;
    let labels = 0;
    const shas: string[] = [];
    for (let i = 0; i < source.rows.length; i++) {
      opts.signal?.throwIfAborted();
      const row = source.rows[i]!;
      let pic: Picture;
      try {
        pic = await decodeBytes(await readFile(row.file), limits, path.basename(row.file));
      } catch (error) {
        skipped.push({ item: path.relative(path.dirname(source.location), row.file), reason: (error as Error).message });
        continue;
      }
      const existed = await store.images.get(pic.sha256);
      await store.images.put({
        bytes: pic.bytes,
        sha256: pic.sha256,
        width: pic.width,
        height: pic.height,
        format: 'png',
        source: 'import',
        ...(row.name !== undefined ? { name: row.name } : {}),
        meta: { dataset: name, file: path.basename(row.file), ...(row.source !== undefined ? { origin: row.source } : {}), originalFormat: pic.format },
      });
      if (existed) duplicates++;
      else added++;
      for (const task of ['brand', 'hype'] as const) {
        const value = row[task];
        if (value === undefined) continue;
        await store.labels.add({ imageSha: pic.sha256, task, value, by: opts.by ?? `import:${name}`, origin: 'import' });
        labels++;
      }
      shas.push(pic.sha256);
      if (i % 25 === 0) opts.progress?.({ stage: 'importing', fraction: (i + 1) / source.rows.length, message: `${i + 1}/${source.rows.length}` });
    }
    const unique = [...new Set(shas)];
    await store.datasets.addImages(name, unique);
    if (opts.embed && unique.length > 0) {
      // Embeddings in the serving feature space make the images findable by `similar` (cached; slow on wasm).
      const head = await model('hype').catch(() => undefined);
      const backbone = await backboneFor(head?.backbone ?? DEFAULT_BACKBONE);
      const items: EmbedItem[] = unique.map((sha) => ({ sha256: sha, load: async () => (await store.images.bytes(sha))! }));
      await embedFeatureItems(backbone, items, head?.features ?? DEFAULT_FEATURES, store, opts.progress, opts.signal);
    }
    return { dataset: name, rows: source.rows.length, added, duplicates, labels, labelOverlays, skipped };
  }

  async function datasetStats(name?: string): Promise<DatasetStats> {
    const store = storeOrThrow();
    if (name !== undefined && !(await store.datasets.get(name))) throw new EngineError('NOT_FOUND', `There is no dataset "${name}".`);
    const brand: Record<string, number> = {};
    const hype: Record<string, number> = {};
    const sources: Record<string, number> = {};
    const widths: number[] = [];
    const heights: number[] = [];
    for await (const row of store.images.iterate(name !== undefined ? { dataset: name } : {})) {
      brand[row.brand ?? 'unlabelled'] = (brand[row.brand ?? 'unlabelled'] ?? 0) + 1;
      hype[row.hype ?? 'unlabelled'] = (hype[row.hype ?? 'unlabelled'] ?? 0) + 1;
      const origin = typeof row.meta?.origin === 'string' ? row.meta.origin : row.source;
      sources[origin] = (sources[origin] ?? 0) + 1;
      widths.push(row.width);
      heights.push(row.height);
    }
    const span = (v: number[]): { min: number; median: number; max: number } => ({ min: v.length ? Math.min(...v) : 0, median: median(v), max: v.length ? Math.max(...v) : 0 });
    return { dataset: name ?? null, images: widths.length, brand, hype, sources, sizes: { width: span(widths), height: span(heights) } };
  }

  async function train(task: Task, opts: VisionTrainOptions = {}, progress?: VisionProgress): Promise<VisionTrainResult> {
    const store = storeOrThrow();
    const rows = [];
    for await (const row of store.images.iterate(opts.datasets && opts.datasets.length > 0 ? { dataset: [...opts.datasets], generated: false } : { generated: false })) {
      if (row[task]) rows.push(row);
    }
    if (rows.length < 4) throw new EngineError('BAD_INPUT', `Only ${rows.length} stored images are labelled for ${task}; import a dataset first (\`dataset import\`).`);
    const backbone = await backboneFor(opts.backbone ?? DEFAULT_BACKBONE);
    const spec = opts.features ?? DEFAULT_FEATURES;
    const groups = fuzzyGroups(rows.map((r) => ({ name: r.name ?? undefined, fallbackKey: r.sha256 })));
    const labels = rows.map((r) => r[task]!);
    const split = groupSplit(groups, labels, { testSize: opts.testSize ?? 0.1, seed: opts.seed ?? 42 });
    const items: EmbedItem[] = rows.map((r) => ({
      sha256: r.sha256,
      load: async () => {
        const bytes = await store.images.bytes(r.sha256);
        if (!bytes) throw new EngineError('NOT_FOUND', `Image ${r.sha256} has no bytes.`);
        return bytes;
      },
    }));
    progress?.({ stage: 'embedding', fraction: 0, message: `${rows.length} images` });
    const x = await embedFeatureItems(backbone, items, spec, store, (e) => progress?.({ ...e, fraction: (e.fraction ?? 0) * 0.7 }), opts.signal);
    const trainX = split.train.map((i) => x[i]!);
    const trainY = split.train.map((i) => labels[i]!);
    if (opts.flipAugment ?? !spec.flipAverage) {
      const mirrored = await embedItems(backbone, split.train.map((i) => items[i]!), { ...spec, flipAverage: false }, { store, mirror: true, ...(opts.signal ? { signal: opts.signal } : {}) });
      trainX.push(...mirrored);
      trainY.push(...split.train.map((i) => labels[i]!));
    }
    for (let copy = 0; copy < (opts.augmentCopies ?? 0); copy++) {
      const aug = await embedItems(backbone, split.train.map((i) => items[i]!), spec, { store, augment: copy, ...(opts.signal ? { signal: opts.signal } : {}) });
      trainX.push(...aug);
      trainY.push(...split.train.map((i) => labels[i]!));
    }
    const head = await trainHead(
      { task, id: opts.id ?? `${task}-${new Date().toISOString().replace(/[:.]/g, '-')}`, backbone: backbone.name, prepVersion: featureKey(spec), features: spec, x: trainX, y: trainY },
      { ...opts, onEpoch: async (e, total, loss) => { progress?.({ stage: `epoch ${e}/${total}`, fraction: 0.7 + (0.3 * e) / total, message: `loss ${loss.toFixed(4)}` }); await opts.onEpoch?.(e, total, loss); } },
    );
    const yTrue = split.test.map((i) => labels[i]!);
    const yPred = split.test.map((i) => predictHead(head, x[i]!).label);
    const report = classificationReport(yTrue, yPred, labelsOf(task));
    const withMetrics: HeadModel = { ...head, meta: { ...head.meta, testReport: { accuracy: report.accuracy, macroF1: report.macroF1, n: report.n } } };
    return {
      head: withMetrics,
      artifact: Buffer.from(JSON.stringify(withMetrics)),
      report,
      split: { train: split.train.length, test: split.test.length, groups: new Set(groups).size },
    };
  }

  async function vote(input: { imageSha: string; task: Task; value: string; by: string; guildId?: string }): Promise<void> {
    const store = storeOrThrow();
    const allowed: readonly string[] = input.task === 'brand' ? BRANDS : HYPES;
    if (!allowed.includes(input.value)) throw new EngineError('BAD_INPUT', `"${input.value}" is not a ${input.task} label.`);
    await store.labels.add({ imageSha: input.imageSha, task: input.task, value: input.value, by: input.by, origin: 'vote', ...(input.guildId !== undefined ? { guildId: input.guildId } : {}) });
  }

  /** Stored images as embedding items (loaded lazily, NOT_FOUND when one is gone). */
  function storedItems(store: Store, shas: readonly string[]): EmbedItem[] {
    return shas.map((sha) => ({
      sha256: sha,
      load: async () => {
        const bytes = await store.images.bytes(sha);
        if (!bytes) throw new EngineError('NOT_FOUND', `Image ${sha} is not stored.`);
        return bytes;
      },
    }));
  }

  /**
   * The hash of the angle model the embedder's turned views are served with (part of their cache key, features.ts
   * `turnedCopyKey`); undefined when DEFAULT_BACKBONE ships no readable angle model, so no turned views are made.
   */
  let angleKey: string | null | undefined;
  function turnedModelKey(): string | undefined {
    // Read once per process, like the angle model itself (shippedAngleModel): the file is a few MB.
    if (angleKey === undefined) {
      try {
        shippedAngleModel(DEFAULT_BACKBONE);
        angleKey = angleFileKey(path.join(DEFAULT_LOCALISER_DIR, angleFileName(DEFAULT_BACKBONE)));
      } catch {
        angleKey = null;
      }
    }
    return angleKey ?? undefined;
  }

  const embedder: Embedder = {
    backbone: DEFAULT_BACKBONE,
    prepVersion: featureKey(EMBEDDER_FEATURES),
    async embedImages(shas, signal) {
      const store = storeOrThrow();
      // Always the declared feature space: the training plugin caches what this returns under these names.
      const backbone = await backboneFor(embedder.backbone);
      const vectors = await embedFeatureItems(backbone, storedItems(store, shas), EMBEDDER_FEATURES, store, undefined, signal);
      return new Map(shas.map((s, i) => [s, vectors[i]!]));
    },
    viewPrepVersion(view) {
      if (view === 'turned' || view === 'turned-mirror') {
        const modelKey = turnedModelKey();
        return modelKey && `${turnedCopyKey(TURNED_VIEW_SEED, modelKey)}${view === 'turned' ? '' : '+m'}`;
      }
      const { spec, options } = viewSpec(view);
      return prepKey({ ...variantOf(spec, options.mirror === true), ...(options.scene !== undefined ? { scene: options.scene } : {}) });
    },
    async embedViews(shas, view, signal) {
      const store = storeOrThrow();
      const backbone = await backboneFor(embedder.backbone);
      if (view === 'turned' || view === 'turned-mirror') {
        const modelKey = turnedModelKey();
        if (!modelKey) throw new EngineError('MODEL_MISSING', `Turned views need the learnt turn of ${DEFAULT_BACKBONE}, and its angle model is missing or unreadable. Rebuild it with \`${ANGLE_REBUILD}\`.`, { details: { rebuild: ANGLE_REBUILD } });
        // One pass makes (and caches) both rows of a photo: its turned composite and that view's mirror.
        const [turned, mirrored] = await embedTurnedCopy(backbone, storedItems(store, shas), makeTurner(backbone, shippedAngleModel(DEFAULT_BACKBONE)), {
          seed: TURNED_VIEW_SEED,
          modelKey,
          store,
          ...(signal ? { signal } : {}),
        });
        const rows = view === 'turned' ? turned : mirrored;
        return new Map(shas.map((s, i) => [s, rows[i]!]));
      }
      const { spec, options } = viewSpec(view);
      // embedItems caches each variant in the store itself (under viewPrepVersion's key).
      const vectors = await embedItems(backbone, storedItems(store, shas), spec, { store, ...options, ...(signal ? { signal } : {}) });
      return new Map(shas.map((s, i) => [s, vectors[i]!]));
    },
  };

  return { picture, classify, embed, explain, similar, evaluate, importDataset, datasetStats, train, model, vote, embedder };
}

function unit(v: Float32Array): Float32Array {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!;
  const n = Math.sqrt(s) || 1;
  return v.map((x) => x / n);
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** Warm the runtime (backend choice) before the first request; returns the backend name. */
export async function warmVision(backbone = 'mobilenet_v2'): Promise<string> {
  const tf = await getTf();
  if (isBackboneName(backbone)) await loadBackbone(backbone);
  return tf.getBackend();
}
