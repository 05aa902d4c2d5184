/**
 * Fréchet distance between two sets of embeddings (the statistic behind FID):
 *   FD = ‖μ₁ − μ₂‖² + Tr(C₁) + Tr(C₂) − 2·Tr((C₁C₂)^½).
 * With fewer samples than dimensions the covariances are low-rank, and Tr((C₁C₂)^½) is computed exactly in
 * sample space: with centred data A₁ (n₁×d), A₂ (n₂×d), C₁C₂ = A₁ᵀA₁A₂ᵀA₂ / k shares its non-zero
 * eigenvalues with MMᵀ / k for M = A₁A₂ᵀ (n₁×n₂), so the trace is the sum of M's singular values / √k.
 */
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';

function centred(rows: readonly Float32Array[]): { mean: Float64Array; a: Matrix } {
  const n = rows.length;
  const d = rows[0]?.length ?? 0;
  const mean = new Float64Array(d);
  for (const r of rows) for (let j = 0; j < d; j++) mean[j]! += r[j]! / n;
  const a = new Matrix(n, d);
  rows.forEach((r, i) => {
    for (let j = 0; j < d; j++) a.set(i, j, r[j]! - mean[j]!);
  });
  return { mean, a };
}

/** Fréchet distance between two embedding sets (each at least 2 rows, same dimension). */
export function frechetDistance(x: readonly Float32Array[], y: readonly Float32Array[]): number {
  if (x.length < 2 || y.length < 2) throw new Error('Fréchet distance needs at least two samples per set');
  const { mean: mx, a: ax } = centred(x);
  const { mean: my, a: ay } = centred(y);
  let meanTerm = 0;
  for (let j = 0; j < mx.length; j++) meanTerm += (mx[j]! - my[j]!) ** 2;
  const k1 = x.length - 1;
  const k2 = y.length - 1;
  const frob2 = (m: Matrix) => m.to1DArray().reduce((s, v) => s + v * v, 0);
  const trX = frob2(ax) / k1;
  const trY = frob2(ay) / k2;
  const m = ax.mmul(ay.transpose());
  const mmT = m.mmul(m.transpose());
  const eig = new EigenvalueDecomposition(mmT, { assumeSymmetric: true }).realEigenvalues;
  const nuclear = eig.reduce((s, l) => s + Math.sqrt(Math.max(0, l)), 0);
  const crossTrace = nuclear / Math.sqrt(k1 * k2);
  return meanTerm + trX + trY - 2 * crossTrace;
}
