import { describe, expect, it } from 'vitest';
import { DEFAULT_HEAD_PARAMS, featuresOf, loadHead, trainHead, type HeadCheckpoint, type HeadData } from '../../plugins/training/lib/head.ts';
import { evaluate } from '../../plugins/training/lib/metrics.ts';
import { parseHead, predictHead } from '../../plugins/vision/lib/head.ts';
import { DEFAULT_FEATURES, featureKey } from '../../plugins/vision/service.ts';
import { getTf } from '../../engine/ml/runtime.ts';

function blobs(n: number, dim: number, k: number, seed: number, sep = 3): HeadData {
  let s = seed;
  const r = (): number => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s / 2 ** 31;
  };
  const normal = (): number => Math.sqrt(-2 * Math.log(Math.max(r(), 1e-12))) * Math.cos(2 * Math.PI * r());
  const centres = Array.from({ length: k }, (_, c) => Array.from({ length: dim }, (_, d) => (d % k === c ? sep : 0)));
  const x: Float32Array[] = [];
  const y: number[] = [];
  for (let i = 0; i < n; i++) {
    const c = i % k;
    x.push(Float32Array.from(centres[c]!, (m) => m + normal()));
    y.push(c);
  }
  return { x, y };
}

const classes = ['a', 'b', 'c'];
const base = { task: 'brand', classes, features: { backbone: 'synthetic', prepVersion: 'test' }, seed: 11 };

