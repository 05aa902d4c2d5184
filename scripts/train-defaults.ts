/**
 * `npm run train:defaults -- --data <manifest.csv|folder>`: trains the default hype and brand heads that ship
 * in assets/models/, and writes their README with the data, command, seed and held-out metrics.
 *
 * Steps: read the labelled data → decode every image (content id = pixel hash) → embeddings through the
 * vision feature pipeline, cached in a SQLite store (`--cache`, default ./data/train-defaults.db) so re-runs
 * embed nothing twice → per task: fuzzy-name group split (test 10 %, seed 42), train on the train side,
 * report on the held-out side → leave-one-source-out folds (train on all sources but one, test on it) →
 * optional `--ablation`: what each pipeline step buys, on the same splits, from whatever variants are cached.
 * `--seed-study N` instead measures how the figures move with the fits' seeds, and what an ensemble of k fits
 * buys (writes JSON, no heads); with `--concat-backbone NAME` it measures heads on two backbones' embeddings side by side.
 * `--probs-dump FILE` writes every held-out and left-out-source answer at a range of softmax temperatures, for
 * scripts/calibrate.ts.
 * `--labels a.csv[,b.csv]`: label overlays that add labels the manifest lacks (assets/labels/: our brand labels
 * for the dev set's zjy-T photos).
 * Options for cross-source generalisation (measured in assets/models/README.md): `--backbone inception_v3`,
 * `--trim`, `--flip-augment`, `--augment N` / `--hype-augment N` / `--brand-augment N` (crop/colour/background
 * jittered copies as extra training rows), `--scene-augment N` / `--hype-scene-augment N` /
 * `--brand-scene-augment N` (the shoe pasted onto generated scenes), `--remnant-scenes <tasks>` (those tasks'
 * scene copies keep patches of floor around the shoe), `--turned-copies <tasks>` (with `--learnt-turn`: those tasks'
 * heads also learn from a composite turned as users' photos are, served with the learnt turn, and its mirror;
 * `--pair-worn-copies <tasks>` likewise with a nearly level composite that always shows a pair or a worn shoe;
 * `--angle-model FILE` serves those with another angle file than the shipped one),
 * `--source-balanced` (sources weigh the same within a class).
 * The shipped heads are the ones trained on the train side, so the README's numbers describe them exactly.
 *
 * Heavy: run it with `nice -n 10` on shared machines.
 */
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { openStore } from '../engine/store/index.ts';
import { seededRandom } from '../engine/random.ts';
import { getTf } from '../engine/ml/runtime.ts';
import { BACKBONE_NAMES, loadBackbone, isBackboneName } from '../engine/ml/backbones.ts';
import { asEmbedItems, loadLabelledItems, readLabelledSource, withLabelOverlays } from '../plugins/vision/lib/dataset.ts';
import { concatEmbeddings, embedAugmentedCopy, embedItems, embedTurnedCopy, prepKey, variantOf } from '../plugins/vision/lib/features.ts';
import { angleFileKey, angleFileName, loadAngleModel, makeTurner, shippedAngleModel } from '../plugins/vision/lib/angle.ts';
import { DEFAULT_LOCALISER_DIR } from '../plugins/vision/lib/localise.ts';
import { denseForward, headInput, predictHead, probabilitiesFromLogits, topLabel, type FeatureSpec, type HeadModel } from '../plugins/vision/lib/head.ts';
import { labelsOf, type Task } from '../plugins/vision/lib/labels.ts';
import { DUMP_TEMPERATURES, dumpAnswer } from './lib/probs-dump.ts';
import { bootstrapInterval, classificationReport, formatRange, formatReport, type BootstrapInterval, type ClassificationReport } from '../plugins/vision/lib/metrics.ts';
import { fuzzyGroups, groupSplit, leaveOneSourceOut } from '../plugins/vision/lib/split.ts';
import { trainHead, type TrainHeadOptions } from '../plugins/vision/lib/train.ts';
import { featureKey } from '../plugins/vision/service.ts';

const { values: args } = parseArgs({
  options: {
    data: { type: 'string' },
    labels: { type: 'string' },
    out: { type: 'string', default: 'assets/models' },
    cache: { type: 'string', default: 'data/train-defaults.db' },
    backbone: { type: 'string', default: 'mobilenet_v2' },
    seed: { type: 'string', default: '42' },
    'test-size': { type: 'string', default: '0.1' },
    trim: { type: 'boolean', default: false },
    normalise: { type: 'boolean', default: false },
    orient: { type: 'boolean', default: false },
    locate: { type: 'boolean', default: false },
    upright: { type: 'boolean', default: false },
    'learnt-turn': { type: 'boolean', default: false },
    'mix-trim': { type: 'string' },
    'turned-copies': { type: 'string' },
    'pair-worn-copies': { type: 'string' },
    'angle-model': { type: 'string' },
    'no-flip-average': { type: 'boolean', default: false },
    'no-l2': { type: 'boolean', default: false },
    'flip-augment': { type: 'boolean', default: false },
    'source-balanced': { type: 'boolean', default: false },
    nuisance: { type: 'string' },
    'hype-nuisance': { type: 'string' },
    'brand-nuisance': { type: 'string' },
    'nuisance-directions': { type: 'string', default: '16' },
    augment: { type: 'string', default: '0' },
    'hype-augment': { type: 'string' },
    'brand-augment': { type: 'string' },
    'scene-augment': { type: 'string', default: '0' },
    'hype-scene-augment': { type: 'string' },
    'brand-scene-augment': { type: 'string' },
    'remnant-scenes': { type: 'string' },
    head: { type: 'string', default: 'linear' },
    'hype-head': { type: 'string' },
    'brand-head': { type: 'string' },
    'brand-seeds': { type: 'string', default: '1' },
    'hype-seeds': { type: 'string', default: '1' },
    epochs: { type: 'string', default: '60' },
    ablation: { type: 'boolean', default: false },
    'hype-tta': { type: 'string' },
    'brand-tta': { type: 'string' },
    'compare-tta': { type: 'boolean', default: false },
    'skip-unembedded': { type: 'boolean', default: false },
    'seed-study': { type: 'string' },
    'seed-study-out': { type: 'string', default: 'data/tmp/seed-study.json' },
    'seed-study-tasks': { type: 'string', default: 'hype,brand' },
    'seed-study-folds': { type: 'string' },
    'concat-backbone': { type: 'string' },
    'probs-dump': { type: 'string' },
    'hype-temperature': { type: 'string' },
    'brand-temperature': { type: 'string' },
  },
});

