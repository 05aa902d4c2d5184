import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngine, type Engine } from '../../engine/index.ts';
import { openStore } from '../../engine/store/index.ts';
import training from '../../plugins/training/index.ts';
import { createVisionPlugin } from '../../plugins/vision/index.ts';
import type { Embedder } from '../../plugins/vision/service.ts';
import { writeDataset } from '../vision/fixtures.ts';

// The whole path of a training run with views, in one process: the vision plugin's real embedder (InceptionV3-m7
// on generated shoes) makes the photos' and their views' embeddings; the training plugin adds the views' rows.
const moderator = () => ({ transport: 'cli' as const, allowLocalPaths: true, caller: { id: 'mod-views', isModerator: true } });
let engine: Engine;

beforeAll(async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'train-views-'));
  const { manifest } = await writeDataset(path.join(dir, 'data'), 6);
  engine = createEngine({ store: await openStore({ url: ':memory:' }) });
  await engine.register(createVisionPlugin({ modelsDir: path.join(dir, 'no-models') }));
  await engine.register(training);
  const imported = await engine.invoke('dataset import', { source: manifest, name: 'shoes' }, moderator());
  if (!imported.ok) throw imported.error;
}, 120_000);

afterAll(async () => {
  await engine?.close();
});

describe('training views', () => {
  it('GIVEN train --views mirror+scene THEN every training photo adds a mirror and a scene row, embedded once and cached', async () => {
    const photosOnly = await engine.invoke('train', { task: 'brand', dataset: 'shoes', epochs: 3, views: 'photos', wait: true }, moderator());
    if (!photosOnly.ok) throw photosOnly.error;
    const r = await engine.invoke('train', { task: 'brand', dataset: 'shoes', epochs: 3, views: 'mirror+scene', wait: true }, moderator());
    if (!r.ok) throw r.error;
    const data = r.reply.data as { model: number; views: string[] };
    expect(data.views).toEqual(['mirror', 'scene']);
    expect(r.reply.fields?.find((f) => f.name === 'Views')?.value).toBe('photo + mirror + scene');
    expect(photosOnly.reply.fields?.find((f) => f.name === 'Views')?.value).toBe('photos only');
    // Same seed, same split: three rows per training photo where the photos-only run had one.
    const store = engine.services.store;
    const split = async (reply: typeof r): Promise<{ train: number; trainRows: number }> => {
      const v = await store.models.get((reply.ok ? (reply.reply.data as { model: number }) : { model: 0 }).model);
      return (v?.dataSnapshot as { split: { train: number; trainRows: number } }).split;
    };
    const [withViews, without] = [await split(r), await split(photosOnly)];
    expect(withViews.train).toBe(without.train);
    expect(without.trainRows).toBe(without.train);
    expect(withViews.trainRows).toBe(3 * without.train);
    expect(r.reply.fields?.find((f) => f.name === 'Data')?.value).toBe(`${without.train} train / ${(r.reply.data as { metrics: { n: number } }).metrics.n} test`);
    expect((await store.models.get(data.model))?.params).toMatchObject({ views: ['mirror', 'scene'] });
    // The views' embeddings are in the store under the embedder's keys (a second run reuses them).
    const embedder = engine.service<Embedder>('embedder')!;
    for (const view of ['mirror', 'scene'] as const) expect(await store.embeddings.count(embedder.backbone, embedder.viewPrepVersion(view))).toBeGreaterThan(0);
  }, 300_000);
});
