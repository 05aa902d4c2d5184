/**
 * `hype-dna <image>`: the study's mutual-information experiment (its Ben & Jerry's Dunk example: MI 8.09
 * between the hyped and not-hyped means, 1.80 between the Dunk and the hyped mean, 1.75 with the not-hyped
 * mean). The photo's RGB intensity distribution is compared with the mean distributions of the hyped and
 * the not-hyped images of the store; the definition of MI used is documented on
 * {@link histogramMutualInformation}. The study's absolute numbers came from a different estimator and are
 * not comparable; the comparison between the two references is what carries meaning.
 */
import { z } from 'zod';
import { defineCommand, fail, imageInput, reply, type CommandContext, type Reply } from '../../../engine/index.ts';
import { loadImage } from '../../../engine/image.ts';
import type { JsonValue, Store } from '../../../engine/store/index.ts';
import { LABEL_COLORS, renderChart, rgbHistogramChart } from '../lib/charts.ts';
import { classDistributions, toDistribution, type ClassDistribution } from '../lib/class-stats.ts';
import { MI_LEVELS, histogramMutualInformation, rgbHistogram, type MutualInformation } from '../lib/numerics.ts';
import {
  CACHE_TTL_MS,
  cacheKey,
  defaultPreprocessor,
  describeFilters,
  filtersText,
  resolveSelection,
  selectionShape,
  storeOf,
  type Preprocessor,
  type ResolvedSelection,
  type Selection,
} from '../lib/selection.ts';

const { hype: _hype, ...referenceShape } = selectionShape;

export const hypeDnaOptions = z
  .object({
    image: imageInput('The sneaker photo to compare: file path, http(s) URL or upload'),
    ...referenceShape,
  })
  .strict();

/** Parsed options of `hype-dna`. */
export type HypeDnaInput = z.output<typeof hypeDnaOptions>;

/** MI values differing by less than this (bits) are reported as a tie. */
export const MI_TIE_BITS = 0.02;

interface CachedReference {
  readonly hyped: { n: number; hist: number[] };
  readonly notHyped: { n: number; hist: number[] };
}

/**
 * The hyped and not-hyped mean distributions of the reference selection, cached in the store by
 * (selection fingerprint, preprocessing version): only the first request pays for streaming the images.
 */
async function referenceDistributions(
  store: Store,
  selection: ResolvedSelection,
  ctx: CommandContext,
  prep: { run: Preprocessor; version: string },
): Promise<{ hyped: ClassDistribution; notHyped: ClassDistribution; cached: boolean }> {
  const key = cacheKey('hype-dna-reference', { selection: selection.fingerprint, prep: prep.version });
  const hit = (await store.kv.get(key).catch(() => undefined)) as unknown as CachedReference | undefined;
  if (hit && Array.isArray(hit.hyped?.hist) && Array.isArray(hit.notHyped?.hist)) {
    return {
      hyped: toDistribution(hit.hyped.n, Float64Array.from(hit.hyped.hist)),
      notHyped: toDistribution(hit.notHyped.n, Float64Array.from(hit.notHyped.hist)),
      cached: true,
    };
  }
  const { classes } = await classDistributions(
    store,
    selection.images,
    (img) => (img.hype === 'hyped' || img.hype === 'not_hyped' ? img.hype : undefined),
    ctx,
    prep.run,
  );
  const hyped = classes.get('hyped');
  const notHyped = classes.get('not_hyped');
  if (!hyped || !notHyped) fail('NOT_FOUND', 'None of the reference images could be decoded for one of the two classes.');
  const value: CachedReference = {
    hyped: { n: hyped.n, hist: [...hyped.hist] },
    notHyped: { n: notHyped.n, hist: [...notHyped.hist] },
  };
  await store.kv.set(key, value as unknown as JsonValue, CACHE_TTL_MS).catch((err: unknown) => ctx.logger.warn('hype-dna cache write failed', { err }));
  return { hyped, notHyped, cached: false };
}

function round(x: number): number {
  return Math.round(x * 10_000) / 10_000;
}

function miJson(mi: MutualInformation): Record<string, number> {
  return { bits: round(mi.bits), normalised: round(mi.normalised) };
}

