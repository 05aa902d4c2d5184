/**
 * Source-nuisance projection, shared by the shipped-model trainer (vision) and the community trainer
 * (training): find the directions along which photos of the same class differ by where they came from, and
 * remove them. Pure arrays plus ml-matrix, so a worker without a tfjs backend can use it.
 */
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';

/**
 * Orthonormal directions along which rows of the same class differ by group (source, view, …): for each class
 * and grouping, the deviation of every group's mean (groups with at least `minRows` rows of the class) from the
 * mean of those group means, then the principal directions of all such deviations (eigenvectors of their Gram
 * matrix, strongest first, at most `max`). A first-order, closed-form cousin of iterative nullspace projection:
 * a source's style (its lighting, framing, backdrop) moves all of its photos the same way, whatever their
 * class, so the direction learnt where a class has two sources also removes the style where a class has one.
 */
export function nuisanceDirections(
  z: readonly Float32Array[],
  yIdx: readonly number[],
  groupings: readonly (readonly string[])[],
  opts: { readonly max?: number; readonly minRows?: number } = {},
): Float32Array[] {
  const dim = z[0]?.length ?? 0;
  const max = opts.max ?? 16;
  const minRows = opts.minRows ?? 20;
  if (max <= 0 || dim === 0) return [];
  const deviations: Float64Array[] = [];
  for (const groups of groupings) {
    if (groups.length !== z.length) throw new Error(`a nuisance grouping has ${groups.length} rows, x ${z.length}`);
    const cells = new Map<string, { c: number; sum: Float64Array; n: number }>();
    z.forEach((v, r) => {
      const key = `${yIdx[r]}\u0000${groups[r]}`;
      let cell = cells.get(key);
      if (!cell) cells.set(key, (cell = { c: yIdx[r]!, sum: new Float64Array(dim), n: 0 }));
      for (let i = 0; i < dim; i++) cell.sum[i]! += v[i]!;
      cell.n++;
    });
    const byClass = new Map<number, Float64Array[]>();
    for (const cell of cells.values()) {
      if (cell.n < minRows) continue;
      byClass.set(cell.c, [...(byClass.get(cell.c) ?? []), cell.sum.map((s) => s / cell.n)]);
    }
    for (const means of byClass.values()) {
      if (means.length < 2) continue;
      const centre = new Float64Array(dim);
      for (const m of means) for (let i = 0; i < dim; i++) centre[i]! += m[i]! / means.length;
      for (const m of means) deviations.push(m.map((v, i) => v - centre[i]!));
    }
  }
  if (deviations.length === 0) return [];
  // Principal directions of the deviations through their small Gram matrix (m × m, m = a few dozen): the
  // eigenvector a of DDᵀ with eigenvalue λ gives the unit direction Dᵀa / √λ.
  const m = deviations.length;
  const gram = new Matrix(m, m);
  for (let a = 0; a < m; a++) {
    for (let b = a; b < m; b++) {
      let dot = 0;
      for (let i = 0; i < dim; i++) dot += deviations[a]![i]! * deviations[b]![i]!;
      gram.set(a, b, dot);
      gram.set(b, a, dot);
    }
  }
  const eig = new EigenvalueDecomposition(gram, { assumeSymmetric: true });
  const values = eig.realEigenvalues;
  const order = values.map((_, k) => k).sort((p, q) => values[q]! - values[p]!);
  const top = values[order[0]!]!;
  const out: Float32Array[] = [];
  for (const k of order) {
    if (out.length >= max || !(values[k]! > top * 1e-6)) break;
    const dir = new Float64Array(dim);
    for (let a = 0; a < m; a++) {
      const w = eig.eigenvectorMatrix.get(a, k);
      for (let i = 0; i < dim; i++) dir[i]! += w * deviations[a]![i]!;
    }
    // Re-orthogonalise against the kept directions: the eigenvectors are orthogonal only up to rounding.
    for (const u of out) {
      let dot = 0;
      for (let i = 0; i < dim; i++) dot += dir[i]! * u[i]!;
      for (let i = 0; i < dim; i++) dir[i]! -= dot * u[i]!;
    }
    let norm = 0;
    for (let i = 0; i < dim; i++) norm += dir[i]! ** 2;
    norm = Math.sqrt(norm);
    if (norm < 1e-9) continue;
    out.push(Float32Array.from(dir, (v) => v / norm));
  }
  return out;
}

/** `x − Σ (x·u) u` for orthonormal `directions`: the rows with those directions removed. */
export function projectOut(x: readonly Float32Array[], directions: readonly Float32Array[]): Float32Array[] {
  if (directions.length === 0) return [...x];
  return x.map((v) => {
    const out = Float32Array.from(v);
    for (const u of directions) {
      let dot = 0;
      for (let i = 0; i < out.length; i++) dot += out[i]! * u[i]!;
      for (let i = 0; i < out.length; i++) out[i]! -= dot * u[i]!;
    }
    return out;
  });
}

/**
 * A row-major `[inputs][units]` kernel W turned into (I − UUᵀ)W: a first layer that applies the projection
 * itself, so the layer on `x` equals the fitted layer on `projectOut(x)` and serving needs no extra step.
 */
export function foldKernel(kernel: ArrayLike<number>, inputs: number, units: number, directions: readonly Float32Array[]): Float64Array {
  if (kernel.length !== inputs * units) throw new Error(`a kernel of ${kernel.length} values is not ${inputs}×${units}`);
  const out = Float64Array.from(kernel);
  for (const u of directions) {
    if (u.length !== inputs) throw new Error(`a direction has ${u.length} dims, the layer ${inputs} inputs`);
    const r = new Float64Array(units);
    for (let i = 0; i < inputs; i++) for (let j = 0; j < units; j++) r[j]! += u[i]! * out[i * units + j]!;
    for (let i = 0; i < inputs; i++) for (let j = 0; j < units; j++) out[i * units + j]! -= u[i]! * r[j]!;
  }
  return out;
}
