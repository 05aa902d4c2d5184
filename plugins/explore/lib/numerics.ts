/**
 * Numerics of the exploration plugin that no kept library offers in the shape we need: streaming pixel
 * means, intensity histograms, mutual information between histograms, silhouette scores, the elbow, the
 * choice of K and medoids. K-means itself is ml-kmeans; PCA is `pca.ts` (ml-matrix for the small
 * factorisations); t-SNE and UMAP are `embed-2d.ts` (@keckelt/tsne, umap-js).
 *
 * Everything here is plain TypedArray arithmetic (no tfjs), so nothing can leak tensors.
 */
import { kmeans } from 'ml-kmeans';
import { seededRandom } from '../../../engine/random.ts';

/** A seeded PRNG (mulberry32, engine/random.ts): the same seed gives the same maps, samples and clusters on every run. */
export { seededRandom };

/** 0..n−1 in a seeded random order (Fisher–Yates). */
export function shuffledIndices(n: number, seed: number): number[] {
  const random = seededRandom(seed);
  const idx = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  return idx;
}

/** A standard-normal sampler (Box–Muller) over a uniform PRNG. */
export function gaussian(random: () => number): () => number {
  let spare: number | undefined;
  return () => {
    if (spare !== undefined) {
      const s = spare;
      spare = undefined;
      return s;
    }
    let u = 0;
    while (u === 0) u = random();
    const v = random();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
}

/**
 * A running per-element mean over equally long vectors (e.g. 224×224×3 pixels). Sums are Float64 so the
 * mean of 10k 8-bit images is exact to well below one grey level; memory is one vector whatever the count.
 */
export class RunningMean {
  private readonly sum: Float64Array;
  private n = 0;

  constructor(readonly length: number) {
    this.sum = new Float64Array(length);
  }

  /** Add one vector. */
  add(values: ArrayLike<number>): void {
    if (values.length !== this.length) throw new RangeError(`expected ${this.length} values, got ${values.length}`);
    const s = this.sum;
    for (let i = 0; i < s.length; i++) s[i]! += values[i]!;
    this.n++;
  }

  /** How many vectors were added. */
  get count(): number {
    return this.n;
  }

  /** The mean so far (zeros when nothing was added). */
  mean(): Float64Array {
    const out = new Float64Array(this.length);
    if (this.n === 0) return out;
    for (let i = 0; i < out.length; i++) out[i] = this.sum[i]! / this.n;
    return out;
  }
}

/**
 * Reservoir sampling (Algorithm R): a uniform random sample of at most `capacity` items from a stream of
 * unknown length, in O(capacity) memory. Used to bound the eigen-shoe PCA and the cluster maps.
 */
export class Reservoir<T> {
  readonly items: T[] = [];
  private seen = 0;

  constructor(
    readonly capacity: number,
    private readonly random: () => number,
  ) {}

  /**
   * Offer one item. `make` is called only when the item is kept, so expensive work (downscaling an
   * image) is skipped for items that would be thrown away. Returns whether it was kept.
   */
  offer(make: () => T): boolean {
    this.seen++;
    if (this.items.length < this.capacity) {
      this.items.push(make());
      return true;
    }
    const j = Math.floor(this.random() * this.seen);
    if (j < this.capacity) {
      this.items[j] = make();
      return true;
    }
    return false;
  }

  /** Items offered so far. */
  get offered(): number {
    return this.seen;
  }
}

/** Bins per channel of every intensity histogram (one bin per 8-bit level, as the study's plots). */
export const HISTOGRAM_BINS = 256;

/**
 * Per-channel intensity histograms of interleaved RGB pixels in [0,1] (floats) or [0,255] (bytes), each
 * channel normalised to sum to 1. Layout: `[R0..R255, G0..G255, B0..B255]`.
 */
export function rgbHistogram(pixels: Float32Array | Uint8Array | Uint8ClampedArray, bins = HISTOGRAM_BINS): Float64Array {
  const hist = new Float64Array(3 * bins);
  const isFloat = pixels instanceof Float32Array;
  const n = Math.floor(pixels.length / 3);
  for (let p = 0; p < n; p++) {
    for (let c = 0; c < 3; c++) {
      const v = pixels[p * 3 + c]!;
      const level = isFloat ? v * 255 : v;
      const bin = Math.min(bins - 1, Math.max(0, Math.floor((level * bins) / 256)));
      hist[c * bins + bin]! += 1;
    }
  }
  if (n > 0) for (let i = 0; i < hist.length; i++) hist[i]! /= n;
  return hist;
}

/** Levels each histogram's bin heights are quantised into before the mutual information is taken. */
export const MI_LEVELS = 8;

/**
 * Rank-quantise values into `levels` equal-frequency levels (ties share a level: equal heights must stay
 * indistinguishable, otherwise two flat histograms would look informative about each other).
 */
export function rankLevels(values: ArrayLike<number>, levels = MI_LEVELS): Int32Array {
  const n = values.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => values[a]! - values[b]!);
  const out = new Int32Array(n);
  let i = 0;
  while (i < n) {
    let j = i;
    while (j + 1 < n && values[order[j + 1]!]! === values[order[i]!]!) j++;
    // The tie group [i, j] gets the level of its mid rank.
    const level = Math.min(levels - 1, Math.floor((((i + j) / 2) * levels) / n));
    for (let k = i; k <= j; k++) out[order[k]!] = level;
    i = j + 1;
  }
  return out;
}

