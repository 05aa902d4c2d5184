/**
 * `npx tsx scripts/probe-layers.ts --data <manifest.csv> [--labels a.csv,b.csv] [--task brand]`: which of
 * InceptionV3's layers, pooled, make the best embedding for a task — the measurement behind the multi-level
 * backbones `inception_v3_m7` and `inception_v3_m67` (engine/ml/backbones.ts).
 *
 * Every labelled photo goes through the shipped pipeline (normalise + shoe localiser, no orientation), plain and
 * mirrored, once; the spatial mean and max of the blocks the chosen combinations pool (`mixed5`..`mixed10`) are kept
 * in memory (up to about 70 KB a view).
 * Then, per combination of pooled layers, a linear head (the shipped brand head's kind, class weights, seed 42,
 * trained on plain + mirrored rows) is scored on train:defaults' held-out fuzzy-name group split and on each
 * leave-one-source-out fold. `--block-l2` L2-normalises each layer's vector before concatenating (the backbone
 * concatenates raw means, which measured as well or better).
 *
 * Heavy: about 15 minutes of forward passes (plain and mirrored, onnxruntime) when two probes share 2 cores, then
 * one to four minutes per combination; run it with `nice -n 10`. `--combos` picks combinations by name (see COMBOS).
 */
import { parseArgs } from 'node:util';
import { loadBackbone } from '../engine/ml/backbones.ts';
import { getTf } from '../engine/ml/runtime.ts';
import { loadLabelledItems, readLabelledSource, withLabelOverlays } from '../plugins/vision/lib/dataset.ts';
import { l2normalise, predictHead, type FeatureSpec } from '../plugins/vision/lib/head.ts';
import { labelsOf, type Task } from '../plugins/vision/lib/labels.ts';
import { classificationReport } from '../plugins/vision/lib/metrics.ts';
import { trainHead } from '../plugins/vision/lib/train.ts';
import { layerBatches, probeFolds } from './lib/probe.ts';

const { values: args } = parseArgs({
  options: {
    data: { type: 'string' },
    labels: { type: 'string' },
    task: { type: 'string', default: 'brand' },
    combos: { type: 'string' },
    'block-l2': { type: 'boolean', default: false },
    seed: { type: 'string', default: '42' },
  },
});
if (!args.data || (args.task !== 'brand' && args.task !== 'hype')) {
  console.error('usage: npx tsx scripts/probe-layers.ts --data <manifest.csv|folder> [--labels a.csv,b.csv] [--task brand|hype] [--combos "gap10,gap7+gap10"] [--block-l2]');
  process.exit(2);
}
const task = args.task as Task;
const seed = Number(args.seed);
const log = (m: string): void => console.error(`[probe-layers] ${m}`);

/** Layers probed and their channel counts (InceptionV3). */
const LAYERS = { mixed5: 768, mixed6: 768, mixed7: 768, mixed8: 1280, mixed9: 2048, mixed10: 2048 } as const;
type Layer = keyof typeof LAYERS;
/** Named combinations of pooled blocks (`gap`: spatial mean, `gmp`: spatial max). `gap10` = the plain embedding. */
const COMBOS: Readonly<Record<string, readonly `${Layer}:${'gap' | 'gmp'}`[]>> = {
  gap10: ['mixed10:gap'],
  'gap10+gmp10': ['mixed10:gap', 'mixed10:gmp'],
  'gap9+gap10': ['mixed9:gap', 'mixed10:gap'],
  'gap8+gap10': ['mixed8:gap', 'mixed10:gap'],
  'gap7+gap10': ['mixed7:gap', 'mixed10:gap'],
  'gmp7+gap10': ['mixed7:gmp', 'mixed10:gap'],
  'gap7+gap9+gap10': ['mixed7:gap', 'mixed9:gap', 'mixed10:gap'],
  // Blocks below mixed7 (same 17×17 grid): do finer parts add to mixed7, or only a source's texture?
  'gap6+gap10': ['mixed6:gap', 'mixed10:gap'],
  'gap5+gap10': ['mixed5:gap', 'mixed10:gap'],
  'gap6+gap7+gap10': ['mixed6:gap', 'mixed7:gap', 'mixed10:gap'],
  'gap5+gap7+gap10': ['mixed5:gap', 'mixed7:gap', 'mixed10:gap'],
  'gap5+gap6+gap7+gap10': ['mixed5:gap', 'mixed6:gap', 'mixed7:gap', 'mixed10:gap'],
};
const chosen = args.combos ? args.combos.split(',').map((c) => c.trim()) : Object.keys(COMBOS);
for (const c of chosen) if (!COMBOS[c]) throw new Error(`unknown combination ${c} (known: ${Object.keys(COMBOS).join(', ')})`);
/** Only the blocks the chosen combinations pool are read out (memory: six blocks' vectors for some 4,800 views add up). */
const needed = (Object.keys(LAYERS) as Layer[]).filter((l) => chosen.some((c) => COMBOS[c]!.some((b) => b.startsWith(`${l}:`))));

