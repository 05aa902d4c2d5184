/**
 * `npx tsx scripts/eval-shift.ts --data <manifest.csv>`: how the input pipeline holds up when photos stop
 * looking like the development set's white product shots — the situation of users' phone photos.
 *
 * The development photos are all studio shots on white, so a held-out split cannot show what background
 * handling buys. This script makes the shift itself, from data we have: each held-out photo's shoe (its
 * non-white pixels) is pasted, smaller and off-centre, onto a generated background — a plain grey wall, a
 * lit floor with texture, or a busy "shop shelf" of coloured blocks — with a random mirror. Then, per input
 * pipeline, heads are trained on the (clean) training side and scored on the clean and on each shifted copy
 * of the held-out side:
 * - `vprep`: contain on white at the backbone size, + flip augmentation; `vprep-trim`: trim the white margin
 *   first;
 * - `study`: engine/ml/preprocess — background whitening (flood fill, GrabCut on busy borders), crop to the
 *   object, orientation normalisation (Canny + Hough: toe to the right);
 * - `study-noorient`: the same without orientation normalisation, + flip augmentation;
 * - `study-noorient-loc`: the same, the normaliser starting from the shoe localiser's box off studio backdrops
 *   (plugins/vision/lib/localise.ts), in training views and in serving; a final `@loc` on any study pipeline
 *   (e.g. `study-noorient+scene@loc`) serves with the localiser but trains exactly as without it.
 * After `+`, extra training views as `train:defaults` makes them (served and scored with the base pipeline):
 * `+trim` the trimmed contain-on-white views and their mirrors (`--mix-trim`), `+aug` one augmented copy
 * (`--augment 1`), `+scene` `--scene-copies` scene composites (`--scene-augment N`; `+rem`: normalised keeping
 * floor remnants, `--remnant-scenes`; `+up`: trained as `--locate --upright` trains, every view through the upright
 * step and the photos' own views through the shoe localiser, under the same cache keys; `+tilt` (with `--angle-model`):
 * one composite per photo turned as users' photos are, served as a head with `learntTurn` serves, and its mirror —
 * views served with the learnt turn, to train on). The training scenes
 * (plugins/vision/lib/composite.ts) are not this test's backgrounds, so it measures unseen backgrounds.
 * E.g. the shipped brand head is `study-noorient+trim+aug+scene` (`--scene-copies 2`). `--tasks hype,brand`
 * restricts the tasks (the hype head is an MLP, the brand head linear unless `--brand-head mlp`);
 * `--kinds grey,floor,busy` picks the backgrounds (also a training scene's name, e.g. `carpet,tiles,fabric`:
 * held-out photos on a kind of background the heads have seen, marked `(seen)`); `grey+tilt` also lays the shoe
 * diagonally (35–90° either way), `grey+spin` turns it by any angle (35–325°); `+pair` draws the other shoe of the
 * pair beside it, `+feet` wears it (a trouser leg from the top of the frame over the collar). A final `@up` on a study pipeline
 * serves with the upright step (engine/ml/preprocess `upright`: long axis level, sole down) while training as
 * without it (`@loc@up` for both). `@crops` (an experiment for pairs in frame) also scores the left and right 62 %
 * of the framed object and averages the three views' probabilities; `@cropsmax` keeps the most confident view.
 * `@mirror` averages the probabilities of the served input and its mirror image (how a head with `tta: "mirror"`
 * is served) and logs the same head's figures on the photo alone beside them.
 * `@s5` serves the mean of 5 fits from consecutive seeds (`trainHead`'s `seeds`: a linear head averages the weights,
 * an MLP lays the fits side by side);
 * `@ns` / `@nv` / `@nsv` fit the head with the within-class differences between sources / training views / both
 * projected out of its input (`trainHead`'s `nuisanceGroups`; train:defaults' `--nuisance`);
 * `@o2` fits the head from seed + 2 (the split stays the seed's): how much one fit's luck moves the figures.
 * `--heads DIR` scores the head files in DIR (`hype.head.json`, `brand.head.json`, e.g. assets/models: the shipped
 * heads themselves) instead of fitting heads: no training views are embedded, the pipelines say only how to serve
 * (their `+` extras and `@s`/`@o`/`@n` are ignored), and a file must name `--backbone`.
 * A second table gives, per column, the share of these real shoes serving would answer "I don't see a sneaker" (the
 * out-of-distribution threshold, or no shoe found by the localiser), the share it would mark low confidence, and the
 * accuracy of the answers it would give without a warning.
 * `@learn` (with `@up` and `--angle-model FILE`, e.g. assets/models/angle-inception_v3_m67.json) serves with the learnt
 * turn, as a head whose features say `learntTurn` is served (plugins/vision/lib/angle.ts; `npm run train:angle`);
 * `--learn-dump FILE` also writes each photo's first look and turned view for replaying other decision rules offline
 * (scripts/replay-turn-rules.ts). `--tta-dump FILE` (with `--heads`) writes, instead of scoring, the head's
 * probabilities on test-time views of each served input (mirror, zoomed in and out) for scripts/replay-tta.ts.
 * `--probs-dump FILE` also writes each column's answers, as served, at a range of softmax temperatures, for
 * scripts/calibrate.ts `--shift FILE` (scripts/lib/probs-dump.ts).
 * `@oracle` turns each turned kind's composite back by its true angle before serving (the upright step's best
 * case); `--turn-report` logs, per turned kind, how the step's turns compare with the true ones and the accuracy
 * in each group (left alone, within 5°, 5–15°, 15–30°, wrong by more).
 * `--concat-backbone NAME` fits and serves every head on `--backbone`'s embedding and NAME's side by side (a
 * measurement; photos and mirrors only, see the option's comment).
 * Same split as train:defaults (fuzzy-name groups, seed 42, 10 %). Embeddings of the training side are
 * cached in `--cache` (default data/train-defaults.db, under train:defaults' keys). Prints a markdown table;
 * `--json` prints the rows.
 *
 * Heavy (a few minutes on 2 cores with onnxruntime): run it with `nice -n 10` on shared machines.
 */
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { openStore } from '../engine/store/index.ts';
import { seededRandom } from '../engine/random.ts';
import { loadBackbone, isBackboneName } from '../engine/ml/backbones.ts';
import type { RawImage } from '../engine/ml/types.ts';
import { classificationReport } from '../engine/ml/metrics.ts';
import { pasteShoe, SHIFT_BACKGROUNDS, TRAINING_SCENES, type BackgroundFn } from '../plugins/vision/lib/composite.ts';
import { asEmbedItems, loadLabelledItems, readLabelledSource, withLabelOverlays, type LabelledItem } from '../plugins/vision/lib/dataset.ts';
import { concatEmbeddings, embedAugmentedCopy, embedItems, embedTurnedCopy, locatorFor, mirrorInput, prepareInputPlaced, variantOf } from '../plugins/vision/lib/features.ts';
import { angleFileKey, makeTurner, parseAngleModel, predictTurn, type AngleModel } from '../plugins/vision/lib/angle.ts';
import { loadHeadFile, predictHead, type FeatureSpec, type HeadModel } from '../plugins/vision/lib/head.ts';
import { decodePixels } from '../plugins/vision/lib/input.ts';
import { labelsOf, type Task } from '../plugins/vision/lib/labels.ts';
import { fuzzyGroups, groupSplit } from '../plugins/vision/lib/split.ts';
import { trainHead } from '../plugins/vision/lib/train.ts';
import { dumpAnswer } from './lib/probs-dump.ts';

