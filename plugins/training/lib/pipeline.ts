/**
 * One training run, as the queued job executes it: collect data (datasets + votes, conflict rule, no
 * generated images) → group-aware split → embeddings (store cache, else the embedder service) → train a
 * head with a checkpoint per epoch → evaluate candidate AND champion on the same test split → register
 * the version (idempotent per job) → gate → promote atomically or keep as candidate.
 */
import { z } from 'zod';
import { EngineError, type JobContext, type Store } from '../../../engine/index.ts';
import { calibrationReport, fitTemperature, TEMPERATURE_GRID } from '../../../engine/ml/calibration.ts';
import { getTf, type Tf } from '../../../engine/ml/runtime.ts';
import { curvesPng } from './charts.ts';
import { collectTrainingData, conflictRuleSchema, TASK_CLASSES, type ClassifierTask, type DataSnapshot, type LabelledItem } from './data.ts';
import { decide, gateFromEnv, type GateConfig, type GateDecision } from './gate.ts';
import { DEFAULT_HEAD_PARAMS, loadHead, trainHead, type EpochLog, type HeadCheckpoint, type HeadArtifact, type HeadParams, type LoadedHead } from './head.ts';
import { evaluate, type Evaluation } from './metrics.ts';
import type { ModelRegistry } from './registry.ts';
import { groupSplit } from './split.ts';

/** Head hyperparameters as job data. */
export const headParamsSchema = z
  .object({
    hidden: z.number().int().min(0).max(1024),
    dropout: z.number().min(0).max(0.9),
    lr: z.number().positive().max(1),
    optimizer: z.enum(['adam', 'sgd', 'rmsprop']),
    augment: z.number().min(0).max(1),
    batchSize: z.number().int().min(1).max(1024),
    weightDecay: z.number().min(0).max(1),
    // Optional: job data queued before the field existed stays valid, and headParams() fills the default.
    labelSmoothing: z.number().min(0).max(0.5).optional(),
  })
  .strict();

/**
 * Source-nuisance projection of a run: `source` removes the directions along which sources differ within a
 * class (the shipped heads are trained so too; it pays on photos from sources the data lacks), `none` fits
 * on the embeddings as they are.
 */
export const nuisanceSchema = z.enum(['source', 'none']).default('source');

/** A run's source-nuisance mode. */
export type NuisanceMode = z.output<typeof nuisanceSchema>;

/**
 * Training views: each training photo also enters as its mirror image, its shoe pasted onto a generated scene,
 * and/or `turned`: its shoe on a scene turned as users' photos are, served through the learnt turn, plus that view's
 * mirror (same label, same source). Only the training split gets them; validation and test stay photos.
 * Default `mirror` + `turned`, as the shipped heads train: leaving one source of the dev set out, the turned views
 * got 325 more brand and 165.5 more hype answers right (means of two seeds, three sources) over the left-out
 * photos and their shifted copies, most of it on tilted shoes; on the photos themselves brand was even (−3.5 of
 * 2,316) and hype gained (+30.5) (README, "Turned views"; scripts/eval-community.ts).
 */
export const viewsSchema = z.array(z.enum(['mirror', 'scene', 'turned'])).max(3).default(['mirror', 'turned']);

/** A training view. */
export type TrainingView = z.output<typeof viewsSchema>[number];

/** One row kind of a view: `turned` adds two rows per photo, `turned` and `turned-mirror`; the others one. */
export type ViewRow = TrainingView | 'turned-mirror';

/** The row kinds a view adds, in order. */
export function rowsOfView(view: TrainingView): readonly ViewRow[] {
  return view === 'turned' ? ['turned', 'turned-mirror'] : [view];
}

/**
 * Test-time view of the trained head: `mirror` = serving also runs it on the photo's mirror image and averages
 * the two answers (as the shipped brand head does); `none` = the photo alone; `auto` = the mirror when the run
 * trained with mirror views and the mirror raises macro-F1 on the validation split, else the photo alone.
 * Unset: {@link defaultTta} of the task.
 */
export const ttaSchema = z.enum(['auto', 'mirror', 'none']).optional();

/**
 * The test-time view of a run that names none: `mirror` for brand runs that trained with mirror views, else
 * `auto`. Measured leaving one source of the dev set out (README, "Test-time view"): the mirror helped brand in 5
 * of 6 runs and on every left-out source of the shipped recipe, while for hype it helped one source and cost the
 * two others. The validation photos come from the training sources, so for brand they picked the mirror less
 * often than it paid. A head that never saw mirrored photos is not asked about one.
 */
export function defaultTta(task: ClassifierTask, views: readonly TrainingView[]): 'mirror' | 'auto' {
  return task === 'brand' && views.includes('mirror') ? 'mirror' : 'auto';
}

/** A run's test-time view mode. */
export type TtaMode = NonNullable<z.output<typeof ttaSchema>>;

/** What a run decided about its test-time view. */
export interface TtaChoice {
  readonly mode: TtaMode;
  /** What the version is served with. */
  readonly used: 'mirror' | 'none';
  /** Validation macro-F1 of the photo alone and of photo + mirror, when `auto` compared them. */
  readonly validation?: { readonly photo: number; readonly mirror: number };
  /** Why the mirror is not used although asked for (no embedder makes mirror views in this worker). */
  readonly note?: string;
}

/**
 * The softmax temperature the version answers at: `auto` = the one of {@link AUTO_TEMPERATURES} (1.0–100) with the
 * lowest log-loss on the validation photos, as served (test-time view, open-set share); a number = that temperature.
 * `auto` never sharpens (no value below 1): validation photos come from the training sources, and on the dev set the
 * sources a head never saw needed a higher temperature than the training sources' own photos chose (hype 4.0 against
 * 1.9, brand 3.2 against 1.5), while no set of photos, shifted or unseen, chose one below 1 (assets/models/README.md
 * "Calibration"): a head made surer on its own sources would be more overconfident elsewhere. A number may sharpen.
 */
