/**
 * `cluster-map`: the study's clustering, as pictures. Features (CNN embeddings or downscaled RGB pixels)
 * are reduced by PCA (≤ 50 components, as the study did before K-means), clustered by K-means with K
 * chosen from silhouette analysis and the elbow, and laid out in 2-D by t-SNE, UMAP or PCA with image
 * thumbnails at their points.
 */
import { z } from 'zod';
import { defineCommand, fail, reply, type CommandContext, type Reply } from '../../../engine/index.ts';
import {
  clusterColor,
  lineChart,
  renderChart,
  scatterPanels,
  sheet,
  silhouettePlot,
  thumbnailMap,
  type ThumbPoint,
} from '../lib/charts.ts';
import { MAP_METHODS, defaultPerplexity, tsne2d, umap2d, type MapMethod } from '../lib/embed-2d.ts';
import { chooseK, distanceMatrix, kMeans, mean, medoids, shuffledIndices, silhouetteSamples } from '../lib/numerics.ts';
import { randomizedPca } from '../lib/pca.ts';
import {
  PREP_SIZE,
  boxDownscale,
  cacheKey,
  defaultPreprocessor,
  describeFilters,
  filtersText,
  labelOf,
  readCachedReply,
  requireAtLeast,
  resolveSelection,
  selectionShape,
  storeOf,
  streamPixels,
  toBytes,
  writeCachedReply,
  type Preprocessor,
  type SelectedImage,
} from '../lib/selection.ts';

/** RGB features: 224 → 28 (8×8 box average), 2,352 numbers per image. */
export const RGB_FACTOR = 8;
/** Thumbnails: 224 → 56. */
export const THUMB_FACTOR = 4;
/** PCA components kept before clustering and mapping. */
export const PCA_COMPONENTS = 50;
/** The backbone for `--features cnn`. */
export const CNN_BACKBONE = 'mobilenet_v2';
/** K tried by `--k auto`: 2..10 (capped at n − 1). */
export const K_MAX = 10;

const kSchema = z
  .union([z.literal('auto'), z.coerce.number().int().min(2).max(30)])
  .default('auto')
  .describe('Number of clusters, or auto (silhouette + elbow over K = 2..10)');

export const clusterMapOptions = z
  .object({
    ...selectionShape,
    features: z.enum(['cnn', 'rgb']).default('cnn').describe('cnn: MobileNetV2 embeddings; rgb: raw pixel colours (28×28)'),
    method: z.enum(MAP_METHODS).default('tsne').describe('2-D layout: tsne, umap or pca'),
    k: kSchema,
    perplexity: z.number().min(2).max(100).optional().describe('t-SNE perplexity (default min(30, (n−1)/3)); must be below n'),
    limit: z.number().int().min(3).max(3000).default(800).describe('Map at most this many images (a seeded sample of larger selections)'),
    seed: z.number().int().min(0).max(1_000_000).default(42).describe('Seed for sampling, K-means and the layout'),
  })
  .strict();

/** Parsed options of `cluster-map`. */
export type ClusterMapInput = z.output<typeof clusterMapOptions>;

/** Feature extraction, injectable so tests can avoid the CNN or count calls. */
export interface FeatureExtractor {
  /** Name in cache keys and `data.model`. */
  readonly model: string;
  /** Feature vectors for a batch of preprocessed images (with their ids, for caches). */
  embed(batch: readonly { sha: string; pixels: Float32Array }[]): Promise<Float32Array[]>;
}

/** RGB features: the box-downscaled pixels themselves. */
export const rgbFeatures: FeatureExtractor = {
  model: `rgb-${PREP_SIZE / RGB_FACTOR}`,
  embed: (batch) => Promise.resolve(batch.map((b) => boxDownscale(b.pixels, PREP_SIZE, RGB_FACTOR))),
};

