/**
 * Randomised PCA (Halko, Martinsson & Tropp 2011, algorithm 4.4 with power iterations) over rows that
 * stay Float32Arrays and are never centred in place.
 *
 * Why not ml-pca directly: it factorises the full d×d covariance (or an SVD of the data) in pure JS, and
 * measured here its eigendecomposition alone took 2.4 s for d = 400 and 24 s for d = 768 — eigen-shoes
 * work on 64×64×3 = 12,288 dimensions. The randomised method needs only products of the data with thin
 * matrices (cost n·d·l per pass, l = k + 10) plus a QR of n×l and an eigendecomposition of l×l, both done
 * by ml-matrix (the library under ml-pca). A test checks the result against ml-pca on small data.
 */
import { EigenvalueDecomposition, Matrix, QrDecomposition } from 'ml-matrix';
import { gaussian, seededRandom } from './numerics.ts';

/** Options of {@link randomizedPca}. */
export interface PcaOptions {
  /** Extra random directions beyond k (default 10): more makes the leading components more exact. */
  readonly oversample?: number;
  /** Power iterations (default 3): sharpen the spectrum when it decays slowly, as image spectra do. */
  readonly powerIterations?: number;
  readonly seed?: number;
}

/** A fitted PCA. */
export interface PcaResult {
  /** Number of components kept. */
  readonly k: number;
  /** Feature means (length d). */
  readonly mean: Float64Array;
  /** Unit-length principal axes, k rows of length d, by decreasing variance. */
  readonly components: Float64Array[];
  /** Variance along each component (eigenvalues of the covariance, divisor n − 1). */
  readonly explainedVariance: number[];
  /** Share of the total variance along each component. */
  readonly explainedVarianceRatio: number[];
  /** Total variance of the data (trace of the covariance). */
  readonly totalVariance: number;
  /** Coordinates of the fitted rows in component space (n rows of length k). */
  readonly scores: number[][];
}

/**
 * Fit a PCA with `k` components to `rows` (n rows of length d). k is capped at min(n − 1, d).
 */