export const temperatureSchema = z.union([z.literal('auto'), z.coerce.number().min(0.25).max(100)], { error: 'auto, or a number from 0.25 to 100 (e.g. 2.1)' }).default('auto');

/** A run's temperature mode. */
export type TemperatureMode = z.output<typeof temperatureSchema>;

/** Validation photos below which `auto` keeps temperature 1: a log-loss on fewer moves with every photo. */
export const MIN_TEMPERATURE_PHOTOS = 20;

/**
 * The grid `auto` chooses on: the calibration grid from 1 up (see {@link temperatureSchema}), then coarser steps to 100
 * (4.5–10 by 0.5, 11–20 by 1, 22–50 by 2, 55–100 by 5). A community head trained for a fixed number of epochs can be
 * far surer than the shipped ensembles: brand runs on two of the dev set's sources chose 4.0 and then 10, each the top
 * of the grid of the day, on their 300 validation photos.
 */
export const AUTO_TEMPERATURES: readonly number[] = [
  ...TEMPERATURE_GRID.filter((t) => t >= 1),
  ...steps(4.5, 10, 0.5),
  ...steps(11, 20, 1),
  ...steps(22, 50, 2),
  ...steps(55, 100, 5),
];

function steps(from: number, to: number, by: number): number[] {
  return Array.from({ length: Math.round((to - from) / by) + 1 }, (_, k) => Math.round((from + k * by) * 10) / 10);
}

/** Log-loss and expected calibration error of a split's answers at one temperature. */
export interface CalibrationFigures {
  readonly nll: number;
  readonly ece: number;
}

/** What a run decided about its softmax temperature, and what it did on the validation and test photos. */
export interface TemperatureChoice {
  readonly mode: TemperatureMode;
  /** What the version answers at. */
  readonly used: number;
  /** The validation photos, at temperature 1 and at `used` (absent when the run had none). */
  readonly validation?: { readonly n: number; readonly asTrained: CalibrationFigures; readonly used: CalibrationFigures };
  /** The test photos, at temperature 1 and at `used`: how much the choice helped on photos it did not see. */
  readonly test?: { readonly n: number; readonly asTrained: CalibrationFigures; readonly used: CalibrationFigures };
  /** Why `auto` kept 1 (too few validation photos). */
  readonly note?: string;
}

/** Where embeddings come from. */
export const featureSpecSchema = z.object({ backbone: z.string().min(1).max(100), prepVersion: z.string().min(1).max(100) }).strict();

/** Data of the `training.train` job (validated when enqueued and again in the worker). */
export const trainJobSchema = z
  .object({
    task: z.enum(['hype', 'brand', 'gan']),
    datasets: z.array(z.string().min(1).max(100)).max(20).default([]),
    epochs: z.number().int().min(1).max(2000).default(40),
    params: headParamsSchema.partial().default({}),
    seed: z.number().int().min(0).max(2 ** 31 - 1).default(42),
    testSize: z.number().min(0.05).max(0.5).default(0.1),
    conflictRule: conflictRuleSchema.default('import-wins'),
    minVotes: z.number().int().min(1).max(100).default(1),
    features: featureSpecSchema.optional(),
    nuisance: nuisanceSchema,
    views: viewsSchema,
    tta: ttaSchema,
    temperature: temperatureSchema,
    requestedBy: z.string().min(1).max(200),
    guildId: z.string().max(100).optional(),
    autoPromote: z.boolean().default(true),
    gate: z.object({ margin: z.number().min(0).max(1), maxRecallDrop: z.number().min(0).max(1) }).partial().strict().optional(),
    /** Set by `tune`: the search this run belongs to (written on the version's params). */
    tuneId: z.string().max(100).optional(),
  })
  .strict();

/** Parsed train-job data. */
export type TrainJobData = z.output<typeof trainJobSchema>;

/** Result of a training job (`train --wait --json` data). */
export interface TrainResult {
  readonly job: string;
  readonly model: number;
  readonly task: string;
  readonly decision: GateDecision;
  readonly metrics: Evaluation;
  readonly resumedFromEpoch: number;
  readonly data: { readonly n: number; readonly train: number; readonly test: number; readonly digest: string; readonly sources: number };
  /** The source-nuisance projection: mode, and how many directions it removed (0: fewer than two sources per class). */
  readonly nuisance: { readonly mode: NuisanceMode; readonly directions: number };
  /** The training views the run used (see {@link PreparedRun.views}). */
  readonly views: readonly TrainingView[];
  /** The test-time view the version is served with, and why (see {@link ttaSchema}). */
  readonly tta: TtaChoice;
  /** The softmax temperature the version answers at, and why (see {@link temperatureSchema}). */
  readonly temperature: TemperatureChoice;
}

/** Photos in the training split (its rows also hold their views). */
function trainPhotos(run: PreparedRun): number {
  return new Set(run.train.items.map((i) => i.sha)).size;
}

/** Directions the projection removed, as the artifact's meta records them (0 when none). */
function directionsOf(artifact: Uint8Array | undefined): number {
  try {
    const meta = (JSON.parse(Buffer.from(artifact ?? []).toString('utf8')) as { meta?: { nuisance?: { directions?: unknown } } }).meta;
    return typeof meta?.nuisance?.directions === 'number' ? meta.nuisance.directions : 0;
  } catch {
    return 0;
  }
}

