/**
 * `npx tsx scripts/probe-spatial.ts --data <manifest.csv> [--labels a.csv,b.csv] [--task brand]`: does a head that
 * looks at *where* things are in the mid-level feature map beat the pooled embedding?
 *
 * The question behind it: brand is decided by small parts (a swoosh, three stripes, a Jumpman on the tongue).
 * The shipped embedding is a spatial mean, which dilutes a logo into the rest of the shoe. Here every labelled
 * photo goes through the shipped pipeline (normalise + shoe localiser), plain and mirrored, once; `mixed7`'s
 * 17×17×768 map is kept (quantised to a byte per value, ~220 KB a view) next to the shipped 2,816-d embedding.
 * Then heads are compared on train:defaults' held-out fuzzy-name split and on each leave-one-source-out fold:
 *
 * - `global`: softmax regression on the pooled embedding (the shipped kind of head);
 * - `lse`: a linear classifier at every location of the (optionally 2×2-pooled) map, pooled over locations by
 *   log-sum-exp — a soft max, so one convincing patch (the logo) can carry the photo;
 * - `global+lse`: the sum of both logits;
 * - `global+attn`: attention pooling (a learnt score per location, softmax over locations) of the map, linear,
 *   added to the global logits.
 *
 * Heavy: ~10 minutes of forward passes on 2 cores, then 2–8 minutes per head fit (attention: ~15), four fits
 * per head; run it with `nice -n 10`. Measured results: assets/models/README.md, "Looking where".
 */
import { parseArgs } from 'node:util';
import type * as tfTypes from '@tensorflow/tfjs';
import { loadBackbone } from '../engine/ml/backbones.ts';
import { getTf } from '../engine/ml/runtime.ts';
import { loadLabelledItems, readLabelledSource, withLabelOverlays } from '../plugins/vision/lib/dataset.ts';
import { l2normalise, type FeatureSpec } from '../plugins/vision/lib/head.ts';
import { labelsOf, type Task } from '../plugins/vision/lib/labels.ts';
import { classificationReport } from '../plugins/vision/lib/metrics.ts';
import { seededRandom, shuffled } from '../plugins/vision/lib/split.ts';
import { fitStandardiser } from '../plugins/vision/lib/train.ts';
import { layerBatches, probeFolds } from './lib/probe.ts';

const { values: args } = parseArgs({
  options: {
    data: { type: 'string' },
    labels: { type: 'string' },
    task: { type: 'string', default: 'brand' },
    heads: { type: 'string', default: 'global,lse,global+lse,global+attn' },
    pool: { type: 'string', default: '2' },
    epochs: { type: 'string', default: '30' },
    temperature: { type: 'string', default: '1' },
    limit: { type: 'string' },
    seed: { type: 'string', default: '42' },
  },
});
if (!args.data || (args.task !== 'brand' && args.task !== 'hype')) {
  console.error('usage: npx tsx scripts/probe-spatial.ts --data <manifest.csv|folder> [--labels a.csv,b.csv] [--task brand|hype] [--heads global,lse,global+lse,global+attn] [--pool 2] [--epochs 30]');
  process.exit(2);
}
const task = args.task as Task;
const seed = Number(args.seed);
const pool = Number(args.pool);
const epochs = Number(args.epochs);
const temperature = Number(args.temperature);
const log = (m: string): void => console.error(`[probe-spatial] ${m}`);

type HeadKind = 'global' | 'lse' | 'global+lse' | 'global+attn';
const HEAD_KINDS: readonly HeadKind[] = ['global', 'lse', 'global+lse', 'global+attn'];
// Checked before the ~10 minutes of forward passes.
const kinds = args.heads!.split(',').map((h) => h.trim());
for (const k of kinds) if (!HEAD_KINDS.includes(k as HeadKind)) throw new Error(`unknown head ${k} (known: ${HEAD_KINDS.join(', ')})`);

const tf = await getTf();
const source = withLabelOverlays(await readLabelledSource(args.data), args.labels?.split(',').filter(Boolean) ?? [], log);
let items = (await loadLabelledItems(source)).filter((it) => it.row[task] !== undefined);
if (args.limit) items = shuffled(items, seededRandom(1)).slice(0, Number(args.limit)); // a quick smoke run over every source
log(`${items.length} photos labelled for ${task}`);
const backbone = await loadBackbone('inception_v3');
const spec: FeatureSpec = { trim: false, flipAverage: false, l2: true, normalise: true, orient: false, locate: true };