/** CNN features: MobileNetV2 embeddings, read from and written to the store's embedding cache. */
export async function cnnFeatures(ctx: CommandContext, prepVersion: string): Promise<FeatureExtractor> {
  const ml = await import('../../../engine/ml/index.ts');
  const backbone = await ml.loadBackbone(CNN_BACKBONE);
  const store = storeOf(ctx);
  return {
    model: CNN_BACKBONE,
    async embed(batch) {
      const cached = await store.embeddings.getMany(
        batch.map((b) => b.sha),
        CNN_BACKBONE,
        prepVersion,
      );
      const missing = batch.filter((b) => !cached.has(b.sha));
      if (missing.length > 0) {
        const vectors = await backbone.embedImages(missing.map((m) => m.pixels), { batchSize: 16 });
        for (let i = 0; i < missing.length; i++) {
          cached.set(missing[i]!.sha, vectors[i]!);
          await store.embeddings.put(missing[i]!.sha, CNN_BACKBONE, prepVersion, vectors[i]!);
        }
      }
      return batch.map((b) => cached.get(b.sha)!);
    },
  };
}

/** A seeded sample of `limit` images (the whole selection when it is small enough), in id order. */
export function sampleImages(images: readonly SelectedImage[], limit: number, seed: number): SelectedImage[] {
  if (images.length <= limit) return [...images];
  return shuffledIndices(images.length, seed)
    .slice(0, limit)
    .sort((a, b) => a - b)
    .map((i) => images[i]!);
}