/** The work of `hype-dna`, with an injectable preprocessor for tests. */
export async function runHypeDna(input: HypeDnaInput, ctx: CommandContext, preprocessor?: { run: Preprocessor; version: string }): Promise<Reply> {
  const store = storeOf(ctx);
  const { image, ...rest } = input;
  const sel: Selection = rest;
  // Load the photo first: a bad upload should fail fast, before any reference work.
  const loaded = await loadImage(image, { allowLocalPaths: ctx.allowLocalPaths, signal: ctx.signal, maxSide: 2048 });
  const selection = await resolveSelection(store, sel, ctx);
  const nHyped = selection.images.filter((i) => i.hype === 'hyped').length;
  const nNot = selection.images.filter((i) => i.hype === 'not_hyped').length;
  if (nHyped === 0 || nNot === 0) {
    fail(
      'NOT_FOUND',
      `hype-dna compares with the hyped and the not-hyped images of the store; ${filtersText(sel)} has ${nHyped} hyped and ${nNot} not-hyped. Import a labelled dataset or widen the filters.`,
      { hyped: nHyped, notHyped: nNot },
    );
  }
  const prep = preprocessor ?? (await defaultPreprocessor());
  const ref = await referenceDistributions(store, selection, ctx, prep);
  const pixels = await prep.run({ data: loaded.data, width: loaded.width, height: loaded.height, channels: 3 });
  const shoe = toDistribution(1, rgbHistogram(pixels));

  const vsHyped = histogramMutualInformation(shoe.hist, ref.hyped.hist);
  const vsNot = histogramMutualInformation(shoe.hist, ref.notHyped.hist);
  const between = histogramMutualInformation(ref.hyped.hist, ref.notHyped.hist);
  const diff = vsHyped.bits - vsNot.bits;
  const closer = Math.abs(diff) < MI_TIE_BITS ? 'tie' : diff > 0 ? 'hyped' : 'not_hyped';

  const png = await renderChart(
    rgbHistogramChart({
      title: `Hype DNA of ${loaded.name}`,
      subtitle: `MI with hyped mean ${vsHyped.bits.toFixed(2)} bits · with not-hyped mean ${vsNot.bits.toFixed(2)} bits · hyped vs not-hyped ${between.bits.toFixed(2)} bits (max ${Math.log2(MI_LEVELS).toFixed(0)})`,
      legendTitle: 'Distribution',
      histograms: [
        { name: 'this shoe', hist: shoe.hist, color: LABEL_COLORS.image! },
        { name: `hyped mean (${ref.hyped.n})`, hist: ref.hyped.hist, color: LABEL_COLORS.hyped! },
        { name: `not-hyped mean (${ref.notHyped.n})`, hist: ref.notHyped.hist, color: LABEL_COLORS.not_hyped! },
      ],
    }),
  );
  const verdict =
    closer === 'tie'
      ? 'Its colour distribution is about as close to both.'
      : `Its colour distribution shares more information with the **${closer === 'hyped' ? 'hyped' : 'not-hyped'}** average.`;
  const text =
    `Mutual information of this shoe's RGB intensity distribution with the hyped mean: **${vsHyped.bits.toFixed(2)} bits**, ` +
    `with the not-hyped mean: **${vsNot.bits.toFixed(2)} bits** (the two means with each other: ${between.bits.toFixed(2)} bits). ` +
    `${verdict} This is colour statistics, not a hype rating or a legit check.`;
  return reply(text, {
    title: 'Hype DNA',
    fields: [
      { name: 'vs hyped', value: `${vsHyped.bits.toFixed(3)} bits`, inline: true },
      { name: 'vs not hyped', value: `${vsNot.bits.toFixed(3)} bits`, inline: true },
      { name: 'hyped vs not hyped', value: `${between.bits.toFixed(3)} bits`, inline: true },
    ],
    data: {
      mi: { imageVsHyped: round(vsHyped.bits), imageVsNotHyped: round(vsNot.bits), hypedVsNotHyped: round(between.bits) },
      detail: { imageVsHyped: miJson(vsHyped), imageVsNotHyped: miJson(vsNot), hypedVsNotHyped: miJson(between) },
      maxBits: round(vsHyped.maxBits),
      closer,
      image: { name: loaded.name, sha256: loaded.sha256, width: loaded.width, height: loaded.height, meanIntensity: shoe.meanIntensity },
      reference: { hyped: ref.hyped.n, notHyped: ref.notHyped.n, filters: describeFilters(sel), cached: ref.cached },
      estimator: { bins: 256, channels: 3, levels: MI_LEVELS, unit: 'bits', definition: 'MI of the joint histogram of rank-quantised bin heights, bins paired by (channel, intensity)' },
      prepVersion: prep.version,
    },
    images: [{ name: 'hype-dna.png', png, alt: 'RGB intensity of the shoe against the hyped and not-hyped means' }],
  });
}

/** The `hype-dna` command. */
export const hypeDna = defineCommand({
  name: 'hype-dna',
  description: "Mutual information between a shoe's colours and the hyped / not-hyped averages",
  options: hypeDnaOptions,
  long: true,
  cooldown: { perUserMs: 3_000 },
  run: (input, ctx) => runHypeDna(input, ctx),
});
