/**
 * `mean-shoe`: the pixel mean of the selected orientation-normalised images (the study's "mean" shoe that
 * looked like a Jordan 1) and, with `--eigen K`, the first K eigen-shoes with their explained variance.
 */
import { z } from 'zod';
import { defineCommand, fail, reply, type CommandContext, type Reply } from '../../../engine/index.ts';
import { barChartOfVariance, imageGrid, renderChart } from '../lib/charts.ts';
import { randomizedPca } from '../lib/pca.ts';
import { Reservoir, RunningMean, seededRandom } from '../lib/numerics.ts';
import {
  PREP_SIZE,
  boxDownscale,
  cacheKey,
  defaultPreprocessor,
  describeFilters,
  filtersText,
  readCachedReply,
  requireAtLeast,
  resolveSelection,
  selectionShape,
  storeOf,
  streamPixels,
  writeCachedReply,
  type Preprocessor,
} from '../lib/selection.ts';

/** Eigen-shoes are computed on images shrunk 224 → 56 (exact 4×4 box average). */
export const EIGEN_FACTOR = 4;
/** Side of an eigen-shoe. */
export const EIGEN_SIDE = PREP_SIZE / EIGEN_FACTOR;
/** At most this many images (a seeded uniform reservoir sample of the selection) enter the PCA. */
export const EIGEN_SAMPLE = 600;

export const meanShoeOptions = z
  .object({
    ...selectionShape,
    eigen: z.number().int().min(1).max(16).optional().describe('Also show the first K eigen-shoes (PCA components), 1..16'),
  })
  .strict();

/** Parsed options of `mean-shoe`. */
export type MeanShoeInput = z.output<typeof meanShoeOptions>;

/** Render a PCA component (unit vector, any sign) as a picture: its values stretched to [0,1]. */
export function componentPicture(v: Float64Array): Float64Array {
  let min = Infinity;
  let max = -Infinity;
  for (const x of v) {
    if (x < min) min = x;
    if (x > max) max = x;
  }
  const span = max - min || 1;
  return v.map((x) => (x - min) / span);
}

