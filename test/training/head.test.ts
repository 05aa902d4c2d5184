import { describe, expect, it } from 'vitest';
import { DEFAULT_HEAD_PARAMS, loadHead, trainHead, type HeadCheckpoint, type HeadData } from '../../plugins/training/lib/head.ts';
import { evaluate } from '../../plugins/training/lib/metrics.ts';
import { parseHead, predictHead } from '../../plugins/vision/lib/head.ts';

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
