import { describe, it, expect, beforeAll } from 'vitest';
import { getTf } from '../../engine/ml/runtime.ts';
import { foldKernel, nuisanceDirections, projectOut } from '../../engine/ml/nuisance.ts';
import { combineFits, foldProjection, trainHead } from '../../plugins/vision/lib/train.ts';
import { headLogitsTf, headLogitGradient, headProbabilities, parseHead, predictHead, probabilitiesFromLogits, denseForward, headInput, loadHeadFile, type DenseLayer } from '../../plugins/vision/lib/head.ts';
import { seededRandom } from '../../plugins/vision/lib/split.ts';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

// Tiny synthetic embeddings: three brand clusters in 16-d, plus points far from all of them.
const DIM = 16;
function cluster(centre: number, n: number, random: () => number): Float32Array[] {
  return Array.from({ length: n }, () => Float32Array.from({ length: DIM }, (_, d) => (d % 3 === centre ? 3 : 0.2) + (random() - 0.5) * 0.6));
}
const random = seededRandom(1);
const x = [...cluster(0, 40, random), ...cluster(1, 25, random), ...cluster(2, 8, random)];
const y = [...Array(40).fill('jordan'), ...Array(25).fill('nike'), ...Array(8).fill('adidas')] as string[];
const features = { trim: true, flipAverage: true, l2: true };