const GRID = 17;
const CH = 768;
/**
 * mixed7 activations are sparse and heavy-tailed (ReLU outputs: mean ~0.07, max ~8), so they are quantised on a
 * square-root scale: fine steps near zero, coarse ones in the tail; values above MAX clip (rare).
 */
const MAX = 10;
const DEQUANT = Float32Array.from({ length: 256 }, (_, q) => (q / 255) ** 2 * MAX);
/** One view of one photo: the shipped embedding and the quantised mixed7 map. */
interface View {
  readonly global: Float32Array;
  readonly map: Uint8Array;
}
let clipped = 0;
let maxSeen = 0;
let sumSeen = 0;
let total = 0;
async function views(flip: boolean): Promise<View[]> {
  const out: View[] = [];
  for await (const { start, n, outs } of layerBatches(backbone, items, spec, flip, ['mixed7', 'mixed10'])) {
    const [m7, m10] = outs;
    const [, h10, w10, c10] = m10!.dims as [number, number, number, number];
    for (let i = 0; i < n; i++) {
      const gap = new Float32Array(CH + c10);
      const map = new Uint8Array(GRID * GRID * CH);
      const base7 = i * GRID * GRID * CH;
      for (let p = 0; p < GRID * GRID; p++) {
        for (let k = 0; k < CH; k++) {
          const v = m7!.data[base7 + p * CH + k]!;
          gap[k] = gap[k]! + v / (GRID * GRID);
          const q = Math.round(Math.sqrt(Math.max(0, v) / MAX) * 255);
          if (v > maxSeen) maxSeen = v;
          sumSeen += v;
          total++;
          if (q > 255) clipped++;
          map[p * CH + k] = Math.max(0, Math.min(255, q));
        }
      }
      const base10 = i * h10 * w10 * c10;
      for (let p = 0; p < h10 * w10; p++) for (let k = 0; k < c10; k++) gap[CH + k] = gap[CH + k]! + m10!.data[base10 + p * c10 + k]! / (h10 * w10);
      out.push({ global: l2normalise(gap), map });
    }
    if (start % 400 === 0) log(`${flip ? 'mirrored' : 'plain'} ${start}/${items.length}`);
  }
  return out;
}
const plain = await views(false);
const mirrored = await views(true);
log(`quantisation clipped ${((100 * clipped) / total).toFixed(3)} % of values (max ${maxSeen.toFixed(2)}, mean ${(sumSeen / total).toFixed(3)})`);

/** Locations after `pool`×`pool` average pooling (ceil: the last row/column pools what is left). */
const G = Math.ceil(GRID / pool);
const P = G * G;
/** The pooled, dequantised map of a view, written into `out` at `offset` (P×CH floats). */
function pooledMap(v: View, out: Float32Array, offset: number): void {
  for (let gy = 0; gy < G; gy++) {
    for (let gx = 0; gx < G; gx++) {
      const o = offset + (gy * G + gx) * CH;
      let cells = 0;
      for (let y = gy * pool; y < Math.min(GRID, (gy + 1) * pool); y++) {
        for (let x = gx * pool; x < Math.min(GRID, (gx + 1) * pool); x++) {
          cells++;
          const b = (y * GRID + x) * CH;
          for (let k = 0; k < CH; k++) out[o + k] = out[o + k]! + DEQUANT[v.map[b + k]!]!;
        }
      }
      for (let k = 0; k < CH; k++) out[o + k] = out[o + k]! / cells;
    }
  }
}