/** Shannon entropy in bits of a discrete variable given as integer codes. */
export function entropyBits(codes: Int32Array, levels = MI_LEVELS): number {
  const counts = new Float64Array(levels);
  for (const c of codes) counts[c]! += 1;
  let h = 0;
  for (const c of counts) if (c > 0) h -= (c / codes.length) * Math.log2(c / codes.length);
  return h;
}

/** Result of {@link histogramMutualInformation}. */
export interface MutualInformation {
  /** I(X;Y) in bits. */
  readonly bits: number;
  /** I(X;Y) / sqrt(H(X)·H(Y)) in [0,1]; 1 for identical histograms (0 when either side is constant). */
  readonly normalised: number;
  /** H(X), the most `bits` can be for this first histogram (reached by the histogram itself). */
  readonly maxBits: number;
}

/**
 * Mutual information between two histograms over the same bins, the way the study compared a shoe's RGB
 * intensity distribution with the hyped and not-hyped mean distributions.
 *
 * Definition: the bins are paired by index (channel, intensity level). Each bin i is one observation of
 * the pair (X_i, Y_i), where X_i is the rank level (1 of {@link MI_LEVELS} equal-frequency levels, ties
 * sharing a level) of histogram a's height at bin i and Y_i the same for histogram b. From the joint
 * histogram of the pairs (counts over levels × levels, every bin weighted equally):
 *
 *   I(X;Y) = Σ_xy p(x,y) · log2( p(x,y) / (p(x) p(y)) )   [bits]
 *
 * It measures how well the shape of one distribution (where it is high, where it is low) predicts the
 * other's. Since I(X;Y) ≤ H(X) and I(X;X) = H(X), the MI of a histogram with itself is the maximum any
 * histogram can reach against it (≤ log2 {@link MI_LEVELS} = 3 bits), and it is invariant to monotone
 * rescaling (a brighter copy of the same distribution shape still scores high). Rank quantisation makes
 * the value independent of the white-background spike at 255 that dominates every product photo.
 */
export function histogramMutualInformation(a: ArrayLike<number>, b: ArrayLike<number>, levels = MI_LEVELS): MutualInformation {
  if (a.length !== b.length) throw new RangeError(`histograms differ in length (${a.length} vs ${b.length})`);
  const x = rankLevels(a, levels);
  const y = rankLevels(b, levels);
  const n = x.length;
  const joint = new Float64Array(levels * levels);
  const px = new Float64Array(levels);
  const py = new Float64Array(levels);
  for (let i = 0; i < n; i++) {
    joint[x[i]! * levels + y[i]!]! += 1 / n;
    px[x[i]!]! += 1 / n;
    py[y[i]!]! += 1 / n;
  }
  let mi = 0;
  for (let i = 0; i < levels; i++) {
    for (let j = 0; j < levels; j++) {
      const pxy = joint[i * levels + j]!;
      if (pxy > 0) mi += pxy * Math.log2(pxy / (px[i]! * py[j]!));
    }
  }
  const hx = entropyBits(x, levels);
  const hy = entropyBits(y, levels);
  const bits = Math.max(0, mi);
  return { bits, normalised: hx > 0 && hy > 0 ? Math.min(1, bits / Math.sqrt(hx * hy)) : 0, maxBits: hx };
}