/** The embedder contract: a plugin (vision) provides it as service `embedder`. */
export interface Embedder {
  readonly backbone: string;
  readonly prepVersion: string;
  /** Embed stored images by content id (the embedder caches them in the store itself or not; we do too). */
  embedImages(shas: readonly string[], signal?: AbortSignal): Promise<Map<string, Float32Array>>;
  /**
   * The store key of a view row's embeddings; undefined when this embedder cannot make that row (a backbone without
   * an angle model makes no turned views). Embedders without views leave these out.
   */
  viewPrepVersion?(view: ViewRow): string | undefined;
  /** Embed a training view row of stored images (cached by the embedder under {@link Embedder.viewPrepVersion}). */
  embedViews?(shas: readonly string[], view: ViewRow, signal?: AbortSignal): Promise<Map<string, Float32Array>>;
}

/** Default feature space when neither the job nor an embedder says (the vision plugin's default backbone). */
export const DEFAULT_FEATURES = { backbone: 'mobilenet_v2', prepVersion: 'v1' } as const;

/**
 * The feature space pinned by `SOLESCOPE_TRAIN_FEATURES=<backbone>/<prepVersion>` (e.g. when embeddings
 * were precomputed into the store by another machine), if set and well-formed.
 */
export function featuresFromEnv(env: Record<string, string | undefined> = process.env): { backbone: string; prepVersion: string } | undefined {
  const m = /^([^/\s]+)\/([^/\s]+)$/.exec(env.SOLESCOPE_TRAIN_FEATURES?.trim() ?? '');
  return m ? { backbone: m[1]!, prepVersion: m[2]! } : undefined;
}

function embedderOf(ctx: JobContext): Embedder | undefined {
  const e = ctx.engine.service<Embedder>('embedder');
  return e && typeof e.embedImages === 'function' ? e : undefined;
}

/** Prepared data of a run: items split and embedded. */
export interface PreparedRun {
  readonly classes: readonly string[];
  readonly features: { backbone: string; prepVersion: string };
  readonly snapshot: DataSnapshot;
  /** Training rows: the photos, then each view's rows (`items` repeats a photo's item for its views). */
  readonly train: { x: Float32Array[]; y: number[]; items: LabelledItem[] };
  readonly validation: EvalSplit;
  readonly test: EvalSplit;
  /** The views whose rows the training split holds (asked for, and an embedder could make them). */
  readonly views: readonly TrainingView[];
}

/**
 * A split a head is scored on: photos only. `mirror[i]` is photo i's mirror embedding once
 * {@link withMirrorViews} has added them (a `tta: 'mirror'` head is scored with them, as it is served).
 */
export interface EvalSplit {
  readonly x: Float32Array[];
  readonly y: number[];
  readonly items: LabelledItem[];
  readonly mirror?: Float32Array[];
}

/**
 * Append each view's rows to the training split: cached embeddings from the store, the rest made by the
 * embedder (which caches them). Without an embedder of the run's feature space that can make views, the run
 * trains on the photos alone; a view the embedder cannot make is left out. Either way it says so
 * (`PreparedRun.views`, and a warning in the job's log).
 */
async function addViews(
  store: Store,
  train: { x: Float32Array[]; y: number[]; items: LabelledItem[] },
  views: readonly TrainingView[],
  features: { backbone: string; prepVersion: string },
  embedder: Embedder | undefined,
  ctx: JobContext,
): Promise<TrainingView[]> {
  if (views.length === 0) return [];
  const viewEmbedder = viewEmbedderOf(embedder, features);
  if (!viewEmbedder) {
    ctx.logger.warn('training views skipped: no embedder in this worker makes them for this feature space', { views, features });
    return [];
  }
  const photos = [...train.items];
  const labels = [...train.y];
  const made: TrainingView[] = [];
  for (const view of views) {
    if (rowsOfView(view).some((row) => viewEmbedder.viewPrepVersion(row) === undefined)) {
      ctx.logger.warn(`training view skipped: this worker's embedder cannot make ${view} views`, { view, features });
      continue;
    }
    for (const row of rowsOfView(view)) {
      const vectors = await viewVectors(store, photos.map((p) => p.sha), row, features.backbone, viewEmbedder, ctx);
      photos.forEach((p, r) => {
        const v = vectors.get(p.sha);
        if (!v) return;
        train.x.push(v);
        train.y.push(labels[r]!);
        train.items.push(p);
      });
    }
    made.push(view);
  }
  return made;
}

/** An embedder that makes training views. */
type ViewEmbedder = Embedder & Required<Pick<Embedder, 'viewPrepVersion' | 'embedViews'>>;

function viewEmbedderOf(embedder: Embedder | undefined, features: { backbone: string; prepVersion: string }): ViewEmbedder | undefined {
  const sameSpace = embedder?.backbone === features.backbone && embedder.prepVersion === features.prepVersion;
  return sameSpace && embedder.viewPrepVersion && embedder.embedViews ? (embedder as ViewEmbedder) : undefined;
}

/**
 * A view row's embeddings of stored images: cached ones from the store, the rest made by the embedder (which
 * caches them). The caller has checked that the embedder makes the row.
 */