const { values: args } = parseArgs({
  options: {
    data: { type: 'string' },
    labels: { type: 'string' },
    cache: { type: 'string', default: 'data/train-defaults.db' },
    backbone: { type: 'string', default: 'mobilenet_v2' },
    seed: { type: 'string', default: '42' },
    pipelines: { type: 'string', default: 'vprep,study,study-noorient' },
    'scene-copies': { type: 'string', default: '1' },
    json: { type: 'boolean', default: false },
    samples: { type: 'string' },
    limit: { type: 'string' },
    tasks: { type: 'string', default: 'hype,brand' },
    'brand-head': { type: 'string', default: 'linear' },
    kinds: { type: 'string', default: 'grey,floor,busy' },
    'turn-report': { type: 'boolean', default: false },
    heads: { type: 'string' },
    'angle-model': { type: 'string' },
    'learn-on': { type: 'string' },
    'learn-confidence': { type: 'string' },
    'learn-dump': { type: 'string' },
    'tta-dump': { type: 'string' },
    'probs-dump': { type: 'string' },
    'concat-backbone': { type: 'string' },
  },
});
if (!args.data) {
  console.error('usage: npx tsx scripts/eval-shift.ts --data <manifest.csv|folder> [--labels assets/labels/x.csv] [--backbone mobilenet_v2] [--pipelines vprep,study,study-noorient,study-noorient+trim+scene] [--scene-copies 1] [--brand-head linear|mlp] [--json]');
  process.exit(2);
}
if (args['brand-head'] !== 'linear' && args['brand-head'] !== 'mlp') {
  console.error(`--brand-head is linear or mlp, not ${args['brand-head']}`);
  process.exit(2);
}
const backboneName = args.backbone!;
if (!isBackboneName(backboneName)) throw new Error(`unknown backbone ${backboneName}`);
// --probs-dump appends per column: start the file empty so one run's answers are not mixed with another's.
if (args['probs-dump']) writeFileSync(args['probs-dump'], '');
const seed = Number(args.seed);
const sceneCopies = Number(args['scene-copies']);
const log = (m: string): void => console.error(`[eval-shift] ${m}`);

/** The serving pipelines (what the held-out photos go through). */
type Base = 'vprep' | 'vprep-trim' | 'study' | 'study-noorient' | 'study-noorient-loc';
const BASES: Readonly<Record<Base, FeatureSpec>> = {
  vprep: { trim: false, flipAverage: false, l2: true },
  'vprep-trim': { trim: true, flipAverage: false, l2: true },
  study: { trim: false, flipAverage: false, l2: true, normalise: true, orient: true },
  'study-noorient': { trim: false, flipAverage: false, l2: true, normalise: true, orient: false },
  'study-noorient-loc': { trim: false, flipAverage: false, l2: true, normalise: true, orient: false, locate: true },
};
/** Extra training views a pipeline name may add after `+`: the `train:defaults` options of the same name. */
type Extra = 'trim' | 'aug' | 'scene' | 'rem' | 'up' | 'tilt';
const EXTRAS: readonly Extra[] = ['trim', 'aug', 'scene', 'rem', 'up', 'tilt'];
/**
 * `study-noorient+trim+scene` → serve `study-noorient`, train with trimmed views and scene composites too. A
 * final `@loc` serves with the shoe localiser while training exactly as without it (`locate` at serving only).
 */