describe('heads trained on embeddings', () => {
  beforeAll(async () => {
    await getTf({ backend: 'cpu' });
  });

  it('GIVEN separable classes THEN the brand head learns them and training leaks no tensor', async () => {
    const tf = await getTf();
    const before = tf.memory().numTensors;
    const head = await trainHead({ task: 'brand', id: 't', backbone: 'synthetic', prepVersion: 'v', features, x, y }, { epochs: 40, seed: 3, learningRate: 0.01 });
    expect(tf.memory().numTensors).toBe(before);
    expect(head.labels).toEqual(['jordan', 'nike', 'adidas']);
    const acc = x.filter((v, i) => predictHead(head, v).label === y[i]).length / x.length;
    expect(acc).toBeGreaterThan(0.95);
    const p = predictHead(head, x[0]!);
    expect(Object.keys(p.probabilities).sort()).toEqual(['adidas', 'jordan', 'nike', 'other']);
    expect(Object.values(p.probabilities).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    expect(p.ood.outside).toBe(false);
    // Same seed → same weights (reproducible defaults).
    const again = await trainHead({ task: 'brand', id: 't', backbone: 'synthetic', prepVersion: 'v', features, x, y }, { epochs: 40, seed: 3, learningRate: 0.01 });
    expect(again.layers[0]!.kernel).toEqual(head.layers[0]!.kernel);
  });

  it('GIVEN sample weights THEN all-ones changes nothing, other weights change the fit, and a wrong length is refused', async () => {
    const input = { task: 'brand', id: 't', backbone: 'synthetic', prepVersion: 'v', features, x, y } as const;
    const opts = { epochs: 10, seed: 3, learningRate: 0.01 };
    const plain = await trainHead(input, opts);
    const ones = await trainHead({ ...input, sampleWeight: x.map(() => 1) }, opts);
    expect(ones.layers[0]!.kernel).toEqual(plain.layers[0]!.kernel);
    const skewed = await trainHead({ ...input, sampleWeight: x.map((_, i) => (i % 2 === 0 ? 2 : 0.5)) }, opts);
    expect(skewed.layers[0]!.kernel).not.toEqual(plain.layers[0]!.kernel);
    await expect(trainHead({ ...input, sampleWeight: [1, 2] }, opts)).rejects.toThrow(/sampleWeight/);
  });

  it('GIVEN seeds: 3 THEN the linear head is the weight average of the three seeds\' fits (one head serving their ensemble)', async () => {
    const tf = await getTf();
    const input = { task: 'brand', id: 't', backbone: 'synthetic', prepVersion: 'v', features, x, y } as const;
    const opts = { epochs: 10, seed: 3, learningRate: 0.01 };
    const before = tf.memory().numTensors;
    const progress: string[] = [];
    const averaged = await trainHead(input, { ...opts, seeds: 3, onEpoch: (e, total) => void progress.push(`${e}/${total}`) });
    expect(tf.memory().numTensors).toBe(before);
    // Progress runs once over the epochs of all three fits.
    expect(progress).toEqual(Array.from({ length: 30 }, (_, i) => `${i + 1}/30`));
    const fits = await Promise.all([3, 4, 5].map((seed) => trainHead(input, { ...opts, seed })));
    expect(new Set(fits.map((f) => f.layers[0]!.kernel[0])).size).toBe(3);
    const kernels = fits.map((f) => f.layers[0]!.kernel);
    averaged.layers[0]!.kernel.forEach((w, j) => expect(w).toBeCloseTo((kernels[0]![j]! + kernels[1]![j]! + kernels[2]![j]!) / 3, 5));
    averaged.layers[0]!.bias.forEach((b, j) => expect(b).toBeCloseTo(fits.reduce((a, f) => a + f.layers[0]!.bias[j]!, 0) / 3, 5));
    // So its logits are the mean of the three heads' logits.
    const logits = (h: typeof averaged): Float32Array => denseForward(h.layers, headInput(h, x[50]!));
    const mean = [0, 1, 2].map((c) => fits.reduce((a, f) => a + logits(f)[c]!, 0) / 3);
    Array.from(logits(averaged)).forEach((l, c) => expect(l).toBeCloseTo(mean[c]!, 4));
    await expect(trainHead(input, { ...opts, seeds: 0 })).rejects.toThrow(/positive integer/);
  });

  it('GIVEN seeds: 3 on an MLP THEN the head lays the three fits side by side and its logits are the mean of theirs', async () => {
    const tf = await getTf();
    const hy = y.map((b) => (b === 'adidas' ? 'not_hyped' : 'hyped'));
    const input = { task: 'hype', id: 'h', backbone: 'synthetic', prepVersion: 'v', features, x, y: hy } as const;
    const opts = { type: 'mlp', hidden: 8, epochs: 8, seed: 5, learningRate: 0.01 } as const;
    const before = tf.memory().numTensors;
    const progress: string[] = [];
    const ensemble = await trainHead(input, { ...opts, seeds: 3, onEpoch: (e, total) => void progress.push(`${e}/${total}`) });
    expect(tf.memory().numTensors).toBe(before);
    expect(progress).toEqual(Array.from({ length: 24 }, (_, i) => `${i + 1}/24`));
    // Still a valid head file: 24 hidden units, 2 outputs.
    expect(parseHead(JSON.parse(JSON.stringify(ensemble)), 'round trip').layers.map((l) => [l.inputs, l.units])).toEqual([[DIM, 24], [24, 2]]);
    const fits = await Promise.all([5, 6, 7].map((seed) => trainHead(input, { ...opts, seed })));
    expect(new Set(fits.map((f) => f.layers[0]!.kernel[0])).size).toBe(3);
    const logits = (h: typeof ensemble, v: Float32Array): Float32Array => denseForward(h.layers, headInput(h, v));
    for (const v of [x[0]!, x[45]!, x[70]!]) {
      const mean = [0, 1].map((c) => fits.reduce((a, f) => a + logits(f, v)[c]!, 0) / 3);
      Array.from(logits(ensemble, v)).forEach((l, c) => expect(l).toBeCloseTo(mean[c]!, 4));
    }
  });

  it('GIVEN single-seed brand MLP fits THEN combineFits rebuilds the seed ensemble, and its answer is probabilitiesFromLogits of their mean logits', async () => {
    // What `train:defaults --seed-study` relies on: score any ensemble from its fits' logits without building it.
    const input = { task: 'brand', id: 'b', backbone: 'synthetic', prepVersion: 'v', features, x, y } as const;
    const opts = { type: 'mlp', hidden: 8, epochs: 8, seed: 5, learningRate: 0.01 } as const;
    const ensemble = await trainHead(input, { ...opts, seeds: 3 });
    const fits = await Promise.all([5, 6, 7].map((seed) => trainHead(input, { ...opts, seed })));
    expect(combineFits(fits.map((f) => f.layers))).toEqual(ensemble.layers);
    expect(combineFits([fits[0]!.layers])).toEqual(fits[0]!.layers);
    expect(() => combineFits([])).toThrow(/at least one/);
    const alien = Float32Array.from({ length: DIM }, (_, d) => (d === 15 ? 5 : d === 14 ? -4 : 0));
    for (const v of [x[0]!, x[45]!, x[70]!, alien]) {
      const mean = new Float32Array(3);
      for (const f of fits) denseForward(f.layers, headInput(f, v)).forEach((l, c) => (mean[c] = mean[c]! + l / 3));
      const fromLogits = probabilitiesFromLogits(fits[0]!, mean, v);
      const served = headProbabilities(ensemble, v);
      expect(Object.keys(fromLogits)).toEqual(Object.keys(served));
      for (const [label, p] of Object.entries(served)) expect(fromLogits[label]).toBeCloseTo(p, 5);
    }
  });

  it('GIVEN an embedding unlike every known brand THEN probability moves to other and the answer is low confidence', async () => {
    const head = await trainHead({ task: 'brand', id: 't', backbone: 'synthetic', prepVersion: 'v', features, x, y }, { epochs: 30, seed: 3, learningRate: 0.01 });
    const alien = Float32Array.from({ length: DIM }, (_, d) => (d === 15 ? 5 : d === 14 ? -4 : 0));
    const p = predictHead(head, alien);
    expect(p.ood.outside).toBe(true);
    expect(p.lowConfidence).toBe(true);
    expect(p.probabilities.other!).toBeGreaterThan(0.5);
    expect(p.label).toBe('other');
  });

  it('GIVEN test-time views THEN the answer is the mean of the views\' probabilities, the OOD check the photo\'s own; a head file names its view or is refused', async () => {
    const head = await trainHead({ task: 'brand', id: 't', backbone: 'synthetic', prepVersion: 'v', features, x, y }, { epochs: 30, seed: 3, learningRate: 0.01 });
    const alien = Float32Array.from({ length: DIM }, (_, d) => (d === 15 ? 5 : d === 14 ? -4 : 0));
    const a = predictHead(head, x[0]!);
    const b = predictHead(head, x[50]!);
    const both = predictHead(head, x[0]!, [x[50]!]);
    for (const l of Object.keys(a.probabilities)) expect(both.probabilities[l]).toBeCloseTo((a.probabilities[l]! + b.probabilities[l]!) / 2, 10);
    expect(Object.values(both.probabilities).reduce((s, p) => s + p, 0)).toBeCloseTo(1, 6);
    expect(both.confidence).toBe(Math.max(...Object.values(both.probabilities)));
    expect(predictHead(head, x[0]!, [alien]).ood).toEqual(a.ood);
    expect(predictHead(head, alien, [x[0]!]).ood.outside).toBe(true);
    expect(parseHead({ ...head, tta: 'mirror' }, 'test').tta).toBe('mirror');
    expect(() => parseHead({ ...head, tta: 'rotate' }, 'test')).toThrow(/corrupt/);
  });

  it('GIVEN a hype head THEN probabilities cover hyped/not_hyped and tf logits equal the plain forward pass without leaks', async () => {
    const tf = await getTf();
    const hy = y.map((b) => (b === 'adidas' ? 'not_hyped' : 'hyped'));
    const head = await trainHead({ task: 'hype', id: 'h', backbone: 'synthetic', prepVersion: 'v', features, x, y: hy }, { type: 'mlp', hidden: 8, epochs: 30, seed: 5, learningRate: 0.01 });
    expect(head.layers).toHaveLength(2);
    const p = predictHead(head, x[70]!);
    expect(Object.keys(p.probabilities).sort()).toEqual(['hyped', 'not_hyped']);
    const before = tf.memory().numTensors;
    const logits = tf.tidy(() => headLogitsTf(tf, head, tf.tensor2d(x[70]!, [1, DIM])).arraySync()[0]!);
    expect(tf.memory().numTensors).toBe(before);
    const plain = Array.from(denseForward(head.layers, headInput(head, x[70]!)));
    logits.forEach((v, i) => expect(v).toBeCloseTo(plain[i]!, 3));
  });

  it('GIVEN an MLP head and a linear head THEN the closed-form logit gradient equals tf.grad of the tf logits', async () => {
    const tf = await getTf();
    const hy = y.map((b) => (b === 'adidas' ? 'not_hyped' : 'hyped'));
    const mlp = await trainHead({ task: 'hype', id: 'h', backbone: 'synthetic', prepVersion: 'v', features, x, y: hy }, { type: 'mlp', hidden: 8, epochs: 20, seed: 5, learningRate: 0.01 });
    const linear = await trainHead({ task: 'brand', id: 'b', backbone: 'synthetic', prepVersion: 'v', features: { ...features, l2: false }, x, y }, { epochs: 20, seed: 3, learningRate: 0.01 });
    for (const head of [mlp, linear]) {
      for (const sample of [x[0]!, x[50]!, x[70]!]) {
        for (let c = 0; c < head.labels.length; c++) {
          const viaTf = tf.tidy(() => {
            const oneHot = tf.oneHot(tf.tensor1d([c], 'int32'), head.labels.length).toFloat();
            const g = tf.grad((e) => headLogitsTf(tf, head, e as Parameters<typeof headLogitsTf>[2]).mul(oneHot).sum())(tf.tensor2d(sample, [1, DIM]));
            return Array.from(g.dataSync());
          });
          const closed = Array.from(headLogitGradient(head, sample, c));
          const scale = Math.max(...viaTf.map(Math.abs), 1e-6);
          closed.forEach((v, i) => expect(Math.abs(v - viaTf[i]!) / scale).toBeLessThan(1e-4));
        }
      }
    }
    expect(() => headLogitGradient(mlp, x[0]!, 5)).toThrow(/outside/);
  });

  it('GIVEN a missing or corrupt model file THEN MODEL_MISSING names the rebuild command', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'vision-head-'));
    expect(() => loadHeadFile(path.join(dir, 'nope.json'))).toThrow(expect.objectContaining({ code: 'MODEL_MISSING', message: expect.stringContaining('npm run train:defaults') }));
    writeFileSync(path.join(dir, 'bad.json'), '{"format":"solescope-head"');
    expect(() => loadHeadFile(path.join(dir, 'bad.json'))).toThrow(expect.objectContaining({ code: 'MODEL_MISSING' }));
    expect(() => parseHead({ format: 'solescope-head', version: 1 }, 'x')).toThrow(expect.objectContaining({ code: 'MODEL_MISSING' }));
  });
});

