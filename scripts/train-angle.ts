/**
 * `npm run train:angle -- --data <manifest.csv> --labels … --backbone inception_v3_m67`: trains the learnt turn
 * (plugins/vision/lib/angle.ts), the model that reads from the backbone's embedding how far a shoe in a served view
 * is still turned, where the geometric upright step (engine/ml/preprocess) left it.
 *
 * The upright step measures the silhouette GrabCut or the localiser gives; on a busy background it often has none
 * and leaves a tilted shoe alone (assets/models/README.md, "Upright v2"). This script pastes training photos (both
 * tasks' held-out sides excluded: train:defaults' splits, seed 42) onto the generated training scenes at random
 * turns (30 % within ±15°, 40 % tilted 20–90° either way, 30 % any angle), serves each composite as the heads are
 * served (localiser, upright step), and fits a one-hidden-layer regressor from the served embedding (and its
 * mirror's) to the turn that is left, as a unit vector (cos, sin) so that ±180° meet. Every fifth photo's
 * composites are kept out of the fit: it prints how close the regressor gets on them and how many level views it
 * would turn. Writes `angle-<backbone>.json` into `--out` (default assets/models), with the command and figures, and
 * the operating point serving uses: `--apply-to` (the normaliser's background kinds it is asked on; default
 * located,segmented) and `--min-confidence` (default 0.5).
 * Each copy's embeddings are cached under data/angle-cache/, so a refit or one more copy embeds only what is new.
 * About 6 minutes per copy of the 2,265 training photos on 2 cores (InceptionV3 on onnxruntime; 20 on older machines),
 * and about 8 minutes per fit of five copies. The shipped file is `--copies 5 --seeds 3` (assets/models/README.md).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { seededRandom } from '../engine/random.ts';
import { isBackboneName, loadBackbone } from '../engine/ml/backbones.ts';
import type { RawImage } from '../engine/ml/types.ts';
import { turnedComposite } from '../plugins/vision/lib/composite.ts';
import { heldOutOfEitherTask, loadLabelledItems, readLabelledSource, withLabelOverlays } from '../plugins/vision/lib/dataset.ts';
import { locatorFor, mirrorInput, prepareInputPlaced, variantOf } from '../plugins/vision/lib/features.ts';
import { decodePixels } from '../plugins/vision/lib/input.ts';
import { angleFileName, fitAngleModel, mergeAngleModels, predictTurn, turnDistance, type AngleModel } from '../plugins/vision/lib/angle.ts';

const { values: args } = parseArgs({
  options: {
    data: { type: 'string' },
    labels: { type: 'string' },
    backbone: { type: 'string', default: 'inception_v3_m67' },
    seed: { type: 'string', default: '42' },
    n: { type: 'string', default: '100000' },
    copies: { type: 'string', default: '1' },
    out: { type: 'string', default: 'assets/models' },
    hidden: { type: 'string', default: '128' },
    epochs: { type: 'string', default: '60' },
    seeds: { type: 'string', default: '1' },
    'apply-to': { type: 'string', default: 'located,segmented' },
    'min-confidence': { type: 'string', default: '0.5' },
  },
});
if (!args.data) {
  console.error('usage: npm run train:angle -- --data <manifest.csv> [--labels a.csv,b.csv] [--backbone inception_v3_m67] [--n photos] [--copies 2] [--seeds 1] [--out assets/models]');
  process.exit(2);
}
const log = (m: string): void => console.error(`[train:angle] ${m}`);
if (!isBackboneName(args.backbone!)) throw new Error(`unknown backbone ${args.backbone}`);
const seed = Number(args.seed);
const backbone = await loadBackbone(args.backbone!);
const size = backbone.inputSize;
const source = withLabelOverlays(await readLabelledSource(args.data), args.labels?.split(',').filter(Boolean) ?? [], log);
const items = await loadLabelledItems(source);

// Photos on either task's held-out side never teach the regressor: the shift test pastes exactly those.
const heldOut = heldOutOfEitherTask(items, seed);
const pool = items.filter((it) => !heldOut.has(it.sha));
const n = Math.min(Number(args.n), pool.length);
const step = pool.length / n;
const chosen = Array.from({ length: n }, (_, i) => pool[Math.floor(i * step)]!);
log(`${pool.length} training photos, ${n} used, ${Number(args.copies)} composite(s) each`);

const serve = variantOf({ trim: false, flipAverage: false, l2: true, normalise: true, orient: false, locate: true, upright: true }, false);
const locator = locatorFor(backbone, serve);
const wrap = (deg: number): number => ((((deg + 180) % 360) + 360) % 360) - 180;

const xs: Float32Array[] = [];
const ys: number[] = [];
const photoOf: number[] = [];
const started = Date.now();
// Each copy's rows are cached (data/angle-cache/), so a refit or a run with more copies embeds only what is new. The
// key is the backbone, seed, photo count and copy: delete the folder after changing how composites are drawn.
const cacheDir = path.resolve('data/angle-cache');
mkdirSync(cacheDir, { recursive: true });
for (let copy = 0; copy < Number(args.copies); copy++) {
  const cacheFile = path.join(cacheDir, `${backbone.name}-s${seed}-n${n}-c${copy}.json`);
  if (existsSync(cacheFile)) {
    const c = JSON.parse(readFileSync(cacheFile, 'utf8')) as { x: string; y: number[]; photo: number[] };
    const flat = new Float32Array(new Uint8Array(Buffer.from(c.x, 'base64')).buffer);
    const dim = flat.length / c.y.length;
    c.y.forEach((y, k) => {
      xs.push(flat.slice(k * dim, (k + 1) * dim));
      ys.push(y);
      photoOf.push(c.photo[k]!);
    });
    log(`copy ${copy + 1}: ${c.y.length} rows from ${cacheFile}`);
    continue;
  }
  const first = xs.length;
  for (let b = 0; b < chosen.length; b += 16) {
    const inputs: Float32Array[] = [];
    const residuals: number[] = [];
    for (const [j, it] of chosen.slice(b, b + 16).entries()) {
      const raw: RawImage = (await decodePixels(await readFile(it.row.file))).raw;
      const random = seededRandom(seed * 7919 + (b + j) * 31 + copy * 100003);
      const { image: composite, turn } = await turnedComposite(raw, random);
      const placed = await prepareInputPlaced(composite, size, serve, locator);
      inputs.push(placed.input);
      // What the step left: the displayed clockwise turn less the step's counter-clockwise correction.
      residuals.push(wrap(turn - (placed.framing?.rotation ?? 0)));
      photoOf.push(b + j, b + j);
    }
    // Each served view and its mirror (whose leftover turn is the opposite): twice the rows for one more pass.
    const embs = await backbone.embedImages(inputs.flatMap((input) => [input, mirrorInput(input, size)]), { batchSize: 16 });
    embs.forEach((e, k) => {
      xs.push(e);
      ys.push(k % 2 === 0 ? residuals[k >> 1]! : -residuals[k >> 1]!);
    });
    if ((b / 16) % 10 === 0) log(`copy ${copy + 1}: ${b + inputs.length}/${chosen.length} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
  }
  const rows = xs.slice(first);
  const flat = new Float32Array(rows.length * rows[0]!.length);
  rows.forEach((r, k) => flat.set(r, k * r.length));
  writeFileSync(cacheFile, JSON.stringify({ x: Buffer.from(flat.buffer).toString('base64'), y: ys.slice(first), photo: photoOf.slice(first) }));
}

// Validation: the composites of every fifth photo.
const isVal = (i: number): boolean => photoOf[i]! % 5 === 0;
const tr = xs.map((_, i) => i).filter((i) => !isVal(i));
const va = xs.map((_, i) => i).filter(isVal);
// `--seeds K`: K fits from seeds seed, seed + 1000, … whose answers are averaged (one file: mergeAngleModels).
const sortedErrors = (m: AngleModel): number[] => va.map((i) => turnDistance(predictTurn(m, xs[i]!).turn, ys[i]!)).sort((a, b) => a - b);
const medianError = (m: AngleModel): number => {
  const e = sortedErrors(m);
  return e[e.length >> 1]!;
};
const fits: AngleModel[] = [];
for (let k = 0; k < Number(args.seeds); k++) {
  fits.push(await fitAngleModel(
    tr.map((i) => xs[i]!),
    tr.map((i) => ys[i]!),
    { backbone: backbone.name, hidden: Number(args.hidden), epochs: Number(args.epochs), seed: seed + k * 1000 },
  ));
  if (Number(args.seeds) > 1) log(`fit ${k + 1}/${args.seeds} (seed ${seed + k * 1000}): median error ${medianError(fits[k]!).toFixed(1)}°`);
}
const model = mergeAngleModels(fits);
const errs = sortedErrors(model);
const within = (d: number): string => (errs.filter((e) => e <= d).length / errs.length).toFixed(3);
log(`validation (${va.length} views): median error ${errs[errs.length >> 1]!.toFixed(1)}°, within 10° ${within(10)}, 20° ${within(20)}, 45° ${within(45)}`);
const level = va.filter((i) => Math.abs(ys[i]!) < 10);
const falseTurn = (t: number): number => level.filter((i) => Math.abs(predictTurn(model, xs[i]!).turn) >= t).length;
log(`level views (|left| < 10°): ${level.length}; predicted ≥20°: ${falseTurn(20)}, ≥30°: ${falseTurn(30)}`);
const tilted = va.filter((i) => Math.abs(ys[i]!) >= 30);
for (const minConf of [0, 0.3, 0.5, 0.7]) {
  const acts = (set: number[]): number[] => set.filter((i) => {
    const p = predictTurn(model, xs[i]!);
    return p.confidence >= minConf && Math.abs(p.turn) >= 30;
  });
  const fixed = acts(tilted).filter((i) => turnDistance(predictTurn(model, xs[i]!).turn, ys[i]!) <= 20).length;
  log(`confidence ≥ ${minConf}: level views turned ${acts(level).length}/${level.length}; views left ≥30° turned ${acts(tilted).length}/${tilted.length}, to within 20° ${fixed}`);
}
// The operating point serving uses (where to ask, how sure the first look must be), measured with
// `eval-shift @learn --learn-on … --learn-confidence …` (assets/models/README.md, "The learnt turn").
const applyTo = args['apply-to']!.split(',').map((k) => k.trim()).filter(Boolean);
for (const k of applyTo) if (!['uniform', 'segmented', 'located', 'busy'].includes(k)) throw new Error(`--apply-to takes uniform, segmented, located and busy, not ${k}`);
const minConfidence = Number(args['min-confidence']);
const meta = {
  data: args.data,
  command: `npm run train:angle -- --data ${args.data}${args.labels ? ` --labels ${args.labels}` : ''} --backbone ${backbone.name} --n ${args.n} --copies ${args.copies} --hidden ${args.hidden} --epochs ${args.epochs}${Number(args.seeds) > 1 ? ` --seeds ${args.seeds}` : ''} --apply-to ${applyTo.join(',')} --min-confidence ${minConfidence} --seed ${seed}`,
  seed,
  photos: n,
  copies: Number(args.copies),
  seeds: Number(args.seeds),
  rows: tr.length,
  validation: {
    views: va.length,
    medianError: Number(errs[errs.length >> 1]!.toFixed(1)),
    within10: Number(within(10)),
    within20: Number(within(20)),
    within45: Number(within(45)),
    levelViews: level.length,
    levelTurned30: falseTurn(30),
  },
  seconds: Math.round((Date.now() - started) / 1000),
};
mkdirSync(args.out!, { recursive: true });
const file = path.join(args.out!, angleFileName(backbone.name));
// Six significant digits: the file is a third of its full-precision size and the answers do not move.
const round = (v: readonly number[]): number[] => v.map((x) => Number(x.toPrecision(6)));
writeFileSync(file, `${JSON.stringify({ ...model, applyTo, minConfidence, mean: round(model.mean), std: round(model.std), w1: round(model.w1), b1: round(model.b1), w2: round(model.w2), b2: round(model.b2), meta })}\n`);
log(`wrote ${file}`);
process.exit(0);