/** Squared Euclidean distance. */
export function squaredDistance(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    s += d * d;
  }
  return s;
}

/** A symmetric matrix of Euclidean distances, packed as a full n×n Float64Array (n ≤ a few thousand). */
export function distanceMatrix(points: readonly ArrayLike<number>[]): Float64Array {
  const n = points.length;
  const d = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const v = Math.sqrt(squaredDistance(points[i]!, points[j]!));
      d[i * n + j] = v;
      d[j * n + i] = v;
    }
  }
  return d;
}

/**
 * Silhouette value of every point (Rousseeuw 1987): s = (b − a) / max(a, b), with a the mean distance to
 * the other members of its cluster and b the smallest mean distance to another cluster. Points alone in
 * their cluster get 0, as scikit-learn does. `distances` is an n×n matrix from {@link distanceMatrix}.
 */
export function silhouetteSamples(distances: Float64Array, labels: ArrayLike<number>, k: number): Float64Array {
  const n = labels.length;
  const sizes = new Float64Array(k);
  for (let i = 0; i < n; i++) sizes[labels[i]!]! += 1;
  const out = new Float64Array(n);
  const sums = new Float64Array(k);
  for (let i = 0; i < n; i++) {
    sums.fill(0);
    for (let j = 0; j < n; j++) if (j !== i) sums[labels[j]!]! += distances[i * n + j]!;
    const own = labels[i]!;
    if (sizes[own]! <= 1) {
      out[i] = 0;
      continue;
    }
    const a = sums[own]! / (sizes[own]! - 1);
    let b = Infinity;
    for (let c = 0; c < k; c++) if (c !== own && sizes[c]! > 0) b = Math.min(b, sums[c]! / sizes[c]!);
    out[i] = !Number.isFinite(b) || Math.max(a, b) === 0 ? 0 : (b - a) / Math.max(a, b);
  }
  return out;
}

/** The mean of an array. */
export function mean(values: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i]!;
  return values.length === 0 ? 0 : s / values.length;
}

/** A k-means result in plain numbers. */
export interface Clustering {
  readonly k: number;
  readonly labels: Int32Array;
  readonly centroids: number[][];
  /** Sum of squared distances of points to their centroid (scikit-learn's `inertia_`). */
  readonly inertia: number;
}

/**
 * K-means with k-means++ seeding (ml-kmeans), best of `restarts` seeded runs by inertia, as scikit-learn's
 * `n_init` does — a single run can land in a poor local optimum and spoil the choice of K.
 */
export function kMeans(points: readonly number[][], k: number, seed = 42, restarts = 4): Clustering {
  let best: Clustering | undefined;
  for (let r = 0; r < restarts; r++) {
    const result = kmeans(points as number[][], k, { seed: seed + r, initialization: 'kmeans++', maxIterations: 300 });
    const labels = Int32Array.from(result.clusters);
    let inertia = 0;
    for (let i = 0; i < points.length; i++) inertia += squaredDistance(points[i]!, result.centroids[labels[i]!]!);
    if (!best || inertia < best.inertia) best = { k, labels, centroids: result.centroids, inertia };
  }
  return best!;
}

/**
 * The elbow of a decreasing curve (Kneedle, Satopää et al. 2011): both axes scaled to [0,1], the point
 * farthest below the chord from the first to the last point.
 */
