/**
 * The exploration commands end to end through `engine.invoke`, on generated sneakers imported into an
 * in-memory SQLite store, with the real preprocessing (OpenCV orientation + crop) unless a test injects
 * an identity preprocessor to check exact arithmetic.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import type { Engine, ProgressEvent } from '../../engine/index.ts';
import type { Store } from '../../engine/store/index.ts';
import { preprocess } from '../../engine/ml/preprocess.ts';
import type { RawImage } from '../../engine/ml/types.ts';
import { runMeanShoe } from '../../plugins/explore/commands/mean-shoe.ts';
import { runClusterMap, rgbFeatures } from '../../plugins/explore/commands/cluster-map.ts';
import { exploreEngine, importFixtures, pngSize, shoePng, solidPng, type FixtureSpec } from './fixtures.ts';

let engine: Engine;
let store: Store;

const RED = '#c0392b';
const GREEN = '#27ae60';
const BLUE = '#2c3e9e';

/** 12 shoes: 4 red hyped jordans, 4 green hyped nikes, 4 blue not-hyped adidas; mixed toe directions and sizes. */
const specs: FixtureSpec[] = [
  ...[0, 1, 2, 3].map((i) => ({ color: RED, brand: 'jordan' as const, hype: 'hyped' as const, name: `air jordan 1 red ${i}`, shift: i * 2, toe: 'left' as const, width: 160 + i * 10, height: 100 })),
  ...[0, 1, 2, 3].map((i) => ({ color: GREEN, brand: 'nike' as const, hype: 'hyped' as const, name: `nike dunk green ${i}`, shift: i * 2, width: 150, height: 100 + i * 5 })),
  ...[0, 1, 2, 3].map((i) => ({ color: BLUE, brand: 'adidas' as const, hype: 'not_hyped' as const, name: `adidas harden blue ${i}`, shift: i * 2, source: 'discord', guildId: 'g1', width: 140, height: 90 })),
];

const ctx = { transport: 'test' as const, allowLocalPaths: true };
let callers = 0;
/** A fresh caller per call: the commands' per-user cooldowns are not what these tests are about. */
const asNewCaller = () => ({ ...ctx, caller: { id: `test:${++callers}` } });

beforeAll(async () => {
  ({ engine, store } = await exploreEngine());
  await importFixtures(store, 'fx', await Promise.all(specs.map(async (spec) => ({ png: await shoePng(spec), spec }))));
});

afterAll(async () => {
  await engine.close();
});

async function ok(name: string, input: Record<string, unknown>, onProgress?: (e: ProgressEvent) => void) {
  const r = await engine.invoke(name, input, { ...asNewCaller(), ...(onProgress ? { onProgress } : {}) });
  if (!r.ok) throw new Error(`${name} failed: ${r.error.code} ${r.error.message}`);
  return r.reply;
}

async function err(name: string, input: Record<string, unknown>) {
  const r = await engine.invoke(name, input, asNewCaller());
  expect(r.ok).toBe(false);
  if (r.ok) throw new Error('expected a failure');
  return r.error;
}