/** Fit one head on `rows` (views with labels) and return a predictor over views. */
async function fit(kind: HeadKind, rows: readonly View[], y: readonly number[], classes: number): Promise<{ predict: (v: readonly View[]) => number[]; dispose: () => void }> {
  const random = seededRandom(seed);
  const useGlobal = kind.startsWith('global');
  const useLocal = kind !== 'global';
  const gStd = fitStandardiser(rows.map((r) => r.global));
  // Per-channel standardiser of the local map, from a sample of training views.
  const sample = shuffled(rows, seededRandom(seed)).slice(0, 300);
  const lMean = new Float32Array(CH);
  const lVar = new Float32Array(CH);
  if (useLocal) {
    const buf = new Float32Array(P * CH);
    for (const r of sample) {
      buf.fill(0);
      pooledMap(r, buf, 0);
      for (let p = 0; p < P; p++) for (let k = 0; k < CH; k++) lMean[k] = lMean[k]! + buf[p * CH + k]! / (sample.length * P);
    }
    for (const r of sample) {
      buf.fill(0);
      pooledMap(r, buf, 0);
      for (let p = 0; p < P; p++) for (let k = 0; k < CH; k++) lVar[k] = lVar[k]! + (buf[p * CH + k]! - lMean[k]!) ** 2 / (sample.length * P);
    }
  }
  const lStd = Float32Array.from(lVar, (v) => Math.max(Math.sqrt(v), 1e-3));
  const gDim = gStd.mean.length;
  const glorot = (i: number, o: number): tfTypes.Variable =>
    tf.tidy(() => tf.variable(tf.tensor2d(Float32Array.from({ length: i * o }, () => (random() * 2 - 1) * Math.sqrt(6 / (i + o))), [i, o])));
  const vars: Record<string, tfTypes.Variable> = {};
  if (useGlobal) {
    vars.wg = glorot(gDim, classes);
    vars.bg = tf.tidy(() => tf.variable(tf.zeros([classes])));
  }
  if (kind === 'lse' || kind === 'global+lse') {
    vars.wl = glorot(CH, classes);
    vars.bl = tf.tidy(() => tf.variable(tf.zeros([classes])));
  }
  if (kind === 'global+attn') {
    vars.wa1 = glorot(CH, 64);
    vars.wa2 = glorot(64, 1);
    vars.wl = glorot(CH, classes);
  }
  const counts = new Array<number>(classes).fill(0);
  for (const c of y) counts[c]!++;
  const present = counts.filter((c) => c > 0).length;
  const cw = counts.map((c) => (c === 0 ? 1 : y.length / (present * c)));

  /** Build the input tensors of a batch of views. */
  const inputs = (batch: readonly View[]): { g?: tfTypes.Tensor2D; l?: tfTypes.Tensor3D } => {
    const out: { g?: tfTypes.Tensor2D; l?: tfTypes.Tensor3D } = {};
    if (useGlobal) {
      const g = new Float32Array(batch.length * gDim);
      batch.forEach((v, i) => {
        for (let k = 0; k < gDim; k++) g[i * gDim + k] = (v.global[k]! - gStd.mean[k]!) / gStd.std[k]!;
      });
      out.g = tf.tensor2d(g, [batch.length, gDim]);
    }
    if (useLocal) {
      const l = new Float32Array(batch.length * P * CH);
      batch.forEach((v, i) => pooledMap(v, l, i * P * CH));
      for (let j = 0; j < batch.length * P; j++) for (let k = 0; k < CH; k++) l[j * CH + k] = (l[j * CH + k]! - lMean[k]!) / lStd[k]!;
      out.l = tf.tensor3d(l, [batch.length, P, CH]);
    }
    return out;
  };
  const logitsOf = (x: { g?: tfTypes.Tensor2D; l?: tfTypes.Tensor3D }, training: boolean, dropSeed: number): tfTypes.Tensor2D =>
    tf.tidy(() => {
      const drop = <T extends tfTypes.Tensor>(t: T): T => (training ? (tf.dropout(t, 0.2, undefined, dropSeed) as T) : t);
      let logits: tfTypes.Tensor2D | undefined;
      if (x.g) logits = tf.add(tf.matMul(drop(x.g), vars.wg!), vars.bg!) as tfTypes.Tensor2D;
      if (x.l) {
        const n = x.l.shape[0];
        const flat = tf.reshape(drop(x.l), [n * P, CH]) as tfTypes.Tensor2D;
        let local: tfTypes.Tensor2D;
        if (kind === 'global+attn') {
          const score = tf.reshape(tf.matMul(tf.tanh(tf.matMul(flat, vars.wa1!)), vars.wa2!), [n, P]);
          const att = tf.softmax(score); // [n, P]
          const pooled = tf.reshape(tf.matMul(tf.reshape(att, [n, 1, P]), tf.reshape(flat, [n, P, CH])), [n, CH]) as tfTypes.Tensor2D;
          local = tf.matMul(pooled, vars.wl!);
        } else {
          const s = tf.reshape(tf.add(tf.matMul(flat, vars.wl!), vars.bl!), [n, P, classes]);
          // Soft max over locations: (1/r)·log mean exp(r·s).
          local = tf.div(tf.sub(tf.logSumExp(tf.mul(s, temperature), 1), Math.log(P)), temperature) as tfTypes.Tensor2D;
        }
        logits = logits ? (tf.add(logits, local) as tfTypes.Tensor2D) : local;
      }
      return logits!;
    });
  const optimizer = tf.train.adam(3e-3);
  const batchSize = 64;
  const order0 = rows.map((_, i) => i);
  for (let epoch = 0; epoch < epochs; epoch++) {
    const order = shuffled(order0, random);
    let lossSum = 0;
    for (let start = 0; start < order.length; start += batchSize) {
      const ids = order.slice(start, start + batchSize);
      const x = inputs(ids.map((i) => rows[i]!));
      const yb = tf.tidy(() => tf.oneHot(tf.tensor1d(ids.map((i) => y[i]!), 'int32'), classes).toFloat());
      const wb = tf.tensor1d(ids.map((i) => cw[y[i]!]!));
      const dropSeed = Math.floor(random() * 1e9);
      const loss = optimizer.minimize(
        () =>
          tf.tidy(() => {
            const ce = tf.losses.softmaxCrossEntropy(yb, logitsOf(x, true, dropSeed), wb, undefined, tf.Reduction.SUM_BY_NONZERO_WEIGHTS);
            const reg = Object.entries(vars)
              .filter(([k]) => k.startsWith('w'))
              .reduce((acc, [, v]) => tf.add(acc, tf.mul(1e-3, tf.sum(tf.square(v)))), tf.scalar(0));
            return tf.add(ce, reg) as tfTypes.Scalar;
          }),
        true,
      );
      lossSum += (await loss!.data())[0]!;
      tf.dispose([loss!, yb, wb, x.g!, x.l!].filter(Boolean));
    }
    if (epoch % 10 === 9) log(`  ${kind} epoch ${epoch + 1}: loss ${(lossSum / Math.ceil(order.length / batchSize)).toFixed(3)}`);
  }
  optimizer.dispose();
  const predict = (vs: readonly View[]): number[] => {
    const pred: number[] = [];
    for (let start = 0; start < vs.length; start += batchSize) {
      const x = inputs(vs.slice(start, start + batchSize));
      const logits = logitsOf(x, false, 0);
      const arg = tf.tidy(() => tf.argMax(logits, 1));
      pred.push(...(arg.dataSync() as Int32Array));
      tf.dispose([logits, arg, x.g!, x.l!].filter(Boolean));
    }
    return pred;
  };
  return { predict, dispose: () => tf.dispose(Object.values(vars)) };
}