function parsePipeline(name: string): {
  base: Base;
  extras: Set<Extra>;
  serveLocated: boolean;
  serveUpright: boolean;
  oracle: boolean;
  learn: boolean;
  crops?: CropVote;
  mirror: boolean;
  headSeeds: number;
  headSeedOffset: number;
  nuisance: readonly ('source' | 'view')[];
} {
  const [stem, ...serving] = name.split('@');
  for (const sv of serving) {
    if (sv !== 'loc' && sv !== 'up' && sv !== 'oracle' && sv !== 'learn' && sv !== 'crops' && sv !== 'cropsmax' && sv !== 'mirror' && sv !== 'ns' && sv !== 'nv' && sv !== 'nsv' && !/^[so][1-9]\d?$/.test(sv)) {
      throw new Error(`unknown pipeline ${name}: after @ come loc (shoe localiser), up (upright step), oracle (turned shoes turned back by their true angle), crops or cropsmax (also score the left and right part of the framed shoe), mirror (average with the mirrored input, as a head with tta: mirror is served), sN (the mean of N fits from consecutive seeds), oN (the head's seed + N), ns / nv / nsv (the head fitted with the within-class source / view / both differences projected out)`);
    }
  }
  const headSeeds = Number(serving.find((sv) => /^s\d/.test(sv))?.slice(1) ?? 1);
  const headSeedOffset = Number(serving.find((sv) => /^o\d/.test(sv))?.slice(1) ?? 0);
  const serveLocated = serving.includes('loc');
  const serveUpright = serving.includes('up');
  const crops: CropVote | undefined = serving.includes('cropsmax') ? 'max' : serving.includes('crops') ? 'mean' : undefined;
  const [base, ...extras] = stem!.split('+');
  if (!(base! in BASES)) throw new Error(`unknown pipeline ${name}: the part before + is one of ${Object.keys(BASES).join(', ')}`);
  for (const e of extras) if (!EXTRAS.includes(e as Extra)) throw new Error(`unknown pipeline ${name}: after + come ${EXTRAS.join(', ')}`);
  if (extras.includes('rem') && !extras.includes('scene')) throw new Error(`pipeline ${name}: +rem only qualifies +scene`);
  if ((serveLocated || serveUpright || extras.includes('up')) && !BASES[base as Base].normalise) throw new Error(`pipeline ${name}: @loc, @up and +up need a study base`);
  if (serving.includes('learn') && (!serveUpright || args['angle-model'] === undefined)) throw new Error(`pipeline ${name}: @learn needs @up and --angle-model`);
  if (extras.includes('tilt') && (args['angle-model'] === undefined || !BASES[base as Base].normalise)) throw new Error(`pipeline ${name}: +tilt needs a study base and --angle-model`);
  const nu = serving.find((sv) => /^n[sv]+$/.test(sv)) ?? '';
  const nuisance = [...(nu.includes('s') ? ['source' as const] : []), ...(nu.includes('v') ? ['view' as const] : [])];
  return { base: base as Base, extras: new Set(extras as Extra[]), serveLocated, serveUpright, oracle: serving.includes('oracle'), learn: serving.includes('learn'), ...(crops ? { crops } : {}), mirror: serving.includes('mirror'), headSeeds, headSeedOffset, nuisance };
}

/**
 * How `@crops` combines the three views of a held-out photo (the framed input, and its object's left and right
 * {@link CROP_SHARE}): `mean` averages their probabilities, `max` keeps the most confident view's answer. An
 * experiment for pairs in frame: the framing holds both shoes, a crop may hold one.
 */
type CropVote = 'mean' | 'max';
const CROP_SHARE = 0.62;

/**
 * The left and right {@link CROP_SHARE} of the object in a normalised model input (white around the shoe),
 * each contained on white at the same size again. The object's extent is its non-white pixels.
 */
async function sideCrops(input: Float32Array, size: number): Promise<Float32Array[]> {
  let x0 = size;
  let x1 = -1;
  let y0 = size;
  let y1 = -1;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const i = (y * size + x) * 3;
      if (input[i]! < 0.94 || input[i + 1]! < 0.94 || input[i + 2]! < 0.94) {
        x0 = Math.min(x0, x);
        x1 = Math.max(x1, x);
        y0 = Math.min(y0, y);
        y1 = Math.max(y1, y);
      }
    }
  }
  if (x1 < x0) return [input, input];
  const bytes = Buffer.alloc(size * size * 3);
  for (let i = 0; i < bytes.length; i++) bytes[i] = Math.round(Math.min(1, Math.max(0, input[i]!)) * 255);
  const w = x1 - x0 + 1;
  const h = y1 - y0 + 1;
  const cw = Math.max(1, Math.round(w * CROP_SHARE));
  const out: Float32Array[] = [];
  for (const left of [x0, x1 + 1 - cw]) {
    const px = await sharp(bytes, { raw: { width: size, height: size, channels: 3 } })
      .extract({ left, top: y0, width: cw, height: h })
      .resize(size, size, { fit: 'contain', background: '#ffffff' })
      .raw()
      .toBuffer();
    const f = new Float32Array(px.length);
    for (let i = 0; i < px.length; i++) f[i] = px[i]! / 255;
    out.push(f);
  }
  return out;
}
/**
 * A turned composite turned back by its true angle (`clockwise` degrees as displayed), on a canvas that holds it;
 * the corners the turn opens take the colour of the frame's top-left pixel (the wall).
 */
async function turnBack(raw: RawImage, clockwise: number): Promise<RawImage> {
  const [r, g, b] = [raw.data[0]!, raw.data[1]!, raw.data[2]!];
  const out = await sharp(Buffer.from(raw.data), { raw: { width: raw.width, height: raw.height, channels: 3 } })
    .rotate(-clockwise, { background: { r, g, b } })
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { data: out.data, width: out.info.width, height: out.info.height, channels: 3 };
}

/**
 * `--turn-report`: how the upright step's turns compare with the true ones on a turned kind, and the accuracy of
 * the answers in each group (left alone; turned back to within 5°, 5–15°, 15–30°; turned wrong by more).
 */
function turnReport(step: readonly number[], truth: readonly number[], labels: readonly string[], preds: readonly string[]): string {
  const groups = new Map<string, { n: number; right: number; errs: number[] }>();
  for (const [i, t] of step.entries()) {
    const err = Math.abs(((((t - truth[i]!) % 360) + 540) % 360) - 180);
    const g = t === 0 ? 'left alone' : err <= 5 ? '≤5°' : err <= 15 ? '5–15°' : err <= 30 ? '15–30°' : '>30°';
    const e = groups.get(g) ?? { n: 0, right: 0, errs: [] };
    e.n++;
    if (labels[i] === preds[i]) e.right++;
    if (t !== 0) e.errs.push(err);
    groups.set(g, e);
  }
  return ['left alone', '≤5°', '5–15°', '15–30°', '>30°']
    .filter((g) => groups.has(g))
    .map((g) => {
      const e = groups.get(g)!;
      const med = e.errs.length ? `, median error ${e.errs.sort((a, b) => a - b)[Math.floor(e.errs.length / 2)]!.toFixed(1)}°` : '';
      return `${g}: ${e.n} (accuracy ${(e.right / e.n).toFixed(3)}${med})`;
    })
    .join('; ');
}