export function elbow(ks: readonly number[], values: readonly number[]): number {
  if (ks.length <= 2) return ks[0]!;
  const x0 = ks[0]!;
  const x1 = ks[ks.length - 1]!;
  const yMax = Math.max(...values);
  const yMin = Math.min(...values);
  const span = yMax - yMin || 1;
  let bestK = ks[0]!;
  let bestGap = -Infinity;
  for (let i = 0; i < ks.length; i++) {
    const x = (ks[i]! - x0) / (x1 - x0);
    const y = (values[i]! - yMin) / span;
    const chord = 1 - x; // the chord from (0,1) to (1,0) for a decreasing curve
    const gap = chord - y;
    if (gap > bestGap) {
      bestGap = gap;
      bestK = ks[i]!;
    }
  }
  return bestK;
}

/** One K tried by {@link chooseK}. */
export interface KCandidate {
  readonly k: number;
  readonly silhouette: number;
  readonly inertia: number;
}

/** The outcome of {@link chooseK}. */
export interface KChoice {
  readonly k: number;
  readonly bySilhouette: number;
  readonly byElbow: number;
  /** K = 2..kMax with their mean silhouette and inertia. */
  readonly candidates: readonly KCandidate[];
  /** Inertia at K = 1 (the total sum of squares), the elbow's anchor. */
  readonly totalInertia: number;
  readonly clustering: Clustering;
  readonly rule: string;
}

/** Silhouettes within this of the best count as a tie; the elbow breaks ties. */
export const SILHOUETTE_TIE = 0.01;

/**
 * Pick K the way the study did, from silhouette analysis and the elbow: try K = 2..kMax, take the K with
 * the highest mean silhouette; among Ks whose silhouette is within {@link SILHOUETTE_TIE} of the best,
 * prefer the one nearest the elbow of the inertia curve (the silhouette is the primary criterion because
 * the elbow is often ambiguous on real data).
 */
export function chooseK(points: readonly number[][], distances: Float64Array, kMax: number, seed = 42): KChoice {
  const candidates: KCandidate[] = [];
  const clusterings = new Map<number, Clustering>();
  const upper = Math.min(kMax, points.length - 1);
  for (let k = 2; k <= upper; k++) {
    const clustering = kMeans(points, k, seed);
    clusterings.set(k, clustering);
    candidates.push({ k, silhouette: mean(silhouetteSamples(distances, clustering.labels, k)), inertia: clustering.inertia });
  }
  const bestSil = Math.max(...candidates.map((c) => c.silhouette));
  const bySilhouette = candidates.find((c) => c.silhouette === bestSil)!.k;
  // The elbow needs K = 1 as its anchor: inertia at K = 1 is the total sum of squares.
  const total = kMeans(points, 1, seed, 1).inertia;
  const byElbow = elbow([1, ...candidates.map((c) => c.k)], [total, ...candidates.map((c) => c.inertia)]);
  const tied = candidates.filter((c) => c.silhouette >= bestSil - SILHOUETTE_TIE);
  const k = tied.reduce((a, b) => (Math.abs(b.k - byElbow) < Math.abs(a.k - byElbow) ? b : a)).k;
  return {
    k,
    bySilhouette,
    byElbow,
    candidates,
    totalInertia: total,
    clustering: clusterings.get(k)!,
    rule:
      k === bySilhouette
        ? `highest mean silhouette (${bestSil.toFixed(3)})`
        : `silhouette within ${SILHOUETTE_TIE} of the best, nearest the elbow (K=${byElbow})`,
  };
}

/** Index of each cluster's medoid: the member with the smallest total distance to the other members. */
export function medoids(distances: Float64Array, labels: ArrayLike<number>, k: number): number[] {
  const n = labels.length;
  const best = new Array<number>(k).fill(-1);
  const bestCost = new Array<number>(k).fill(Infinity);
  for (let i = 0; i < n; i++) {
    let cost = 0;
    for (let j = 0; j < n; j++) if (labels[j] === labels[i]) cost += distances[i * n + j]!;
    const c = labels[i]!;
    if (cost < bestCost[c]!) {
      bestCost[c] = cost;
      best[c] = i;
    }
  }
  return best;
}
