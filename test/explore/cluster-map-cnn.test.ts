/**
 * `cluster-map --features cnn` with the real MobileNetV2 backbone (tfjs): the embeddings are cached in
 * the store, and no tensor outlives the command.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../../engine/index.ts';
import type { Store } from '../../engine/store/index.ts';
import { getTf, loadBackbone, prepCacheKey } from '../../engine/ml/index.ts';
import { exploreEngine, importFixtures, shoePng, type FixtureSpec } from './fixtures.ts';

let engine: Engine;
let store: Store;

const specs: FixtureSpec[] = [
  ...[0, 1, 2].map((i) => ({ color: '#d35400', hype: 'hyped' as const, shift: i * 2 })),
  ...[0, 1, 2].map((i) => ({ color: '#1f3a93', hype: 'not_hyped' as const, shift: i * 2 })),
];

beforeAll(async () => {
  ({ engine, store } = await exploreEngine());
  await importFixtures(store, 'cnn', await Promise.all(specs.map(async (spec) => ({ png: await shoePng(spec), spec }))));
});

afterAll(async () => {
  await engine.close();
});

describe('cluster-map with CNN features', () => {
  it('GIVEN MobileNetV2 embeddings THEN a map comes back, embeddings are cached, and no tensor leaks', async () => {
    const tf = await getTf();
    await loadBackbone('mobilenet_v2'); // weights are shared per process: load them before counting
    const before = tf.memory().numTensors;
    const r = await engine.invoke('cluster-map', { dataset: 'cnn', features: 'cnn', method: 'pca', k: 2 }, { transport: 'test' });
    if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}`);
    expect(tf.memory().numTensors).toBe(before);
    const data = r.reply.data as { n: number; k: number; model: string; clusters: { size: number; hype: Record<string, number> }[] };
    expect(data).toMatchObject({ n: 6, k: 2, model: 'mobilenet_v2' });
    expect(data.clusters.map((c) => c.size).reduce((a, b) => a + b, 0)).toBe(6);
    expect(await store.embeddings.count('mobilenet_v2', prepCacheKey({ size: 224 }))).toBe(6);
    expect(r.reply.images).toHaveLength(4);
  });
});