const pipelines = args.pipelines!.split(',');
pipelines.forEach(parsePipeline);
// Backgrounds to paste the held-out shoes on: the shift test's own (never trained on), or — marked `seen` in
// the table — a training scene type (held-out photos on a kind of background the heads have seen).
const BACKGROUNDS: Readonly<Record<string, BackgroundFn>> = { ...SHIFT_BACKGROUNDS, ...TRAINING_SCENES };
/**
 * How a kind may also turn the shoe (`grey+tilt`): `tilt` lays it diagonally, 35–90° either way, as on a floor
 * photographed from above or toe-up on a foot; `spin` turns it by any angle 35–325°, upside down included.
 * Clockwise degrees from the seeded draw.
 */
const TURNS: Readonly<Record<string, (random: () => number) => number>> = {
  tilt: (random) => (random() < 0.5 ? -1 : 1) * (35 + random() * 55),
  spin: (random) => 35 + random() * 290,
};
/** What a kind may add to the shoe besides a turn: `pair` the other shoe beside it, `feet` worn (a trouser leg over the collar). */
const MODIFIERS = ['pair', 'feet'] as const;
/** A kind parsed: its background, its turn (if any) and its modifiers. */
function parseKind(k: string): { bg: string; turn?: string; pair: boolean; feet: boolean } {
  const [bg, ...mods] = k.split('+');
  if (!(bg! in BACKGROUNDS)) throw new Error(`unknown --kinds ${k}: one of ${Object.keys(BACKGROUNDS).join(', ')}`);
  const turns = mods.filter((m) => m in TURNS);
  const bad = mods.filter((m) => !(m in TURNS) && !(MODIFIERS as readonly string[]).includes(m));
  if (bad.length > 0 || turns.length > 1 || new Set(mods).size !== mods.length) {
    throw new Error(`unknown --kinds ${k}: a background, optionally +${Object.keys(TURNS).join(' or +')} and +${MODIFIERS.join(', +')}`);
  }
  return { bg: bg!, ...(turns[0] !== undefined ? { turn: turns[0] } : {}), pair: mods.includes('pair'), feet: mods.includes('feet') };
}
const KINDS = ['clean', ...args.kinds!.split(',')];
KINDS.slice(1).forEach(parseKind);
type Kind = string;
const kindLabel = (k: string): string => (k !== 'clean' && parseKind(k).bg in TRAINING_SCENES ? `${k} (seen)` : k);

// --labels a.csv[,b.csv]: label overlays (assets/labels/) that add labels the manifest lacks.
const source = withLabelOverlays(await readLabelledSource(args.data), args.labels?.split(',').filter(Boolean) ?? [], log);
mkdirSync(path.dirname(path.resolve(args.cache!)), { recursive: true });
// The same cache (and keys) as train:defaults: the training side's views are the ones it embeds.
const store = await openStore({ url: `sqlite:${path.resolve(args.cache!)}` });
const backbone = await loadBackbone(backboneName);
const size = backbone.inputSize;
// --concat-backbone NAME (a measurement; train:defaults has the same option): heads fitted on, and photos served as,
// this backbone's embedding and NAME's side by side (concatEmbeddings), NAME's input prepared its own way (its size and
// localiser; the learnt turn's angle file is this backbone's, so NAME's view is not turned by it). Only the photos'
// own training views (`+up` at most) and whole-photo serving (`@mirror`, no `@crops`) are concatenated.
const second = args['concat-backbone'] === undefined ? undefined : await loadBackbone(concatBackbone(args['concat-backbone']));
function concatBackbone(name: string): Parameters<typeof loadBackbone>[0] {
  if (!isBackboneName(name) || name === backboneName) throw new Error(`--concat-backbone takes another backbone than --backbone ${backboneName}, not ${name}`);
  if (args.heads || args['tta-dump'] || args['learn-dump']) throw new Error('--concat-backbone fits its own heads: not with --heads, --tta-dump or --learn-dump');
  for (const p of args.pipelines!.split(',')) {
    const { extras, crops } = parsePipeline(p);
    if ([...extras].some((e) => e !== 'up') || crops) throw new Error(`--concat-backbone: ${p} has training views or crops it does not concatenate (only +up, and no @crops)`);
  }
  return name;
}

const items = await loadLabelledItems(source);
log(`${items.length} labelled images`);
const rawOf = async (it: LabelledItem): Promise<RawImage> => (await decodePixels(await readFile(it.row.file))).raw;

/** The training views of a pipeline (rows in the same order as `list`, repeated per view). */
async function trainViews(name: string, list: readonly LabelledItem[]): Promise<Float32Array[][]> {
  const { base, extras } = parsePipeline(name);
  // +up trains as train:defaults --locate --upright does: every view through the upright step, the photos' own
  // views through the shoe localiser too (synthetic views are normalised without it). Same cache keys, so a
  // train:defaults run after this one embeds little.
  const synthetic: FeatureSpec = extras.has('up') ? { ...BASES[base], upright: true } : BASES[base];
  const spec: FeatureSpec = extras.has('up') ? { ...synthetic, locate: true } : synthetic;
  const embedList = asEmbedItems(list);
  const views = [await embedItems(backbone, embedList, spec, { store })];
  // Flip augmentation, except where orientation normalisation already mirrors every shoe one way.
  if (!spec.orient) views.push(await embedItems(backbone, embedList, spec, { store, mirror: true }));
  if (extras.has('trim')) {
    for (const mirror of [false, true]) views.push(await embedItems(backbone, embedList, BASES['vprep-trim'], { store, mirror }));
  }
  if (extras.has('aug')) views.push(await embedAugmentedCopy(backbone, embedList, synthetic, 0, { store }));
  if (extras.has('scene')) {
    for (let copy = 0; copy < sceneCopies; copy++) {
      log(`${name}: scene copy ${copy + 1}/${sceneCopies}`);
      views.push(await embedItems(backbone, embedList, synthetic, { store, scene: copy, mirror: copy % 2 === 1, remnants: extras.has('rem') }));
    }
  }
  if (extras.has('tilt')) views.push(...(await tiltedViews(list)));
  if (second) {
    // The photo and its mirror (the only views --concat-backbone allows), from the second backbone too.
    const others = [await embedItems(second, embedList, spec, { store }), await embedItems(second, embedList, spec, { store, mirror: true })];
    return views.map((view, v) => view.map((e, i) => concatEmbeddings([e, others[v]![i]!])));
  }
  return views;
}