const labels = labelsOf(task);
const folds = probeFolds(items, task, seed);
console.log(`pool ${pool} (${G}×${G} locations), ${epochs} epochs, temperature ${temperature}`);
console.log(`| head | ${folds.map((f) => (f.source === 'held-out' ? 'held-out' : `hold out ${f.source.split('/')[0]}`)).join(' | ')} |`);
console.log(`|---|${folds.map(() => '---').join('|')}|`);
for (const kind of kinds as HeadKind[]) {
  const cells: string[] = [];
  for (const f of folds) {
    if (new Set(f.train.map((i) => items[i]!.row[task])).size < 2) {
      cells.push('–');
      continue;
    }
    const before = tf.memory().numTensors;
    const rows = [...f.train.map((i) => plain[i]!), ...f.train.map((i) => mirrored[i]!)];
    const y = [...f.train, ...f.train].map((i) => labels.indexOf(items[i]!.row[task]!));
    const head = await fit(kind, rows, y, labels.length);
    const pred = head.predict(f.test.map((i) => plain[i]!));
    head.dispose();
    const rep = classificationReport(f.test.map((i) => items[i]!.row[task]!), pred.map((p) => labels[p]!), labels);
    cells.push(`${rep.accuracy.toFixed(3)} / ${rep.macroF1.toFixed(3)}`);
    log(`${kind} ${f.source}: ${cells.at(-1)} (tensors ${before} → ${tf.memory().numTensors})`);
  }
  console.log(`| ${kind} | ${cells.join(' | ')} |`);
}