await getTf();
const source = withLabelOverlays(await readLabelledSource(args.data), args.labels?.split(',').filter(Boolean) ?? [], log);
const items = (await loadLabelledItems(source)).filter((it) => it.row[task] !== undefined);
log(`${items.length} photos labelled for ${task}`);
const backbone = await loadBackbone('inception_v3');
/** The served pipeline of the shipped heads. */
const spec: FeatureSpec = { trim: false, flipAverage: false, l2: true, normalise: true, orient: false, locate: true };

/** Per photo, per pooled block: its vector. */
type Pooled = Map<string, Float32Array>;
async function pooledViews(flip: boolean): Promise<Pooled[]> {
  const out: Pooled[] = [];
  for await (const { start, n, outs } of layerBatches(backbone, items, spec, flip, needed)) {
    for (let i = 0; i < n; i++) {
      const pooled: Pooled = new Map();
      needed.forEach((layer, li) => {
        const o = outs[li]!;
        const [, h, w, c] = o.dims as [number, number, number, number];
        const gap = new Float32Array(c);
        const gmp = new Float32Array(c).fill(-Infinity);
        const base = i * h * w * c;
        for (let p = 0; p < h * w; p++) {
          for (let k = 0; k < c; k++) {
            const v = o.data[base + p * c + k]!;
            gap[k] = gap[k]! + v / (h * w);
            if (v > gmp[k]!) gmp[k] = v;
          }
        }
        pooled.set(`${layer}:gap`, gap);
        pooled.set(`${layer}:gmp`, gmp);
      });
      out.push(pooled);
    }
    if (start % 400 === 0) log(`${flip ? 'mirrored' : 'plain'} ${start}/${items.length}`);
  }
  return out;
}
const plain = await pooledViews(false);
const mirrored = await pooledViews(true);

function vector(p: Pooled, blocks: readonly string[]): Float32Array {
  const parts = blocks.map((b) => (args['block-l2'] ? l2normalise(p.get(b)!) : p.get(b)!));
  const out = new Float32Array(parts.reduce((n, v) => n + v.length, 0));
  let o = 0;
  for (const v of parts) {
    out.set(v, o);
    o += v.length;
  }
  return out;
}

const folds = probeFolds(items, task, seed);
console.log(`| pooled layers | dim | ${folds.map((f) => (f.source === 'held-out' ? 'held-out' : `hold out ${f.source.split('/')[0]}`)).join(' | ')} |`);
console.log(`|---|---|${folds.map(() => '---').join('|')}|`);
for (const name of chosen) {
  const blocks = COMBOS[name]!;
  const x = plain.map((p) => vector(p, blocks));
  const xm = mirrored.map((p) => vector(p, blocks));
  const cells: string[] = [];
  for (const f of folds) {
    if (new Set(f.train.map((i) => items[i]!.row[task])).size < 2) {
      cells.push('–');
      continue;
    }
    const head = await trainHead(
      { task, id: 'probe', backbone: 'inception_v3', prepVersion: 'probe', features: spec, x: [...f.train.map((i) => x[i]!), ...f.train.map((i) => xm[i]!)], y: [...f.train, ...f.train].map((i) => items[i]!.row[task]!) },
      { type: 'linear', epochs: 60, seed },
    );
    const rep = classificationReport(f.test.map((i) => items[i]!.row[task]!), f.test.map((i) => predictHead(head, x[i]!).label), labelsOf(task));
    cells.push(`${rep.accuracy.toFixed(3)} / ${rep.macroF1.toFixed(3)}`);
  }
  console.log(`| ${name} | ${x[0]!.length} | ${cells.join(' | ')} |`);
}