describe('mean-shoe', () => {
  it('GIVEN solid images and an identity preprocessor THEN the mean is exact', async () => {
    const { engine: e2, store: s2 } = await exploreEngine();
    try {
      await importFixtures(s2, 'solid', [
        { png: await solidPng([10, 20, 30]), spec: {} },
        { png: await solidPng([30, 60, 90]), spec: {} },
        { png: await solidPng([50, 100, 150]), spec: {} },
      ]);
      // Identity preprocessing: resize the (uniform) image to 224 and scale to [0,1].
      const identity = {
        version: 'identity',
        run: async (img: RawImage) => {
          const { data } = await sharp(Buffer.from(img.data), { raw: { width: img.width, height: img.height, channels: 3 } })
            .resize(224, 224, { fit: 'fill' })
            .raw()
            .toBuffer({ resolveWithObject: true });
          return Float32Array.from(data, (v) => v / 255);
        },
      };
      const c = e2.createContext(ctx);
      const r = await runMeanShoe({ dataset: 'solid' }, c, identity);
      const means = r.data!.channelMeans as { r: number; g: number; b: number };
      expect(r.data!.n).toBe(3);
      expect(means.r * 255).toBeCloseTo(30, 4);
      expect(means.g * 255).toBeCloseTo(60, 4);
      expect(means.b * 255).toBeCloseTo(90, 4);
      // The PNG's centre pixel is the mean colour (30, 60, 90), up to PNG rounding.
      const png = r.images![0]!.png;
      const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
      const at = (Math.floor(info.height / 2) * info.width + Math.floor(info.width / 2)) * info.channels;
      expect([data[at], data[at + 1], data[at + 2]]).toEqual([30, 60, 90]);
    } finally {
      await e2.close();
    }
  });

  it('GIVEN the real preprocessing THEN the streamed mean equals the mean of independently preprocessed images', async () => {
    const r = await ok('mean-shoe', { dataset: 'fx', brand: 'jordan' });
    expect(r.data!.n).toBe(4);
    const expected = [0, 0, 0];
    for (const spec of specs.filter((s) => s.brand === 'jordan')) {
      const { data, info } = await sharp(await shoePng(spec)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
      const out = await preprocess({ data: new Uint8Array(data), width: info.width, height: info.height, channels: 3 }, { size: 224 });
      for (let i = 0; i < out.tensorData.length; i++) expected[i % 3]! += out.tensorData[i]! / (out.tensorData.length / 3) / 4;
    }
    const means = r.data!.channelMeans as { r: number; g: number; b: number };
    expect(means.r).toBeCloseTo(expected[0]!, 6);
    expect(means.g).toBeCloseTo(expected[1]!, 6);
    expect(means.b).toBeCloseTo(expected[2]!, 6);
    // A red shoe: red dominates the mean.
    expect(means.r).toBeGreaterThan(means.b);
    expect(await pngSize(r.images![0]!.png)).toMatchObject({ format: 'png', width: 480 });
  });

  it('GIVEN --eigen K THEN K eigen-shoes, their explained variance and three PNGs come back; a repeat is cached', async () => {
    const events: ProgressEvent[] = [];
    const r = await ok('mean-shoe', { dataset: 'fx', eigen: 3 }, (e) => events.push(e));
    const ev = r.data!.explainedVariance as number[];
    expect(ev).toHaveLength(3);
    expect(ev[0]!).toBeGreaterThanOrEqual(ev[1]!);
    expect(ev[1]!).toBeGreaterThanOrEqual(ev[2]!);
    expect(ev.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(1 + 1e-9);
    expect(r.images!.map((i) => i.name)).toEqual(['mean-shoe.png', 'eigen-shoes.png', 'explained-variance.png']);
    expect((await pngSize(r.images![1]!.png)).width).toBe(800);
    expect((await pngSize(r.images![2]!.png)).width).toBe(800);
    expect(events.some((e) => e.stage === 'averaging' && e.fraction === 1)).toBe(true);
    expect(r.data!.cached).toBe(false);

    const again = await ok('mean-shoe', { dataset: 'fx', eigen: 3 });
    expect(again.data!.cached).toBe(true);
    expect(again.data!.explainedVariance).toEqual(ev);
    expect(again.images![1]!.png.equals(r.images![1]!.png)).toBe(true);
  });

  it('GIVEN filters THEN only matching images are averaged', async () => {
    expect((await ok('mean-shoe', { dataset: 'fx', hype: 'not_hyped' })).data!.n).toBe(4);
    expect((await ok('mean-shoe', { nameIncludes: 'dunk' })).data!.n).toBe(4);
    expect((await ok('mean-shoe', { dataset: 'fx', nameExcludes: 'red' })).data!.n).toBe(8);
    expect((await ok('mean-shoe', { source: 'discord', guild: 'g1' })).data!.n).toBe(4);
    expect((await ok('mean-shoe', { dataset: 'fx', since: '1d' })).data!.filters).toEqual({ dataset: 'fx', since: '1d' });
    const here = await engine.invoke('mean-shoe', { guild: 'here' }, { ...asNewCaller(), guildId: 'g1' });
    expect(here.ok && here.reply.data!.n).toBe(4);
    expect((await err('mean-shoe', { guild: 'here' })).message).toContain('only works inside a Discord server');
  });

  it('GIVEN bad selections THEN clear NOT_FOUND / BAD_INPUT errors', async () => {
    expect((await err('mean-shoe', { brand: 'other' })).code).toBe('NOT_FOUND');
    expect((await err('mean-shoe', { dataset: 'missing' })).message).toContain('no dataset named "missing"');
    expect((await err('mean-shoe', { dataset: 'fx', since: '2999-01-01' })).code).toBe('NOT_FOUND');
    expect((await err('mean-shoe', { nameIncludes: 'red 0' })).message).toContain('at least 2 images');
    const tooMany = await err('mean-shoe', { dataset: 'fx', brand: 'nike', eigen: 4 });
    expect(tooMany.code).toBe('BAD_INPUT');
    expect(tooMany.message).toContain('at most n − 1 = 3');
    expect((await err('mean-shoe', { since: 'yesterday-ish' })).code).toBe('BAD_INPUT');
  });
});

describe('cluster-map', () => {
  it('GIVEN three colour groups (rgb features) THEN --k auto finds 3 clusters of 4 with a high silhouette', async () => {
    const r = await ok('cluster-map', { dataset: 'fx', features: 'rgb', method: 'pca' });
    const data = r.data as { n: number; k: number; silhouette: number; inertiaByK: Record<string, number>; clusters: { size: number; medoidImageId: string; brands: Record<string, number> }[] };
    expect(data.n).toBe(12);
    expect(data.k).toBe(3);
    expect(data.silhouette).toBeGreaterThan(0.5);
    expect(data.clusters.map((c) => c.size)).toEqual([4, 4, 4]);
    // Each cluster is one brand, and its medoid is one of its members.
    for (const c of data.clusters) expect(Object.keys(c.brands)).toHaveLength(1);
    expect(new Set(data.clusters.map((c) => c.medoidImageId)).size).toBe(3);
    expect(Object.keys(data.inertiaByK).map(Number)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
    expect(data.inertiaByK['1']!).toBeGreaterThan(data.inertiaByK['3']!);
    expect(r.images!.map((i) => i.name)).toEqual(['cluster-map.png', 'cluster-colours.png', 'choose-k.png', 'silhouette.png']);
    for (const img of r.images!) expect((await pngSize(img.png)).width).toBe(800);
  });

  it('GIVEN t-SNE and UMAP THEN maps come back with the same clusters, seeded and cached', async () => {
    const tsne = await ok('cluster-map', { dataset: 'fx', features: 'rgb', method: 'tsne', perplexity: 3 });
    expect(tsne.data!.k).toBe(3);
    expect(tsne.data!.perplexity).toBe(3);
    const umap = await ok('cluster-map', { dataset: 'fx', features: 'rgb', method: 'umap', k: 2 });
    expect(umap.data!.k).toBe(2);
    expect((umap.data!.kChoice as { auto: boolean; bySilhouette: number }).bySilhouette).toBe(3);
    const again = await ok('cluster-map', { dataset: 'fx', features: 'rgb', method: 'umap', k: 2 });
    expect(again.data!.cached).toBe(true);
  });

  it('GIVEN K or perplexity too large, or too few images THEN BAD_INPUT says why', async () => {
    const k = await err('cluster-map', { dataset: 'fx', features: 'rgb', k: 12 });
    expect(k.code).toBe('BAD_INPUT');
    expect(k.message).toContain('K ≤ n − 1 = 11');
    const p = await err('cluster-map', { dataset: 'fx', features: 'rgb', perplexity: 12 });
    expect(p.code).toBe('BAD_INPUT');
    expect(p.message).toContain('perplexity 12 must be smaller than the number of images (12)');
    const few = await err('cluster-map', { nameIncludes: 'red 1', features: 'rgb' });
    expect(few.message).toContain('at least 3 images');
    expect((await err('cluster-map', { brand: 'other' })).code).toBe('NOT_FOUND');
    expect((await err('cluster-map', { k: 'many' })).code).toBe('BAD_INPUT');
  });

  it('GIVEN a limit below the selection THEN a seeded sample is mapped and said so', async () => {
    const c = engine.createContext(ctx);
    const r = await runClusterMap({ dataset: 'fx', features: 'rgb', method: 'pca', k: 'auto', limit: 9, seed: 1 }, c, { features: rgbFeatures });
    expect(r.data!.n).toBe(9);
    expect(r.data!.sampled).toBe(true);
    expect(r.text).toContain('sample of 9 of 12');
  });
});

describe('eda', () => {
  it('GIVEN the fixtures THEN counts, dimensions and per-class colours are right and three PNGs decode', async () => {
    const r = await ok('eda', { dataset: 'fx' });
    const d = r.data as {
      n: number;
      classBalance: Record<string, number>;
      brands: Record<string, number>;
      dimensions: { width: { min: number; max: number }; height: { min: number; max: number } };
      rgb: Record<string, { n: number; meanIntensity: { r: number; g: number; b: number } }>;
      sources: Record<string, number>;
    };
    expect(d.n).toBe(12);
    expect(d.classBalance).toEqual({ hyped: 8, not_hyped: 4, unlabelled: 0 });
    expect(d.brands).toEqual({ jordan: 4, nike: 4, adidas: 4, other: 0, unlabelled: 0 });
    expect(d.sources).toEqual({ import: 8, discord: 4 });
    expect(d.dimensions.width).toMatchObject({ min: 140, max: 190 });
    expect(d.dimensions.height).toMatchObject({ min: 90, max: 115 });
    expect(d.rgb.hyped!.n).toBe(8);
    // Blue shoes are not hyped: their mean blue exceeds their mean red; the hyped (red + green) ones not.
    expect(d.rgb.not_hyped!.meanIntensity.b).toBeGreaterThan(d.rgb.not_hyped!.meanIntensity.r);
    expect(d.rgb.hyped!.meanIntensity.b).toBeLessThan(d.rgb.hyped!.meanIntensity.r);
    expect(r.images!.map((i) => i.name)).toEqual(['eda-rgb.png', 'eda-dimensions.png', 'eda-counts.png']);
    for (const img of r.images!) expect((await pngSize(img.png)).width).toBe(800);
  });

  it('GIVEN --by brand THEN the colour classes are brands', async () => {
    const r = await ok('eda', { dataset: 'fx', by: 'brand' });
    expect(Object.keys(r.data!.rgb as object).sort()).toEqual(['adidas', 'jordan', 'nike']);
  });
});

describe('hype-dna', () => {
  it('GIVEN a hyped reference of one shoe and that same shoe THEN its MI with the hyped mean is maximal', async () => {
    const { engine: e2, store: s2 } = await exploreEngine();
    try {
      const hypedSpec: FixtureSpec = { color: RED, hype: 'hyped' };
      const notSpec: FixtureSpec = { color: BLUE, hype: 'not_hyped', shift: 10 };
      const hypedPng = await shoePng(hypedSpec);
      await importFixtures(s2, 'ref', [
        { png: hypedPng, spec: hypedSpec },
        { png: await shoePng(notSpec), spec: notSpec },
      ]);
      const r = await e2.invoke('hype-dna', { image: { kind: 'buffer', data: hypedPng, name: 'red.png' } }, ctx);
      if (!r.ok) throw new Error(r.error.message);
      const d = r.reply.data as { mi: { imageVsHyped: number; imageVsNotHyped: number; hypedVsNotHyped: number }; maxBits: number; closer: string };
      expect(d.mi.imageVsHyped).toBeCloseTo(d.maxBits, 4);
      expect(d.mi.imageVsHyped).toBeGreaterThan(d.mi.imageVsNotHyped);
      expect(d.closer).toBe('hyped');
      const chart = await pngSize(r.reply.images![0]!.png);
      expect(chart.width).toBe(800);
    } finally {
      await e2.close();
    }
  });

  it('GIVEN the fixtures THEN a blue shoe is closer to the not-hyped (blue) mean and the reference is cached', async () => {
    const blue = await shoePng({ color: BLUE, shift: 5 });
    const r1 = await ok('hype-dna', { image: { kind: 'buffer', data: blue }, dataset: 'fx' });
    const d1 = r1.data as { closer: string; reference: { hyped: number; notHyped: number; cached: boolean } };
    expect(d1.reference).toMatchObject({ hyped: 8, notHyped: 4, cached: false });
    expect(d1.closer).toBe('not_hyped');
    const r2 = await ok('hype-dna', { image: { kind: 'buffer', data: blue }, dataset: 'fx' });
    expect((r2.data as { reference: { cached: boolean } }).reference.cached).toBe(true);
  });

  it('GIVEN no not-hyped images or a non-image THEN NOT_FOUND / NOT_AN_IMAGE', async () => {
    const red = await shoePng({ color: RED });
    expect((await err('hype-dna', { image: { kind: 'buffer', data: red }, brand: 'jordan' })).code).toBe('NOT_FOUND');
    expect((await err('hype-dna', { image: { kind: 'buffer', data: Buffer.from('not a picture at all') } })).code).toBe('NOT_AN_IMAGE');
  });
});