async function viewVectors(store: Store, shas: readonly string[], view: ViewRow, backbone: string, embedder: ViewEmbedder, ctx: JobContext): Promise<Map<string, Float32Array>> {
  const key = embedder.viewPrepVersion(view)!;
  const vectors = new Map<string, Float32Array>();
  for (let i = 0; i < shas.length; i += 1000) {
    for (const [k, v] of await store.embeddings.getMany(shas.slice(i, i + 1000), backbone, key)) vectors.set(k, v);
  }
  const missing = shas.filter((sha) => !vectors.has(sha));
  // Turned views are two forward passes and a composite per photo (about 0.2 s on 2 cores): smaller batches, so
  // progress and cancellation come every few seconds.
  const batch = view === 'turned' || view === 'turned-mirror' ? 16 : 64;
  for (let i = 0; i < missing.length; i += batch) {
    if (ctx.signal.aborted) throw new EngineError('CONFLICT', 'The job was cancelled.');
    for (const [k, v] of await embedder.embedViews(missing.slice(i, i + batch), view, ctx.signal)) vectors.set(k, v);
    await ctx.progress({ stage: `embedding ${view} views`, fraction: 0.1, message: `${Math.min(i + batch, missing.length)}/${missing.length}` });
  }
  return vectors;
}

/**
 * The run with the mirror embeddings of its validation and test photos, so heads served with the mirror view
 * are scored as they answer; undefined when no embedder in this worker makes mirror views of the run's features, or
 * it could not make one for every photo (an image whose bytes are gone).
 */
export async function withMirrorViews(store: Store, run: PreparedRun, ctx: JobContext): Promise<PreparedRun | undefined> {
  if (run.test.mirror && run.validation.mirror) return run;
  const embedder = viewEmbedderOf(embedderOf(ctx), run.features);
  if (!embedder || embedder.viewPrepVersion('mirror') === undefined) return undefined;
  const shas = [...new Set([...run.validation.items, ...run.test.items].map((i) => i.sha))];
  const vectors = await viewVectors(store, shas, 'mirror', run.features.backbone, embedder, ctx);
  const mirrored = (split: EvalSplit): EvalSplit | undefined => {
    const mirror = split.items.map((i) => vectors.get(i.sha));
    return mirror.every((m) => m !== undefined) ? { ...split, mirror: mirror as Float32Array[] } : undefined;
  };
  const validation = mirrored(run.validation);
  const test = mirrored(run.test);
  return validation && test ? { ...run, validation, test } : undefined;
}

/**
 * The run's validation and test photos in another feature space, read from the store's cache, with their mirror
 * views (the vision embedder's `<prepVersion>+flip`) when `mirror`; undefined when any photo lacks one. The gate
 * scores a champion trained before an upgrade changed the embedder's features (the learnt turn added `+lt1`) this
 * way: its own run cached every photo in its space, so it is judged on the same photos as the candidate, each as
 * it is served.
 */
export async function splitsInSpace(store: Store, run: PreparedRun, features: { readonly backbone: string; readonly prepVersion: string }, mirror: boolean): Promise<PreparedRun | undefined> {
  const shas = [...new Set([...run.validation.items, ...run.test.items].map((i) => i.sha))];
  const photos = await store.embeddings.getMany(shas, features.backbone, features.prepVersion);
  const mirrors = mirror ? await store.embeddings.getMany(shas, features.backbone, `${features.prepVersion}+flip`) : undefined;
  const inSpace = (split: EvalSplit): EvalSplit | undefined => {
    if (!split.items.every((i) => photos.has(i.sha) && (!mirrors || mirrors.has(i.sha)))) return undefined;
    return { x: split.items.map((i) => photos.get(i.sha)!), y: split.y, items: split.items, ...(mirrors ? { mirror: split.items.map((i) => mirrors.get(i.sha)!) } : {}) };
  };
  const validation = inSpace(run.validation);
  const test = inSpace(run.test);
  return validation && test ? { ...run, features: { backbone: features.backbone, prepVersion: features.prepVersion }, validation, test } : undefined;
}

/** Collect, split and embed. Used by training runs and tuning trials alike. */
export async function prepareRun(
  store: Store,
  data: Pick<TrainJobData, 'task' | 'datasets' | 'conflictRule' | 'minVotes' | 'features' | 'seed' | 'testSize' | 'guildId'> & { readonly views?: readonly TrainingView[] },
  ctx: JobContext,
): Promise<PreparedRun> {
  if (data.task === 'gan') throw new EngineError('BAD_INPUT', 'GAN runs are not classifier runs.');
  const task: ClassifierTask = data.task;
  const classes = TASK_CLASSES[task];
  await ctx.progress({ stage: 'collecting data', fraction: 0.01 });
  const { items, snapshot } = await collectTrainingData(store, {
    task,
    datasets: data.datasets,
    conflictRule: data.conflictRule,
    minVotes: data.minVotes,
    ...(data.guildId !== undefined ? { guildId: data.guildId } : {}),
  });
  const present = classes.filter((c) => (snapshot.counts[c] ?? 0) > 0);
  if (items.length < 10 || present.length < 2) {
    throw new EngineError('BAD_INPUT', `Not enough labelled ${task} images to train (${items.length} usable, classes present: ${present.join(', ') || 'none'}). Import a dataset or collect votes first.`);
  }
  // The test split is stable by group (see split.ts): champion and candidate are judged on the same images.
  const split = groupSplit(items.map((i) => ({ id: i.sha, name: i.name })), { testSize: data.testSize, seed: data.seed });
  const testIds = new Set(split.test);
  const rest = items.filter((i) => !testIds.has(i.sha));
  const valSplit = groupSplit(rest.map((i) => ({ id: i.sha, name: i.name })), { testSize: 0.15, seed: data.seed + 1 });
  const valIds = new Set(valSplit.test);
  const embedder = embedderOf(ctx);
  const features = data.features ?? featuresFromEnv() ?? (embedder ? { backbone: embedder.backbone, prepVersion: embedder.prepVersion } : { ...DEFAULT_FEATURES });
  await ctx.progress({ stage: 'embedding', fraction: 0.03, message: `${items.length} images (${features.backbone})` });
  const shas = items.map((i) => i.sha);
  const vectors = new Map<string, Float32Array>();
  for (let i = 0; i < shas.length; i += 1000) {
    for (const [k, v] of await store.embeddings.getMany(shas.slice(i, i + 1000), features.backbone, features.prepVersion)) vectors.set(k, v);
  }
  const missing = shas.filter((s) => !vectors.has(s));
  if (missing.length > 0) {
    if (!embedder || embedder.backbone !== features.backbone || embedder.prepVersion !== features.prepVersion) {
      throw new EngineError('MODEL_MISSING', `${missing.length} of ${shas.length} images have no ${features.backbone}/${features.prepVersion} embeddings and no embedder for them is loaded in this worker.`);
    }
    for (let i = 0; i < missing.length; i += 64) {
      if (ctx.signal.aborted) throw new EngineError('CONFLICT', 'The job was cancelled.');
      const batch = missing.slice(i, i + 64);
      const got = await embedder.embedImages(batch, ctx.signal);
      for (const [k, v] of got) {
        vectors.set(k, v);
        await store.embeddings.put(k, features.backbone, features.prepVersion, v);
      }
      await ctx.progress({ stage: 'embedding', fraction: 0.03 + 0.07 * ((i + batch.length) / missing.length), message: `${i + batch.length}/${missing.length} new embeddings` });
    }
  }
  const index = new Map(classes.map((c, i) => [c as string, i]));
  const pick = (list: readonly LabelledItem[]): { x: Float32Array[]; y: number[]; items: LabelledItem[] } => {
    const kept = list.filter((i) => vectors.has(i.sha));
    return { x: kept.map((i) => vectors.get(i.sha)!), y: kept.map((i) => index.get(i.label)!), items: kept };
  };
  const train = pick(rest.filter((i) => !valIds.has(i.sha)));
  const views = await addViews(store, train, data.views ?? [], features, embedder, ctx);
  const validation = pick(rest.filter((i) => valIds.has(i.sha)));
  const test = pick(items.filter((i) => testIds.has(i.sha)));
  if (train.x.length === 0 || test.x.length === 0) {
    throw new EngineError('BAD_INPUT', `The group-aware split left ${train.x.length} training and ${test.x.length} test images; add more distinct shoes.`);
  }
  return { classes, features, snapshot, train, validation, test, views };
}

