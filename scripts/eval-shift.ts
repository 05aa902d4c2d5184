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
 * - `vprep`: the shipped pipeline (contain on white at the backbone size) + flip augmentation;
 * - `study`: engine/ml/preprocess — background whitening (flood fill, GrabCut on busy borders), crop to the
 *   object, orientation normalisation (Canny + Hough: toe to the right);
 * - `study-noorient`: the same without orientation normalisation, + flip augmentation;
 * - `study-noorient+trim`: trained on those plus the trimmed contain-on-white views (`train:defaults
 *   --mix-trim`), scored normalised; `vprep-trim`: trim the white margin, contain on white.
 * `--tasks hype,brand` restricts the tasks.
 * Same split as train:defaults (fuzzy-name groups, seed 42, 10 %). Embeddings of the training side are
 * cached in `--cache` (default data/eval-shift.db). Prints a markdown table; `--json` prints the rows.
 *
 * Heavy (a few minutes on 2 cores with onnxruntime): run it with `nice -n 10` on shared machines.
 */
import { mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { openStore } from '../engine/store/index.ts';
import { seededRandom } from '../engine/random.ts';
import { loadBackbone, isBackboneName } from '../engine/ml/backbones.ts';
import type { RawImage } from '../engine/ml/types.ts';
import { classificationReport } from '../engine/ml/metrics.ts';
import { readLabelledSource, type DatasetRow } from '../plugins/vision/lib/dataset.ts';
import { prepareInput } from '../plugins/vision/lib/features.ts';
import { predictHead, type FeatureSpec } from '../plugins/vision/lib/head.ts';
import { decodePixels } from '../plugins/vision/lib/input.ts';
import { labelsOf, type Task } from '../plugins/vision/lib/labels.ts';
import { fuzzyGroups, groupSplit } from '../plugins/vision/lib/split.ts';
import { trainHead } from '../plugins/vision/lib/train.ts';

const { values: args } = parseArgs({
  options: {
    data: { type: 'string' },
    cache: { type: 'string', default: 'data/eval-shift.db' },
    backbone: { type: 'string', default: 'mobilenet_v2' },
    seed: { type: 'string', default: '42' },
    pipelines: { type: 'string', default: 'vprep,study,study-noorient' },
    json: { type: 'boolean', default: false },
    samples: { type: 'string' },
    limit: { type: 'string' },
    tasks: { type: 'string', default: 'hype,brand' },
  },
});
if (!args.data) {
  console.error('usage: npx tsx scripts/eval-shift.ts --data <manifest.csv|folder> [--backbone mobilenet_v2] [--pipelines vprep,study,study-noorient] [--json]');
  process.exit(2);
}
const backboneName = args.backbone!;
if (!isBackboneName(backboneName)) throw new Error(`unknown backbone ${backboneName}`);
const seed = Number(args.seed);
const log = (m: string): void => console.error(`[eval-shift] ${m}`);

type Pipeline = 'vprep' | 'vprep-trim' | 'study' | 'study-noorient' | 'study-noorient+trim';
const pipelines = args.pipelines!.split(',') as Pipeline[];
const KINDS = ['clean', 'grey', 'floor', 'busy'] as const;
type Kind = (typeof KINDS)[number];

const source = await readLabelledSource(args.data);
mkdirSync(path.dirname(path.resolve(args.cache!)), { recursive: true });
const store = await openStore({ url: `sqlite:${path.resolve(args.cache!)}` });
const backbone = await loadBackbone(backboneName);
const size = backbone.inputSize;

interface Item {
  readonly row: DatasetRow;
  readonly sha: string;
}
const items: Item[] = [];
for (const row of source.rows) {
  if (row.brand === undefined && row.hype === undefined) continue;
  try {
    items.push({ row, sha: (await decodePixels(await readFile(row.file))).sha256 });
  } catch {
    // unreadable rows are skipped (train:defaults reports them)
  }
}
log(`${items.length} labelled images`);
const rawOf = async (it: Item): Promise<RawImage> => (await decodePixels(await readFile(it.row.file))).raw;

/** One model input for a pipeline; `mirror` flips the input (flip augmentation). The vision pipeline's own. */
function inputFor(p: Pipeline, raw: RawImage, mirror: boolean): Promise<Float32Array> {
  if (p === 'vprep' || p === 'vprep-trim') return prepareInput(raw, size, { trim: p === 'vprep-trim', flip: mirror });
  return prepareInput(raw, size, { trim: false, flip: mirror, normalise: true, orient: p === 'study' });
}

/** Embeddings of the training items for a pipeline (cached per item). */
async function trainEmbeddings(p: Pipeline, list: readonly Item[], mirror: boolean): Promise<Float32Array[]> {
  const key = `shift-${p}${mirror ? '+flip' : ''}`;
  const have = await store.embeddings.getMany(list.map((i) => i.sha), backbone.name, key);
  const missing = list.filter((i) => !have.has(i.sha));
  for (let s = 0; s < missing.length; s += 16) {
    const batch = missing.slice(s, s + 16);
    const inputs = await Promise.all(batch.map(async (it) => inputFor(p, await rawOf(it), mirror)));
    const vectors = await backbone.embedImages(inputs, { batchSize: 16 });
    for (let j = 0; j < batch.length; j++) {
      have.set(batch[j]!.sha, vectors[j]!);
      await store.embeddings.put(batch[j]!.sha, backbone.name, key, vectors[j]!);
    }
    if ((s / 16) % 10 === 0) log(`${p}${mirror ? ' mirrored' : ''}: ${Math.min(s + 16, missing.length)}/${missing.length}`);
  }
  return list.map((i) => have.get(i.sha)!);
}

/** A generated background of a kind, `w`×`h` RGB. */
function background(kind: Exclude<Kind, 'clean'>, w: number, h: number, random: () => number): Buffer {
  const out = Buffer.alloc(w * h * 3);
  if (kind === 'grey') {
    const g = 90 + random() * 110;
    const tint = [g + (random() - 0.5) * 20, g + (random() - 0.5) * 20, g + (random() - 0.5) * 20];
    for (let i = 0; i < w * h; i++) for (let c = 0; c < 3; c++) out[i * 3 + c] = Math.max(0, Math.min(255, tint[c]! + (random() - 0.5) * 10));
    return out;
  }
  if (kind === 'floor') {
    // A lit floor: vertical brightness gradient, a base colour (wood/concrete/tile) and grain.
    const base = [100 + random() * 100, 80 + random() * 90, 60 + random() * 90];
    const freq = 0.05 + random() * 0.2;
    for (let y = 0; y < h; y++) {
      const light = 0.7 + 0.5 * (y / h);
      for (let x = 0; x < w; x++) {
        const grain = Math.sin((x + y * 0.3) * freq) * 12 + (random() - 0.5) * 24;
        for (let c = 0; c < 3; c++) out[(y * w + x) * 3 + c] = Math.max(0, Math.min(255, base[c]! * light + grain));
      }
    }
    return out;
  }
  // busy: overlapping coloured blocks (shelves, boxes, clothes) over a mid-grey, plus noise.
  for (let i = 0; i < w * h * 3; i++) out[i] = 120;
  const blocks = 12 + Math.floor(random() * 20);
  for (let b = 0; b < blocks; b++) {
    const bw = Math.floor(w * (0.1 + random() * 0.4));
    const bh = Math.floor(h * (0.1 + random() * 0.4));
    const x0 = Math.floor(random() * (w - bw));
    const y0 = Math.floor(random() * (h - bh));
    const col = [random() * 255, random() * 255, random() * 255];
    for (let y = y0; y < y0 + bh; y++) for (let x = x0; x < x0 + bw; x++) for (let c = 0; c < 3; c++) out[(y * w + x) * 3 + c] = col[c]!;
  }
  for (let i = 0; i < out.length; i++) out[i] = Math.max(0, Math.min(255, out[i]! + (random() - 0.5) * 30));
  return out;
}

/**
 * The shoe of a white-background photo pasted onto a generated background: smaller (45–75 % of the frame
 * width), off-centre, matted by a flood fill of the near-white border region, randomly mirrored.
 */
async function shifted(raw: RawImage, kind: Exclude<Kind, 'clean'>, random: () => number): Promise<RawImage> {
  const W = 320;
  const H = 240;
  const scale = (W * (0.45 + random() * 0.3)) / raw.width;
  const sw = Math.max(8, Math.round(raw.width * scale));
  const sh = Math.max(8, Math.min(H - 4, Math.round(raw.height * scale)));
  let shoe = sharp(Buffer.from(raw.data), { raw: { width: raw.width, height: raw.height, channels: 3 } }).resize(sw, sh, { fit: 'fill' });
  if (random() < 0.5) shoe = shoe.flop();
  const small = await shoe.raw().toBuffer();
  const bg = background(kind, W, H, random);
  const ox = Math.floor(random() * (W - sw));
  const oy = Math.floor(random() * (H - sh));
  // Background = near-white pixels connected to the border (flood fill), so white parts INSIDE the shoe
  // (soles, panels) stay; edge pixels get a soft alpha from their whiteness (anti-aliasing).
  const isWhite = (i: number): boolean => Math.min(small[i * 3]!, small[i * 3 + 1]!, small[i * 3 + 2]!) >= 235;
  const outside = new Uint8Array(sw * sh);
  const queue: number[] = [];
  for (let x = 0; x < sw; x++) queue.push(x, (sh - 1) * sw + x);
  for (let y = 0; y < sh; y++) queue.push(y * sw, y * sw + sw - 1);
  while (queue.length > 0) {
    const i = queue.pop()!;
    if (outside[i] || !isWhite(i)) continue;
    outside[i] = 1;
    const x = i % sw;
    const y = (i - x) / sw;
    if (x > 0) queue.push(i - 1);
    if (x < sw - 1) queue.push(i + 1);
    if (y > 0) queue.push(i - sw);
    if (y < sh - 1) queue.push(i + sw);
  }
  for (let y = 0; y < sh; y++) {
    for (let x = 0; x < sw; x++) {
      const i = y * sw + x;
      const s = i * 3;
      const r = small[s]!;
      const g = small[s + 1]!;
      const b = small[s + 2]!;
      let alpha = 1;
      if (outside[i]) alpha = 0;
      else {
        // Next to the background: blend by whiteness (soft edge).
        const nearBg = (x > 0 && outside[i - 1]) || (x < sw - 1 && outside[i + 1]) || (y > 0 && outside[i - sw]) || (y < sh - 1 && outside[i + sw]);
        if (nearBg) alpha = Math.max(0.3, Math.min(1, (250 - Math.min(r, g, b)) / 40));
      }
      const d = ((oy + y) * W + ox + x) * 3;
      bg[d] = Math.round(r * alpha + bg[d]! * (1 - alpha));
      bg[d + 1] = Math.round(g * alpha + bg[d + 1]! * (1 - alpha));
      bg[d + 2] = Math.round(b * alpha + bg[d + 2]! * (1 - alpha));
    }
  }
  return { data: new Uint8Array(bg), width: W, height: H, channels: 3 };
}

interface Row {
  readonly task: Task;
  readonly pipeline: Pipeline;
  readonly kind: Kind;
  readonly n: number;
  readonly accuracy: number;
  readonly macroF1: number;
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
  const clean = await Promise.all(test.map(rawOf));
  tests.set('clean', clean);
  for (const kind of KINDS.slice(1) as Exclude<Kind, 'clean'>[]) {
    tests.set(kind, await Promise.all(clean.map((raw, i) => shifted(raw, kind, seededRandom(seed * 1000 + i * 7 + kind.length)))));
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
  for (const p of pipelines) {
    const flipAugment = p !== 'study';
    // `study-noorient+trim`: normalised views plus the trimmed contain-on-white views as extra training rows
    // (train:defaults --mix-trim); served (and scored) normalised.
    const servePipeline: Pipeline = p === 'study-noorient+trim' ? 'study-noorient' : p;
    const x = await trainEmbeddings(servePipeline, train, false);
    let xs = flipAugment ? [...x, ...(await trainEmbeddings(servePipeline, train, true))] : x;
    let rowsOf = flipAugment ? [...train, ...train] : train;
    if (p === 'study-noorient+trim') {
      xs = [...xs, ...(await trainEmbeddings('vprep-trim', train, false)), ...(await trainEmbeddings('vprep-trim', train, true))];
      rowsOf = [...rowsOf, ...train, ...train];
    }
    const ys = rowsOf.map((it) => it.row[task]!);
    const features: FeatureSpec = { trim: false, flipAverage: false, l2: true };
    const head = await trainHead(
      { task, id: `${task}-shift`, backbone: backbone.name, prepVersion: p, features, x: xs, y: ys },
      task === 'hype' ? { type: 'mlp', epochs: 40, seed } : { type: 'linear', epochs: 60, seed },
    );
    for (const kind of KINDS) {
      const raws = tests.get(kind)!;
      const inputs: Float32Array[] = [];
      for (const raw of raws) inputs.push(await inputFor(p === 'study-noorient+trim' ? 'study-noorient' : p, raw, false));
      const emb = await backbone.embedImages(inputs, { batchSize: 16 });
      const truth = test.map((it) => it.row[task]!);
      const preds = emb.map((e) => predictHead(head, e).label);
      const rep = classificationReport(truth, preds, labelsOf(task));
      rows.push({ task, pipeline: p, kind, n: rep.n, accuracy: rep.accuracy, macroF1: rep.macroF1 });
      log(`${task} ${p} ${kind}: accuracy ${rep.accuracy.toFixed(3)}, macro-F1 ${rep.macroF1.toFixed(3)} (n=${rep.n})`);
    }
  }
}

if (args.json) {
  console.log(JSON.stringify({ backbone: backbone.name, seed, rows }, null, 2));
} else {
  console.log(`\nBackbone ${backbone.name}, seed ${seed}. Each cell: accuracy / macro-F1 on the held-out side.\n`);
  console.log(`| task | pipeline | ${KINDS.join(' | ')} |`);
  console.log(`|---|---|${KINDS.map(() => '---').join('|')}|`);
  for (const task of ['hype', 'brand'] as const) {
    for (const p of pipelines) {
      const cells = KINDS.map((k) => rows.find((r) => r.task === task && r.pipeline === p && r.kind === k)).map((r) => (r ? `${r.accuracy.toFixed(3)} / ${r.macroF1.toFixed(3)}` : '–'));
      console.log(`| ${task} | ${p} | ${cells.join(' | ')} |`);
    }
  }
}
await store.close();
process.exit(0);