/**
 * `+tilt`: one more composite per training photo, turned as users' photos are and served as a head with `learntTurn`
 * serves, and its mirror (plugins/vision/lib/features.ts `embedTurnedCopy`, as `train:defaults --turned-copies`
 * makes them; cached in the store under the angle model's hash, so both tasks' training sides share the rows).
 */
async function tiltedViews(list: readonly LabelledItem[]): Promise<Float32Array[][]> {
  // --learn-on / --learn-confidence serve the model at another operating point: other views, so other rows.
  const modelKey = `${angleFileKey(args['angle-model']!)}${args['learn-on'] ? `.on${args['learn-on']}` : ''}${args['learn-confidence'] ? `.c${args['learn-confidence']}` : ''}`;
  const started = Date.now();
  return embedTurnedCopy(backbone, asEmbedItems(list), makeTurner(backbone, angleModel!), {
    seed,
    modelKey,
    store,
    onProgress: (done, total, turned) => {
      if (done % 200 === 0 || done === total) log(`+tilt: ${done}/${total} (${((Date.now() - started) / 1000).toFixed(0)} s, the learnt turn kept ${turned})`);
    },
  });
}

/** A head fitted on a pipeline's training views (`@sN` seeds from seed + `@oN`, `@ns`/`@nv` projections). */
async function fitHead(task: Task, p: string, train: readonly LabelledItem[], headSeeds: number, headSeedOffset: number, nuisance: readonly ('source' | 'view')[]): Promise<HeadModel> {
  const views = await trainViews(p, train);
  const xs = views.flat();
  const ys = views.flatMap(() => train.map((it) => it.row[task]!));
  const features: FeatureSpec = { trim: false, flipAverage: false, l2: true };
  const mlp = task === 'hype' || args['brand-head'] === 'mlp';
  // @ns / @nv: the rows' source, or which training view (plain, mirror, scene copy, …) they are.
  const nuisanceGroups = nuisance.map((kind) => views.flatMap((_, v) => train.map((it) => (kind === 'source' ? (it.row.source ?? '') : String(v)))));
  return trainHead(
    { task, id: `${task}-shift`, backbone: backbone.name, prepVersion: p, features, x: xs, y: ys, ...(nuisanceGroups.length > 0 ? { nuisanceGroups } : {}) },
    mlp ? { type: 'mlp', epochs: 40, seed: seed + headSeedOffset, seeds: headSeeds } : { type: 'linear', epochs: 60, seed: seed + headSeedOffset, seeds: headSeeds },
  );
}

/** `--concat-backbone`: each embedding laid beside the second backbone's embedding of its own input for the photo. */
async function withSecond(embeddings: readonly Float32Array[], inputs: readonly Float32Array[]): Promise<Float32Array[]> {
  const others = await second!.embedImages(inputs, { batchSize: 16 });
  return embeddings.map((e, i) => concatEmbeddings([e, others[i]!]));
}

/** `--heads DIR`: the task's head file there, which must be on `--backbone` (the embeddings it is scored on). */
function shippedHead(task: Task): HeadModel {
  const head = loadHeadFile(path.join(args.heads!, `${task}.head.json`));
  if (head.backbone !== backbone.name) throw new Error(`${task}.head.json in ${args.heads} is on ${head.backbone}, not --backbone ${backbone.name}`);
  return head;
}

/**
 * `--angle-model`: the learnt turn `@learn` serves with (scripts/train-angle.ts); `--learn-on located,segmented` and
 * `--learn-confidence 0.5` serve it at another operating point than its file's.
 */
const angleModel: AngleModel | undefined = args['angle-model']
  ? {
      ...parseAngleModel(JSON.parse(await readFile(args['angle-model'], 'utf8'))),
      ...(args['learn-on'] ? { applyTo: args['learn-on'].split(',') as NonNullable<AngleModel['applyTo']>[number][] } : {}),
      ...(args['learn-confidence'] ? { minConfidence: Number(args['learn-confidence']) } : {}),
    }
  : undefined;

/**
 * `--learn-dump FILE` (with `@learn`): for an offline study of the learnt turn's decision rule, appends one JSON line
 * per held-out photo and turned kind: its truth and true turn, the first look (the served view as without the learnt
 * turn: background, the upright step's rotation, the angle model's reading and confidence, and the head's answer
 * with the mirror view) and, where the first look reads 15° or more, the same for the view turned by that reading
 * and its second look. Any rule that picks one of the two views can then be scored exactly, without embedding again.
 */