/**
 * Evaluate a head artifact on a prepared split (default: the test split) as serving answers with it: open-set
 * share and, for a `tta: 'mirror'` head, the mirror view (which the split must hold: {@link withMirrorViews}).
 * `tta` overrides the artifact's own view (the `auto` choice compares both). Undefined when not comparable.
 */
export function evaluateArtifact(artifact: Uint8Array | LoadedHead, run: PreparedRun, split: 'test' | 'validation' = 'test', tta?: 'mirror' | 'none'): Evaluation | undefined {
  // Callers that score one head several ways pass it loaded: parsing a large head file takes a noticeable
  // fraction of a second (the shipped brand head is 11 MB of JSON).
  const head = artifact instanceof Uint8Array ? tryLoadHead(artifact) : artifact;
  if (!head) return undefined;
  const data = run[split];
  const dim = data.x[0]?.length ?? 0;
  // Only a head reading the same features can be judged on this split (an l2 head normalises them itself).
  if (head.features.backbone !== run.features.backbone || head.features.prepVersion !== run.features.prepVersion || head.features.dim !== dim) return undefined;
  // Same label set (in any order: the answer is matched by label).
  if (head.classes.length !== run.classes.length || !run.classes.every((c) => head.classes.includes(c))) return undefined;
  const mirror = (tta ?? head.tta ?? 'none') === 'mirror';
  if (mirror && !data.mirror) return undefined;
  const pred = data.x.map((x, r) => {
    const p = head.predict(x, mirror ? [data.mirror![r]!] : []);
    let best = 0;
    for (let i = 1; i < p.length; i++) if (p[i]! > p[best]!) best = i;
    return head.classes[best]!;
  });
  return evaluate(data.y.map((y) => run.classes[y]!), pred, run.classes);
}

/**
 * The tfjs backend the head's matrix products run on (about 2–3× faster than the TypeScript loops on wasm; see
 * `npm run bench`, headFitRowsPerSec), or undefined where none starts (a worker whose requested backend is
 * missing): the head then trains in TypeScript, same recipe, and says so in its artifact's meta.
 */
async function matmulBackend(ctx: JobContext): Promise<Tf | undefined> {
  try {
    return await getTf();
  } catch (error) {
    ctx.logger.warn('no tfjs backend for the head fit; training in TypeScript', { error: error instanceof Error ? error.message : String(error) });
    return undefined;
  }
}

