/**
 * The one chart module of solescope's exploration plugin.
 *
 * Charts are Vega-Lite specs compiled by vega-lite, rendered to SVG by vega (headless, no browser) and
 * rasterised by sharp; every chart goes through {@link renderChart}, which applies one theme (title,
 * subtitle, axis titles, legend, DejaVu Sans, white background) and scales the result to a fixed pixel
 * width (800 by default: Discord shows attachments at up to ~550 px wide in a message and full size when
 * opened, so 800 px with ≥ 13 px text stays readable in both). Pictures made of pictures (image grids,
 * thumbnail maps) are drawn with @napi-rs/canvas in the same palette and fonts.
 */
import { createCanvas, type Canvas, type SKRSContext2D } from '@napi-rs/canvas';
import sharp from 'sharp';
import * as vega from 'vega';
import * as vl from 'vega-lite';
import type { Config, TopLevelSpec } from 'vega-lite';

/** Default output width in pixels. */
export const CHART_WIDTH = 800;

/** The font every chart and canvas uses (DejaVu ships with Debian's fontconfig; a fallback is automatic). */
export const FONT = 'DejaVu Sans';

/** Tableau 10: distinguishable, colour-blind-aware categorical colours. */
export const PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];

/** Fixed colours per label so a brand or hype class looks the same in every chart. */
export const LABEL_COLORS: Readonly<Record<string, string>> = {
  jordan: '#e15759',
  nike: '#f28e2b',
  adidas: '#4e79a7',
  other: '#59a14f',
  hyped: '#e15759',
  not_hyped: '#4e79a7',
  unlabelled: '#9d9d9d',
  image: '#222222',
};

/** A colour for cluster `i` (cycles after 10). */
export function clusterColor(i: number): string {
  return PALETTE[i % PALETTE.length]!;
}

/** A colour for a label value (fixed for known labels, palette otherwise). */
export function labelColor(label: string, index = 0): string {
  return LABEL_COLORS[label] ?? clusterColor(index);
}

/** The theme every chart shares. */
export const THEME: Config = {
  font: FONT,
  background: 'white',
  padding: 14,
  title: { fontSize: 20, subtitleFontSize: 14, subtitleColor: '#555555', anchor: 'start', offset: 10, color: '#111111' },
  axis: { labelFontSize: 13, titleFontSize: 14, titlePadding: 8, gridColor: '#e8e8e8', domainColor: '#888888', tickColor: '#888888' },
  legend: { labelFontSize: 13, titleFontSize: 14, symbolSize: 120, labelLimit: 220 },
  header: { labelFontSize: 14, titleFontSize: 15 },
  view: { stroke: '#dddddd' },
  range: { category: PALETTE },
  concat: { spacing: 28 },
};

/**
 * Vega measures text with node-canvas when it is installed and otherwise estimates 0.8 × font size per
 * character — about 1.5× too wide for DejaVu Sans, which made a long subtitle widen the SVG and shrink
 * every font once scaled to 800 px. Measure with @napi-rs/canvas instead (vega supports a user-defined
 * `textMetrics.width`, as vl-convert does).
 */
const measureContext = createCanvas(1, 1).getContext('2d');
// vega-scenegraph's text helpers are re-exported by vega at run time but missing from its typings.
const scenegraph = vega as unknown as {
  textMetrics: { width: (item: unknown, text: unknown) => number };
  fontSize(item: unknown): number;
  font(item: unknown): string;
};
scenegraph.textMetrics.width = (item, text) => {
  const value = text == null ? '' : String(text).trim();
  if (!(scenegraph.fontSize(item) > 0) || value === '') return 0;
  measureContext.font = scenegraph.font(item);
  return measureContext.measureText(value).width;
};

/** Options of {@link renderChart}. */
export interface RenderOptions {
  /** Output width in pixels (the height follows the chart's aspect ratio). Default {@link CHART_WIDTH}. */
  readonly width?: number;
}

/**
 * Render a Vega-Lite spec to a PNG of exactly `width` pixels wide. The SVG is rasterised at twice its
 * size and scaled down, which anti-aliases text and thin lines better than rendering at 1×.
 */