async function dumpLooks(task: Task, head: HeadModel, serve: ReturnType<typeof variantOf>, tests: Map<string, RawImage[]>, trueTurns: Map<string, number[]>, truth: readonly string[]): Promise<void> {
  const model = angleModel!;
  const { applyTo } = makeTurner(backbone, model);
  const locator = locatorFor(backbone, serve);
  const answer = async (input: Float32Array): Promise<{ turn: number; confidence: number; label: string; probabilities: Record<string, number> }> => {
    const [e, m] = await backbone.embedImages([input, mirrorInput(input, size)], { batchSize: 2 });
    const reading = predictTurn(model, e!);
    const pred = predictHead(head, e!, [m!]);
    return { turn: reading.turn, confidence: reading.confidence, label: pred.label, probabilities: pred.probabilities };
  };
  for (const kind of KINDS.slice(1)) {
    const turns = trueTurns.get(kind);
    for (const [i, raw] of tests.get(kind)!.entries()) {
      const a = await prepareInputPlaced(raw, size, serve, locator);
      const line: Record<string, unknown> = { task, kind, i, truth: truth[i], trueTurn: turns?.[i] ?? 0, background: a.framing?.background, rotation: a.framing?.rotation ?? 0 };
      if (applyTo.includes(a.framing!.background)) {
        const first = await answer(a.input);
        line.first = first;
        if (Math.abs(first.turn) >= 15) {
          const b = await prepareInputPlaced(raw, size, { ...serve, turn: (a.framing?.rotation ?? 0) + first.turn }, locator);
          line.turned = await answer(b.input);
        }
      } else {
        const [e, m] = await backbone.embedImages([a.input, mirrorInput(a.input, size)], { batchSize: 2 });
        line.plain = predictHead(head, e!, [m!]).label;
      }
      appendFileSync(args['learn-dump']!, `${JSON.stringify(line)}\n`);
    }
    log(`${task} ${kind}: looks dumped to ${args['learn-dump']}`);
  }
}

/** The served input rescaled about its centre: `factor` > 1 zooms in (crops the middle), < 1 zooms out (white around). */
async function rescaleInput(input: Float32Array, size: number, factor: number): Promise<Float32Array> {
  const bytes = Buffer.alloc(size * size * 3);
  for (let i = 0; i < bytes.length; i++) bytes[i] = Math.round(Math.min(1, Math.max(0, input[i]!)) * 255);
  const img = sharp(bytes, { raw: { width: size, height: size, channels: 3 } });
  let out: Buffer;
  if (factor >= 1) {
    const side = Math.round(size / factor);
    const off = Math.floor((size - side) / 2);
    out = await img.extract({ left: off, top: off, width: side, height: side }).resize(size, size).raw().toBuffer();
  } else {
    const side = Math.round(size * factor);
    const off = Math.floor((size - side) / 2);
    out = await img.resize(side, side).extend({ left: off, top: off, right: size - side - off, bottom: size - side - off, background: '#ffffff' }).raw().toBuffer();
  }
  return Float32Array.from(out, (v) => v / 255);
}

/** The test-time views `--tta-dump` scores: name → how to make it from the served input. */
const TTA_VIEWS: readonly [string, (input: Float32Array) => Promise<Float32Array>][] = [
  ['whole', async (x) => x],
  ['mirror', async (x) => mirrorInput(x, size)],
  ['in85', (x) => rescaleInput(x, size, 1 / 0.85)],
  ['in85m', async (x) => mirrorInput(await rescaleInput(x, size, 1 / 0.85), size)],
  ['out85', (x) => rescaleInput(x, size, 0.85)],
  ['out85m', async (x) => mirrorInput(await rescaleInput(x, size, 0.85), size)],
];

/**
 * `--tta-dump FILE`: for an offline study of test-time views, appends one JSON line per held-out photo and column
 * (clean included): its truth and the head's probabilities on each of {@link TTA_VIEWS} of the served input (each
 * view alone; a head's answer over several views is the mean of theirs, so any combination can be scored offline).
 */
async function dumpViews(task: Task, pipeline: string, head: HeadModel, serve: ReturnType<typeof variantOf>, turner: ReturnType<typeof makeTurner> | undefined, tests: Map<string, RawImage[]>, truth: readonly string[]): Promise<void> {
  const locator = locatorFor(backbone, serve);
  for (const kind of KINDS) {
    for (const [i, raw] of tests.get(kind)!.entries()) {
      const placed = await prepareInputPlaced(raw, size, serve, locator, turner);
      const views = await Promise.all(TTA_VIEWS.map(([, make]) => make(placed.input)));
      const emb = await backbone.embedImages(views, { batchSize: views.length });
      const probs = Object.fromEntries(TTA_VIEWS.map(([name], k) => [name, predictHead(head, emb[k]!).probabilities]));
      appendFileSync(args['tta-dump']!, `${JSON.stringify({ task, pipeline, kind, i, truth: truth[i], probs })}\n`);
    }
    log(`${task} ${kind}: views dumped to ${args['tta-dump']}`);
  }
}

interface Row {
  readonly task: Task;
  readonly pipeline: string;
  readonly kind: Kind;
  readonly n: number;
  readonly accuracy: number;
  readonly macroF1: number;
  /**
   * Share of the column's real shoes that serving would answer with "I don't see a sneaker" (outside the head's
   * out-of-distribution threshold, or the localiser found no shoe), and share marked low confidence (that, or the
   * top answer under the head's minimum confidence): the false alarms a user with a real shoe would get.
   */
  readonly noShoe: number;
  readonly lowConfidence: number;
  /** Accuracy over the photos not marked low confidence: how often an answer given without a warning is right. */
  readonly confidentAccuracy: number;
}
const rows: Row[] = [];