/** Train a head on a prepared run with per-epoch checkpoints and progress. */
export async function trainWithCheckpoints(
  run: PreparedRun,
  options: { task: string; epochs: number; params: HeadParams; seed: number; nuisance: NuisanceMode },
  ctx: JobContext,
  fraction: { from: number; to: number },
  onEpochLog?: (log: EpochLog) => void,
): Promise<{ artifact: Buffer; curves: readonly EpochLog[]; resumedFromEpoch: number }> {
  const saved = await ctx.lastCheckpoint();
  const resume = saved && !(saved instanceof Uint8Array) && typeof saved.epoch === 'number' ? (saved as unknown as HeadCheckpoint) : undefined;
  if (resume) ctx.logger.info('resuming training from checkpoint', { epoch: resume.epoch, attempt: ctx.attempt });
  const tf = await matmulBackend(ctx);
  const started = Date.now();
  const firstEpoch = resume?.epoch ?? 0;
  const result = await trainHead({
    task: options.task,
    classes: run.classes,
    features: run.features,
    train: run.train,
    validation: run.validation,
    epochs: options.epochs,
    params: options.params,
    seed: options.seed,
    resume,
    signal: ctx.signal,
    tf,
    ...(options.nuisance === 'source' ? { nuisance: { groups: run.train.items.map((i) => i.group) } } : {}),
    onEpoch: async (log, checkpoint) => {
      await ctx.checkpoint(checkpoint as unknown as Record<string, unknown>);
      onEpochLog?.(log);
      const done = log.epoch - firstEpoch;
      const perEpoch = (Date.now() - started) / Math.max(1, done);
      await ctx.progress({
        stage: `epoch ${log.epoch}/${options.epochs}`,
        fraction: fraction.from + (fraction.to - fraction.from) * (log.epoch / options.epochs),
        metrics: { epoch: log.epoch, loss: log.loss, metric: log.valMacroF1, etaS: Math.round((perEpoch * (options.epochs - log.epoch)) / 1000) },
      });
    },
  });
  return { artifact: Buffer.from(JSON.stringify(result.artifact)), curves: result.curves, resumedFromEpoch: result.resumedFromEpoch };
}

/**
 * A task's defaults over {@link DEFAULT_HEAD_PARAMS}. Hype smooths its targets by 0.1: leaving one dev source out,
 * a hype run with it was right on 0.8–11 points more of zjy-T's photos over three seeds, and its log-loss there fell
 * from 12.5–13.9 to 3.5–4.9, a source where no temperature chosen on the training sources could help. Brand keeps
 * one-hot targets: with 0.1 it got 31 fewer of 2,316 left-out photos right (assets/models/README.md, "The
 * community trainer's targets").
 */
export const TASK_HEAD_DEFAULTS: Readonly<Record<string, Partial<HeadParams>>> = { hype: { labelSmoothing: 0.1 } };

/** Merge job params over the defaults (the task's own, where it has some: {@link TASK_HEAD_DEFAULTS}). */
export function headParams(partial: { readonly [K in keyof HeadParams]?: HeadParams[K] | undefined }, task?: string): HeadParams {
  const out: Record<string, unknown> = { ...DEFAULT_HEAD_PARAMS, ...(task !== undefined ? TASK_HEAD_DEFAULTS[task] : {}) };
  for (const [k, v] of Object.entries(partial)) if (v !== undefined) out[k] = v;
  return out as unknown as HeadParams;
}

/** Find the version a job already registered (a retried attempt must not register a second one). */
export async function findModelOfJob(store: Store, task: string, jobId: string): Promise<number | undefined> {
  const key = `job-model:${jobId}`;
  const noted = await store.kv.get(key);
  if (typeof noted === 'number') return noted;
  const recent = await store.models.list(task, { limit: 200 });
  return recent.find((m) => m.params.jobId === jobId)?.id;
}

/** The vision plugin's shipped default head of a task, loaded, when that service is loaded. */
async function shippedDefault(ctx: JobContext, task: string): Promise<LoadedHead | undefined> {
  const vision = ctx.engine.service<{ model?: (task: 'hype' | 'brand', id?: string) => Promise<unknown> }>('vision');
  if (!vision?.model || (task !== 'hype' && task !== 'brand')) return undefined;
  try {
    // The service hands the parsed head file: loaded as it is, not written out to JSON and parsed again.
    return loadHead((await vision.model(task, 'default')) as HeadArtifact);
  } catch {
    return undefined;
  }
}

/** A head artifact loaded, or undefined when it is not one this plugin can read. */
function tryLoadHead(artifact: Uint8Array | undefined): LoadedHead | undefined {
  try {
    return loadHead(artifact ?? new Uint8Array());
  } catch {
    return undefined;
  }
}

/**
 * Decide the candidate's test-time view (see {@link ttaSchema}) and write it into the artifact. Returns the run
 * with its mirror views when they were made, so the test split scores the version as it will answer.
 */
async function chooseTta(
  artifact: Buffer,
  run: PreparedRun,
  mode: TtaMode,
  ctx: JobContext,
): Promise<{ artifact: Buffer; run: PreparedRun; tta: TtaChoice }> {
  if (mode === 'none' || (mode === 'auto' && !run.views.includes('mirror'))) return { artifact, run, tta: { mode, used: 'none' } };
  const mirrored = await withMirrorViews(ctx.services.store, run, ctx);
  if (!mirrored) {
    ctx.logger.warn('test-time mirror view skipped: no mirror views of the validation and test photos in this worker', { features: run.features });
    return { artifact, run, tta: { mode, used: 'none', note: 'this worker could not make mirror views of the validation and test photos' } };
  }
  let validation: { photo: number; mirror: number } | undefined;
  if (mode === 'auto') {
    const head = tryLoadHead(artifact);
    const photo = head && evaluateArtifact(head, mirrored, 'validation', 'none');
    const mirror = head && evaluateArtifact(head, mirrored, 'validation', 'mirror');
    if (!photo || !mirror) return { artifact, run: mirrored, tta: { mode, used: 'none', note: 'no validation photos to compare on' } };
    validation = { photo: photo.macroF1, mirror: mirror.macroF1 };
    // A tie keeps the photo alone: the mirror costs a second backbone pass on every answer.
    if (!(mirror.macroF1 > photo.macroF1)) return { artifact, run: mirrored, tta: { mode, used: 'none', validation } };
  }
  const json = JSON.parse(artifact.toString('utf8')) as { meta?: Record<string, unknown> };
  const served = { ...json, tta: 'mirror', meta: { ...json.meta, tta: { mode, ...(validation ? { validation } : {}) } } };
  return { artifact: Buffer.from(JSON.stringify(served)), run: mirrored, tta: { mode, used: 'mirror', ...(validation ? { validation } : {}) } };
}

