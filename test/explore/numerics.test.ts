import { describe, expect, it } from 'vitest';
import { PCA } from 'ml-pca';
import {
  HISTOGRAM_BINS,
  MI_LEVELS,
  Reservoir,
  RunningMean,
  chooseK,
  distanceMatrix,
  elbow,
  gaussian,
  histogramMutualInformation,
  kMeans,
  medoids,
  rankLevels,
  rgbHistogram,
  seededRandom,
  silhouetteSamples,
} from '../../plugins/explore/lib/numerics.ts';
import { randomizedPca } from '../../plugins/explore/lib/pca.ts';
import { boxDownscale, parseSince } from '../../plugins/explore/lib/selection.ts';

/** Isotropic Gaussian blobs around well-separated centres. */
function blobs(k: number, perCluster: number, dim: number, spread: number, seed: number): { points: number[][]; truth: number[] } {
  const normal = gaussian(seededRandom(seed));
  const points: number[][] = [];
  const truth: number[] = [];
  for (let c = 0; c < k; c++) {
    const centre = Array.from({ length: dim }, (_, j) => (j === c % dim ? 10 : 0) + (j === (c + 1) % dim ? 10 * Math.floor(c / dim) : 0));
    for (let i = 0; i < perCluster; i++) {
      points.push(centre.map((v) => v + normal() * spread));
      truth.push(c);
    }
  }
  return { points, truth };
}

/** A normalised random RGB histogram. */
function randomHistogram(random: () => number): Float64Array {
  const h = new Float64Array(3 * HISTOGRAM_BINS);
  for (let c = 0; c < 3; c++) {
    let s = 0;
    for (let b = 0; b < HISTOGRAM_BINS; b++) s += h[c * HISTOGRAM_BINS + b] = random() ** 3;
    for (let b = 0; b < HISTOGRAM_BINS; b++) h[c * HISTOGRAM_BINS + b]! /= s;
  }
  return h;
}

describe('RunningMean', () => {
  it('GIVEN known vectors THEN the mean is exact and memory does not grow with the count', () => {
    const m = new RunningMean(3);
    m.add([0, 10, 255]);
    m.add([2, 20, 0]);
    m.add([4, 30, 0]);
    expect([...m.mean()]).toEqual([2, 20, 85]);
    expect(m.count).toBe(3);
    for (let i = 0; i < 10_000; i++) m.add([1, 1, 1]);
    expect(m.mean().length).toBe(3);
  });

  it('GIVEN a vector of the wrong length THEN it refuses it', () => {
    expect(() => new RunningMean(3).add([1, 2])).toThrow(RangeError);
  });
});

describe('histogram mutual information', () => {
  it('GIVEN identical histograms THEN the MI is maximal: equal to the entropy, above every other histogram', () => {
    const random = seededRandom(5);
    const h = randomHistogram(random);
    const self = histogramMutualInformation(h, h);
    expect(self.bits).toBeCloseTo(self.maxBits, 12);
    expect(self.bits).toBeCloseTo(Math.log2(MI_LEVELS), 2);
    expect(self.normalised).toBeCloseTo(1, 12);
    for (let t = 0; t < 50; t++) {
      const other = histogramMutualInformation(h, randomHistogram(random));
      expect(other.bits).toBeLessThan(self.bits);
      expect(other.normalised).toBeLessThan(1);
    }
  });

  it('GIVEN a monotone rescaling of a histogram THEN the MI stays maximal (it compares shapes, not scales)', () => {
    const h = randomHistogram(seededRandom(9));
    const squashed = h.map((v) => Math.sqrt(v) * 0.5);
    expect(histogramMutualInformation(h, squashed).bits).toBeCloseTo(histogramMutualInformation(h, h).bits, 12);
  });

  it('GIVEN two histograms THEN the MI is symmetric and a near-copy beats an unrelated one', () => {
    const random = seededRandom(11);
    const a = randomHistogram(random);
    const b = randomHistogram(random);
    const noisy = a.map((v) => v * (1 + 0.05 * (random() - 0.5)));
    expect(histogramMutualInformation(a, b).bits).toBeCloseTo(histogramMutualInformation(b, a).bits, 12);
    expect(histogramMutualInformation(a, noisy).bits).toBeGreaterThan(histogramMutualInformation(a, b).bits + 0.5);
  });

  it('GIVEN ties THEN rank levels give equal heights one level', () => {
    const levels = rankLevels([0, 0, 0, 0, 5, 6, 7, 8], 4);
    expect(new Set([...levels.slice(0, 4)]).size).toBe(1);
    expect(levels[7]).toBe(3);
  });

  it('GIVEN float pixels THEN rgbHistogram counts each channel into 256 bins summing to 1', () => {
    const px = Float32Array.from([0, 0.5, 1, 1, 0.5, 0]);
    const h = rgbHistogram(px);
    expect(h.length).toBe(768);
    expect(h[0]).toBe(0.5);
    expect(h[255]).toBe(0.5);
    expect(h[256 + 127]).toBe(1);
    for (let c = 0; c < 3; c++) expect(h.slice(c * 256, c * 256 + 256).reduce((x, y) => x + y, 0)).toBeCloseTo(1, 12);
  });
});

