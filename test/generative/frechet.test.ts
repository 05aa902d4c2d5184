/**
 * The sample-space Fréchet distance against the textbook formula computed with full d×d matrices.
 */
import { describe, expect, it } from 'vitest';
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';
import { frechetDistance } from '../../plugins/generative/lib/frechet.ts';
import { mulberry32 } from '../../plugins/generative/lib/gan.ts';

function gaussian(n: number, d: number, seed: number, shift = 0, scale = 1): Float32Array[] {
  const rng = mulberry32(seed);
  return Array.from({ length: n }, () =>
    Float32Array.from({ length: d }, (_, j) => {
      const u = 1 - rng();
      const v = rng();
      return shift + scale * (j + 1) * 0.3 * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    }),
  );
}

/** ‖μ₁−μ₂‖² + Tr(C₁ + C₂ − 2(C₁^½ C₂ C₁^½)^½) with d×d matrices. */
function textbook(x: Float32Array[], y: Float32Array[]): number {
  const stats = (rows: Float32Array[]) => {
    const m = new Matrix(rows.map((r) => Array.from(r)));
    const mean = m.mean('column');
    const c = m.clone().subRowVector(mean);
    return { mean, cov: c.transpose().mmul(c).div(rows.length - 1) };
  };
  const sqrtm = (a: Matrix) => {
    const e = new EigenvalueDecomposition(a, { assumeSymmetric: true });
    const v = e.eigenvectorMatrix;
    const dd = Matrix.diag(e.realEigenvalues.map((l) => Math.sqrt(Math.max(0, l))));
    return v.mmul(dd).mmul(v.transpose());
  };
  const a = stats(x);
  const b = stats(y);
  const s1 = sqrtm(a.cov);
  const cross = sqrtm(s1.mmul(b.cov).mmul(s1));
  const meanTerm = a.mean.reduce((s, v, i) => s + (v - b.mean[i]!) ** 2, 0);
  return meanTerm + a.cov.trace() + b.cov.trace() - 2 * cross.trace();
}

describe('Fréchet distance', () => {
  it('GIVEN more samples than dimensions THEN it equals the textbook d×d computation', () => {
    const x = gaussian(40, 6, 1);
    const y = gaussian(30, 6, 2, 0.5, 1.3);
    expect(frechetDistance(x, y)).toBeCloseTo(textbook(x, y), 4);
  });

  it('GIVEN fewer samples than dimensions (as with 1280-d embeddings) THEN it still equals the textbook value', () => {
    const x = gaussian(8, 20, 3);
    const y = gaussian(9, 20, 4, 0.2);
    expect(frechetDistance(x, y)).toBeCloseTo(textbook(x, y), 3);
  });

  it('GIVEN identical sets THEN ~0; a mean shift THEN the distance grows with it', () => {
    const x = gaussian(50, 4, 5);
    expect(Math.abs(frechetDistance(x, x))).toBeLessThan(1e-6);
    const near = frechetDistance(x, gaussian(50, 4, 6, 0.1));
    const far = frechetDistance(x, gaussian(50, 4, 6, 2));
    expect(far).toBeGreaterThan(near);
  });
});