/** A split's answers as the head serves them (its test-time view) at each of `temperatures`: `[photo][temperature]`. */
function answersAt(head: LoadedHead, split: EvalSplit, temperatures: readonly number[]): Record<string, number>[][] {
  const mirror = head.tta === 'mirror';
  return split.x.map((x, r) => head.predictAt(x, mirror && split.mirror ? [split.mirror[r]!] : [], temperatures).map((p) => Object.fromEntries(head.classes.map((c, k) => [c, p[k]!]))));
}

/** Log-loss and ECE of a split's answers at temperatures 1 and `used`. */
function calibrationAt(head: LoadedHead, split: EvalSplit, classes: readonly string[], used: number): { n: number; asTrained: CalibrationFigures; used: CalibrationFigures } {
  const truth = split.y.map((y) => classes[y]!);
  const answers = answersAt(head, split, [1, used]);
  const figures = (k: number): CalibrationFigures => {
    const c = calibrationReport(truth, answers.map((a) => a[k]!));
    return { nll: c.nll, ece: c.ece };
  };
  return { n: truth.length, asTrained: figures(0), used: figures(1) };
}

/**
 * Decide the candidate's softmax temperature (see {@link temperatureSchema}) and write it into the artifact, after
 * its test-time view is decided (`run` holds the mirror views when the head answers with them). The test photos
 * never choose; their figures at 1 and at the chosen temperature say what the choice did.
 */
export function chooseTemperature(artifact: Buffer, run: PreparedRun, mode: TemperatureMode): { artifact: Buffer; temperature: TemperatureChoice } {
  const head = tryLoadHead(artifact);
  if (!head) return { artifact, temperature: { mode, used: 1, note: 'the artifact is not a head this plugin reads' } };
  const validation = run.validation.x.length > 0 && (head.tta !== 'mirror' || run.validation.mirror) ? run.validation : undefined;
  let used = 1;
  let note: string | undefined;
  if (typeof mode === 'number') used = mode;
  else if (!validation || validation.x.length < MIN_TEMPERATURE_PHOTOS) {
    note = `${validation?.x.length ?? 0} validation photos are too few to fit a temperature (at least ${MIN_TEMPERATURE_PHOTOS}); it answers at 1`;
  } else {
    used = fitTemperature(validation.y.map((y) => run.classes[y]!), answersAt(head, validation, AUTO_TEMPERATURES), AUTO_TEMPERATURES).temperature;
  }
  const test = run.test.x.length > 0 && (head.tta !== 'mirror' || run.test.mirror) ? run.test : undefined;
  const choice: TemperatureChoice = {
    mode,
    used,
    ...(validation ? { validation: calibrationAt(head, validation, run.classes, used) } : {}),
    ...(test ? { test: calibrationAt(head, test, run.classes, used) } : {}),
    ...(note ? { note } : {}),
  };
  const json = JSON.parse(artifact.toString('utf8')) as { meta?: Record<string, unknown> };
  const served = { ...json, temperature: used, meta: { ...json.meta, temperature: JSON.parse(JSON.stringify(choice)) as Record<string, unknown> } };
  return { artifact: Buffer.from(JSON.stringify(served)), temperature: choice };
}

/**
 * Validation macro-F1 of a trained head as the version would answer: the test-time view is decided exactly as
 * `train` decides it ({@link chooseTta}: a forced mirror, or `auto`'s strict comparison), then the validation
 * split is scored with that view and the open-set share. A tuning trial's objective, so that the search ranks
 * configurations the way users will meet them. Undefined when the run has no validation photos.
 */
export async function validationAsServed(
  artifact: Buffer,
  run: PreparedRun,
  mode: TtaMode,
  ctx: JobContext,
): Promise<{ macroF1: number; tta: TtaChoice } | undefined> {
  const chosen = await chooseTta(artifact, run, mode, ctx);
  const scored = evaluateArtifact(chosen.artifact, chosen.run, 'validation');
  return scored && { macroF1: scored.macroF1, tta: chosen.tta };
}