/** The work of `cluster-map`, with injectable preprocessing and features for tests. */
export async function runClusterMap(
  input: ClusterMapInput,
  ctx: CommandContext,
  inject: { preprocessor?: { run: Preprocessor; version: string }; features?: FeatureExtractor } = {},
): Promise<Reply> {
  const store = storeOf(ctx);
  const selection = await resolveSelection(store, input, ctx);
  const picked = sampleImages(selection.images, input.limit, input.seed);
  const n0 = picked.length;
  requireAtLeast(n0, 3, 'A cluster map');
  validateAgainst(input, n0);

  const prep = inject.preprocessor ?? (await defaultPreprocessor());
  const modelName = inject.features?.model ?? (input.features === 'cnn' ? CNN_BACKBONE : rgbFeatures.model);
  const key = cacheKey('cluster-map', {
    selection: selection.fingerprint,
    features: input.features,
    model: modelName,
    method: input.method,
    k: input.k,
    perplexity: input.perplexity ?? null,
    limit: input.limit,
    seed: input.seed,
    prep: prep.version,
  });
  const cached = await readCachedReply(store, key);
  if (cached) return cached;

  const started = performance.now();
  const extractor = inject.features ?? (input.features === 'cnn' ? await cnnFeatures(ctx, prep.version) : rgbFeatures);
  const features: Float32Array[] = [];
  const thumbs: Uint8Array[] = [];
  const kept: SelectedImage[] = [];
  let pending: { sha: string; pixels: Float32Array; image: SelectedImage }[] = [];
  const flush = async (): Promise<void> => {
    if (pending.length === 0) return;
    const vectors = await extractor.embed(pending);
    for (let i = 0; i < pending.length; i++) {
      features.push(vectors[i]!);
      kept.push(pending[i]!.image);
    }
    pending = [];
  };
  const pass = await streamPixels(
    store,
    picked,
    ctx,
    input.features === 'cnn' ? 'embedding' : 'reading',
    async ({ image, pixels }) => {
      thumbs.push(toBytes(boxDownscale(pixels, PREP_SIZE, THUMB_FACTOR)));
      pending.push({ sha: image.sha, pixels, image });
      if (pending.length >= 16) await flush();
    },
    prep.run,
  );
  await flush();
  const n = kept.length;
  if (n === 0) fail('NOT_AN_IMAGE', `None of the ${n0} selected images could be decoded.`);
  requireAtLeast(n, 3, 'A cluster map');
  validateAgainst(input, n);

  ctx.progress({ stage: 'pca', message: `PCA of ${n} × ${features[0]!.length} features` });
  const pca = randomizedPca(features, Math.min(PCA_COMPONENTS, n - 1), { seed: input.seed });
  const points = pca.scores;
  const distances = distanceMatrix(points);

  ctx.progress({ stage: 'k-means', message: 'K-means with silhouette analysis' });
  const kMax = Math.min(Math.max(K_MAX, input.k === 'auto' ? 0 : input.k), n - 1);
  const choice = chooseK(points, distances, kMax, input.seed);
  const clustering = input.k === 'auto' ? choice.clustering : kMeans(points, input.k, input.seed);
  const k = clustering.k;
  const samples = silhouetteSamples(distances, clustering.labels, k);
  const silhouette = mean(samples);
  const medoidIdx = medoids(distances, clustering.labels, k);

  let xy: number[][];
  if (input.method === 'pca') xy = points.map((p) => [p[0]!, p[1] ?? 0]);
  else if (input.method === 'umap') xy = umap2d(points, input.seed, (f) => ctx.progress({ stage: 'UMAP', fraction: f }));
  else {
    xy = tsne2d(points, {
      perplexity: input.perplexity ?? defaultPerplexity(n),
      seed: input.seed,
      signal: ctx.signal,
      onProgress: (f) => ctx.progress({ stage: 't-SNE', fraction: f }),
    });
  }

  const clusters = Array.from({ length: k }, (_, c) => {
    const members = kept.filter((_, i) => clustering.labels[i] === c);
    const count = (f: (m: SelectedImage) => string): Record<string, number> => {
      const out: Record<string, number> = {};
      for (const m of members) out[f(m)] = (out[f(m)] ?? 0) + 1;
      return out;
    };
    const medoid = kept[medoidIdx[c]!]!;
    return {
      id: c + 1,
      size: members.length,
      medoidImageId: medoid.sha,
      medoidName: medoid.name,
      silhouette: mean(samples.filter((_, i) => clustering.labels[i] === c)),
      brands: count((m) => labelOf(m.brand)),
      hype: count((m) => labelOf(m.hype)),
    };
  });

  const methodTitle = { tsne: 't-SNE', umap: 'UMAP', pca: 'PCA' }[input.method as MapMethod];
  const featureTitle = input.features === 'cnn' ? `${CNN_BACKBONE} features` : 'RGB pixels';
  const subtitle = `${n} images · ${featureTitle} → PCA ${pca.k} → K-means K=${k} · ${filtersText(input)}`;
  // Medoids first so their thumbnails win the overlap test, then the rest in a seeded random order.
  const order = [...medoidIdx, ...shuffledIndices(n, input.seed + 1)];
  const seen = new Set<number>();
  const mapPoints: ThumbPoint[] = [];
  for (const i of order) {
    if (seen.has(i)) continue;
    seen.add(i);
    mapPoints.push({ x: xy[i]![0]!, y: xy[i]![1]!, color: clusterColor(clustering.labels[i]!), thumb: { data: thumbs[i]!, width: PREP_SIZE / THUMB_FACTOR, height: PREP_SIZE / THUMB_FACTOR } });
  }
  const images = [
    {
      name: 'cluster-map.png',
      alt: `${methodTitle} map of ${n} sneakers in ${k} clusters`,
      png: await thumbnailMap({
        title: `${methodTitle} map of ${n} sneakers, ${k} clusters`,
        subtitle,
        points: mapPoints,
        legend: clusters.map((c) => ({ label: `C${c.id} (${c.size})`, color: clusterColor(c.id - 1) })),
      }),
    },
    {
      name: 'cluster-colours.png',
      alt: 'The same map coloured by cluster, brand and hype',
      png: await renderChart(
        scatterPanels({
          title: `${methodTitle} map by cluster, brand and hype`,
          subtitle,
          xTitle: `${methodTitle} 1`,
          yTitle: `${methodTitle} 2`,
          points: xy.map((p, i) => ({
            x: p[0]!,
            y: p[1]!,
            labels: { cluster: `C${clustering.labels[i]! + 1}`, brand: labelOf(kept[i]!.brand), hype: labelOf(kept[i]!.hype) },
          })),
          colorings: [
            { key: 'cluster', title: 'Cluster', colors: Object.fromEntries(clusters.map((c) => [`C${c.id}`, clusterColor(c.id - 1)])) },
            { key: 'brand', title: 'Brand' },
            { key: 'hype', title: 'Hype' },
          ],
        }),
      ),
    },
    {
      name: 'choose-k.png',
      alt: 'Silhouette and elbow curves over K',
      png: await renderChart(
        sheet(
          input.k === 'auto' ? `K = ${k}: ${choice.rule}` : `K = ${k} (asked for); auto would pick ${choice.k}`,
          [
            lineChart({
              title: 'Silhouette analysis',
              xTitle: 'K (clusters)',
              yTitle: 'Mean silhouette',
              series: [{ name: 'silhouette', points: choice.candidates.map((c) => ({ x: c.k, y: c.silhouette })) }],
              markers: [{ x: k, label: `K=${k}` }],
              width: 300,
              height: 240,
              integerX: true,
            }),
            lineChart({
              title: 'Elbow method',
              xTitle: 'K (clusters)',
              yTitle: 'Inertia (sum of squares)',
              series: [{ name: 'inertia', points: [{ x: 1, y: choice.totalInertia }, ...choice.candidates.map((c) => ({ x: c.k, y: c.inertia }))] }],
              markers: [{ x: choice.byElbow, label: `elbow K=${choice.byElbow}` }],
              width: 300,
              height: 240,
              integerX: true,
            }),
          ],
          'horizontal',
        ),
      ),
    },
    {
      name: 'silhouette.png',
      alt: `Silhouette plot for K=${k}`,
      png: await renderChart(
        silhouettePlot({
          title: `Silhouette analysis for K-means with K = ${k}`,
          subtitle: `mean silhouette ${silhouette.toFixed(3)} (dashed line) · ${n} images`,
          samples,
          labels: clustering.labels,
          k,
          mean: silhouette,
        }),
      ),
    },
  ];

  const inertiaByK: Record<string, number> = { '1': choice.totalInertia };
  const silhouetteByK: Record<string, number> = {};
  for (const c of choice.candidates) {
    inertiaByK[String(c.k)] = c.inertia;
    silhouetteByK[String(c.k)] = c.silhouette;
  }
  const text =
    `Mapped **${n}** sneakers (${filtersText(input)}) with ${methodTitle} on ${featureTitle}` +
    (selection.images.length > n0 ? ` — a seeded sample of ${n0} of ${selection.images.length}` : '') +
    `. K-means found **${k} clusters** (mean silhouette ${silhouette.toFixed(3)}; ` +
    `silhouette prefers K=${choice.bySilhouette}, the elbow K=${choice.byElbow}).` +
    (pass.skipped.length > 0 ? ` ${pass.skipped.length} unreadable image(s) skipped.` : '');
  const result = reply(text, {
    title: 'Cluster map',
    fields: clusters.map((c) => ({
      name: `C${c.id} · ${c.size} images`,
      value: `medoid: ${c.medoidName ?? c.medoidImageId.slice(0, 12)} · silhouette ${c.silhouette.toFixed(2)}`,
      inline: true,
    })),
    data: {
      n,
      k,
      silhouette,
      inertiaByK,
      silhouetteByK,
      kChoice: { auto: input.k === 'auto', bySilhouette: choice.bySilhouette, byElbow: choice.byElbow, rule: choice.rule },
      clusters,
      filters: describeFilters(input),
      selected: selection.images.length,
      sampled: selection.images.length > n0,
      skipped: pass.skipped.length,
      features: input.features,
      model: modelName,
      method: input.method,
      ...(input.method === 'tsne' ? { perplexity: input.perplexity ?? defaultPerplexity(n) } : {}),
      pca: { components: pca.k, explainedVariance: pca.explainedVarianceRatio.reduce((a, b) => a + b, 0) },
      prepVersion: prep.version,
      seconds: Math.round((performance.now() - started) / 100) / 10,
      cached: false,
    },
    images,
  });
  await writeCachedReply(store, key, result, ctx);
  return result;
}

/** K and perplexity must fit the number of images; say what to change when they do not. */
function validateAgainst(input: ClusterMapInput, n: number): void {
  if (input.k !== 'auto' && input.k > n - 1) {
    fail('BAD_INPUT', `K=${input.k} is too large for ${n} images: silhouette analysis needs K ≤ n − 1 = ${n - 1}.`, { n, k: input.k });
  }
  if (input.method === 'tsne' && input.perplexity !== undefined && input.perplexity >= n) {
    fail('BAD_INPUT', `t-SNE perplexity ${input.perplexity} must be smaller than the number of images (${n}); try ${defaultPerplexity(n)}.`, {
      n,
      perplexity: input.perplexity,
    });
  }
}

/** The `cluster-map` command. */
export const clusterMap = defineCommand({
  name: 'cluster-map',
  description: 'A 2-D map of sneakers with thumbnails, K-means clusters and silhouette analysis',
  options: clusterMapOptions,
  long: true,
  cooldown: { perUserMs: 10_000 },
  run: (input, ctx) => runClusterMap(input, ctx),
});