export async function renderChart(spec: TopLevelSpec, options: RenderOptions = {}): Promise<Buffer> {
  const width = options.width ?? CHART_WIDTH;
  const compiled = vl.compile(spec, { config: THEME }).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    const svg = await view.toSVG(2);
    return await sharp(Buffer.from(svg), { limitInputPixels: 100_000_000 })
      .flatten({ background: '#ffffff' })
      .resize({ width, kernel: 'lanczos3' })
      .png({ compressionLevel: 9, palette: false })
      .toBuffer();
  } finally {
    view.finalize();
  }
}

/** Wrap text into lines of at most `max` characters at spaces (Vega titles do not wrap by themselves). */
export function wrapLines(text: string, max = 95): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > max) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}

/**
 * A chart title with an optional subtitle, wrapped so a long subtitle never widens the chart (an
 * unwrapped 150-character subtitle doubled the SVG width and halved every font after scaling to 800 px).
 */
export function titleOf(title: string, subtitle?: string): string | { text: string | string[]; subtitle?: string[] } {
  const text = title.length > 60 ? wrapLines(title, 60) : title;
  if (!subtitle) return typeof text === 'string' ? text : { text };
  return { text, subtitle: wrapLines(subtitle, 95) };
}

/** One line of a {@link lineChart}. */
export interface Series {
  readonly name: string;
  readonly points: readonly { readonly x: number; readonly y: number }[];
  readonly color?: string;
}

function colorScale(names: readonly string[], colors: readonly (string | undefined)[]): { domain: string[]; range: string[] } {
  return { domain: [...names], range: names.map((n, i) => colors[i] ?? labelColor(n, i)) };
}

/** Axis-titled multi-series line chart with points, a legend, and optional vertical markers. */
export function lineChart(opts: {
  readonly title: string;
  readonly subtitle?: string;
  readonly xTitle: string;
  readonly yTitle: string;
  readonly series: readonly Series[];
  readonly legendTitle?: string;
  readonly markers?: readonly { readonly x: number; readonly label: string }[];
  readonly width?: number;
  readonly height?: number;
  readonly integerX?: boolean;
}): TopLevelSpec {
  const values = opts.series.flatMap((s) => s.points.map((p) => ({ series: s.name, x: p.x, y: p.y })));
  const names = opts.series.map((s) => s.name);
  const layers: unknown[] = [
    {
      mark: { type: 'line', point: { size: 60, filled: true }, strokeWidth: 2.5 },
      encoding: {
        x: { field: 'x', type: 'quantitative', title: opts.xTitle, ...(opts.integerX ? { axis: { tickMinStep: 1, format: 'd' } } : {}), scale: { zero: false } },
        y: { field: 'y', type: 'quantitative', title: opts.yTitle, scale: { zero: false } },
        color: { field: 'series', type: 'nominal', title: opts.legendTitle ?? 'Series', scale: colorScale(names, opts.series.map((s) => s.color)), legend: names.length > 1 ? {} : null },
      },
    },
  ];
  if (opts.markers && opts.markers.length > 0) {
    layers.push({
      data: { values: opts.markers.map((m) => ({ x: m.x, label: m.label })) },
      mark: { type: 'rule', strokeDash: [6, 4], color: '#444444' },
      encoding: { x: { field: 'x', type: 'quantitative' } },
    });
    layers.push({
      data: { values: opts.markers.map((m) => ({ x: m.x, label: m.label })) },
      mark: { type: 'text', align: 'left', dx: 5, dy: -4, baseline: 'bottom', fontSize: 13, color: '#222222' },
      encoding: { x: { field: 'x', type: 'quantitative' }, y: { value: 14 }, text: { field: 'label' } },
    });
  }
  return {
    title: titleOf(opts.title, opts.subtitle),
    width: opts.width ?? 640,
    height: opts.height ?? 320,
    data: { values },
    layer: layers,
  } as TopLevelSpec;
}

/** One bar of a {@link barChart}. */
export interface Bar {
  readonly label: string;
  readonly value: number;
  /** Colour group (defaults to the label). */
  readonly group?: string;
}