describe('classification head', () => {
  it('GIVEN separable clusters THEN it learns them (macro-F1 > 0.9 on held-out data) for every optimiser', async () => {
    const train = blobs(240, 8, 3, 1);
    const test = blobs(90, 8, 3, 2);
    for (const optimizer of ['adam', 'sgd', 'rmsprop'] as const) {
      for (const hidden of [0, 32]) {
        const r = await trainHead({ ...base, train, validation: test, epochs: 20, params: { ...DEFAULT_HEAD_PARAMS, optimizer, hidden, lr: optimizer === 'sgd' ? 0.01 : 0.003 } });
        const head = loadHead(Buffer.from(JSON.stringify(r.artifact)));
        const pred = test.x.map((x) => classes[head.predict(x).indexOf(Math.max(...head.predict(x)))]!);
        const e = evaluate(test.y.map((y) => classes[y]!), pred, classes);
        expect(e.macroF1, `${optimizer} hidden=${hidden}`).toBeGreaterThan(0.9);
        expect(r.curves).toHaveLength(20);
        expect(r.curves.at(-1)!.loss).toBeLessThan(r.curves[0]!.loss);
      }
    }
  });

  it('GIVEN label smoothing THEN the head stops short of certainty on photos it has learnt, and still learns them', async () => {
    // Separable clusters: with one-hot targets the loss keeps pushing the logits apart after every row is right.
    const train = blobs(240, 8, 3, 5);
    const test = blobs(90, 8, 3, 6);
    const meanTop = async (labelSmoothing: number): Promise<{ top: number; right: number }> => {
      const r = await trainHead({ ...base, train, validation: test, epochs: 30, params: { ...DEFAULT_HEAD_PARAMS, labelSmoothing } });
      const head = loadHead(r.artifact);
      const probs = test.x.map((x) => head.predict(x));
      const right = probs.filter((p, i) => p.indexOf(Math.max(...p)) === test.y[i]).length / probs.length;
      return { top: probs.reduce((a, p) => a + Math.max(...p), 0) / probs.length, right };
    };
    const sharp = await meanTop(0);
    const smoothed = await meanTop(0.1);
    expect(sharp.right).toBeGreaterThan(0.95);
    expect(smoothed.right).toBeGreaterThan(0.95);
    expect(sharp.top).toBeGreaterThan(0.99);
    // The optimum of a 0.1-smoothed target over 3 classes is 1 - 0.1 + 0.1 / 3 ≈ 0.933 on the labelled class.
    expect(smoothed.top).toBeLessThan(0.95);
    expect(smoothed.top).toBeGreaterThan(0.85);
  });

  it('GIVEN a checkpoint from epoch 4 THEN resuming gives exactly the weights of an uninterrupted run', async () => {
    const train = blobs(120, 6, 3, 3);
    const val = blobs(30, 6, 3, 4);
    const params = { ...DEFAULT_HEAD_PARAMS, hidden: 16 };
    const full = await trainHead({ ...base, train, validation: val, epochs: 8, params });
    let saved: HeadCheckpoint | undefined;
    await trainHead({
      ...base,
      train,
      validation: val,
      epochs: 4,
      params,
      onEpoch: (_log, cp) => {
        saved = JSON.parse(JSON.stringify(cp)) as HeadCheckpoint;
      },
    });
    expect(saved?.epoch).toBe(4);
    const resumed = await trainHead({ ...base, train, validation: val, epochs: 8, params, resume: saved });
    expect(resumed.resumedFromEpoch).toBe(4);
    expect(resumed.artifact.layers).toEqual(full.artifact.layers);
    expect(resumed.curves.map((c) => c.loss)).toEqual(full.curves.map((c) => c.loss));
  });

  it('GIVEN a tfjs backend THEN the first layer runs there: the TypeScript loops\' curves and weights to rounding, resumable exactly, no tensor left', async () => {
    const tf = await getTf();
    // Wider than the other fixtures and a ragged last batch (100 rows, batches of 16), so the products matter.
    const train = blobs(100, 40, 3, 5);
    const val = blobs(30, 40, 3, 6);
    for (const hidden of [0, 16]) {
      const params = { ...DEFAULT_HEAD_PARAMS, hidden };
      const before = tf.memory().numTensors;
      const plain = await trainHead({ ...base, train, validation: val, epochs: 6, params });
      const onTf = await trainHead({ ...base, train, validation: val, epochs: 6, params, tf });
      expect(tf.memory().numTensors).toBe(before);
      expect(plain.artifact.meta.arithmetic).toBe('typescript');
      expect(onTf.artifact.meta.arithmetic).toBe(`tfjs-${tf.getBackend()}`);
      onTf.curves.forEach((c, i) => expect(c.loss).toBeCloseTo(plain.curves[i]!.loss, 4));
      const a = onTf.artifact.layers.flatMap((l) => [...l.kernel, ...l.bias]);
      const b = plain.artifact.layers.flatMap((l) => [...l.kernel, ...l.bias]);
      expect(a.length).toBe(b.length);
      expect(Math.max(...a.map((v, i) => Math.abs(v - b[i]!)))).toBeLessThan(1e-3);
      expect(a).not.toEqual(new Array(a.length).fill(0));
      let saved: HeadCheckpoint | undefined;
      await trainHead({ ...base, train, validation: val, epochs: 3, params, tf, onEpoch: (_l, cp) => void (saved = JSON.parse(JSON.stringify(cp)) as HeadCheckpoint) });
      const resumed = await trainHead({ ...base, train, validation: val, epochs: 6, params, tf, resume: saved });
      expect(resumed.artifact.layers).toEqual(onTf.artifact.layers);
    }
  });

  it('GIVEN the vision embedder\'s feature key THEN the artifact names every step of it, so serving embeds as training did', () => {
    const key = featureKey(DEFAULT_FEATURES);
    const f = featuresOf(key);
    expect(f).toMatchObject({ normalise: true, orient: false, upright: true, locate: true, l2: false });
    // Round trip: the flags give back the same cache key (l2 is the head's own step, not the key's).
    expect(featureKey({ ...f, l2: DEFAULT_FEATURES.l2 })).toBe(key);
    expect(featureKey({ ...featuresOf('vprep-1+norm3o'), l2: true })).toBe('vprep-1+norm3o');
    expect(featuresOf('vprep-1+trim+flipavg')).toEqual({ trim: true, flipAverage: true, l2: false });
  });

  it('GIVEN a wrong artifact THEN loadHead refuses it', () => {
    expect(() => loadHead(Buffer.from('{"format":"other"}'))).toThrow(/not a solescope head/);
    expect(() => loadHead(Buffer.from('{"format":"solescope-head","version":1,"labels":["a","b"],"standardise":{"mean":[0],"std":[1]},"layers":[]}'))).toThrow(/incomplete/);
  });

  it('GIVEN a trained head THEN its artifact is a vision head file: standardise → dense layers, OOD centroids', async () => {
    const train = blobs(60, 5, 3, 9);
    const r = await trainHead({ ...base, features: { backbone: 'mobilenet_v2', prepVersion: 'vprep-1+trim+flipavg' }, train, validation: train, epochs: 2, params: { ...DEFAULT_HEAD_PARAMS, hidden: 4 } });
    const a = r.artifact;
    expect(a).toMatchObject({ format: 'solescope-head', version: 1, task: 'brand', labels: classes, backbone: 'mobilenet_v2', features: { trim: true, flipAverage: true, l2: false } });
    expect(a.layers.map((l) => [l.inputs, l.units, l.activation])).toEqual([[5, 4, 'relu'], [4, 3, 'linear']]);
    expect(a.ood.centroids).toHaveLength(3);
    expect(a.ood.threshold).toBeGreaterThan(0);
    const p = loadHead(a).predict(train.x[0]!);
    expect(p.reduce((x, y) => x + y, 0)).toBeCloseTo(1);
    // The serving side (vision) accepts the artifact as one of its heads and predicts the same thing.
    const served = parseHead(JSON.parse(JSON.stringify(a)), 'test');
    const vp = predictHead(served, train.x[0]!);
    expect(Object.values(vp.probabilities).reduce((x, y) => x + y, 0)).toBeCloseTo(1);
    expect(vp.probabilities.a).toBeCloseTo(p[0]!, 5);
  });
});

