import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobContext, Store } from '../../engine/index.ts';
import { featuresOf } from '../../plugins/training/lib/head.ts';
import { prepareRun, rowsOfView, trainJobSchema, type Embedder, type ViewRow } from '../../plugins/training/lib/pipeline.ts';
import { seedSynthetic, tempStore, TEST_FEATURES } from '../jobs/fixtures/synthetic.ts';

// The training plugin's side of the turned view, on synthetic embeddings: which rows a run asks its embedder for,
// how many rows each training photo then has, and what happens on a worker whose embedder cannot turn photos. (The
// vision plugin's real turned rows are tested in test/vision/plugin.test.ts.)
let store: Store;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  const t = await tempStore();
  store = t.store;
  cleanup = t.cleanup;
  await seedSynthetic(store, { perClass: 12, dim: 6, seed: 5 });
});

afterAll(async () => {
  await cleanup?.();
});

/**
 * An embedder in the synthetic feature space whose view rows are the photo's vector shifted by a per-row constant
 * (so a test can tell which row a training row came from); `turns: false` = no angle model, no turned rows.
 */
function fakeEmbedder(turns: boolean, asked: ViewRow[]): Embedder {
  const shift: Record<ViewRow, number> = { mirror: 10, scene: 20, turned: 30, 'turned-mirror': 40 };
  return {
    ...TEST_FEATURES,
    embedImages: () => Promise.reject(new Error('every photo has a stored embedding')),
    viewPrepVersion: (view) => (view.startsWith('turned') && !turns ? undefined : `${TEST_FEATURES.prepVersion}+${view}`),
    async embedViews(shas, view) {
      asked.push(view);
      const stored = await store.embeddings.getMany(shas, TEST_FEATURES.backbone, TEST_FEATURES.prepVersion);
      const out = new Map<string, Float32Array>();
      for (const sha of shas) {
        const v = stored.get(sha)!.map((x) => x + shift[view]);
        await store.embeddings.put(sha, TEST_FEATURES.backbone, `${TEST_FEATURES.prepVersion}+${view}`, v);
        out.set(sha, v);
      }
      return out;
    },
  };
}

function jobContext(embedder: Embedder, warnings: string[]): JobContext {
  return {
    engine: { service: (name: string) => (name === 'embedder' ? embedder : undefined) },
    logger: { warn: (message: string) => warnings.push(message), info: () => undefined, debug: () => undefined, error: () => undefined },
    progress: () => Promise.resolve(),
    signal: new AbortController().signal,
  } as unknown as JobContext;
}

const job = (views: string[]) => trainJobSchema.parse({ task: 'brand', datasets: ['dev'], features: TEST_FEATURES, views, requestedBy: 'test' });

describe('turned training views', () => {
  it('GIVEN views mirror+turned THEN each training photo has four rows: photo, mirror, turned view and its mirror, made once', async () => {
    expect(rowsOfView('turned')).toEqual(['turned', 'turned-mirror']);
    expect(rowsOfView('mirror')).toEqual(['mirror']);
    const asked: ViewRow[] = [];
    const warnings: string[] = [];
    const run = await prepareRun(store, job(['mirror', 'turned']), jobContext(fakeEmbedder(true, asked), warnings));
    expect(run.views).toEqual(['mirror', 'turned']);
    expect(warnings).toEqual([]);
    const photos = run.train.x.length / 4;
    expect(Number.isInteger(photos) && photos > 0).toBe(true);
    // Rows in order: the photos, their mirrors, their turned views, those views' mirrors, each with its photo's label.
    for (const [block, shift] of [0, 10, 30, 40].entries()) {
      for (let i = 0; i < photos; i++) {
        const row = run.train.x[block * photos + i]!;
        const photo = run.train.x[i]!;
        expect(row[0]! - photo[0]!).toBeCloseTo(shift, 4);
        expect(run.train.y[block * photos + i]).toBe(run.train.y[i]);
        expect(run.train.items[block * photos + i]!.sha).toBe(run.train.items[i]!.sha);
      }
    }
    // Validation and test stay photos.
    expect(run.test.x.every((x, i) => x[0] === run.test.x[i]![0])).toBe(true);
    expect([...new Set(asked)].sort()).toEqual(['mirror', 'turned', 'turned-mirror']);
    // A second run reads every row from the store.
    const again: ViewRow[] = [];
    const second = await prepareRun(store, job(['turned']), jobContext(fakeEmbedder(true, again), []));
    expect(again).toEqual([]);
    expect(second.train.x.length).toBe(3 * photos);
  });

  it('GIVEN an embedder that cannot turn photos THEN the run keeps the views it can make and says which it left out', async () => {
    const asked: ViewRow[] = [];
    const warnings: string[] = [];
    const run = await prepareRun(store, job(['mirror', 'turned']), jobContext(fakeEmbedder(false, asked), warnings));
    expect(run.views).toEqual(['mirror']);
    expect(run.train.x.length % 2).toBe(0);
    expect(asked.every((v) => v === 'mirror')).toBe(true);
    expect(warnings).toEqual(["training view skipped: this worker's embedder cannot make turned views"]);
  });

  it('GIVEN the learnt turn in a feature key THEN a community head is served with it', () => {
    expect(featuresOf('vprep-1+norm3u2+loc1+lt1')).toMatchObject({ normalise: true, upright: true, locate: true, learntTurn: true });
    expect(featuresOf('vprep-1+norm3u2+loc1')).not.toHaveProperty('learntTurn');
  });
});
