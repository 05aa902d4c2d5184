import { describe, expect, it } from 'vitest';
import sharp from 'sharp';
import {
  CHART_WIDTH,
  barChart,
  barChartOfVariance,
  imageGrid,
  lineChart,
  pairPlot,
  renderChart,
  rgbHistogramChart,
  scatterPanels,
  sheet,
  silhouettePlot,
  thumbnailMap,
  titleOf,
  wrapLines,
} from '../../plugins/explore/lib/charts.ts';

async function size(png: Buffer): Promise<{ width: number; height: number; format: string }> {
  const m = await sharp(png).metadata();
  return { width: m.width!, height: m.height!, format: m.format! };
}

/** Share of pixels that are not (near) white: a blank render would be ~0. */
async function inkShare(png: Buffer): Promise<number> {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  let ink = 0;
  for (let i = 0; i < data.length; i += info.channels) if (data[i]! < 200 || data[i + 1]! < 200 || data[i + 2]! < 200) ink++;
  return ink / (info.width * info.height);
}

const hist = (peak: number): Float64Array => {
  const h = new Float64Array(768);
  for (let c = 0; c < 3; c++) {
    let s = 0;
    for (let b = 0; b < 256; b++) s += h[c * 256 + b] = Math.exp(-((b - peak) ** 2) / 500);
    for (let b = 0; b < 256; b++) h[c * 256 + b]! /= s;
  }
  return h;
};

describe('chart module', () => {
  it('GIVEN each Vega-Lite chart THEN it renders to a PNG exactly 800 px wide with visible content', async () => {
    const specs = [
      lineChart({ title: 'Silhouette', xTitle: 'K', yTitle: 'Score', series: [{ name: 's', points: [{ x: 2, y: 0.3 }, { x: 3, y: 0.5 }] }], markers: [{ x: 3, label: 'K=3' }] }),
      barChart({ title: 'Brands', categoryTitle: 'Brand', valueTitle: 'Images', bars: [{ label: 'nike', value: 3 }, { label: 'adidas', value: 1 }] }),
      barChartOfVariance([0.4, 0.2, 0.1], 'Explained variance'),
      rgbHistogramChart({ title: 'RGB', legendTitle: 'Class', histograms: [{ name: 'hyped', hist: hist(80) }, { name: 'not_hyped', hist: hist(160) }] }),
      pairPlot({ title: 'Dims', legendTitle: 'Class', points: [{ width: 100, height: 80, group: 'hyped' }, { width: 120, height: 90, group: 'not_hyped' }] }),
      scatterPanels({
        title: 'Map',
        xTitle: 'x',
        yTitle: 'y',
        points: [{ x: 0, y: 0, labels: { cluster: 'C1', brand: 'nike' } }, { x: 1, y: 1, labels: { cluster: 'C2', brand: 'adidas' } }],
        colorings: [{ key: 'cluster', title: 'Cluster' }, { key: 'brand', title: 'Brand' }],
      }),
      silhouettePlot({ title: 'Silhouette', samples: [0.5, 0.6, 0.7, 0.2], labels: [0, 0, 1, 1], k: 2, mean: 0.5 }),
    ];
    for (const spec of specs) {
      const png = await renderChart(spec);
      const s = await size(png);
      expect(s.format).toBe('png');
      expect(s.width).toBe(CHART_WIDTH);
      expect(s.height).toBeGreaterThan(200);
      expect(await inkShare(png)).toBeGreaterThan(0.01);
    }
  });

  it('GIVEN a sheet of two charts and a custom width THEN the PNG has that width', async () => {
    const a = barChart({ title: 'A', categoryTitle: 'c', valueTitle: 'v', bars: [{ label: 'x', value: 1 }] });
    const png = await renderChart(sheet('Sheet', [a, a], 'horizontal'), { width: 640 });
    expect((await size(png)).width).toBe(640);
  });

  it('GIVEN tiles THEN the image grid has the asked width and a height from its rows', async () => {
    const picture = { data: new Float32Array(8 * 8 * 3).fill(0.5), width: 8, height: 8 };
    const png = await imageGrid({ title: 'Grid', subtitle: 'sub', tiles: Array.from({ length: 5 }, () => ({ picture, caption: 'PC' })), columns: 4 });
    const s = await size(png);
    expect(s.width).toBe(800);
    // 2 rows of (tile 182 + caption 24 + pad 14) below a 68 px header, plus the bottom pad.
    expect(s.height).toBe(68 + 2 * (Math.floor((800 - 14 * 5) / 4) + 24 + 14) + 14);
  });

  it('GIVEN points with thumbnails THEN the thumbnail map is 800 px wide and draws them', async () => {
    const thumb = { data: new Uint8Array(4 * 4 * 3).fill(20), width: 4, height: 4 };
    const png = await thumbnailMap({
      title: 'Map',
      points: [
        { x: 0, y: 0, color: '#ff0000', thumb },
        { x: 1, y: 1, color: '#0000ff', thumb },
      ],
      legend: [{ label: 'C1', color: '#ff0000' }],
    });
    const s = await size(png);
    expect(s.width).toBe(800);
    expect(await inkShare(png)).toBeGreaterThan(0.003);
  });
});

describe('titles', () => {
  it('GIVEN a long subtitle THEN it is wrapped into lines of at most 95 characters, words intact', () => {
    const long = Array.from({ length: 40 }, (_, i) => `word${i}`).join(' ');
    const lines = wrapLines(long, 95);
    expect(lines.length).toBeGreaterThan(2);
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(95);
    expect(lines.join(' ')).toBe(long);
    expect(titleOf('T', long)).toEqual({ text: 'T', subtitle: lines });
    expect(titleOf('T')).toBe('T');
  });
});