describe('silhouette and the choice of K', () => {
  it('GIVEN a tiny labelled set THEN silhouette values match the hand computation', () => {
    // Points on a line: cluster 0 = {0, 1}, cluster 1 = {10}. For x=0: a = 1, b = 10 → s = 0.9.
    const d = distanceMatrix([[0], [1], [10]]);
    const s = silhouetteSamples(d, [0, 0, 1], 2);
    expect(s[0]).toBeCloseTo(0.9, 12);
    expect(s[1]).toBeCloseTo((9 - 1) / 9, 12);
    expect(s[2]).toBe(0); // alone in its cluster
  });

  for (const trueK of [3, 5]) {
    it(`GIVEN ${trueK} separable synthetic clusters THEN silhouette analysis picks K = ${trueK}`, () => {
      const { points, truth } = blobs(trueK, 25, 6, 0.8, trueK);
      const d = distanceMatrix(points);
      const choice = chooseK(points, d, 9);
      expect(choice.bySilhouette).toBe(trueK);
      expect(choice.k).toBe(trueK);
      // The clusters are the true groups (up to renaming).
      const mapping = new Map<number, number>();
      choice.clustering.labels.forEach((l, i) => mapping.set(truth[i]!, l));
      truth.forEach((t, i) => expect(choice.clustering.labels[i]).toBe(mapping.get(t)));
      expect(choice.candidates.find((c) => c.k === trueK)!.silhouette).toBeGreaterThan(0.7);
    });
  }

  it('GIVEN a sharply bent curve THEN the elbow is at the bend', () => {
    expect(elbow([1, 2, 3, 4, 5, 6], [100, 50, 10, 9, 8, 7])).toBe(3);
  });

  it('GIVEN clusters THEN each medoid is a member with the least total distance', () => {
    const points = [[0], [1], [2], [10], [11], [30]];
    const labels = [0, 0, 0, 1, 1, 1];
    const m = medoids(distanceMatrix(points), labels, 2);
    expect(m[0]).toBe(1);
    expect(m[1]).toBe(4);
  });

  it('GIVEN a seed THEN k-means is deterministic', () => {
    const { points } = blobs(3, 10, 4, 1, 1);
    expect([...kMeans(points, 3, 7).labels]).toEqual([...kMeans(points, 3, 7).labels]);
  });
});

describe('randomised PCA', () => {
  it('GIVEN low-rank data THEN components, variances and scores match ml-pca', () => {
    const normal = gaussian(seededRandom(1));
    const rows: number[][] = [];
    for (let i = 0; i < 60; i++) {
      const a = normal() * 5;
      const b = normal() * 2;
      rows.push(Array.from({ length: 24 }, (_, j) => a * Math.sin(j) + b * Math.cos(j * 0.3) + 0.05 * normal() + 3));
    }
    const ref = new PCA(rows);
    const ours = randomizedPca(rows, 2);
    const refRatio = ref.getExplainedVariance();
    expect(ours.explainedVarianceRatio[0]).toBeCloseTo(refRatio[0]!, 6);
    expect(ours.explainedVarianceRatio[1]).toBeCloseTo(refRatio[1]!, 6);
    const u = ref.getEigenvectors();
    for (let c = 0; c < 2; c++) {
      let dot = 0;
      for (let j = 0; j < 24; j++) dot += u.get(j, c) * ours.components[c]![j]!;
      expect(Math.abs(dot)).toBeCloseTo(1, 6);
      const sign = Math.sign(dot);
      const refScores = ref.predict(rows);
      for (let i = 0; i < 5; i++) expect(ours.scores[i]![c]! * sign).toBeCloseTo(refScores.get(i, c), 4);
    }
  });

  it('GIVEN k above n − 1 THEN it keeps n − 1 components', () => {
    expect(randomizedPca([[1, 2, 3], [2, 3, 1], [0, 1, 5]], 10).k).toBe(2);
  });
});

describe('streaming helpers', () => {
  it('GIVEN a stream longer than its capacity THEN the reservoir keeps a bounded, seeded sample', () => {
    const r1 = new Reservoir<number>(10, seededRandom(3));
    const r2 = new Reservoir<number>(10, seededRandom(3));
    for (let i = 0; i < 1000; i++) {
      r1.offer(() => i);
      r2.offer(() => i);
    }
    expect(r1.items.length).toBe(10);
    expect(r1.items).toEqual(r2.items);
    expect(r1.items.some((v) => v >= 500)).toBe(true);
  });

  it('GIVEN a 4×4 image THEN the box downscale averages each block exactly', () => {
    const px = new Float32Array(4 * 4 * 3);
    for (let i = 0; i < 16; i++) px[i * 3] = i / 16;
    const out = boxDownscale(px, 4, 2);
    expect(out.length).toBe(12);
    expect(out[0]).toBeCloseTo((0 + 1 + 4 + 5) / 64, 6);
  });

  it('GIVEN spans and dates THEN --since parses both and rejects junk', () => {
    const now = new Date('2026-02-01T00:00:00Z');
    expect(parseSince('30d', now)?.toISOString()).toBe('2026-01-02T00:00:00.000Z');
    expect(parseSince('2026-01-15', now)?.toISOString()).toBe('2026-01-15T00:00:00.000Z');
    expect(parseSince('last tuesday', now)).toBeUndefined();
  });
});