/** The whole training job. */
export async function runTrainingJob(data: TrainJobData, ctx: JobContext, registry: ModelRegistry): Promise<TrainResult> {
  const store = ctx.services.store;
  if (data.task === 'gan') {
    throw new EngineError('MODEL_MISSING', 'GAN training runs in the generative plugin (`generate --train`); no GAN trainer is loaded in this worker.');
  }
  let run = await prepareRun(store, data, ctx);
  const params = headParams(data.params, data.task);
  const envGate = gateFromEnv();
  const gate: GateConfig = { margin: data.gate?.margin ?? envGate.margin, maxRecallDrop: data.gate?.maxRecallDrop ?? envGate.maxRecallDrop };
  const existing = await findModelOfJob(store, data.task, ctx.jobId);
  let modelId: number;
  let metrics: Evaluation;
  let resumedFromEpoch = 0;
  let artifact: Uint8Array | undefined;
  let tta: TtaChoice;
  let temperature: TemperatureChoice;
  if (existing !== undefined) {
    // An earlier attempt registered the version and died before finishing: reuse it, don't duplicate.
    ctx.logger.info('version already registered by an earlier attempt', { model: existing });
    modelId = existing;
    const record = await store.models.get(existing);
    artifact = record?.artifact;
    tta = (record?.params.tta as TtaChoice | undefined) ?? { mode: data.tta ?? defaultTta(data.task, data.views), used: tryLoadHead(artifact)?.tta ?? 'none' };
    temperature = (record?.params.temperature as TemperatureChoice | undefined) ?? { mode: data.temperature, used: tryLoadHead(artifact)?.temperature ?? 1 };
    if (tta.used === 'mirror') run = (await withMirrorViews(store, run, ctx)) ?? run;
    metrics = (record?.metrics.test as Evaluation | undefined) ?? (evaluateArtifact(record?.artifact ?? Buffer.alloc(0), run) as Evaluation);
  } else {
    const trained = await trainWithCheckpoints(run, { task: data.task, epochs: data.epochs, params, seed: data.seed, nuisance: data.nuisance }, ctx, { from: 0.1, to: 0.9 });
    resumedFromEpoch = trained.resumedFromEpoch;
    await ctx.progress({ stage: 'evaluating', fraction: 0.92 });
    const chosen = await chooseTta(trained.artifact, run, data.tta ?? defaultTta(data.task, run.views), ctx);
    ({ run, tta } = chosen);
    const calibrated = chooseTemperature(chosen.artifact, run, data.temperature);
    ({ artifact, temperature } = calibrated);
    // Scored as served: the temperature can move an answer where the mirror view is averaged in, or to brand's `other`.
    metrics = evaluateArtifact(calibrated.artifact, run)!;
    const version = await store.models.create({
      task: data.task,
      artifact: calibrated.artifact,
      metrics: { test: metrics, macroF1: metrics.macroF1, accuracy: metrics.accuracy, curves: trained.curves.map((c) => ({ ...c })) } as Record<string, unknown>,
      params: { ...params, epochs: data.epochs, seed: data.seed, nuisance: data.nuisance, nuisanceDirections: directionsOf(chosen.artifact), views: [...run.views], tta: JSON.parse(JSON.stringify(tta)) as Record<string, unknown>, temperature: JSON.parse(JSON.stringify(temperature)) as Record<string, unknown>, jobId: ctx.jobId, features: run.features, ...(data.tuneId ? { tuneId: data.tuneId } : {}) },
      dataSnapshot: { ...run.snapshot, split: { train: trainPhotos(run), trainRows: run.train.x.length, validation: run.validation.x.length, test: run.test.x.length, testSize: data.testSize, seed: data.seed } },
      curvesPng: curvesPng(trained.curves, `${data.task} (job ${ctx.jobId.slice(0, 8)})`),
      createdBy: data.requestedBy,
      status: 'candidate',
    });
    modelId = version.id;
    await store.kv.set(`job-model:${ctx.jobId}`, modelId, 30 * 86_400_000);
  }
  // Gate: champion evaluated NOW on this run's test split (not its own old numbers).
  const championId = await registry.champion(data.task);
  let champion: { id: number; evaluation: Evaluation } | null | undefined;
  // The champion is scored as it answers users: with its own test-time view (the shipped brand head's mirror).
  const scored = async (head: LoadedHead | undefined): Promise<Evaluation | undefined> => {
    if (!head) return undefined;
    // A champion from before an upgrade changed the embedder's features reads its own space: its photos' cached
    // embeddings there, when the store still has all of them.
    if (head.features.backbone !== run.features.backbone || head.features.prepVersion !== run.features.prepVersion) {
      const own = await splitsInSpace(store, run, head.features, head.tta === 'mirror');
      return own && evaluateArtifact(head, own);
    }
    if (head.tta === 'mirror') run = (await withMirrorViews(store, run, ctx)) ?? run;
    return evaluateArtifact(head, run);
  };
  if (championId === modelId) champion = undefined;
  else if (championId === undefined) {
    // No registry champion yet: users are served the shipped default head, so that is what to beat
    // (id 0 in the decision) when it reads the same features.
    const shipped = await shippedDefault(ctx, data.task);
    const evaluation = await scored(shipped);
    champion = evaluation ? { id: 0, evaluation } : undefined;
  } else {
    const record = await store.models.get(championId);
    const evaluation = record ? await scored(tryLoadHead(record.artifact)) : undefined;
    champion = evaluation ? { id: championId, evaluation } : null;
  }
  let decision = championId === modelId ? { ...decide(metrics, undefined, gate), outcome: 'promoted' as const, reason: 'This version is already the champion.' } : decide(metrics, champion, gate, championId);
  await registry.setCandidate(data.task, modelId, data.requestedBy);
  if (decision.promote && data.autoPromote && championId !== modelId) {
    try {
      await registry.promote(data.task, modelId, `gate:${data.requestedBy}`, championId ?? null);
    } catch (err) {
      if (!(err instanceof EngineError) || err.code !== 'CONFLICT') throw err;
      decision = { ...decision, promote: false, outcome: 'kept-candidate', reason: `${decision.reason} But another promotion won the race meanwhile; it stays a candidate.` };
    }
  } else if (decision.promote && !data.autoPromote) {
    decision = { ...decision, promote: false, outcome: 'kept-candidate', reason: `${decision.reason} Auto-promotion is off for this run; promote it with \`models promote ${modelId}\`.` };
  }
  await store.kv.set(`model-decision:${modelId}`, JSON.parse(JSON.stringify(decision)) as never);
  await store.audit.add({ actor: data.requestedBy, action: 'models.train', target: `${data.task}:${modelId}`, details: { job: ctx.jobId, outcome: decision.outcome, macroF1: metrics.macroF1 } });
  await ctx.progress({ stage: 'done', fraction: 1, message: decision.reason });
  return {
    job: ctx.jobId,
    model: modelId,
    task: data.task,
    decision,
    metrics,
    resumedFromEpoch,
    data: { n: run.snapshot.n, train: trainPhotos(run), test: run.test.x.length, digest: run.snapshot.digest, sources: new Set(run.train.items.map((i) => i.group)).size },
    nuisance: { mode: data.nuisance, directions: directionsOf(artifact) },
    views: run.views,
    tta,
    temperature,
  };
}