for (const task of (['hype', 'brand'] as const).filter((t) => args.tasks!.split(',').includes(t))) {
  const idx = items.map((it, i) => (it.row[task] !== undefined ? i : -1)).filter((i) => i >= 0);
  const groups = fuzzyGroups(idx.map((i) => ({ name: items[i]!.row.name, fallbackKey: items[i]!.sha })));
  const split = groupSplit(groups, idx.map((i) => items[i]!.row[task]), { testSize: 0.1, seed });
  const limit = args.limit ? Number(args.limit) : Infinity;
  const all = split.train.map((k) => items[idx[k]!]!);
  // --limit (smoke runs): an evenly spaced subset, so every class keeps some rows.
  const train = all.length > limit ? all.filter((_, i) => i % Math.ceil(all.length / limit) === 0) : all;
  const test = split.test.map((k) => items[idx[k]!]!);
  log(`${task}: ${train.length} train / ${test.length} held out`);
  // The shifted copies are the same for every pipeline (seeded per image and kind).
  const tests = new Map<Kind, RawImage[]>();
  /** Per turned kind, each copy's turn as displayed (clockwise degrees): the turn that puts it back is the same, counter-clockwise. */
  const trueTurns = new Map<Kind, number[]>();
  /** Per serving key and turned kind, the turn the upright step applied to each copy (counter-clockwise degrees). */
  const stepTurns = new Map<string, number[]>();
  const clean = await Promise.all(test.map(rawOf));
  tests.set('clean', clean);
  for (const kind of KINDS.slice(1)) {
    const { bg, turn, pair, feet } = parseKind(kind);
    tests.set(
      kind,
      await Promise.all(
        clean.map((raw, i) => {
          // Untilted kinds keep the draw they always had, so earlier tables stay comparable; the pair and the leg
          // are drawn after the shoe's own draws, so `grey+feet` is `grey`'s shoe, at the same place, worn.
          const random = seededRandom(seed * 1000 + i * 7 + bg.length);
          const extra = { ...(pair ? { pair: true } : {}), ...(feet ? { worn: true } : {}) };
          // Turned shoes on a square 360 px frame with the width draw rescaled, so each shoe has the pixel size it
          // has in the untilted kind (144–240 px long) and fits without shrinking: the columns differ by the turn only.
          if (turn === undefined) return pasteShoe(raw, BACKGROUNDS[bg]!, random, extra);
          const rotate = TURNS[turn]!(seededRandom(seed * 1000 + i * 13 + 5));
          // pasteShoe mirrors after turning (its second draw), which turns the other way as displayed.
          const replay = seededRandom(seed * 1000 + i * 7 + bg.length);
          replay();
          const mirrored = replay() < 0.5;
          if (!trueTurns.has(kind)) trueTurns.set(kind, []);
          trueTurns.get(kind)![i] = mirrored ? -rotate : rotate;
          return pasteShoe(raw, BACKGROUNDS[bg]!, random, { ...extra, rotate, width: 360, height: 360, scale: [0.4, 2 / 3] });
        }),
      ),
    );
  }
  if (args.samples && task === 'hype') {
    // A contact sheet of the shifted copies (never of the originals: dev images are not redistributed).
    mkdirSync(args.samples, { recursive: true });
    for (const kind of KINDS.slice(1)) {
      for (let i = 0; i < Math.min(4, clean.length); i++) {
        const r = tests.get(kind)![i]!;
        await sharp(Buffer.from(r.data), { raw: { width: r.width, height: r.height, channels: 3 } }).png().toFile(path.join(args.samples, `${kind}-${i}.png`));
      }
    }
  }
  // Held-out embeddings per serving pipeline and kind (pipelines that differ only in training views share them).
  const heldOut = new Map<string, Float32Array[]>();
  /** Per serving pipeline and kind: whether the localiser found a shoe in each input (undefined: it did not look). */
  const shoeFounds = new Map<string, (boolean | undefined)[]>();
  for (const p of pipelines) {
    const { base, serveLocated, serveUpright, oracle, learn, crops, mirror, headSeeds, headSeedOffset, nuisance } = parsePipeline(p);
    const head = args.heads ? shippedHead(task) : await fitHead(task, p, train, headSeeds, headSeedOffset, nuisance);
    const serve = variantOf({ ...BASES[base], ...(serveLocated ? { locate: true } : {}), ...(serveUpright ? { upright: true } : {}) }, false);
    const serveKey = `${base}${serveLocated ? '@loc' : ''}${serveUpright ? '@up' : ''}${oracle ? '@oracle' : ''}${learn ? '@learn' : ''}`;
    // --tta-dump replaces the pipeline's scoring (the dump's whole + mirror views are its served answer).
    if (args['tta-dump']) {
      await dumpViews(task, p, head, learn ? { ...serve, learntTurn: true } : serve, learn ? makeTurner(backbone, angleModel!) : undefined, tests, test.map((it) => it.row[task]!));
      continue;
    }
    if (learn && args['learn-dump']) await dumpLooks(task, head, serve, tests, trueTurns, test.map((it) => it.row[task]!));
    for (const kind of KINDS) {
      let emb = heldOut.get(`${serveKey}|${kind}`);
      let cropEmb = heldOut.get(`${serveKey}|${kind}|crops`);
      let mirrorEmb = heldOut.get(`${serveKey}|${kind}|mirror`);
      if (!emb || (crops && !cropEmb) || (mirror && !mirrorEmb)) {
        const inputs: Float32Array[] = [];
        const secondInputs: Float32Array[] = [];
        const turned = kind !== 'clean' && parseKind(kind).turn !== undefined;
        const rotations: number[] = [];
        // @learn: served with the learnt turn, as a head with `learntTurn` is (its looks' embeddings come back).
        const served = learn ? { ...serve, learntTurn: true } : serve;
        const turner = learn ? makeTurner(backbone, angleModel!) : undefined;
        const looked: (Float32Array | undefined)[] = [];
        const found: (boolean | undefined)[] = [];
        let learnt = 0;
        for (const [i, shifted] of tests.get(kind)!.entries()) {
          // @oracle: the turned shoe turned back by its true angle first, the upright step's best case.
          const raw = oracle && turned ? await turnBack(shifted, trueTurns.get(kind)![i]!) : shifted;
          const placed = await prepareInputPlaced(raw, size, served, locatorFor(backbone, serve), turner);
          inputs.push(placed.input);
          if (second) secondInputs.push((await prepareInputPlaced(raw, second.inputSize, serve, locatorFor(second, serve))).input);
          looked.push(placed.embedding);
          found.push(placed.shoeFound);
          rotations.push(placed.framing?.rotation ?? 0);
          if (placed.framing?.learntTurn !== undefined) learnt++;
        }
        if (learn) log(`${task} ${p} ${kind}: the learnt turn turned ${learnt} of ${inputs.length}`);
        shoeFounds.set(`${serveKey}|${kind}`, found);
        // A crops pipeline after a plain one with the same serving reuses its whole-view embeddings.
        if (!emb) {
          const todo = looked.map((e, i) => (e ? -1 : i)).filter((i) => i >= 0);
          const fresh = todo.length > 0 ? await backbone.embedImages(todo.map((i) => inputs[i]!), { batchSize: 16 }) : [];
          emb = looked.map((e, i) => e ?? fresh[todo.indexOf(i)]!);
          if (second) emb = await withSecond(emb, secondInputs);
          heldOut.set(`${serveKey}|${kind}`, emb);
        }
        if (turned) stepTurns.set(`${serveKey}|${kind}`, rotations);
        if (crops) {
          const sides: Float32Array[] = [];
          for (const input of inputs) sides.push(...(await sideCrops(input, size)));
          cropEmb = await backbone.embedImages(sides, { batchSize: 16 });
          heldOut.set(`${serveKey}|${kind}|crops`, cropEmb);
        }
        if (mirror) {
          mirrorEmb = await backbone.embedImages(inputs.map((input) => mirrorInput(input, size)), { batchSize: 16 });
          if (second) mirrorEmb = await withSecond(mirrorEmb, secondInputs.map((input) => mirrorInput(input, second.inputSize)));
          heldOut.set(`${serveKey}|${kind}|mirror`, mirrorEmb);
        }
      }
      const truth = test.map((it) => it.row[task]!);
      const wholes = emb.map((e, i) => predictHead(head, e, mirror ? [mirrorEmb![i]!] : []));
      const found = shoeFounds.get(`${serveKey}|${kind}`) ?? [];
      if (args['probs-dump']) {
        const lines = emb.map((e, i) => dumpAnswer(head, e, mirror ? [mirrorEmb![i]!] : [], { task, fold: kind, source: test[i]!.row.source ?? '', truth: truth[i]!, noShoe: found[i] === false }));
        appendFileSync(args['probs-dump'], `${lines.join('\n')}\n`);
      }
      // As serving decides (plugins/vision/index.ts, service.ts `describe`): the whole view's verdicts.
      const noShoe = wholes.filter((w, i) => w.ood.outside || found[i] === false).length / Math.max(1, wholes.length);
      const lowConfidence = wholes.filter((w, i) => w.lowConfidence || found[i] === false).length / Math.max(1, wholes.length);
      const preds = emb.map((e, i) => {
        const whole = wholes[i]!;
        if (!crops) return whole.label;
        const views = [whole, predictHead(head, cropEmb![2 * i]!), predictHead(head, cropEmb![2 * i + 1]!)];
        if (crops === 'max') return views.reduce((a, b) => (b.confidence > a.confidence ? b : a)).label;
        const mean: Record<string, number> = {};
        for (const v of views) for (const [l, q] of Object.entries(v.probabilities)) mean[l] = (mean[l] ?? 0) + q / views.length;
        return Object.entries(mean).reduce((a, b) => (b[1] > a[1] ? b : a))[0];
      });
      const rep = classificationReport(truth, preds, labelsOf(task));
      const sure = preds.map((_, i) => i).filter((i) => !wholes[i]!.lowConfidence && found[i] !== false);
      const confidentAccuracy = sure.filter((i) => preds[i] === truth[i]).length / Math.max(1, sure.length);
      if (mirror) {
        const alone = classificationReport(truth, emb.map((e) => predictHead(head, e).label), labelsOf(task));
        log(`${task} ${p} ${kind}: the same head on the photo alone: accuracy ${alone.accuracy.toFixed(3)}, macro-F1 ${alone.macroF1.toFixed(3)}`);
      }
      const turns = stepTurns.get(`${serveKey}|${kind}`);
      if (args['turn-report'] && turns && serveUpright && !oracle) log(`${task} ${p} ${kind}: ${turnReport(turns, trueTurns.get(kind)!, truth, preds)}`);
      rows.push({ task, pipeline: p, kind, n: rep.n, accuracy: rep.accuracy, macroF1: rep.macroF1, noShoe, lowConfidence, confidentAccuracy });
      log(`${task} ${p} ${kind}: accuracy ${rep.accuracy.toFixed(3)}, macro-F1 ${rep.macroF1.toFixed(3)} (n=${rep.n}); answered "no sneaker" ${noShoe.toFixed(3)}, low confidence ${lowConfidence.toFixed(3)}, accuracy of the rest ${confidentAccuracy.toFixed(3)}`);
    }
  }
}