/** Bar chart with value labels; horizontal bars read better for long category names. */
export function barChart(opts: {
  readonly title: string;
  readonly subtitle?: string;
  readonly categoryTitle: string;
  readonly valueTitle: string;
  readonly bars: readonly Bar[];
  readonly horizontal?: boolean;
  readonly width?: number;
  readonly height?: number;
  readonly legendTitle?: string;
}): TopLevelSpec {
  const values = opts.bars.map((b) => ({ label: b.label, value: b.value, group: b.group ?? b.label }));
  const groups = [...new Set(values.map((v) => v.group))];
  const cat = { field: 'label', type: 'nominal', title: opts.categoryTitle, sort: null, axis: { labelAngle: 0 } };
  const val = { field: 'value', type: 'quantitative', title: opts.valueTitle };
  const enc = opts.horizontal ? { y: cat, x: val } : { x: cat, y: val };
  const color = { field: 'group', type: 'nominal', title: opts.legendTitle ?? opts.categoryTitle, scale: colorScale(groups, []), legend: groups.length === values.length ? null : {} };
  return {
    title: titleOf(opts.title, opts.subtitle),
    width: opts.width ?? 640,
    height: opts.height ?? 300,
    data: { values },
    layer: [
      { mark: { type: 'bar', cornerRadiusEnd: 2 }, encoding: { ...enc, color } },
      {
        mark: opts.horizontal
          ? { type: 'text', align: 'left', dx: 4, fontSize: 13 }
          : { type: 'text', baseline: 'bottom', dy: -3, fontSize: 13 },
        encoding: { ...enc, text: { field: 'value', type: 'quantitative', format: ',' } },
      },
    ],
  } as TopLevelSpec;
}

/**
 * Explained variance per principal component (bars) with the cumulative share (line), both in percent.
 */
export function barChartOfVariance(ratios: readonly number[], title: string): TopLevelSpec {
  let cum = 0;
  const values = ratios.map((r, i) => {
    cum += r;
    return { component: `PC${i + 1}`, share: r * 100, cumulative: cum * 100 };
  });
  const order = values.map((v) => v.component);
  return {
    title: titleOf(title, 'bars: share of the pixel variance per component · line: cumulative share'),
    width: 640,
    height: 300,
    data: { values },
    encoding: { x: { field: 'component', type: 'nominal', sort: order, title: 'Eigen-shoe', axis: { labelAngle: 0 } } },
    layer: [
      {
        mark: { type: 'bar', color: PALETTE[0] },
        encoding: { y: { field: 'share', type: 'quantitative', title: 'Explained variance (%)', scale: { domain: [0, 100] } } },
      },
      {
        mark: { type: 'text', baseline: 'bottom', dy: -3, fontSize: 12 },
        encoding: { y: { field: 'share', type: 'quantitative' }, text: { field: 'share', type: 'quantitative', format: '.1f' } },
      },
      {
        mark: { type: 'line', color: PALETTE[2], point: { color: PALETTE[2], size: 50 }, strokeWidth: 2.5 },
        encoding: { y: { field: 'cumulative', type: 'quantitative' } },
      },
    ],
  } as TopLevelSpec;
}

/** A named RGB histogram: `[R0..R(b-1), G0.., B0..]`, each channel summing to 1. */
export interface NamedHistogram {
  readonly name: string;
  readonly hist: ArrayLike<number>;
  readonly color?: string;
}

/**
 * RGB intensity distributions as three side-by-side panels (R, G, B), one line per named histogram.
 * The last bin (pure white, the product-photo background) is left out of the plot because its spike
 * would flatten every other detail; `whiteShare` in the subtitle says how big it is.
 */
export function rgbHistogramChart(opts: {
  readonly title: string;
  readonly subtitle?: string;
  readonly histograms: readonly NamedHistogram[];
  readonly legendTitle: string;
  /** Merge this many adjacent bins for a smoother, readable line (default 4: 256 → 64 bins). */
  readonly merge?: number;
}): TopLevelSpec {
  const merge = opts.merge ?? 4;
  const values: { channel: string; intensity: number; density: number; series: string }[] = [];
  const channels = ['Red', 'Green', 'Blue'];
  for (const h of opts.histograms) {
    const bins = h.hist.length / 3;
    for (let c = 0; c < 3; c++) {
      for (let b = 0; b < bins - 1; b += merge) {
        let s = 0;
        for (let k = b; k < Math.min(b + merge, bins - 1); k++) s += h.hist[c * bins + k]!;
        values.push({ channel: channels[c]!, intensity: (b * 256) / bins, density: s, series: h.name });
      }
    }
  }
  const names = opts.histograms.map((h) => h.name);
  return {
    title: titleOf(opts.title, opts.subtitle),
    data: { values },
    facet: { column: { field: 'channel', type: 'nominal', title: null, sort: channels, header: { labelFontSize: 15, labelFontWeight: 'bold' } } },
    spec: {
      width: 200,
      height: 220,
      mark: { type: 'line', strokeWidth: 2, interpolate: 'monotone' },
      encoding: {
        x: { field: 'intensity', type: 'quantitative', title: 'Intensity (0–254)', scale: { domain: [0, 255] }, axis: { values: [0, 64, 128, 192, 255] } },
        y: { field: 'density', type: 'quantitative', title: 'Share of pixels' },
        color: { field: 'series', type: 'nominal', title: opts.legendTitle, scale: colorScale(names, opts.histograms.map((h) => h.color)), legend: { orient: 'bottom', direction: 'horizontal' } },
      },
    },
    resolve: { scale: { y: 'shared' } },
  } as TopLevelSpec;
}

