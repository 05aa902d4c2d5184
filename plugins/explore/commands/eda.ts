/**
 * `eda`: the study's exploratory charts for a selection — RGB channel intensity distributions per class,
 * the raw width/height pairplot, the brand distribution and the class balance — plus the numbers.
 */
import { z } from 'zod';
import { defineCommand, reply, type CommandContext, type Reply } from '../../../engine/index.ts';
import { LABEL_COLORS, barChart, pairPlot, renderChart, rgbHistogramChart, sheet } from '../lib/charts.ts';
import { classDistributions } from '../lib/class-stats.ts';
import {
  cacheKey,
  defaultPreprocessor,
  describeFilters,
  filtersText,
  labelOf,
  readCachedReply,
  resolveSelection,
  selectionShape,
  storeOf,
  writeCachedReply,
  type Preprocessor,
  type SelectedImage,
} from '../lib/selection.ts';

/** Brands in display order. */
const BRANDS = ['jordan', 'nike', 'adidas', 'other', 'unlabelled'];
/** Hype classes in display order. */
const HYPES = ['hyped', 'not_hyped', 'unlabelled'];

export const edaOptions = z
  .object({
    ...selectionShape,
    by: z.enum(['hype', 'brand']).default('hype').describe('Class for the colour distributions and the pairplot: hype or brand'),
  })
  .strict();

/** Parsed options of `eda`. */
export type EdaInput = z.output<typeof edaOptions>;

/** min / median / mean / max of numbers. */
export function summary(values: readonly number[]): { min: number; median: number; mean: number; max: number } {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { min: s[0]!, median, mean: s.reduce((a, b) => a + b, 0) / s.length, max: s.at(-1)! };
}

function countBy(images: readonly SelectedImage[], f: (img: SelectedImage) => string, order: readonly string[]): Record<string, number> {
  const out: Record<string, number> = Object.fromEntries(order.map((k) => [k, 0]));
  for (const img of images) out[f(img)] = (out[f(img)] ?? 0) + 1;
  return out;
}

/** The work of `eda`, with an injectable preprocessor for tests. */
export async function runEda(input: EdaInput, ctx: CommandContext, preprocessor?: { run: Preprocessor; version: string }): Promise<Reply> {
  const store = storeOf(ctx);
  const selection = await resolveSelection(store, input, ctx);
  const images = selection.images;
  const n = images.length;
  const prep = preprocessor ?? (await defaultPreprocessor());
  const key = cacheKey('eda', { selection: selection.fingerprint, by: input.by, prep: prep.version });
  const cached = await readCachedReply(store, key);
  if (cached) return cached;

  const started = performance.now();
  const classOf = (img: SelectedImage): string => labelOf(input.by === 'hype' ? img.hype : img.brand);
  const classOrder = input.by === 'hype' ? HYPES : BRANDS;
  const { classes, skipped } = await classDistributions(store, images, classOf, ctx, prep.run);

  const brands = countBy(images, (i) => labelOf(i.brand), BRANDS);
  const hype = countBy(images, (i) => labelOf(i.hype), HYPES);
  const sources = countBy(images, (i) => i.source, []);
  const byClass = countBy(images, classOf, classOrder);
  const dims = {
    width: summary(images.map((i) => i.width)),
    height: summary(images.map((i) => i.height)),
    aspect: summary(images.map((i) => i.width / i.height)),
  };
  const rgb: Record<string, unknown> = {};
  for (const [cls, d] of classes) {
    rgb[cls] = {
      n: d.n,
      meanIntensity: d.meanIntensity,
      whiteShare: d.whiteShare,
    };
  }
  const present = classOrder.filter((c) => classes.has(c));
  const classTitle = input.by === 'hype' ? 'Hype class' : 'Brand';
  const subtitle = `${n} images · ${filtersText(input)}`;
  const pngs = [
    {
      name: 'eda-rgb.png',
      alt: `RGB intensity distributions per ${input.by} class`,
      png: await renderChart(
        rgbHistogramChart({
          title: `RGB channel intensity by ${input.by === 'hype' ? 'hype class' : 'brand'}`,
          subtitle: `mean per-image histograms, orientation-normalised 224×224 · pure white (255) left out: ${present
            .map((c) => `${c} ${(classes.get(c)!.whiteShare * 100).toFixed(0)}%`)
            .join(', ')}`,
          legendTitle: classTitle,
          histograms: present.map((c) => ({ name: `${c} (${classes.get(c)!.n})`, hist: classes.get(c)!.hist, ...(LABEL_COLORS[c] ? { color: LABEL_COLORS[c] } : {}) })),
        }),
      ),
    },
    {
      name: 'eda-dimensions.png',
      alt: 'Pairplot of raw image width and height',
      png: await renderChart(
        pairPlot({
          title: 'Raw image dimensions',
          subtitle: `${subtitle} · width ${dims.width.min}–${dims.width.max} px, height ${dims.height.min}–${dims.height.max} px`,
          legendTitle: classTitle,
          points: images.map((i) => ({ width: i.width, height: i.height, group: classOf(i) })),
        }),
      ),
    },
    {
      name: 'eda-counts.png',
      alt: 'Brand distribution and class balance',
      png: await renderChart(
        sheet(
          `Brands and class balance · ${subtitle}`,
          [
            barChart({
              title: 'Brand distribution',
              categoryTitle: 'Brand',
              valueTitle: 'Images',
              bars: BRANDS.map((b) => ({ label: b, value: brands[b] ?? 0 })),
              width: 320,
              height: 260,
            }),
            barChart({
              title: 'Class balance (hype)',
              categoryTitle: 'Hype class',
              valueTitle: 'Images',
              bars: HYPES.map((h) => ({ label: h, value: hype[h] ?? 0 })),
              width: 260,
              height: 260,
            }),
          ],
          'horizontal',
        ),
      ),
    },
  ];
  const labelled = (hype.hyped ?? 0) + (hype.not_hyped ?? 0);
  const text =
    `EDA of **${n}** images (${filtersText(input)}): ` +
    `${hype.hyped ?? 0} hyped, ${hype.not_hyped ?? 0} not hyped, ${hype.unlabelled ?? 0} without a hype label` +
    (labelled > 0 ? ` (${(((hype.hyped ?? 0) / labelled) * 100).toFixed(0)}% of the labelled are hyped)` : '') +
    `; brands ${BRANDS.filter((b) => (brands[b] ?? 0) > 0)
      .map((b) => `${b} ${brands[b]}`)
      .join(', ')}.` +
    (skipped > 0 ? ` ${skipped} unreadable image(s) left out of the colour plots.` : '');
  const result = reply(text, {
    title: 'Exploratory data analysis',
    data: {
      n,
      filters: describeFilters(input),
      by: input.by,
      byClass,
      classBalance: hype,
      brands,
      sources,
      dimensions: dims,
      rgb,
      skipped,
      prepVersion: prep.version,
      seconds: Math.round((performance.now() - started) / 100) / 10,
      cached: false,
    },
    images: pngs,
  });
  await writeCachedReply(store, key, result, ctx);
  return result;
}

/** The `eda` command. */
export const eda = defineCommand({
  name: 'eda',
  description: "The study's EDA charts for a selection: colours per class, dimensions, brands, balance",
  options: edaOptions,
  long: true,
  cooldown: { perUserMs: 5_000 },
  run: (input, ctx) => runEda(input, ctx),
});