if (args.json) {
  console.log(JSON.stringify({ backbone: backbone.name, seed, rows }, null, 2));
} else {
  console.log(`\nBackbone ${backbone.name}${second ? ` beside ${second.name} (--concat-backbone)` : ''}, seed ${seed}. Each cell: accuracy / macro-F1 on the held-out side.\n`);
  console.log(`| task | pipeline | ${KINDS.map(kindLabel).join(' | ')} |`);
  console.log(`|---|---|${KINDS.map(() => '---').join('|')}|`);
  for (const task of ['hype', 'brand'] as const) {
    for (const p of pipelines) {
      const cells = KINDS.map((k) => rows.find((r) => r.task === task && r.pipeline === p && r.kind === k)).map((r) => (r ? `${r.accuracy.toFixed(3)} / ${r.macroF1.toFixed(3)}` : '–'));
      console.log(`| ${task} | ${p} | ${cells.join(' | ')} |`);
    }
  }
  console.log(`\nShare of these real shoes answered "I don't see a sneaker" / marked low confidence, as serving would answer them / accuracy of the answers not marked.\n`);
  console.log(`| task | pipeline | ${KINDS.map(kindLabel).join(' | ')} |`);
  console.log(`|---|---|${KINDS.map(() => '---').join('|')}|`);
  for (const task of ['hype', 'brand'] as const) {
    for (const p of pipelines) {
      const cells = KINDS.map((k) => rows.find((r) => r.task === task && r.pipeline === p && r.kind === k)).map((r) => (r ? `${r.noShoe.toFixed(3)} / ${r.lowConfidence.toFixed(3)} / ${r.confidentAccuracy.toFixed(3)}` : '–'));
      console.log(`| ${task} | ${p} | ${cells.join(' | ')} |`);
    }
  }
}
await store.close();
process.exit(0);