/** A point of a {@link pairPlot}. */
export interface PairPoint {
  readonly width: number;
  readonly height: number;
  readonly group: string;
}

/** Seaborn-style pairplot of raw image width and height: histograms on the diagonal, scatters off it. */
export function pairPlot(opts: { readonly title: string; readonly subtitle?: string; readonly points: readonly PairPoint[]; readonly legendTitle: string }): TopLevelSpec {
  const groups = [...new Set(opts.points.map((p) => p.group))].sort();
  const color = { field: 'group', type: 'nominal', title: opts.legendTitle, scale: colorScale(groups, []) };
  const size = 270;
  const hist = (field: 'width' | 'height') => ({
    width: size,
    height: size,
    mark: { type: 'bar', opacity: 0.75, binSpacing: 0 },
    encoding: {
      x: { field, type: 'quantitative', bin: { maxbins: 30 }, title: `${field} (px)` },
      y: { aggregate: 'count', type: 'quantitative', title: 'Images', stack: null },
      color,
    },
  });
  const scatter = (x: 'width' | 'height', y: 'width' | 'height') => ({
    width: size,
    height: size,
    mark: { type: 'circle', size: 28, opacity: 0.55 },
    encoding: {
      x: { field: x, type: 'quantitative', title: `${x} (px)`, scale: { zero: false } },
      y: { field: y, type: 'quantitative', title: `${y} (px)`, scale: { zero: false } },
      color,
    },
  });
  return {
    title: titleOf(opts.title, opts.subtitle),
    data: { values: opts.points.map((p) => ({ width: p.width, height: p.height, group: p.group })) },
    vconcat: [{ hconcat: [hist('width'), scatter('height', 'width')] }, { hconcat: [scatter('width', 'height'), hist('height')] }],
  } as TopLevelSpec;
}

/** A point of a {@link scatterPanels} chart. */
export interface MapPoint {
  readonly x: number;
  readonly y: number;
  /** One label per colouring, e.g. `{ cluster: 'C1', brand: 'nike', hype: 'hyped' }`. */
  readonly labels: Readonly<Record<string, string>>;
}

/** Small multiples of one 2-D map, each coloured by a different labelling (cluster, brand, hype). */
export function scatterPanels(opts: {
  readonly title: string;
  readonly subtitle?: string;
  readonly points: readonly MapPoint[];
  readonly colorings: readonly { readonly key: string; readonly title: string; readonly colors?: Readonly<Record<string, string>> }[];
  readonly xTitle: string;
  readonly yTitle: string;
}): TopLevelSpec {
  const values = opts.points.map((p) => ({ x: p.x, y: p.y, ...p.labels }));
  const panel = (c: (typeof opts.colorings)[number]) => {
    const domain = [...new Set(opts.points.map((p) => p.labels[c.key] ?? ''))].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
    return {
      title: { text: `by ${c.title}`, fontSize: 15 },
      width: 210,
      height: 210,
      mark: { type: 'circle', size: 30, opacity: 0.75 },
      encoding: {
        x: { field: 'x', type: 'quantitative', title: opts.xTitle, axis: { labels: false, ticks: false } },
        y: { field: 'y', type: 'quantitative', title: opts.yTitle, axis: { labels: false, ticks: false } },
        color: {
          field: c.key,
          type: 'nominal',
          title: c.title,
          scale: { domain, range: domain.map((d, i) => c.colors?.[d] ?? labelColor(d, i)) },
          legend: { orient: 'bottom', direction: 'vertical', columns: 2 },
        },
      },
    };
  };
  return {
    title: titleOf(opts.title, opts.subtitle),
    data: { values },
    hconcat: opts.colorings.map(panel),
    resolve: { scale: { color: 'independent' }, legend: { color: 'independent' } },
  } as TopLevelSpec;
}