describe('nuisance projection (a source\'s style projected out of the head\'s input)', () => {
  // 8-d rows: dimension 0 carries the class (weakly, noisy), dimension 1 the source's style (strongly). hyped rows
  // come only from source A; not_hyped rows from A and B. A head can then read "style B ⇒ not_hyped", which is
  // wrong for a hyped shoe from B: the confound of the dev set (every not_hyped and adidas photo in one source).
  const rnd = seededRandom(11);
  const gauss = (): number => Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
  const row = (hyped: boolean, source: 'A' | 'B'): Float32Array =>
    Float32Array.from({ length: 8 }, (_, d) => (d === 0 ? (hyped ? 1 : -1) + 0.8 * gauss() : d === 1 ? (source === 'A' ? 3 : -3) + 0.3 * gauss() : 0.5 * gauss()));
  const cells = [
    ...Array.from({ length: 120 }, () => ({ hyped: true, source: 'A' as const })),
    ...Array.from({ length: 60 }, () => ({ hyped: false, source: 'A' as const })),
    ...Array.from({ length: 60 }, () => ({ hyped: false, source: 'B' as const })),
  ];
  const xs = cells.map((c) => row(c.hyped, c.source));
  const ys = cells.map((c) => (c.hyped ? 'hyped' : 'not_hyped'));
  const sources = cells.map((c) => c.source);
  // The test: hyped shoes from source B, a class/source combination the training data never showed.
  const unseen = Array.from({ length: 100 }, () => row(true, 'B'));
  const input = { task: 'hype', id: 'h', backbone: 'synthetic', prepVersion: 'v', features: { trim: false, flipAverage: false, l2: false }, x: xs, y: ys } as const;
  const opts = { epochs: 60, seed: 3, learningRate: 0.01, dropout: 0 };

  it('GIVEN a class with rows in two sources THEN the direction found is the style axis, and folding it into the first layer equals projecting the input', () => {
    const yIdx = ys.map((l) => (l === 'hyped' ? 0 : 1));
    const [u, ...rest] = nuisanceDirections(xs, yIdx, [sources]);
    expect(rest).toEqual([]);
    expect(Math.abs(u![1]!)).toBeGreaterThan(0.97);
    expect(nuisanceDirections(xs, yIdx, [sources], { max: 0 })).toEqual([]);
    // A grouping where no class spans two groups says nothing.
    expect(nuisanceDirections(xs, yIdx, [ys])).toEqual([]);
    expect(() => nuisanceDirections(xs, yIdx, [['A']])).toThrow(/rows/);
    const layer: DenseLayer = { inputs: 8, units: 3, kernel: Array.from({ length: 24 }, () => gauss()), bias: [0.1, -0.2, 0.3], activation: 'linear' };
    const apply = (l: DenseLayer, v: Float32Array): number[] => l.bias.map((b, j) => b + Array.from(v).reduce((a, vi, i) => a + vi * l.kernel[i * l.units + j]!, 0));
    const folded = foldProjection(layer, [u!]);
    for (const v of xs.slice(0, 5)) {
      const want = apply(layer, projectOut([v], [u!])[0]!);
      apply(folded, v).forEach((o, j) => expect(o).toBeCloseTo(want[j]!, 4));
    }
    expect(() => foldKernel([1, 2, 3], 2, 2, [])).toThrow(/kernel/);
    expect(() => foldKernel(layer.kernel, 8, 3, [new Float32Array(4)])).toThrow(/direction/);
  });

  it('GIVEN nuisanceGroups THEN a hyped shoe in the other source\'s style is recognised, where the plain head calls it not_hyped', async () => {
    const tf = await getTf();
    const before = tf.memory().numTensors;
    const plain = await trainHead(input, opts);
    const projected = await trainHead({ ...input, nuisanceGroups: [sources] }, opts);
    expect(tf.memory().numTensors).toBe(before);
    const accuracy = (h: typeof plain): number => unseen.filter((v) => predictHead(h, v).label === 'hyped').length / unseen.length;
    expect(accuracy(plain)).toBeLessThan(0.3);
    expect(accuracy(projected)).toBeGreaterThan(0.7);
    expect(projected.meta.nuisanceDirections).toBe(1);
    // The file format is unchanged: the projection lives in the first layer's kernel.
    expect(parseHead(JSON.parse(JSON.stringify(projected)), 'p').layers[0]!.inputs).toBe(8);
    // Off: the same head as without groups.
    const off = await trainHead({ ...input, nuisanceGroups: [sources] }, { ...opts, nuisanceDirections: 0 });
    expect(off.layers[0]!.kernel).toEqual(plain.layers[0]!.kernel);
  });
});