if (!args.data) {
  console.error('usage: npm run train:defaults -- --data <manifest.csv|folder> [--labels assets/labels/x.csv] [--out assets/models] [--cache data/train-defaults.db] [--backbone mobilenet_v2|inception_v3|inception_v3_m7|inception_v3_m67] [--trim | --normalise [--orient] [--locate] [--upright] [--learnt-turn]] [--no-flip-average --flip-augment] [--hype-head mlp] [--brand-seeds 5] [--hype-seeds 3] [--brand-augment 1] [--brand-scene-augment 2] [--remnant-scenes brand] [--turned-copies brand,hype] [--pair-worn-copies brand,hype] [--angle-model FILE] [--source-balanced] [--nuisance source,view | --brand-nuisance source [--nuisance-directions 16]] [--brand-tta mirror] [--hype-tta mirror] [--compare-tta] [--seed 42] [--ablation] [--seed-study 15 [--seed-study-tasks hype|brand] [--seed-study-folds held-out,CShorten] [--seed-study-out data/tmp/seed-study.json] [--concat-backbone mobilenet_v2]] [--probs-dump data/tmp/probs.jsonl] [--hype-temperature 2] [--brand-temperature 1.5]');
  process.exit(2);
}
// --probs-dump (see dumpProbabilities) appends per fold: start the file empty so one run's answers are not mixed with another's.
if (args['probs-dump']) {
  mkdirSync(path.dirname(path.resolve(args['probs-dump'])), { recursive: true });
  writeFileSync(path.resolve(args['probs-dump']), '');
}
// --<task>-temperature T: the head files' softmax temperature (serving divides the logits by it; chosen by
// scripts/calibrate.ts on the left-out sources, see assets/models/README.md "Calibration"). Checked now, not after
// the long embedding pass; every head this run fits and reports carries it, so RESULTS.md is what serving answers.
const taskTemperature: Readonly<Record<Task, number>> = { hype: temperatureArg('hype-temperature'), brand: temperatureArg('brand-temperature') };
function temperatureArg(flag: 'hype-temperature' | 'brand-temperature'): number {
  const v = args[flag];
  if (v === undefined) return 1;
  const t = Number(v);
  if (!Number.isFinite(t) || t <= 0) throw new Error(`--${flag} takes a positive number, not ${v}`);
  return t;
}
const backboneName = args.backbone!;
if (!isBackboneName(backboneName)) throw new Error(`unknown backbone ${backboneName}`);
// --concat-backbone (see where it is applied): its flags are checked now, not after the long embedding pass.
const concatBackbone = args['concat-backbone'];
if (concatBackbone !== undefined) {
  if (!isBackboneName(concatBackbone) || concatBackbone === backboneName) throw new Error(`--concat-backbone takes another backbone (${BACKBONE_NAMES.filter((b) => b !== backboneName).join(', ')}), not ${concatBackbone}`);
  if (args['seed-study'] === undefined) throw new Error('--concat-backbone is a measurement: use it with --seed-study (its heads could not be served)');
  const viewFlags = ['augment', 'hype-augment', 'brand-augment', 'scene-augment', 'hype-scene-augment', 'brand-scene-augment', 'mix-trim', 'turned-copies', 'pair-worn-copies'] as const;
  if (!args['flip-augment'] || viewFlags.some((f) => (args[f] ?? '0') !== '0' && args[f] !== '')) {
    throw new Error('--concat-backbone takes the photos and their mirrors only (--no-flip-average --flip-augment, no extra training views)');
  }
}
const seed = Number(args.seed);
const testSize = Number(args['test-size']);
// --normalise: the study's normalisation (background whitening + crop to the shoe; --orient also mirrors the toe
// to the right) before the backbone — what scripts/eval-shift.ts showed holds up on non-white backgrounds.
// --locate: off a studio backdrop, the normaliser starts from the shoe localiser's box (assets/models/localiser-*).
// It applies to the photos themselves (serving, and the real training photos: on studio shots it changes nothing,
// so their cached embeddings are reused); the synthetic views — augmented copies and scene composites — stay
// normalised from the whole frame, whose looser crops transfer better (measured with scripts/eval-shift.ts:
// `study-noorient-loc+…` against `…@loc`, assets/models/README.md).
const features: FeatureSpec = {
  trim: args.trim!,
  flipAverage: !args['no-flip-average'],
  l2: !args['no-l2'],
  ...(args.normalise ? { normalise: true, orient: args.orient!, ...(args.locate ? { locate: true } : {}), ...(args.upright ? { upright: true } : {}) } : {}),
};
if (args.locate && !args.normalise) throw new Error('--locate only qualifies --normalise');
// --upright: the normaliser turns a steeply tilted shoe level, sole down (engine/ml/preprocess `upright`). Studio
// shots are left as they are, so their cached embeddings without the step are reused (embedItems).
if (args.upright && !args.normalise) throw new Error('--upright only qualifies --normalise');
// --learnt-turn: the head files ask serving to read the learnt turn (plugins/vision/lib/angle.ts, the backbone's
// assets/models/angle-<backbone>.json) off studio backdrops. Serving only: the photos here are studio shots, which it
// never asks about, and the scene composites stay as the upright step frames them, so every training view, cache
// key and figure is the same with or without it (assets/models/README.md, "The learnt turn").
if (args['learnt-turn'] && !(args.normalise && args.upright)) throw new Error('--learnt-turn only qualifies --normalise --upright');
/** The spec of synthetic training views (augmented copies, scene composites): the photos' own, unlocated. */
const syntheticFeatures: FeatureSpec = (({ locate: _locate, ...rest }) => rest)(features);
// --nuisance source,view (per task: --brand-nuisance source): fit the heads with the within-class differences
// between sources (and/or between the views of a photo: plain, mirror, augmented, scene, trimmed) projected out of
// their input (trainHead `nuisanceGroups`), so a head cannot tell a class by its source's style.
type NuisanceKind = 'source' | 'view';
const taskNuisance = Object.fromEntries(
  (['hype', 'brand'] as const).map((task) => {
    const kinds = (args[`${task}-nuisance`] ?? args.nuisance ?? '').split(',').map((k) => k.trim()).filter(Boolean);
    for (const k of kinds) if (k !== 'source' && k !== 'view') throw new Error(`--${task}-nuisance / --nuisance take source and/or view, not ${k}`);
    return [task, kinds as NuisanceKind[]];
  }),
) as Record<Task, NuisanceKind[]>;
const nuisanceMax = Number(args['nuisance-directions']);
if (!Number.isInteger(nuisanceMax) || nuisanceMax < 0) throw new Error(`--nuisance-directions is a whole number, not ${args['nuisance-directions']}`);
const headOpts: TrainHeadOptions = {
  type: args.head === 'mlp' ? 'mlp' : 'linear',
  epochs: Number(args.epochs),
  seed,
};
// --brand-seeds N / --hype-seeds N: serve the mean of N fits from consecutive seeds (trainHead `seeds`; linear heads
// average their weights, MLPs lay the fits side by side): one fit's figures move by up to 0.06 with its seed alone
// (assets/models/README.md, "One fit's luck").
const taskSeeds = Object.fromEntries(
  (['hype', 'brand'] as const).map((task) => {
    const n = Number(args[`${task}-seeds`]);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${task}-seeds is a positive integer, not ${args[`${task}-seeds`]}`);
    return [task, n];
  }),
) as Record<Task, number>;
/** Per-task head type (`--hype-head mlp`): the ablation showed the tasks prefer different heads. */
const taskHeadOpts = (task: Task): TrainHeadOptions => {
  const type = args[`${task}-head`] ?? args.head;
  const seeds = { ...(taskSeeds[task] > 1 ? { seeds: taskSeeds[task] } : {}), ...(taskNuisance[task].length > 0 ? { nuisanceDirections: nuisanceMax } : {}) };
  if (type === 'mlp') return { ...headOpts, type: 'mlp', epochs: Math.min(headOpts.epochs ?? 60, 40), ...seeds };
  return { ...headOpts, type: 'linear', ...seeds };
};
const command = `npm run train:defaults -- ${process.argv.slice(2).join(' ')}`;

const log = (msg: string): void => console.log(`[train:defaults] ${msg}`);

const tf = await getTf();
log(`backend ${tf.getBackend()}, backbone ${backboneName}, features ${JSON.stringify(features)}`);
// --labels a.csv[,b.csv]: label overlays (assets/labels/) that add labels the manifest lacks.
const source = withLabelOverlays(await readLabelledSource(args.data), args.labels?.split(',').filter(Boolean) ?? [], log);
log(`${source.rows.length} rows (${source.skipped.length} skipped) from ${source.location}`);
mkdirSync(path.dirname(path.resolve(args.cache!)), { recursive: true });
const store = await openStore({ url: `sqlite:${path.resolve(args.cache!)}` });
const backbone = await loadBackbone(backboneName);

// Only rows with a label for some task are needed; decode them once for their content ids.
const items = await loadLabelledItems(source, (file, why) => log(`skip ${file}: ${why}`));
log(`${items.length} labelled images decoded`);
// Check --seed-study-folds against the data's sources now, not after the long embedding pass.
{
  const known = ['held-out', ...new Set(items.map((it) => it.row.source ?? ''))].filter((v) => v !== '');
  const unknown = seedStudyFolds().filter((w) => !known.some((name) => foldMatches(name, w)));
  if (unknown.length > 0) {
    console.error(`--seed-study-folds: no fold ${unknown.join(', ')}; the folds are ${known.join(', ')}`);
    process.exit(2);
  }
}

// Every embedding below is of all labelled items (read from disk only when not cached).
const embedList = asEmbedItems(items);

/** Embeddings of every item under a spec (cached per variant in the store). */
async function embedAll(spec: FeatureSpec, onlyCached = false): Promise<Float32Array[] | undefined> {
  if (onlyCached) {
    for (const v of spec.flipAverage ? [false, true] : [false]) {
      const n = (await store.embeddings.getMany(items.map((i) => i.sha), backbone.name, prepKey(variantOf(spec, v)))).size;
      if (n < items.length) return undefined;
    }
  }
  let last = 0;
  return embedItems(backbone, embedList, spec, {
    store,
    onProgress: (done, total) => {
      if (done - last >= 50 || done === total) {
        last = done;
        log(`embedding ${done}/${total}`);
      }
    },
  });
}

const x = (await embedAll(features))!;
// Flip augmentation: the mirrored view of every image as an extra training row (same label, same group).
const flipAugment = args['flip-augment']!;
let xFlip: Float32Array[] | undefined;
if (flipAugment) {
  if (features.flipAverage) throw new Error('--flip-augment is for heads without flip-averaging (add --no-flip-average): the average is already mirror-invariant');
  // The mirrored variant is cached like any other; embedding with flip-averaging fills it if missing.
  const key = prepKey(variantOf(features, true));
  if ((await store.embeddings.getMany(items.map((i) => i.sha), backbone.name, key)).size < items.length) {
    await embedItems(backbone, embedList, { ...features, flipAverage: true }, { store });
  }
  const flipped = await store.embeddings.getMany(items.map((i) => i.sha), backbone.name, key);
  xFlip = items.map((i) => flipped.get(i.sha)!);
}
// --<task>-tta mirror: the head file asks serving to average the photo's and its mirror's probabilities (and
// this script reports it that way). The mirror is the view flip augmentation trains on, so it needs --flip-augment.
const taskTta: Readonly<Record<Task, 'mirror' | undefined>> = {
  hype: ttaArg('hype-tta'),
  brand: ttaArg('brand-tta'),
};
function ttaArg(flag: 'hype-tta' | 'brand-tta'): 'mirror' | undefined {
  const v = args[flag];
  if (v === undefined || v === 'none') return undefined;
  if (v !== 'mirror') throw new Error(`--${flag} takes mirror or none, not ${v}`);
  if (!xFlip) throw new Error(`--${flag} mirror needs --flip-augment (the mirrored embeddings it averages with)`);
  return 'mirror';
}
// Augmented copies (`--augment N`): crop / colour / background-jittered views as extra training rows, tested on
// the plain image. Aimed at cross-source generalisation (sources differ in framing, background and tint, not
// only in orientation). One augmentation seed would apply the same crop and tint to every image, so the seed
// cycles over AUGMENT_SEEDS per image (embedAugmentedCopy) (still cached: one cache key per seed); every second copy is mirrored.
type CopiesFlag = 'augment' | 'hype-augment' | 'brand-augment' | 'scene-augment' | 'hype-scene-augment' | 'brand-scene-augment';
const copiesArg = (flag: CopiesFlag): number => {
  const n = Number(args[flag] ?? (flag.includes('scene') ? args['scene-augment'] : args.augment));
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${flag} takes a whole number of copies, got ${args[flag]}`);
  return n;
};
/** Per-task copies (`--brand-augment 1`): like the head type, the measured best differs per task. */
const taskAugment: Readonly<Record<Task, number>> = { hype: copiesArg('hype-augment'), brand: copiesArg('brand-augment') };
const augmentCopies = Math.max(copiesArg('augment'), taskAugment.hype, taskAugment.brand);
const xAug: Float32Array[][] = [];
for (let copy = 0; copy < augmentCopies; copy++) {
  const view = await embedAugmentedCopy(backbone, embedList, syntheticFeatures, copy, { store });
  xAug.push(view);
  log(`augmented copy ${copy + 1}/${augmentCopies} embedded`);
}
// Scene copies (`--scene-augment N`, per task `--hype-scene-augment` / `--brand-scene-augment`): every image's
// shoe pasted onto a generated scene (carpet, tiles, fabric, a room corner, clutter; plugins/vision/lib/composite.ts)
// before the pipeline, as extra training rows. The development photos are all white studio shots; users' photos
// are not. One seed per copy gives every image its own scene (the scene is drawn from the seed and the pixels);
// every second copy is mirrored. The shift test (scripts/eval-shift.ts) uses other backgrounds, so it still
// measures scenes the heads never saw.
const taskScenes: Readonly<Record<Task, number>> = { hype: copiesArg('hype-scene-augment'), brand: copiesArg('brand-scene-augment') };
// --remnant-scenes <tasks> (e.g. `brand`): those tasks' scene copies are normalised with the flood fill on any
// near-uniform border (normaliser v2's rule), which leaves patches of a patterned floor around the shoe. Serving
// keeps the v3 normaliser; the remnants are an augmentation (measured in assets/models/README.md: the brand
// head transfers better across sources when it learns from them).
/** A task-list flag (`--mix-trim brand`, `--remnant-scenes hype,brand`): the tasks it names, validated. */
function tasksArg(flag: 'mix-trim' | 'remnant-scenes' | 'seed-study-tasks' | 'turned-copies' | 'pair-worn-copies'): Set<Task> {
  const tasks = (args[flag] ?? '').split(',').map((t) => t.trim()).filter(Boolean);
  for (const t of tasks) if (t !== 'hype' && t !== 'brand') throw new Error(`--${flag} takes hype, brand or hype,brand; got ${t}`);
  return new Set(tasks as Task[]);
}
const remnantScenes = tasksArg('remnant-scenes');
const scenesNeeded = (remnants: boolean): number =>
  Math.max(remnants ? 0 : copiesArg('scene-augment'), ...(['hype', 'brand'] as const).filter((t) => remnantScenes.has(t) === remnants).map((t) => taskScenes[t]));
const sceneCopies = Math.max(copiesArg('scene-augment'), taskScenes.hype, taskScenes.brand);
/** Scene copies per kind: [plain v3 normalisation, remnants]. */
const xScenes: [Float32Array[][], Float32Array[][]] = [[], []];
for (const remnants of [false, true]) {
  const n = scenesNeeded(remnants);
  for (let copy = 0; copy < n; copy++) {
    let last = 0;
    xScenes[remnants ? 1 : 0].push(
      await embedItems(backbone, embedList, { ...syntheticFeatures, flipAverage: false }, {
        store,
        scene: copy,
        mirror: copy % 2 === 1,
        remnants,
        onProgress: (done, total) => {
          if (done - last >= 100 || done === total) {
            last = done;
            log(`scene copy ${copy + 1}/${n}${remnants ? ' (remnants)' : ''}: ${done}/${total}`);
          }
        },
      }),
    );
  }
}
// --mix-trim <tasks> (with --normalise; e.g. `--mix-trim brand`): the trimmed, contain-on-white view of every
// image and its mirror as extra training rows of those tasks' heads. Two framings of the same photo teach the
// head what does not depend on how the photo was cut out; serving still normalises.
const mixTrim = tasksArg('mix-trim');
const xTrim: Float32Array[][] = [];
if (mixTrim.size > 0) {
  const trimSpec: FeatureSpec = { trim: true, flipAverage: false, l2: features.l2 };
  xTrim.push(await embedItems(backbone, embedList, trimSpec, { store }));
  xTrim.push(await embedItems(backbone, embedList, trimSpec, { store, mirror: true }));
  log('trimmed views embedded');
}
// --turned-copies <tasks> (with --learnt-turn): one composite per image on a training scene, turned as users'
// photos are (level, tilted, any angle), served exactly as the heads will serve it — localiser, upright step and
// the learnt turn (the backbone's shipped angle model) — and its mirror, as extra rows of those tasks' heads. The
// other scene copies are level, so without these a head never sees the views the learnt turn hands it: shoes
// turned back to within 5–15°, resampled twice (assets/models/README.md, "Heads trained on turned views").
const turnedCopies = tasksArg('turned-copies');
if (turnedCopies.size > 0 && !args['learnt-turn']) throw new Error('--turned-copies only qualifies --learnt-turn (its views are served with the learnt turn)');
// --pair-worn-copies <tasks> (with --learnt-turn): the same served views of a nearly level composite that always shows
// a pair, a worn shoe or both (composite.ts pairWornComposite), and its mirror: the shift test's weakest level columns
// (assets/models/README.md, "Pairs and worn shoes"), which the scene copies show in a minority of their draws.
const pairWornCopies = tasksArg('pair-worn-copies');
if (pairWornCopies.size > 0 && !args['learnt-turn']) throw new Error('--pair-worn-copies only qualifies --learnt-turn (its views are served with the learnt turn)');
if (args['angle-model'] !== undefined && turnedCopies.size === 0 && pairWornCopies.size === 0) throw new Error('--angle-model only qualifies --turned-copies or --pair-worn-copies (the angle file their views are served with)');
const xTurned: Float32Array[][] = [];
const xPairWorn: Float32Array[][] = [];
if (turnedCopies.size > 0 || pairWornCopies.size > 0) {
  // --angle-model FILE: serve the turned (and pair-and-worn) copies with another angle file than the shipped one, e.g. the one a
  // shipped head was trained with before the angle file was rebuilt (assets/models/README.md, "Rebuild").
  const angleFile = args['angle-model'] ?? path.join(DEFAULT_LOCALISER_DIR, angleFileName(backbone.name));
  const angleModel = args['angle-model'] === undefined ? shippedAngleModel(backbone.name) : loadAngleModel(angleFile);
  if (angleModel.backbone !== backbone.name) throw new Error(`--angle-model ${angleFile} is for ${angleModel.backbone}, not ${backbone.name}`);
  const modelKey = angleFileKey(angleFile);
  const turner = makeTurner(backbone, angleModel);
  for (const [kind, tasks, into] of [['turned', turnedCopies, xTurned], ['pair-worn', pairWornCopies, xPairWorn]] as const) {
    if (tasks.size === 0) continue;
    let last = 0;
    into.push(
      ...(await embedTurnedCopy(backbone, embedList, turner, {
        seed,
        modelKey,
        kind,
        store,
        onProgress: (done, total, turned) => {
          if (done - last >= 100 || done === total) {
            last = done;
            log(`${kind} copy: ${done}/${total} (the learnt turn kept a turn on ${turned})`);
          }
        },
      })),
    );
  }
}
/** Extra training views of every item (mirror, augmented copies): extra rows with the same label and group. */
const extraViews = (task: Task): readonly (readonly Float32Array[])[] => [
  ...(xFlip ? [xFlip] : []),
  ...xAug.slice(0, taskAugment[task]),
  ...xScenes[remnantScenes.has(task) ? 1 : 0].slice(0, taskScenes[task]),
  ...(mixTrim.has(task) ? xTrim : []),
  ...(turnedCopies.has(task) ? xTurned : []),
  ...(pairWornCopies.has(task) ? xPairWorn : []),
];
// --concat-backbone NAME (a measurement, with --seed-study): every photo's embedding and its mirror's become this
// backbone's and NAME's side by side (concatEmbeddings: each part unit length), NAME's views prepared its own way (its
// size, its localiser). Heads on them would need both backbones at serving, which nothing serves, so it writes no heads;
// and only the photos' own views are concatenated, so no extra training views go with it (assets/models/README.md,
// "MobileNetV2 beside InceptionV3").
if (concatBackbone !== undefined && isBackboneName(concatBackbone) && xFlip) {
  const second = await loadBackbone(concatBackbone);
  const plain = await embedItems(second, embedList, features, { store });
  const mirrored = await embedItems(second, embedList, features, { store, mirror: true });
  for (let i = 0; i < items.length; i++) {
    x[i] = concatEmbeddings([x[i]!, plain[i]!]);
    xFlip[i] = concatEmbeddings([xFlip[i]!, mirrored[i]!]);
  }
  log(`--concat-backbone ${concatBackbone}: ${x[0]!.length}-d embeddings`);
}
const sourceBalanced = args['source-balanced']!;

interface TaskResult {
  readonly head: HeadModel;
  readonly held: ClassificationReport;
  readonly split: { train: number; test: number; groups: number };
  readonly loso: { source: string; n: number; trainLabels: string[]; report?: ClassificationReport; knownAccuracy?: number; unseenToOther?: number; note?: string }[];
}

function indicesFor(task: Task): number[] {
  return items.map((it, i) => (it.row[task] !== undefined ? i : -1)).filter((i) => i >= 0);
}

/**
 * Source balancing (`--source-balanced`): within each class, every source that has the class carries the same
 * total weight (w = n_c / (S_c * n_{c,s})); the class weights still balance the classes. A plain per-source
 * weight multiplied with the class weight would not do: classes and sources are confounded here (all
 * not_hyped and adidas rows come from one source), so it would unbalance the classes again.
 */
function sourceWeights(task: Task, rows: readonly number[]): number[] {
  const cell = new Map<string, number>();
  const perClass = new Map<string, number>();
  const sourcesOf = new Map<string, Set<string>>();
  for (const i of rows) {
    const c = items[i]!.row[task]!;
    const src = items[i]!.row.source ?? '';
    cell.set(`${c}|${src}`, (cell.get(`${c}|${src}`) ?? 0) + 1);
    perClass.set(c, (perClass.get(c) ?? 0) + 1);
    sourcesOf.set(c, (sourcesOf.get(c) ?? new Set<string>()).add(src));
  }
  return rows.map((i) => {
    const c = items[i]!.row[task]!;
    return perClass.get(c)! / (sourcesOf.get(c)!.size * cell.get(`${c}|${items[i]!.row.source ?? ''}`)!);
  });
}

async function fit(task: Task, train: number[], X: readonly Float32Array[], spec: FeatureSpec, opts: TrainHeadOptions, id: string, views: readonly (readonly Float32Array[])[] = []): Promise<HeadModel> {
  const rows = [train, ...views.map(() => train)].flat();
  const xs = [X, ...views].flatMap((view) => train.map((i) => view[i]!));
  // Each fit is logged with its time: the seed-averaged rebuild is long, and the log says where it is.
  const started = Date.now();
  log(`${id}: fitting ${opts.type ?? 'linear'} head on ${xs.length} rows${(opts.seeds ?? 1) > 1 ? ` (${opts.seeds} seeds)` : ''}`);
  const head = await trainHead(
    {
      task,
      id,
      backbone: backbone.name,
      prepVersion: featureKey(spec),
      features: spec,
      x: xs,
      y: rows.map((i) => items[i]!.row[task]!),
      ...(sourceBalanced ? { sampleWeight: sourceWeights(task, rows) } : {}),
      ...(taskNuisance[task].length > 0
        ? {
            nuisanceGroups: taskNuisance[task].map((kind) =>
              kind === 'source' ? rows.map((i) => items[i]!.row.source ?? '') : rows.map((_, r) => String(Math.floor(r / train.length))),
            ),
          }
        : {}),
      meta: { data: source.location, flipAugment: xFlip !== undefined && views.includes(xFlip), augmentCopies: taskAugment[task], sceneCopies: taskScenes[task], remnantScenes: remnantScenes.has(task), ...(turnedCopies.has(task) ? { turnedCopies: 1 } : {}), ...(pairWornCopies.has(task) ? { pairWornCopies: 1 } : {}), sourceBalanced, ...(taskNuisance[task].length > 0 ? { nuisance: taskNuisance[task] } : {}) },
    },
    opts,
  );
  log(`${id}: fitted in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return { ...head, temperature: taskTemperature[task], ...(taskTta[task] ? { tta: taskTta[task] } : {}) };
}

/**
 * The held-out report of a head as serving will answer: with a `tta: 'mirror'` head (--<task>-tta mirror), the
 * mean of the photo's and its mirror's probabilities (the mirrored embeddings of --flip-augment). `mirror`
 * overrides that, for --compare-tta.
 */
function report(task: Task, head: HeadModel, test: number[], X: readonly Float32Array[], mirror = head.tta === 'mirror', fold?: string): { rep: ClassificationReport; preds: ReturnType<typeof predictHead>[] } {
  if (mirror && (!xFlip || X !== x)) throw new Error('mirror test-time views need --flip-augment embeddings of the serving pipeline');
  const preds = test.map((i) => predictHead(head, X[i]!, mirror ? [xFlip![i]!] : []));
  if (fold !== undefined && args['probs-dump']) dumpProbabilities(task, head, test, X, mirror, fold);
  return { rep: classificationReport(test.map((i) => items[i]!.row[task]!), preds.map((p) => p.label), labelsOf(task)), preds };
}

/** `--probs-dump FILE`: appends the test photos' answers at a range of temperatures (scripts/lib/probs-dump.ts). */
function dumpProbabilities(task: Task, head: HeadModel, test: number[], X: readonly Float32Array[], mirror: boolean, fold: string): void {
  const lines = test.map((i) => dumpAnswer(head, X[i]!, mirror ? [xFlip![i]!] : [], { task, fold, source: items[i]!.row.source ?? '', truth: items[i]!.row[task]! }));
  appendFileSync(path.resolve(args['probs-dump']!), `${lines.join('\n')}\n`);
  log(`${task} ${fold}: ${test.length} answers at ${DUMP_TEMPERATURES.length} temperatures dumped to ${args['probs-dump']}`);
}

/** --compare-tta: log the same head's figures the other way (with the mirror view if it has none, else without). */
function compareTta(task: Task, head: HeadModel, test: number[], X: readonly Float32Array[], what: string, rep: ClassificationReport): void {
  if (!args['compare-tta'] || !xFlip || X !== x) return;
  const other = report(task, head, test, X, head.tta !== 'mirror').rep;
  log(`${task}: ${what} ${head.tta === 'mirror' ? 'without' : 'with'} mirror TTA: accuracy ${other.accuracy.toFixed(3)}, macro-F1 ${other.macroF1.toFixed(3)} (as served: ${rep.accuracy.toFixed(3)} / ${rep.macroF1.toFixed(3)})`);
}

async function evaluateTask(task: Task, X: readonly Float32Array[], spec: FeatureSpec, opts: TrainHeadOptions, withLoso: boolean, views: readonly (readonly Float32Array[])[] = []): Promise<TaskResult> {
  const idx = indicesFor(task);
  const groups = fuzzyGroups(idx.map((i) => ({ name: items[i]!.row.name, fallbackKey: items[i]!.sha })));
  const split = groupSplit(groups, idx.map((i) => items[i]!.row[task]), { testSize, seed });
  const train = split.train.map((k) => idx[k]!);
  const test = split.test.map((k) => idx[k]!);
  const head = await fit(task, train, X, spec, opts, `${task}-default`, views);
  const held = report(task, head, test, X, undefined, 'held-out').rep;
  compareTta(task, head, test, X, 'held-out', held);
  const loso: TaskResult['loso'] = [];
  if (withLoso) {
    for (const fold of leaveOneSourceOut(idx.map((i) => items[i]!.row.source))) {
      const tr = fold.train.map((k) => idx[k]!);
      const te = fold.test.map((k) => idx[k]!);
      const trainLabels = [...new Set(tr.map((i) => items[i]!.row[task]!))].sort();
      if (trainLabels.length < 2) {
        loso.push({ source: fold.source, n: te.length, trainLabels, note: `the other sources have only ${trainLabels.join(', ') || 'no'} ${task} labels: no classifier can be trained` });
        continue;
      }
      const h = await fit(task, tr, X, spec, opts, `${task}-loso`, views);
      const { rep, preds } = report(task, h, te, X, undefined, fold.source);
      compareTta(task, h, te, X, `LOSO ${fold.source}`, rep);
      const truth = te.map((i) => items[i]!.row[task]!);
      const known = truth.map((t, k) => (trainLabels.includes(t) ? k : -1)).filter((k) => k >= 0);
      const unseen = truth.map((t, k) => (trainLabels.includes(t) ? -1 : k)).filter((k) => k >= 0);
      loso.push({
        source: fold.source,
        n: te.length,
        trainLabels,
        report: rep,
        knownAccuracy: known.length > 0 ? known.filter((k) => preds[k]!.label === truth[k]).length / known.length : undefined,
        ...(unseen.length > 0 ? { unseenToOther: unseen.filter((k) => preds[k]!.label === 'other' || preds[k]!.lowConfidence).length / unseen.length } : {}),
      } as TaskResult['loso'][number]);
    }
  }
  return { head, held, split: { train: train.length, test: test.length, groups: new Set(groups).size }, loso };
}

// --seed-study N: how much a head's figures move with the fits' seeds alone, and how an ensemble of k fits narrows
// that. Per task and fold (held-out, then each left-out source), N single fits (seeds seed … seed + N − 1) of the
// recipe; every ensemble of k of them is scored from the fits' logits (a seed ensemble laid side by side answers
// the mean of its fits' logits: `combineFits`, tested), as served (with the mirror view where the head has one).
// Writes --seed-study-out after each fold and writes no heads. `--seed-study-tasks brand` studies one task (one process
// per task uses both cores: a fit runs on one); `--seed-study-folds` picks folds by name (`held-out`, or a left-out
// source such as `CShorten`), so a study stopped part-way can go on where it stopped, or split across processes.
if (args['seed-study'] !== undefined) {
  const n = Number(args['seed-study']);
  if (!Number.isInteger(n) || n < 2) throw new Error(`--seed-study is a whole number of fits ≥ 2, not ${args['seed-study']}`);
  await seedStudy(n, path.resolve(args['seed-study-out']!));
  await store.close();
  process.exit(0);
}

async function seedStudy(n: number, outFile: string): Promise<void> {
  const sizes = [1, 2, 3, 5, 8, 10, 15, 20].filter((k) => k <= n);
  const draws = 30;
  const summary = (v: readonly number[]) => {
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    const sd = v.length > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1)) : 0;
    return { mean: round6(mean), sd: round6(sd), min: round6(Math.min(...v)), max: round6(Math.max(...v)) };
  };
  const tasks = [...tasksArg('seed-study-tasks')];
  const folds: { task: Task; fold: string; train: number[]; test: number[] }[] = [];
  for (const task of tasks) {
    const idx = indicesFor(task);
    const groups = fuzzyGroups(idx.map((i) => ({ name: items[i]!.row.name, fallbackKey: items[i]!.sha })));
    const split = groupSplit(groups, idx.map((i) => items[i]!.row[task]), { testSize, seed });
    folds.push({ task, fold: 'held-out', train: split.train.map((k) => idx[k]!), test: split.test.map((k) => idx[k]!) });
  }
  for (const task of tasks) {
    const idx = indicesFor(task);
    for (const f of leaveOneSourceOut(idx.map((i) => items[i]!.row.source))) {
      const train = f.train.map((k) => idx[k]!);
      if (new Set(train.map((i) => items[i]!.row[task])).size < 2) continue;
      folds.push({ task, fold: `LOSO ${f.source}`, train, test: f.test.map((k) => idx[k]!) });
    }
  }
  const wanted = seedStudyFolds();
  if (wanted.length > 0) {
    const nameOf = (f: (typeof folds)[number]) => f.fold.replace(/^LOSO /, '');
    // A named source may still have no fold for a task (a left-out source that leaves one class): say so.
    const unknown = wanted.filter((w) => !folds.some((f) => foldMatches(nameOf(f), w)));
    if (unknown.length > 0) {
      throw new Error(`--seed-study-folds: no fold ${unknown.join(', ')}; the folds are ${[...new Set(folds.map(nameOf))].join(', ')}`);
    }
    folds.splice(0, folds.length, ...folds.filter((f) => wanted.some((w) => foldMatches(nameOf(f), w))));
  }
  const out: Record<string, unknown>[] = [];
  for (const f of folds) {
    const started = Date.now();
    const mirror = taskTta[f.task] === 'mirror';
    const viewsOf = (i: number): Float32Array[] => (mirror ? [x[i]!, xFlip![i]!] : [x[i]!]);
    // logits[fit][row][view]
    const logits: Float32Array[][][] = [];
    let head0: HeadModel | undefined;
    for (let s = 0; s < n; s++) {
      const h = await fit(f.task, f.train, x, features, { ...taskHeadOpts(f.task), seeds: 1, seed: seed + s }, `${f.task}-seed-study`, extraViews(f.task));
      head0 ??= h;
      logits.push(f.test.map((i) => viewsOf(i).map((e) => denseForward(h.layers, headInput(h, e)))));
    }
    const truth = f.test.map((i) => items[i]!.row[f.task]!);
    const score = (subset: readonly number[]): { accuracy: number; macroF1: number } => {
      const predicted = f.test.map((i, r) => {
        const views = viewsOf(i);
        const probs: Record<string, number> = {};
        views.forEach((e, v) => {
          const mean = new Float32Array(logits[0]![r]![v]!.length);
          for (const s of subset) logits[s]![r]![v]!.forEach((l, c) => (mean[c] = mean[c]! + l / subset.length));
          for (const [label, p] of Object.entries(probabilitiesFromLogits(head0!, mean, e))) probs[label] = (probs[label] ?? 0) + p / views.length;
        });
        return topLabel(probs).label;
      });
      const rep = classificationReport(truth, predicted, labelsOf(f.task));
      return { accuracy: rep.accuracy, macroF1: rep.macroF1 };
    };
    const rand = seededRandom(seed * 7919 + folds.indexOf(f));
    const bySize = sizes.map((k) => {
      // Disjoint blocks of consecutive seeds (independent ensembles), and random k-subsets of the n fits.
      const blocks = Array.from({ length: Math.floor(n / k) }, (_, b) => score(Array.from({ length: k }, (_, j) => b * k + j)));
      const drawn =
        k === n
          ? []
          : Array.from({ length: draws }, () => {
              const pool = Array.from({ length: n }, (_, j) => j);
              for (let j = n - 1; j > 0; j--) {
                const r = Math.floor(rand() * (j + 1));
                [pool[j], pool[r]] = [pool[r]!, pool[j]!];
              }
              return score(pool.slice(0, k));
            });
      return {
        k,
        blocks: blocks.map((b) => ({ accuracy: round6(b.accuracy), macroF1: round6(b.macroF1) })),
        ...(drawn.length > 0 ? { random: { accuracy: summary(drawn.map((d) => d.accuracy)), macroF1: summary(drawn.map((d) => d.macroF1)) } } : {}),
      };
    });
    const row = { task: f.task, fold: f.fold, n: f.test.length, fits: n, asServed: mirror ? 'photo + mirror' : 'photo', seconds: Math.round((Date.now() - started) / 1000), bySize };
    out.push(row);
    log(`seed study ${f.task} ${f.fold}: ${bySize.map((b) => `k=${b.k} ${b.random ? `${b.random.accuracy.mean.toFixed(3)} ± ${b.random.accuracy.sd.toFixed(3)}` : b.blocks[0]!.accuracy.toFixed(3)}`).join(', ')}`);
    mkdirSync(path.dirname(outFile), { recursive: true });
    writeFileSync(outFile, JSON.stringify({ command, seed, fits: n, folds: out }, null, 2) + '\n');
  }
}

/** `--seed-study-folds`, split: fold names (`held-out`, or a left-out source). */
function seedStudyFolds(): string[] {
  return (args['seed-study-folds'] ?? '').split(',').map((v) => v.trim()).filter((v) => v !== '');
}

/** A source is named in full (`CShorten/NIKE_vs_ADIDAS`) or by its owner (`CShorten`), as the README's tables do. */
function foldMatches(name: string, wanted: string): boolean {
  return name === wanted || name.startsWith(`${wanted}/`);
}

// Six digits: four made 196/231 read back as 0.8485, which prints as 0.849 at three decimals where the figure is 0.848.
function round6(v: number): number {
  return Number(v.toFixed(6));
}

const results: Record<string, TaskResult> = {};
for (const task of ['hype', 'brand'] as const) {
  log(`training ${task}`);
  const r = await evaluateTask(task, x, features, taskHeadOpts(task), true, extraViews(task));
  results[task] = r;
  log(`${task}: held-out accuracy ${r.held.accuracy.toFixed(3)}, macro-F1 ${r.held.macroF1.toFixed(3)} (n=${r.held.n})`);
  for (const f of r.loso) log(`  LOSO ${f.source}: ${f.report ? `accuracy ${f.report.accuracy.toFixed(3)} macro-F1 ${f.report.macroF1.toFixed(3)}` : f.note}`);
}

// Ablation: the same splits with one step changed at a time, from cached variants only.
let ablationCommand = command;
const ablation: { step: string; spec: FeatureSpec; head: string; hype?: Record<string, number | string>; brand?: Record<string, number | string> }[] = [];
if (args.ablation) {
  const variants: { step: string; spec: FeatureSpec; opts: TrainHeadOptions; flipAugment?: boolean }[] = [
    { step: 'baseline: raw image, no orientation handling, standardised, linear', spec: { trim: false, flipAverage: false, l2: false }, opts: headOpts },
    { step: '+ flip augmentation (mirrored copies in training)', spec: { trim: false, flipAverage: false, l2: false }, opts: headOpts, flipAugment: true },
    { step: '+ flip augmentation + L2 normalisation', spec: { trim: false, flipAverage: false, l2: true }, opts: headOpts, flipAugment: true },
    { step: 'instead: flip-average embedding (orientation-invariant)', spec: { trim: false, flipAverage: true, l2: false }, opts: headOpts },
    { step: 'instead: flip-average + L2 normalisation', spec: { trim: false, flipAverage: true, l2: true }, opts: headOpts },
    { step: '+ trim white margin', spec: { trim: true, flipAverage: true, l2: true }, opts: headOpts },
    { step: 'MLP head (64 hidden) instead of linear', spec: features, opts: { ...headOpts, type: 'mlp', epochs: 40 }, flipAugment: flipAugment },
    { step: 'no class weights', spec: features, opts: { ...headOpts, classWeight: 'none' }, flipAugment: flipAugment },
  ];
  for (const v of variants) {
    const X = await embedAll(v.spec, true);
    if (!X) {
      log(`ablation: ${v.step}: embeddings not cached, skipped`);
      continue;
    }
    const row: (typeof ablation)[number] = { step: v.step, spec: v.spec, head: v.opts.type ?? 'linear' };
    for (const task of ['hype', 'brand'] as const) {
      let opts = v.opts;
      if (v.flipAugment) {
        // Mirrored copies: train on both views, test on the plain one (the cached flip variant).
        const flipped = await store.embeddings.getMany(items.map((i) => i.sha), backbone.name, prepKey(variantOf(v.spec, true)));
        if (flipped.size < items.length) continue;
        opts = { ...v.opts };
        const idx = indicesFor(task);
        const groups = fuzzyGroups(idx.map((i) => ({ name: items[i]!.row.name, fallbackKey: items[i]!.sha })));
        const split = groupSplit(groups, idx.map((i) => items[i]!.row[task]), { testSize, seed });
        const train = split.train.map((k) => idx[k]!);
        const test = split.test.map((k) => idx[k]!);
        const head = await trainHead(
          {
            task,
            id: 'ablation',
            backbone: backbone.name,
            prepVersion: 'ablation',
            features: v.spec,
            x: [...train.map((i) => X[i]!), ...train.map((i) => flipped.get(items[i]!.sha)!)],
            y: [...train.map((i) => items[i]!.row[task]!), ...train.map((i) => items[i]!.row[task]!)],
          },
          opts,
        );
        const held = report(task, head, test, X).rep;
        const cells: Record<string, number | string> = { heldAccuracy: round3(held.accuracy), heldMacroF1: round3(held.macroF1) };
        for (const fold of leaveOneSourceOut(idx.map((i) => items[i]!.row.source))) {
          const tr = fold.train.map((k) => idx[k]!);
          const te = fold.test.map((k) => idx[k]!);
          if (new Set(tr.map((i) => items[i]!.row[task])).size < 2) continue;
          const h = await trainHead(
            { task, id: 'ablation', backbone: backbone.name, prepVersion: 'ablation', features: v.spec, x: [...tr.map((i) => X[i]!), ...tr.map((i) => flipped.get(items[i]!.sha)!)], y: [...tr, ...tr].map((i) => items[i]!.row[task]!) },
            opts,
          );
          const { rep } = report(task, h, te, X);
          cells[`loso:${fold.source}`] = `${round3(rep.accuracy)} / ${round3(rep.macroF1)}`;
        }
        row[task] = cells;
        continue;
      }
      const r = await evaluateTask(task, X, v.spec, opts, true);
      const cells: Record<string, number | string> = { heldAccuracy: round3(r.held.accuracy), heldMacroF1: round3(r.held.macroF1) };
      for (const f of r.loso) if (f.report) cells[`loso:${f.source}`] = `${round3(f.report.accuracy)} / ${round3(f.report.macroF1)}`;
      row[task] = cells;
    }
    ablation.push(row);
    log(`ablation: ${v.step}: ${JSON.stringify({ hype: row.hype, brand: row.brand })}`);
  }
}

function round3(v: number): number {
  return Number(v.toFixed(3));
}

// Write the heads and the README.
const out = path.resolve(args.out!);
mkdirSync(out, { recursive: true });
const createdAt = new Date().toISOString();
for (const task of ['hype', 'brand'] as const) {
  const r = results[task]!;
  const head: HeadModel = {
    ...r.head,
    // Served with the learnt turn: the file names that feature space (`+lt<n>`), the one a community run's embedder
    // trains in, so the training gate can score the shipped head against a candidate (plugins/training pipeline).
    ...(args['learnt-turn'] ? { features: { ...r.head.features, learntTurn: true }, prepVersion: featureKey({ ...r.head.features, learntTurn: true }) } : {}),
    id: `${task}-default`,
    createdAt,
    meta: {
      ...r.head.meta,
      command,
      data: path.basename(path.dirname(source.location)) + '/' + path.basename(source.location),
      split: { ...r.split, testSize, seed },
      heldOut: { accuracy: r.held.accuracy, macroF1: r.held.macroF1, weightedF1: r.held.weightedF1, n: r.held.n },
    },
  };
  writeFileSync(path.join(out, `${task}.head.json`), JSON.stringify(head));
  log(`wrote ${path.join(out, `${task}.head.json`)}`);
}
// Without --ablation, keep the last measured ablation (it says which command produced it).
let keptAblation: unknown;
if (!args.ablation) {
  try {
    const previous = JSON.parse(readFileSync(path.join(out, 'metrics.json'), 'utf8')) as { ablation?: unknown[]; ablationCommand?: string; command?: string };
    if (Array.isArray(previous.ablation) && previous.ablation.length > 0) {
      keptAblation = previous.ablation;
      ablation.push(...(previous.ablation as typeof ablation));
      ablationCommand = previous.ablationCommand ?? previous.command ?? 'unknown';
    }
  } catch {
    // No previous metrics: the table stays empty.
  }
}
// 95 % bootstrap intervals over the tested photos (seeded): which photos were tested, not how the fit fell. Each
// report's is computed once, for metrics.json and RESULTS.md alike.
const intervals = new Map<ClassificationReport, BootstrapInterval>();
const intervalOf = (rep: ClassificationReport): BootstrapInterval => {
  if (!intervals.has(rep)) intervals.set(rep, bootstrapInterval(rep.confusion));
  return intervals.get(rep)!;
};
const metrics = {
  createdAt,
  command,
  backbone: backbone.name,
  features,
  ...(args['learnt-turn'] ? { servedWith: { learntTurn: true } } : {}),
  head: { hype: taskHeadOpts('hype'), brand: taskHeadOpts('brand') },
  flipAugment,
  augmentCopies: taskAugment,
  sceneCopies: taskScenes,
  remnantScenes: [...remnantScenes],
  mixTrim: [...mixTrim],
  turnedCopies: [...turnedCopies],
  ...(pairWornCopies.size > 0 ? { pairWornCopies: [...pairWornCopies] } : {}),
  sourceBalanced,
  seed,
  testSize,
  results: Object.fromEntries(
    Object.entries(results).map(([task, r]) => [
      task,
      {
        split: r.split,
        heldOut: { accuracy: r.held.accuracy, macroF1: r.held.macroF1, weightedF1: r.held.weightedF1, interval: intervalOf(r.held), perClass: r.held.perClass, confusion: r.held.confusion },
        leaveOneSourceOut: r.loso.map((f) => ({
          source: f.source,
          n: f.n,
          trainLabels: f.trainLabels,
          ...(f.report ? { accuracy: f.report.accuracy, macroF1: f.report.macroF1, interval: intervalOf(f.report), perClass: f.report.perClass, confusion: f.report.confusion } : {}),
          ...(f.knownAccuracy !== undefined ? { knownClassAccuracy: f.knownAccuracy } : {}),
          ...(f.unseenToOther !== undefined ? { unseenClassToOtherOrLowConfidence: f.unseenToOther } : {}),
          ...(f.note ? { note: f.note } : {}),
        })),
      },
    ]),
  ),
  ablation,
  ablationCommand: keptAblation !== undefined ? ablationCommand : command,
};
writeFileSync(path.join(out, 'metrics.json'), JSON.stringify(metrics, null, 2) + '\n');
const reportText = (['hype', 'brand'] as const)
  .map((task) => {
    const r = results[task]!;
    const heldInterval = intervalOf(r.held);
    const loso = r.loso
      .map((f) =>
        f.report
          ? `- hold out **${f.source}** (n=${f.n}; trained on ${f.trainLabels.join('/')}): accuracy ${f.report.accuracy.toFixed(3)} [${formatRange(intervalOf(f.report).accuracy)}], macro-F1 ${f.report.macroF1.toFixed(3)}${f.knownAccuracy !== undefined ? `, accuracy on classes seen in training ${f.knownAccuracy.toFixed(3)}` : ''}${f.unseenToOther !== undefined ? `, unseen-class images sent to other/low-confidence ${f.unseenToOther.toFixed(3)}` : ''}`
          : `- hold out **${f.source}** (n=${f.n}): not measurable — ${f.note}`,
      )
      .join('\n');
    return `### ${task}\n\nGroup split: ${r.split.train} train / ${r.split.test} held-out images, ${r.split.groups} fuzzy-name groups.\n\n\`\`\`\n${formatReport(r.held)}\n\`\`\`\n\n95 % bootstrap interval over the held-out images: accuracy ${formatRange(heldInterval.accuracy)}, macro-F1 ${formatRange(heldInterval.macroF1)}.\n\nLeave-one-source-out (accuracy with its 95 % bootstrap interval):\n${loso}\n`;
  })
  .join('\n');
const ablationText =
  ablation.length === 0
    ? '_Run with `--ablation` to fill this table._'
    : [
        `Measured by \`${ablationCommand}\` (same seed and splits). Each cell: held-out accuracy / macro-F1, and per held-out source (LOSO) accuracy / macro-F1.`,
        '',
        '| step | hype held-out acc / macro-F1 | hype LOSO (acc / macro-F1 per held-out source) | brand held-out acc / macro-F1 | brand LOSO |',
        '|---|---|---|---|---|',
        ...ablation.map((a) => {
          const cell = (r: Record<string, number | string> | undefined, loso: boolean): string =>
            !r ? 'n/a' : loso ? Object.entries(r).filter(([k]) => k.startsWith('loso:')).map(([k, v]) => `${k.slice(5).split('/')[0]}: ${v}`).join('; ') : `${r.heldAccuracy} / ${r.heldMacroF1}`;
          return `| ${a.step} | ${cell(a.hype, false)} | ${cell(a.hype, true)} | ${cell(a.brand, false)} | ${cell(a.brand, true)} |`;
        }),
      ].join('\n');
writeFileSync(path.join(out, 'RESULTS.md'), `<!-- generated by scripts/train-defaults.ts; do not edit by hand -->\n# Default heads: measured results\n\nCommand: \`${command}\`  \nBackbone: ${backbone.name} (frozen), features ${JSON.stringify(features)}${args['learnt-turn'] ? ' (served with the learnt turn off studio backdrops)' : ''}${flipAugment ? ' + flip augmentation' : ''}${augmentCopies > 0 ? ` + augmented copies (crop/colour/background jitter) per training image: hype ${taskAugment.hype}, brand ${taskAugment.brand}` : ''}${sceneCopies > 0 ? ` + scene composites per training image: hype ${taskScenes.hype}, brand ${taskScenes.brand}${remnantScenes.size > 0 ? ` (with floor remnants: ${[...remnantScenes].join(', ')})` : ''}` : ''}${mixTrim.size > 0 ? ` + trimmed views (${[...mixTrim].join(', ')})` : ''}${turnedCopies.size > 0 ? ` + a turned composite served with the learnt turn, and its mirror (${[...turnedCopies].join(', ')})` : ''}${pairWornCopies.size > 0 ? ` + a pair-or-worn composite served with the learnt turn, and its mirror (${[...pairWornCopies].join(', ')})` : ''}${sourceBalanced ? ', source-balanced weights' : ''}${(['hype', 'brand'] as const).filter((t) => taskNuisance[t].length > 0).map((t) => `, ${t}: within-class ${taskNuisance[t].join(' and ')} differences projected out (at most ${nuisanceMax} directions)`).join('')}${(['hype', 'brand'] as const).filter((t) => taskTta[t]).map((t) => `, ${t}: answered with its mirror view too (probabilities averaged, as served)`).join('')}${(['hype', 'brand'] as const).filter((t) => taskTemperature[t] !== 1).map((t) => `, ${t}: softmax temperature ${taskTemperature[t]}`).join('')}, heads hype ${taskHeadOpts('hype').type} / brand ${taskHeadOpts('brand').type}${(['hype', 'brand'] as const).filter((t) => taskSeeds[t] > 1).map((t) => ` (${t}: mean of ${taskSeeds[t]} seeds' fits)`).join('')}, seed ${seed}, test size ${testSize}.  \nGenerated ${createdAt}.\n\n${reportText}\n## What each step buys\n\n${ablationText}\n`);
log(`wrote ${path.join(out, 'metrics.json')} and RESULTS.md`);
await store.close();