describe('source-nuisance projection in the community trainer', () => {
  // As in the vision trainer's test: dimension 0 carries the class weakly, dimension 1 the source's style
  // strongly; hyped rows come only from source A, so a plain head reads "style B ⇒ not_hyped".
  let s = 5;
  const r = (): number => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s / 2 ** 31;
  };
  const gauss = (): number => Math.sqrt(-2 * Math.log(Math.max(r(), 1e-12))) * Math.cos(2 * Math.PI * r());
  const row = (hyped: boolean, source: 'A' | 'B'): Float32Array =>
    Float32Array.from({ length: 8 }, (_, d) => (d === 0 ? (hyped ? 1 : -1) + 0.8 * gauss() : d === 1 ? (source === 'A' ? 3 : -3) + 0.3 * gauss() : 0.5 * gauss()));
  const cells = [...Array.from({ length: 120 }, () => [true, 'A'] as const), ...Array.from({ length: 60 }, () => [false, 'A'] as const), ...Array.from({ length: 60 }, () => [false, 'B'] as const)];
  const train: HeadData = { x: cells.map(([h, src]) => row(h, src)), y: cells.map(([h]) => (h ? 0 : 1)) };
  const groups = cells.map(([, src]) => src);
  const unseen = Array.from({ length: 100 }, () => row(true, 'B'));
  const hype = { task: 'hype', classes: ['hyped', 'not_hyped'], features: { backbone: 'synthetic', prepVersion: 'test' }, seed: 3 };
  const params = { ...DEFAULT_HEAD_PARAMS, hidden: 16, dropout: 0, augment: 0 };
  const hypedShare = (a: Parameters<typeof loadHead>[0]): number => {
    const head = loadHead(a);
    return unseen.filter((x) => {
      const p = head.predict(x);
      return p[0]! > p[1]!;
    }).length / unseen.length;
  };

  it('GIVEN rows grouped by source THEN a hyped shoe in the other source\'s style is recognised, where the plain head calls it not_hyped', async () => {
    const plain = await trainHead({ ...hype, train, validation: train, epochs: 15, params });
    const projected = await trainHead({ ...hype, train, validation: train, epochs: 15, params, nuisance: { groups } });
    expect(hypedShare(plain.artifact)).toBeLessThan(0.3);
    expect(hypedShare(projected.artifact)).toBeGreaterThan(0.7);
    expect(projected.artifact.meta.nuisance).toEqual({ grouping: 'source', groups: 2, directions: 1 });
    expect(plain.artifact.meta.nuisance).toBeUndefined();
    // Same file format; the projection is folded into the first layer, so the vision plugin serves it unchanged.
    expect(projected.artifact.layers[0]!.inputs).toBe(8);
    const served = predictHead(parseHead(JSON.parse(JSON.stringify(projected.artifact)), 'p'), unseen[0]!);
    expect(served.probabilities.hyped).toBeCloseTo(loadHead(projected.artifact).predict(unseen[0]!)[0]!, 5);
    // One source only (or groups too small): nothing to project, the plain head.
    const single = await trainHead({ ...hype, train, validation: train, epochs: 15, params, nuisance: { groups: groups.map(() => 'A') } });
    expect(single.artifact.meta.nuisance).toEqual({ grouping: 'source', groups: 1, directions: 0 });
    expect(single.artifact.layers).toEqual(plain.artifact.layers);
    await expect(trainHead({ ...hype, train, validation: train, epochs: 1, params, nuisance: { groups: ['A'] } })).rejects.toThrow(/rows/);
  });

  it('GIVEN the projection and a checkpoint THEN resuming gives exactly the weights of an uninterrupted run', async () => {
    const full = await trainHead({ ...hype, train, validation: train, epochs: 6, params, nuisance: { groups } });
    let saved: HeadCheckpoint | undefined;
    await trainHead({ ...hype, train, validation: train, epochs: 3, params, nuisance: { groups }, onEpoch: (_l, cp) => void (saved = JSON.parse(JSON.stringify(cp)) as HeadCheckpoint) });
    const resumed = await trainHead({ ...hype, train, validation: train, epochs: 6, params, nuisance: { groups }, resume: saved });
    expect(resumed.artifact.layers).toEqual(full.artifact.layers);
  });
});