/**
 * The study's per-cluster silhouette plot (as in scikit-learn's example): each sample is a horizontal bar
 * of its silhouette value, sorted within its cluster, clusters stacked with gaps; the dashed line is the
 * mean silhouette. Above ~1,500 samples bars are subsampled evenly within each cluster (the shape stays).
 */
export function silhouettePlot(opts: {
  readonly title: string;
  readonly subtitle?: string;
  readonly samples: ArrayLike<number>;
  readonly labels: ArrayLike<number>;
  readonly k: number;
  readonly mean: number;
}): TopLevelSpec {
  const n = opts.samples.length;
  const stride = Math.max(1, Math.ceil(n / 1500));
  const bars: { x0: number; y: number; y2: number; s: number; cluster: string }[] = [];
  const centres: { x0: number; y: number; cluster: string }[] = [];
  let y = 0;
  const gap = Math.max(2, Math.round(n / stride / 40));
  for (let c = 0; c < opts.k; c++) {
    const values: number[] = [];
    for (let i = 0; i < n; i++) if (opts.labels[i] === c) values.push(opts.samples[i]!);
    values.sort((a, b) => a - b);
    const start = y;
    for (let i = 0; i < values.length; i += stride) {
      bars.push({ x0: 0, y, y2: y + 1, s: values[i]!, cluster: `C${c + 1}` });
      y += 1;
    }
    centres.push({ x0: 0, y: (start + y) / 2, cluster: `C${c + 1}` });
    y += gap;
  }
  const domain = Array.from({ length: opts.k }, (_, i) => `C${i + 1}`);
  const minS = Math.min(-0.1, ...bars.map((b) => b.s));
  return {
    title: titleOf(opts.title, opts.subtitle),
    width: 620,
    height: 380,
    layer: [
      {
        data: { values: bars },
        mark: { type: 'rect', strokeWidth: 0.6 },
        encoding: {
          x: { field: 'x0', type: 'quantitative', title: 'Silhouette coefficient', scale: { domain: [minS, 1] } },
          x2: { field: 's' },
          y: { field: 'y', type: 'quantitative', title: 'Samples, grouped by cluster', axis: { labels: false, ticks: false, grid: false }, scale: { domain: [0, y] } },
          y2: { field: 'y2' },
          color: { field: 'cluster', type: 'nominal', title: 'Cluster', scale: { domain, range: domain.map((_, i) => clusterColor(i)) } },
          // A hairline in the fill colour closes the anti-aliasing seams between adjacent one-sample bars.
          stroke: { field: 'cluster', type: 'nominal', scale: { domain, range: domain.map((_, i) => clusterColor(i)) }, legend: null },
        },
      },
      {
        data: { values: centres },
        mark: { type: 'text', align: 'right', dx: -6, fontSize: 13, fontWeight: 'bold' },
        encoding: { x: { field: 'x0', type: 'quantitative' }, y: { field: 'y', type: 'quantitative' }, text: { field: 'cluster' } },
      },
      {
        data: { values: [{ m: opts.mean }] },
        mark: { type: 'rule', color: '#d62728', strokeDash: [6, 4], strokeWidth: 2 },
        encoding: { x: { field: 'm', type: 'quantitative' } },
      },
    ],
  } as TopLevelSpec;
}

/** Concatenate charts (rendered as one sheet). */
export function sheet(title: string, charts: readonly TopLevelSpec[], direction: 'vertical' | 'horizontal' = 'vertical'): TopLevelSpec {
  const strip = (c: TopLevelSpec): Record<string, unknown> => {
    const { $schema: _s, config: _c, ...rest } = c as unknown as Record<string, unknown>;
    return rest;
  };
  const resolve = { scale: { color: 'independent' }, legend: { color: 'independent' } };
  return (direction === 'vertical'
    ? { title: titleOf(title), vconcat: charts.map(strip), resolve }
    : { title: titleOf(title), hconcat: charts.map(strip), resolve }) as unknown as TopLevelSpec;
}

// ---------------------------------------------------------------------------------------------------
// Canvas: image grids and thumbnail maps
// ---------------------------------------------------------------------------------------------------

