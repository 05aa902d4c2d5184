/**
 * 2-D embeddings for cluster maps, all seeded so the same selection gives the same picture:
 *
 * - `tsne`: exact t-SNE (van der Maaten & Hinton 2008) from @keckelt/tsne, the maintained TypeScript port
 *   of Karpathy's tsnejs. Its only randomness is the initial solution, drawn from `gaussRandom`, which we
 *   replace with a seeded sampler. Exact t-SNE costs O(n²) per iteration: fine for the ≤ 1,500 points a
 *   map shows, which is why cluster-map samples larger selections.
 * - `umap`: umap-js with its `random` option seeded.
 * - `pca`: the first two principal components (already computed for clustering).
 */
import { TSNE } from '@keckelt/tsne';
import { UMAP } from 'umap-js';
import { gaussian, seededRandom } from './numerics.ts';

/** The 2-D methods. */
export const MAP_METHODS = ['tsne', 'umap', 'pca'] as const;
/** A 2-D method. */
export type MapMethod = (typeof MAP_METHODS)[number];

/** Default perplexity, capped for small selections (it must stay below n; sklearn's default is 30). */
export function defaultPerplexity(n: number): number {
  return Math.max(2, Math.min(30, Math.floor((n - 1) / 3)));
}

/** Options of {@link tsne2d}. */
export interface TsneOptions {
  readonly perplexity: number;
  readonly iterations?: number;
  readonly seed?: number;
  readonly learningRate?: number;
  /** Called every 25 iterations with the fraction done; return nothing. */
  readonly onProgress?: (fraction: number) => void;
  readonly signal?: AbortSignal;
}

/** Exact t-SNE to 2-D. Caller guarantees perplexity < n. */
export function tsne2d(points: readonly number[][], options: TsneOptions): number[][] {
  const model = new TSNE({ perplexity: options.perplexity, dim: 2, epsilon: options.learningRate ?? 10 });
  const normal = gaussian(seededRandom(options.seed ?? 42));
  // The library draws its initial solution from Math.random(); seed it so maps are reproducible.
  (model as unknown as { gaussRandom: () => number }).gaussRandom = normal;
  model.initDataRaw(points.map((p) => [...p]));
  const iterations = options.iterations ?? 500;
  for (let i = 0; i < iterations; i++) {
    model.step();
    if (i % 25 === 0) {
      options.signal?.throwIfAborted();
      options.onProgress?.(i / iterations);
    }
  }
  return (model.getSolution() as number[][]).map((p) => [p[0]!, p[1]!]);
}

/** UMAP to 2-D (nNeighbors capped below n). */
export function umap2d(points: readonly number[][], seed = 42, onProgress?: (fraction: number) => void): number[][] {
  const nNeighbors = Math.max(2, Math.min(15, points.length - 1));
  const umap = new UMAP({ nComponents: 2, nNeighbors, minDist: 0.1, random: seededRandom(seed) });
  const nEpochs = umap.initializeFit(points.map((p) => [...p]));
  for (let i = 0; i < nEpochs; i++) {
    umap.step();
    if (i % 25 === 0) onProgress?.(i / nEpochs);
  }
  return umap.getEmbedding().map((p) => [p[0]!, p[1]!]);
}
