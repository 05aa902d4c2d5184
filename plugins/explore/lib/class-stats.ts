/**
 * Per-class RGB intensity distributions: the mean of every image's normalised per-channel histogram,
 * accumulated while streaming (one 768-bin running sum per class). Shared by `eda` (the study's channel
 * distribution plots) and `hype-dna` (the hyped / not-hyped reference distributions).
 */
import type { CommandContext } from '../../../engine/index.ts';
import type { Store } from '../../../engine/store/index.ts';
import { HISTOGRAM_BINS, RunningMean, rgbHistogram } from './numerics.ts';
import { streamPixels, type Preprocessor, type SelectedImage } from './selection.ts';

/** The distribution of one class. */
export interface ClassDistribution {
  readonly n: number;
  /** `[R0..R255, G0..G255, B0..B255]`, each channel summing to 1. */
  readonly hist: Float64Array;
  /** Mean intensity per channel in 0..255. */
  readonly meanIntensity: { readonly r: number; readonly g: number; readonly b: number };
  /** Mean share of pixels whose red channel is 255: the white-background spike of product photos. */
  readonly whiteShare: number;
}

/** Mean intensity (0..255) of each channel of a histogram. */
export function histogramMeans(hist: ArrayLike<number>, bins = HISTOGRAM_BINS): { r: number; g: number; b: number } {
  const m = [0, 0, 0];
  for (let c = 0; c < 3; c++) {
    let s = 0;
    for (let b = 0; b < bins; b++) s += hist[c * bins + b]! * ((b + 0.5) * 256) / bins;
    m[c] = s;
  }
  return { r: m[0]!, g: m[1]!, b: m[2]! };
}

/** Summarise a histogram as a {@link ClassDistribution}. */
export function toDistribution(n: number, hist: Float64Array): ClassDistribution {
  return { n, hist, meanIntensity: histogramMeans(hist), whiteShare: hist[HISTOGRAM_BINS - 1]! };
}

/**
 * Stream the images once and return each class's mean histogram (`classOf` picks the class; images whose
 * class is undefined are read but not counted). Constant memory: one running sum per class.
 */
export async function classDistributions(
  store: Store,
  images: readonly SelectedImage[],
  classOf: (img: SelectedImage) => string | undefined,
  ctx: CommandContext,
  preprocessor?: Preprocessor,
): Promise<{ classes: Map<string, ClassDistribution>; skipped: number }> {
  const sums = new Map<string, RunningMean>();
  const wanted = images.filter((img) => classOf(img) !== undefined);
  const pass = await streamPixels(
    store,
    wanted,
    ctx,
    'colour histograms',
    ({ image, pixels }) => {
      const cls = classOf(image)!;
      let sum = sums.get(cls);
      if (!sum) sums.set(cls, (sum = new RunningMean(3 * HISTOGRAM_BINS)));
      sum.add(rgbHistogram(pixels));
    },
    preprocessor,
  );
  const classes = new Map<string, ClassDistribution>();
  for (const [cls, sum] of [...sums.entries()].sort((a, b) => a[0].localeCompare(b[0]))) classes.set(cls, toDistribution(sum.count, sum.mean()));
  return { classes, skipped: pass.skipped.length };
}