/** An RGB picture: interleaved HWC, floats in [0,1] or bytes. */
export interface RgbPicture {
  readonly data: Float32Array | Float64Array | Uint8Array | Uint8ClampedArray;
  readonly width: number;
  readonly height: number;
}

/** Clamp a [0,1] float or a byte array into RGBA bytes for a canvas ImageData. */
function toRgba(picture: RgbPicture): Uint8ClampedArray {
  const n = picture.width * picture.height;
  const out = new Uint8ClampedArray(n * 4);
  const bytes = picture.data instanceof Uint8Array || picture.data instanceof Uint8ClampedArray;
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) {
      const v = picture.data[i * 3 + c]!;
      out[i * 4 + c] = bytes ? v : Math.round(Math.max(0, Math.min(1, v)) * 255);
    }
    out[i * 4 + 3] = 255;
  }
  return out;
}

async function pictureToCanvasImage(picture: RgbPicture, size: number): Promise<Canvas> {
  const c = createCanvas(picture.width, picture.height);
  const g = c.getContext('2d');
  const img = g.createImageData(picture.width, picture.height);
  img.data.set(toRgba(picture));
  g.putImageData(img, 0, 0);
  if (picture.width === size && picture.height === size) return c;
  const out = createCanvas(size, size);
  const og = out.getContext('2d');
  og.imageSmoothingEnabled = true;
  og.imageSmoothingQuality = 'high';
  og.fillStyle = '#ffffff';
  og.fillRect(0, 0, size, size);
  const scale = Math.min(size / picture.width, size / picture.height);
  const w = picture.width * scale;
  const h = picture.height * scale;
  og.drawImage(c, (size - w) / 2, (size - h) / 2, w, h);
  return out;
}

function drawTitle(g: SKRSContext2D, title: string, subtitle: string | undefined, width: number): number {
  g.fillStyle = '#111111';
  g.font = `bold 20px "${FONT}"`;
  g.textBaseline = 'top';
  g.fillText(fit(g, title, width - 28), 14, 14);
  if (subtitle) {
    g.fillStyle = '#555555';
    g.font = `14px "${FONT}"`;
    g.fillText(fit(g, subtitle, width - 28), 14, 42);
    return 68;
  }
  return 46;
}

function fit(g: SKRSContext2D, text: string, max: number): string {
  if (g.measureText(text).width <= max) return text;
  let t = text;
  while (t.length > 1 && g.measureText(`${t}…`).width > max) t = t.slice(0, -1);
  return `${t}…`;
}

/**
 * Re-encode a canvas PNG with a 256-colour palette (libimagequant through sharp): photo grids and
 * thumbnail maps shrink about 3× with no visible change, which keeps attachments small for Discord.
 */
async function palettePng(png: Buffer): Promise<Buffer> {
  return sharp(png).png({ palette: true, quality: 90, effort: 7, compressionLevel: 9 }).toBuffer();
}

/** One tile of an {@link imageGrid}. */
export interface Tile {
  readonly picture: RgbPicture;
  readonly caption?: string;
}

/**
 * A titled grid of pictures with captions under each (mean shoes, eigen-shoes, cluster medoids).
 * Output width is exactly `width`; tiles are square, `columns` per row.
 */
export async function imageGrid(opts: {
  readonly title: string;
  readonly subtitle?: string;
  readonly tiles: readonly Tile[];
  readonly columns?: number;
  readonly width?: number;
  /** Quantise to a 256-colour palette (smaller; use for many small pictures, not for exact colours). */
  readonly palette?: boolean;
}): Promise<Buffer> {
  const width = opts.width ?? CHART_WIDTH;
  const columns = Math.max(1, Math.min(opts.columns ?? 4, opts.tiles.length));
  const pad = 14;
  const tile = Math.floor((width - pad * (columns + 1)) / columns);
  const captionH = opts.tiles.some((t) => t.caption) ? 24 : 0;
  const rows = Math.ceil(opts.tiles.length / columns);
  const top = opts.subtitle ? 68 : 46;
  const height = top + rows * (tile + captionH + pad) + pad;
  const canvas = createCanvas(width, height);
  const g = canvas.getContext('2d');
  g.fillStyle = '#ffffff';
  g.fillRect(0, 0, width, height);
  drawTitle(g, opts.title, opts.subtitle, width);
  for (let i = 0; i < opts.tiles.length; i++) {
    const t = opts.tiles[i]!;
    const x = pad + (i % columns) * (tile + pad);
    const y = top + Math.floor(i / columns) * (tile + captionH + pad);
    g.drawImage(await pictureToCanvasImage(t.picture, tile), x, y, tile, tile);
    g.strokeStyle = '#dddddd';
    g.lineWidth = 1;
    g.strokeRect(x + 0.5, y + 0.5, tile - 1, tile - 1);
    if (t.caption) {
      g.fillStyle = '#222222';
      g.font = `14px "${FONT}"`;
      g.textBaseline = 'top';
      g.textAlign = 'center';
      g.fillText(fit(g, t.caption, tile), x + tile / 2, y + tile + 5);
      g.textAlign = 'left';
    }
  }
  const png = await canvas.encode('png');
  return opts.palette ? palettePng(png) : png;
}

