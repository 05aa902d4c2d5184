/**
 * `npx tsx scripts/eval-segment.ts --data <manifest.csv|folder> [--n 40] [--json]`: how well the normaliser
 * (engine/ml/preprocess) finds the shoe when it is not on a studio backdrop.
 *
 * Classification tests (scripts/eval-shift.ts) say how much the heads lose on other backgrounds, not why. This
 * one measures the step in between, with ground truth we make: `--n` labelled photos (evenly spaced through the
 * source) have their shoe cut out of the white studio background and pasted onto each background — the shift
 * test's grey wall, lit floor and busy shelf, and the training scenes (carpet, tiles, fabric, room, clutter) —
 * at a known place (`pasteShoePlaced`). Per background it reports the mean box IoU between the normaliser's
 * object box and the pasted shoe's, the share of photos with IoU ≥ 0.7, how the background was handled
 * (`uniform` flood fill, `segmented` GrabCut, `busy` untouched) and the time per photo. The clean photos are
 * counted too: on a studio shot every step should stay the exact flood fill.
 *
 * `--flood-any-uniform` measures normaliser v2's rule (flood fill on any near-uniform border) for comparison.
 *
 * Cheap (no backbone): about a minute for the default 40 photos × 8 backgrounds on 2 cores.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { boxIou, preprocess, PREP_VERSION } from '../engine/ml/preprocess.ts';
import type { RawImage } from '../engine/ml/types.ts';
import { seededRandom } from '../engine/random.ts';
import { pasteShoePlaced, SHIFT_BACKGROUNDS, TRAINING_SCENES, type BackgroundFn } from '../plugins/vision/lib/composite.ts';
import { readLabelledSource } from '../plugins/vision/lib/dataset.ts';
import { decodePixels } from '../plugins/vision/lib/input.ts';

const { values: args } = parseArgs({
  options: {
    data: { type: 'string' },
    n: { type: 'string', default: '40' },
    seed: { type: 'string', default: '42' },
    json: { type: 'boolean', default: false },
    'flood-any-uniform': { type: 'boolean', default: false },
  },
});
if (!args.data) {
  console.error('usage: npx tsx scripts/eval-segment.ts --data <manifest.csv|folder> [--n 40] [--seed 42] [--flood-any-uniform] [--json]');
  process.exit(2);
}
const n = Number(args.n);
const seed = Number(args.seed);
// Normaliser v2's rule (flood-fill any near-uniform border), for comparison.
const floodAnyUniform = args['flood-any-uniform']!;
if (!Number.isInteger(n) || n < 1) throw new Error(`--n must be a positive integer (got ${args.n})`);

const source = await readLabelledSource(args.data);
const rows = source.rows.filter((r) => r.brand !== undefined || r.hype !== undefined);
const step = Math.max(1, Math.floor(rows.length / n));
const photos: RawImage[] = [];
for (const row of rows.filter((_, i) => i % step === 0).slice(0, n)) {
  try {
    photos.push((await decodePixels(await readFile(row.file))).raw);
  } catch {
    // An undecodable file is not the normaliser's problem; the evaluation runs on the rest.
  }
}

interface Row {
  readonly background: string;
  readonly seen: boolean;
  readonly n: number;
  readonly meanIou: number | null;
  readonly iouAtLeast07: number | null;
  readonly handled: Record<string, number>;
  readonly msPerPhoto: number;
}
const results: Row[] = [];
const backgrounds: [string, BackgroundFn | null][] = [['clean', null], ...Object.entries(SHIFT_BACKGROUNDS), ...Object.entries(TRAINING_SCENES)];
for (const [name, background] of backgrounds) {
  const ious: number[] = [];
  const handled: Record<string, number> = {};
  let ms = 0;
  for (let i = 0; i < photos.length; i++) {
    const placed = background === null ? null : await pasteShoePlaced(photos[i]!, background, seededRandom(seed * 1000 + i * 7 + name.length));
    const t0 = performance.now();
    const r = await preprocess(placed?.image ?? photos[i]!, { size: 64, orient: false, floodAnyUniform });
    ms += performance.now() - t0;
    handled[r.background] = (handled[r.background] ?? 0) + 1;
    if (placed !== null) ious.push(boxIou(r.bbox, placed.box));
  }
  results.push({
    background: name,
    seen: name in TRAINING_SCENES,
    n: photos.length,
    meanIou: ious.length ? ious.reduce((s, v) => s + v, 0) / ious.length : null,
    iouAtLeast07: ious.length ? ious.filter((v) => v >= 0.7).length / ious.length : null,
    handled,
    msPerPhoto: ms / Math.max(1, photos.length),
  });
}

if (args.json) {
  console.log(JSON.stringify({ prepVersion: PREP_VERSION, floodAnyUniform, seed, rows: results }, null, 2));
} else {
  console.log(`\nNormaliser v${PREP_VERSION}${floodAnyUniform ? ' with flood fill on any uniform border (v2 rule)' : ''}, ${photos.length} photos, seed ${seed}. Box IoU of the found object against the pasted shoe.\n`);
  console.log('| background | mean box IoU | IoU ≥ 0.7 | handled as | ms / photo |');
  console.log('|---|---|---|---|---|');
  for (const r of results) {
    const f = (v: number | null): string => (v === null ? '–' : v.toFixed(3));
    const handled = Object.entries(r.handled).map(([k, v]) => `${k} ${v}`).join(', ');
    console.log(`| ${r.background}${r.seen ? ' (training scene)' : ''} | ${f(r.meanIou)} | ${r.iouAtLeast07 === null ? '–' : r.iouAtLeast07.toFixed(2)} | ${handled} | ${r.msPerPhoto.toFixed(0)} |`);
  }
  const all = results.filter((r) => r.meanIou !== null);
  console.log(`\nMean over the ${all.length} backgrounds: ${(all.reduce((s, r) => s + r.meanIou!, 0) / all.length).toFixed(3)}`);
}
process.exit(0);