/** The work of `mean-shoe`, with an injectable preprocessor for tests. */
export async function runMeanShoe(input: MeanShoeInput, ctx: CommandContext, preprocessor?: { run: Preprocessor; version: string }): Promise<Reply> {
  const store = storeOf(ctx);
  const selection = await resolveSelection(store, input, ctx);
  const n = selection.images.length;
  requireAtLeast(n, 2, 'A mean shoe');
  if (input.eigen !== undefined && input.eigen > n - 1) {
    fail('BAD_INPUT', `--eigen ${input.eigen} is more than ${n} images allow: n images have at most n − 1 = ${n - 1} eigen-shoes.`, {
      n,
      eigen: input.eigen,
    });
  }
  const prep = preprocessor ?? (await defaultPreprocessor());
  const key = cacheKey('mean-shoe', { selection: selection.fingerprint, eigen: input.eigen ?? 0, prep: prep.version, sample: EIGEN_SAMPLE });
  const cached = await readCachedReply(store, key);
  if (cached) return cached;

  const started = performance.now();
  const running = new RunningMean(PREP_SIZE * PREP_SIZE * 3);
  const reservoir = input.eigen !== undefined ? new Reservoir<Float32Array>(EIGEN_SAMPLE, seededRandom(1234)) : undefined;
  const pass = await streamPixels(
    store,
    selection.images,
    ctx,
    'averaging',
    ({ pixels }) => {
      running.add(pixels);
      reservoir?.offer(() => boxDownscale(pixels, PREP_SIZE, EIGEN_FACTOR));
    },
    prep.run,
  );
  if (pass.processed === 0) fail('NOT_AN_IMAGE', `None of the ${n} selected images could be decoded.`);
  if (pass.processed < 2) requireAtLeast(pass.processed, 2, 'A mean shoe');

  const mean = running.mean();
  const channelMeans = [0, 1, 2].map((c) => {
    let s = 0;
    for (let i = c; i < mean.length; i += 3) s += mean[i]!;
    return s / (mean.length / 3);
  });
  const filters = describeFilters(input);
  const images = [
    {
      name: 'mean-shoe.png',
      alt: `Mean of ${pass.processed} sneakers (${filtersText(input)})`,
      png: await imageGrid({
        title: 'The mean shoe',
        subtitle: `${pass.processed} images · ${filtersText(input)}`,
        tiles: [{ picture: { data: mean, width: PREP_SIZE, height: PREP_SIZE } }],
        columns: 1,
        width: 480,
      }),
    },
  ];

  let explainedVariance: number[] | undefined;
  let eigenInfo: Record<string, unknown> | undefined;
  if (reservoir && input.eigen !== undefined) {
    const k = Math.min(input.eigen, reservoir.items.length - 1);
    ctx.progress({ stage: 'eigen-shoes', message: `PCA of ${reservoir.items.length} images at ${EIGEN_SIDE}×${EIGEN_SIDE}` });
    const pca = randomizedPca(reservoir.items, k, { seed: 99 });
    explainedVariance = pca.explainedVarianceRatio;
    eigenInfo = {
      k: pca.k,
      sampleSize: reservoir.items.length,
      side: EIGEN_SIDE,
      method: 'randomised PCA (Halko et al., 3 power iterations) on a seeded reservoir sample',
      cumulative: explainedVariance.reduce<number[]>((acc, v) => [...acc, (acc.at(-1) ?? 0) + v], []),
    };
    images.push({
      name: 'eigen-shoes.png',
      alt: `First ${pca.k} eigen-shoes`,
      png: await imageGrid({
        title: `Eigen-shoes: the first ${pca.k} principal components`,
        subtitle: `${reservoir.items.length} of ${pass.processed} images at ${EIGEN_SIDE}×${EIGEN_SIDE}; each component stretched to black–white`,
        tiles: pca.components.map((v, i) => ({
          picture: { data: componentPicture(v), width: EIGEN_SIDE, height: EIGEN_SIDE },
          caption: `PC${i + 1} · ${(pca.explainedVarianceRatio[i]! * 100).toFixed(1)}%`,
        })),
        columns: Math.min(4, pca.k),
        palette: true,
      }),
    });
    images.push({
      name: 'explained-variance.png',
      alt: 'Explained variance per eigen-shoe',
      png: await renderChart(barChartOfVariance(explainedVariance, `Explained variance of the first ${pca.k} eigen-shoes`)),
    });
  }
  const seconds = (performance.now() - started) / 1000;
  const text =
    `Mean of **${pass.processed}** orientation-normalised sneakers (${filtersText(input)}).` +
    (pass.skipped.length > 0 ? ` ${pass.skipped.length} unreadable image(s) skipped.` : '') +
    (explainedVariance
      ? ` The first ${explainedVariance.length} eigen-shoes explain ${(explainedVariance.reduce((a, b) => a + b, 0) * 100).toFixed(1)}% of the pixel variance.`
      : '');
  const result = reply(text, {
    title: 'Mean shoe',
    data: {
      n: pass.processed,
      filters,
      selected: n,
      skipped: pass.skipped.length,
      size: PREP_SIZE,
      prepVersion: prep.version,
      channelMeans: { r: channelMeans[0]!, g: channelMeans[1]!, b: channelMeans[2]! },
      ...(explainedVariance ? { explainedVariance, eigen: eigenInfo } : {}),
      seconds: Math.round(seconds * 10) / 10,
      cached: false,
    },
    images,
  });
  await writeCachedReply(store, key, result, ctx);
  return result;
}

/** The `mean-shoe` command. */
export const meanShoe = defineCommand({
  name: 'mean-shoe',
  description: 'The average sneaker of a selection, and optionally its eigen-shoes',
  options: meanShoeOptions,
  long: true,
  cooldown: { perUserMs: 5_000 },
  run: (input, ctx) => runMeanShoe(input, ctx),
});