/** One point of a {@link thumbnailMap}. */
export interface ThumbPoint {
  readonly x: number;
  readonly y: number;
  readonly color: string;
  readonly thumb?: RgbPicture;
}

/**
 * A 2-D map with image thumbnails at their points (bordered in the point's colour) and a legend. When
 * thumbnails would overlap (closer than 80 % of their size), a greedy pass keeps the earlier one — the
 * caller orders points by importance (e.g. medoids first) — while a dot is drawn for every image, so
 * density stays visible.
 */
export async function thumbnailMap(opts: {
  readonly title: string;
  readonly subtitle?: string;
  readonly points: readonly ThumbPoint[];
  readonly legend: readonly { readonly label: string; readonly color: string }[];
  readonly width?: number;
  readonly thumbSize?: number;
}): Promise<Buffer> {
  const width = opts.width ?? CHART_WIDTH;
  const thumb = opts.thumbSize ?? 44;
  const top = opts.subtitle ? 68 : 46;
  const legendRows = Math.ceil(opts.legend.length / 5);
  const plot = width - 28;
  const height = top + plot + 14 + legendRows * 24 + 14;
  const canvas = createCanvas(width, height);
  const g = canvas.getContext('2d');
  g.fillStyle = '#ffffff';
  g.fillRect(0, 0, width, height);
  drawTitle(g, opts.title, opts.subtitle, width);
  const xs = opts.points.map((p) => p.x);
  const ys = opts.points.map((p) => p.y);
  const [xMin, xMax] = [Math.min(...xs), Math.max(...xs)];
  const [yMin, yMax] = [Math.min(...ys), Math.max(...ys)];
  const inner = plot - thumb;
  const sx = (v: number): number => 14 + thumb / 2 + (xMax > xMin ? ((v - xMin) / (xMax - xMin)) * inner : inner / 2);
  const sy = (v: number): number => top + thumb / 2 + (yMax > yMin ? (1 - (v - yMin) / (yMax - yMin)) * inner : inner / 2);
  g.strokeStyle = '#dddddd';
  g.strokeRect(14.5, top + 0.5, plot - 1, plot - 1);
  for (const p of opts.points) {
    g.fillStyle = p.color;
    g.beginPath();
    g.arc(sx(p.x), sy(p.y), 3.5, 0, Math.PI * 2);
    g.fill();
  }
  const placed: { x: number; y: number }[] = [];
  const minGap = thumb * 0.8;
  for (const p of opts.points) {
    if (!p.thumb) continue;
    const cx = sx(p.x);
    const cy = sy(p.y);
    if (placed.some((q) => Math.abs(q.x - cx) < minGap && Math.abs(q.y - cy) < minGap)) continue;
    placed.push({ x: cx, y: cy });
    const img = await pictureToCanvasImage(p.thumb, thumb);
    g.drawImage(img, cx - thumb / 2, cy - thumb / 2, thumb, thumb);
    g.strokeStyle = p.color;
    g.lineWidth = 3;
    g.strokeRect(cx - thumb / 2, cy - thumb / 2, thumb, thumb);
  }
  g.font = `14px "${FONT}"`;
  g.textBaseline = 'middle';
  const colW = Math.floor(plot / 5);
  opts.legend.forEach((item, i) => {
    const x = 14 + (i % 5) * colW;
    const y = top + plot + 14 + Math.floor(i / 5) * 24 + 10;
    g.fillStyle = item.color;
    g.fillRect(x, y - 7, 14, 14);
    g.fillStyle = '#222222';
    g.fillText(fit(g, item.label, colW - 24), x + 20, y);
  });
  return palettePng(await canvas.encode('png'));
}