export function randomizedPca(rows: readonly ArrayLike<number>[], k: number, options: PcaOptions = {}): PcaResult {
  const n = rows.length;
  if (n < 2) throw new RangeError('PCA needs at least two rows');
  const d = rows[0]!.length;
  const kk = Math.max(1, Math.min(k, n - 1, d));
  const l = Math.min(kk + (options.oversample ?? 10), n, d);
  const normal = gaussian(seededRandom(options.seed ?? 7));

  // One contiguous centred copy (n·d Float32): long, cache-friendly inner loops are what make plain JS
  // fast enough here; 1,000 images of 64×64×3 take 49 MB.
  const mu = new Float64Array(d);
  for (const r of rows) for (let j = 0; j < d; j++) mu[j]! += r[j]!;
  for (let j = 0; j < d; j++) mu[j]! /= n;
  const x = new Float32Array(n * d);
  let total = 0;
  for (let i = 0; i < n; i++) {
    const r = rows[i]!;
    const off = i * d;
    for (let j = 0; j < d; j++) {
      const v = r[j]! - mu[j]!;
      x[off + j] = v;
      total += v * v;
    }
  }
  const totalVariance = total / (n - 1);

  // X·Mᵀ for an l×d matrix M (rows contiguous): an n×l Matrix of dot products.
  const times = (m: Float64Array[]): Matrix => {
    const out = new Matrix(n, m.length);
    for (let i = 0; i < n; i++) {
      const off = i * d;
      for (let c = 0; c < m.length; c++) {
        const mc = m[c]!;
        let s = 0;
        for (let j = 0; j < d; j++) s += x[off + j]! * mc[j]!;
        out.set(i, c, s);
      }
    }
    return out;
  };
  // (Xᵀ·Q)ᵀ = Qᵀ·X for an n×l Matrix Q: l rows of length d, accumulated as axpy over data rows.
  const transposeTimes = (q: Matrix): Float64Array[] => {
    const out = Array.from({ length: q.columns }, () => new Float64Array(d));
    for (let i = 0; i < n; i++) {
      const off = i * d;
      for (let c = 0; c < q.columns; c++) {
        const f = q.get(i, c);
        if (f === 0) continue;
        const oc = out[c]!;
        for (let j = 0; j < d; j++) oc[j]! += f * x[off + j]!;
      }
    }
    return out;
  };
  const orthonormal = (m: Matrix): Matrix => new QrDecomposition(m).orthogonalMatrix.subMatrix(0, m.rows - 1, 0, m.columns - 1);

  const omega = Array.from({ length: l }, () => {
    const v = new Float64Array(d);
    for (let j = 0; j < d; j++) v[j] = normal();
    return v;
  });
  let q = orthonormal(times(omega));
  for (let it = 0; it < (options.powerIterations ?? 3); it++) q = orthonormal(times(transposeTimes(q)));
  // B = Qᵀ X: l rows of length d.
  const b = transposeTimes(q);
  // B Bᵀ (l×l): its eigenvectors W and eigenvalues σ² give X's top singular triplets.
  const gram = new Matrix(l, l);
  for (let a = 0; a < l; a++) {
    for (let c = a; c < l; c++) {
      const ba = b[a]!;
      const bc = b[c]!;
      let s = 0;
      for (let j = 0; j < d; j++) s += ba[j]! * bc[j]!;
      gram.set(a, c, s);
      gram.set(c, a, s);
    }
  }
  const evd = new EigenvalueDecomposition(gram, { assumeSymmetric: true });
  const order = evd.realEigenvalues.map((v, i) => [v, i] as const).sort((p1, p2) => p2[0] - p1[0]);
  const w = evd.eigenvectorMatrix;

  const components: Float64Array[] = [];
  const explainedVariance: number[] = [];
  const sigmas: number[] = [];
  const ws: Float64Array[] = [];
  for (let c = 0; c < kk; c++) {
    const [lambda, idx] = order[c]!;
    const sigma = Math.sqrt(Math.max(lambda, 0));
    const wc = Float64Array.from(w.getColumn(idx));
    // v = Bᵀ w / σ: a unit principal axis in feature space.
    const v = new Float64Array(d);
    if (sigma > 0) {
      for (let a = 0; a < l; a++) {
        const f = wc[a]! / sigma;
        const ba = b[a]!;
        for (let j = 0; j < d; j++) v[j]! += f * ba[j]!;
      }
    }
    // A deterministic sign (largest-magnitude entry positive) so rendered eigen-shoes do not flip between runs.
    let arg = 0;
    for (let j = 1; j < d; j++) if (Math.abs(v[j]!) > Math.abs(v[arg]!)) arg = j;
    if (v[arg]! < 0) {
      for (let j = 0; j < d; j++) v[j] = -v[j]!;
      for (let a = 0; a < l; a++) wc[a] = -wc[a]!;
    }
    components.push(v);
    sigmas.push(sigma);
    ws.push(wc);
    explainedVariance.push((sigma * sigma) / (n - 1));
  }
  // Scores X v = Q B v = Q W σ: no further pass over the data.
  const scores: number[][] = [];
  for (let i = 0; i < n; i++) {
    const qi = q.getRow(i);
    const row: number[] = [];
    for (let c = 0; c < kk; c++) {
      let s = 0;
      const wc = ws[c]!;
      for (let a = 0; a < l; a++) s += qi[a]! * wc[a]!;
      row.push(s * sigmas[c]!);
    }
    scores.push(row);
  }
  return {
    k: kk,
    mean: mu,
    components,
    explainedVariance,
    explainedVarianceRatio: explainedVariance.map((v) => (totalVariance > 0 ? v / totalVariance : 0)),
    totalVariance,
    scores,
  };
}
