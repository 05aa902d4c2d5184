import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngine, loadConfig, silentLogger, type Engine, type ProgressEvent } from '../../engine/index.ts';
import { createBullJobRunner, type BullJobRunner } from '../../jobs/runner.ts';
import { startJobWorkers, type JobWorkers } from '../../jobs/worker.ts';
import training from '../../plugins/training/index.ts';
import { cleanRedis, randomPrefix, seedSynthetic, tempStore, TEST_FEATURES } from '../jobs/fixtures/synthetic.ts';

// Real Redis, a real SQLite store in a temp dir, real (tiny) training in a sandboxed child process.
const prefix = randomPrefix('train');
let engine: Engine;
let runner: BullJobRunner;
let workers: JobWorkers;
let cleanup: () => Promise<void>;
const moderator = { id: 'mod-1', isModerator: true };

beforeAll(async () => {
  // Workers (and their sandboxed children, which inherit the environment) train on the synthetic features.
  process.env.SOLESCOPE_TRAIN_FEATURES = `${TEST_FEATURES.backbone}/${TEST_FEATURES.prepVersion}`;
  const t = await tempStore();
  cleanup = t.cleanup;
  await seedSynthetic(t.store, { perClass: 30, dim: 12, seed: 3 });
  engine = createEngine({ config: loadConfig({ SOLESCOPE_DATA_DIR: t.dir }), logger: silentLogger(), store: t.store });
  runner = createBullJobRunner({ engine, prefix });
  engine.useJobRunner(runner);
  await engine.register(training);
  workers = await startJobWorkers({
    engine,
    prefix,
    engineFactory: fileURLToPath(new URL('../jobs/fixtures/engine-factory.ts', import.meta.url)),
    childEnv: { SOLESCOPE_DATA_DIR: t.dir },
  });
});

afterAll(async () => {
  await workers?.close(true);
  await engine?.close();
  await cleanRedis(prefix);
  await cleanup?.();
});

describe('train / models commands over BullMQ', () => {
  it('GIVEN a member THEN train is refused (moderators only)', async () => {
    const r = await engine.invoke('train', { task: 'brand' }, { transport: 'test', caller: { id: 'member' } });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toBe('FORBIDDEN');
    // GAN training belongs to the generative plugin, which this engine does not load.
    const gan = await engine.invoke('train', { task: 'gan' }, { transport: 'test', caller: moderator });
    expect(!gan.ok && gan.error.code).toBe('MODEL_MISSING');
  });

  it('GIVEN a dataset WHEN train --wait THEN progress is reported, a version is registered and the gate promotes it', async () => {
    const events: ProgressEvent[] = [];
    const r = await engine.invoke(
      'train',
      { task: 'brand', dataset: 'dev', epochs: 30, wait: true },
      { transport: 'test', caller: moderator, onProgress: (e) => events.push(e) },
    );
    if (!r.ok) throw r.error;
    const data = r.reply.data as { job: string; model: number; decision: { outcome: string; promote: boolean }; metrics: { macroF1: number; n: number } };
    expect(typeof data.job).toBe('string');
    expect(data.model).toBeGreaterThan(0);
    expect(data.decision.outcome).toBe('no-champion');
    expect(data.decision.promote).toBe(true);
    expect(data.metrics.macroF1).toBeGreaterThan(0.7);
    // How far the test figure could move with other test photos, in the data and in the field.
    const interval = (r.reply.data as { interval: { macroF1: [number, number] } }).interval;
    expect(interval.macroF1[0]).toBeLessThanOrEqual(data.metrics.macroF1);
    expect(interval.macroF1[1]).toBeGreaterThanOrEqual(data.metrics.macroF1);
    expect(r.reply.fields?.find((f) => f.name === 'Macro-F1')?.value).toBe(
      `${data.metrics.macroF1.toFixed(3)} (95 %: ${interval.macroF1[0].toFixed(3)}–${interval.macroF1[1].toFixed(3)})`,
    );
    expect(r.reply.images?.[0]?.png.subarray(1, 4).toString()).toBe('PNG');
    const epochs = events.filter((e) => e.metrics?.epoch !== undefined);
    expect(epochs.length).toBeGreaterThan(0);
    expect(epochs.at(-1)?.metrics).toMatchObject({ epoch: expect.any(Number), loss: expect.any(Number), metric: expect.any(Number), etaS: expect.any(Number) });
    const store = engine.services.store;
    expect(await store.models.getAlias('brand', 'champion')).toBe(data.model);
    const version = await store.models.get(data.model);
    // Brand trains on one-hot targets (hype's default smooths them: the two-sources test below).
    expect(version?.params).toMatchObject({ jobId: data.job, features: TEST_FEATURES, nuisance: 'source', nuisanceDirections: 0, labelSmoothing: 0 });
    // One source (every picture imported into 'dev' without a source column): nothing to project, and the reply says so.
    expect(r.reply.data).toMatchObject({ nuisance: { mode: 'source', directions: 0 } });
    // The default asks for mirror and turned views, but these workers have precomputed features and no embedder to make
    // them: the run trains on the photos and says so rather than failing.
    expect(r.reply.data).toMatchObject({ views: [] });
    expect(r.reply.fields?.find((f) => f.name === 'Views')?.value).toBe('photos only');
    expect(r.reply.fields?.find((f) => f.name === 'Sources')?.value).toBe('1; nothing to project');
    // No mirror rows, so brand's default test-time view falls back to auto, which has nothing to compare.
    expect(r.reply.data).toMatchObject({ tta: { mode: 'auto', used: 'none' } });
    // The temperature is fitted on the validation photos (at least the 20 it needs) and written into the
    // version; the test photos show what it did, at 1 and at the fitted value.
    const temperature = (r.reply.data as { temperature: { mode: string; used: number; validation: { n: number }; test: { n: number; asTrained: { nll: number }; used: { nll: number } } } }).temperature;
    expect(temperature.mode).toBe('auto');
    expect(temperature.validation.n).toBeGreaterThanOrEqual(20);
    expect(temperature.test.n).toBe(data.metrics.n);
    expect(temperature.used).toBeGreaterThanOrEqual(1);
    expect(JSON.parse(Buffer.from(version!.artifact).toString('utf8')).temperature).toBe(temperature.used);
    expect(version?.params.temperature).toEqual(temperature);
    expect(r.reply.fields?.find((f) => f.name === 'Temperature')?.value).toMatch(new RegExp(`^${temperature.used} \\(fitted`));
    expect(version?.createdBy).toBe('mod-1');
    expect(version?.dataSnapshot).toMatchObject({ task: 'brand', datasets: ['dev'], n: 120 });

    // A second run on the same data cannot beat the champion by the margin: it stays a candidate.
    const r2 = await engine.invoke('train', { task: 'brand', epochs: 30, wait: true, nuisance: 'none' }, { transport: 'test', caller: moderator });
    if (!r2.ok) throw r2.error;
    expect(r2.reply.fields?.find((f) => f.name === 'Sources')?.value).toBe('1 (no projection)');
    const d2 = r2.reply.data as { model: number; decision: { outcome: string; reason: string; championId: number } };
    expect(d2.decision.championId).toBe(data.model);
    expect(await store.models.getAlias('brand', 'candidate')).toBe(d2.model);
    const champion = await store.models.getAlias('brand', 'champion');
    expect(champion).toBe(d2.decision.outcome === 'promoted' ? d2.model : data.model);

    const list = await engine.invoke('models list', { task: 'brand' }, { transport: 'test', caller: { id: 'anyone' } });
    if (!list.ok) throw list.error;
    const models = (list.reply.data as { models: { id: number; aliases: string[]; decision: { outcome: string } | null }[] }).models;
    expect(models.map((m) => m.id)).toEqual([d2.model, data.model]);
    expect(models[0]?.decision?.outcome).toBe(d2.decision.outcome);

    const info = await engine.invoke('models info', { id: String(data.model) }, { transport: 'test', caller: { id: 'anyone' } });
    if (!info.ok) throw info.error;
    expect(info.reply.images?.map((i) => i.name)).toEqual([`model-${data.model}-card.png`, `model-${data.model}-curves.png`]);
  }, 240_000);

  it('GIVEN train --tta mirror on a worker that cannot make mirror views THEN the version answers from the photo and the reply says why', async () => {
    // The temperature as the CLI and Discord pass it: a string.
    const r = await engine.invoke('train', { task: 'brand', dataset: 'dev', epochs: 5, tta: 'mirror', temperature: '2.5', wait: true }, { transport: 'test', caller: moderator });
    if (!r.ok) throw r.error;
    const data = r.reply.data as { model: number; tta: unknown; temperature: { mode: number; used: number; test: { asTrained: { nll: number }; used: { nll: number } } } };
    expect(data.temperature).toMatchObject({ mode: 2.5, used: 2.5 });
    expect(data.temperature.test.used.nll).not.toBe(data.temperature.test.asTrained.nll);
    expect(r.reply.fields?.find((f) => f.name === 'Temperature')?.value).toMatch(/^2\.5 \(set; test log-loss \d\.\d\d → \d\.\d\d, ECE \d\.\d\d → \d\.\d\d\)$/);
    expect(data.tta).toEqual({ mode: 'mirror', used: 'none', note: 'this worker could not make mirror views of the validation and test photos' });
    expect(r.reply.fields?.find((f) => f.name === 'Answers with')?.value).toBe('photo alone (this worker could not make mirror views of the validation and test photos)');
    const version = await engine.services.store.models.get(data.model);
    expect(JSON.parse(Buffer.from(version!.artifact).toString('utf8')).tta).toBeUndefined();
    expect(JSON.parse(Buffer.from(version!.artifact).toString('utf8')).temperature).toBe(2.5);
  });

  it('GIVEN no labelled data for the dataset THEN the job fails as BAD_INPUT without retries', async () => {
    const r = await engine.invoke('train', { task: 'hype', epochs: 2, wait: true }, { transport: 'test', caller: moderator });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toBe('BAD_INPUT');
    const failed = await runner.list({ states: ['failed'] });
    expect(failed[0]?.attemptsMade).toBe(1);
    // Several datasets, comma-separated: an unknown one is named; a malformed list is refused before queueing.
    const unknown = await engine.invoke('train', { task: 'brand', dataset: 'dev,nope', epochs: 2, wait: true }, { transport: 'test', caller: moderator });
    expect(!unknown.ok && unknown.error).toMatchObject({ code: 'NOT_FOUND', message: expect.stringContaining('"nope"') });
    const malformed = await engine.invoke('train', { task: 'brand', dataset: 'dev,,x' }, { transport: 'test', caller: moderator });
    expect(!malformed.ok && malformed.error.code).toBe('BAD_INPUT');
  });

  it('GIVEN a champion WHEN another model is promoted and rolled back THEN the previous champion returns', async () => {
    const store = engine.services.store;
    const champion = (await store.models.getAlias('brand', 'champion'))!;
    const candidate = (await store.models.list('brand')).find((m) => m.id !== champion)!.id;
    const p = await engine.invoke('models promote', { id: String(candidate) }, { transport: 'test', caller: moderator });
    if (!p.ok) throw p.error;
    expect(p.reply.data).toEqual({ task: 'brand', champion: candidate, previous: champion });
    const rb = await engine.invoke('models rollback', { task: 'brand' }, { transport: 'test', caller: moderator });
    if (!rb.ok) throw rb.error;
    expect(await store.models.getAlias('brand', 'champion')).toBe(champion);
  });

  it('GIVEN a champion trained in an older feature space THEN the gate scores it on the same photos from its own cached embeddings', async () => {
    // After an upgrade that changes the embedder's features (the learnt turn added `+lt1`), the registry champion
    // reads the old space. Its own run cached every photo there, so it is judged on this run's photos as served.
    const store = engine.services.store;
    const shas: string[] = [];
    for await (const img of store.images.iterate({ dataset: 'dev' })) shas.push(img.sha256);
    const current = await store.embeddings.getMany(shas, TEST_FEATURES.backbone, TEST_FEATURES.prepVersion);
    for (const [sha, v] of current) await store.embeddings.put(sha, TEST_FEATURES.backbone, 'test-old', v);
    const champion = (await store.models.getAlias('brand', 'champion'))!;
    const record = (await store.models.get(champion))!;
    const inSpace = async (prepVersion: string): Promise<number> => {
      const artifact = Buffer.from(JSON.stringify({ ...JSON.parse(record.artifact.toString('utf8')), prepVersion }));
      const v = await store.models.create({ task: 'brand', artifact, metrics: {}, params: {}, dataSnapshot: {}, createdBy: 'test' });
      const p = await engine.invoke('models promote', { id: String(v.id) }, { transport: 'test', caller: moderator });
      if (!p.ok) throw p.error;
      return v.id;
    };
    const decisionOf = async (): Promise<{ outcome: string; championId: number; championMacroF1?: number }> => {
      const r = await engine.invoke('train', { task: 'brand', epochs: 5, seed: 42, wait: true }, { transport: 'test', caller: moderator });
      if (!r.ok) throw r.error;
      return (r.reply.data as { decision: { outcome: string; championId: number; championMacroF1?: number } }).decision;
    };
    // The same weights in the run's space, then in the old one: the same photos, the same vectors, the same score.
    await inSpace(TEST_FEATURES.prepVersion);
    const same = await decisionOf();
    const old = await inSpace('test-old');
    const fromCache = await decisionOf();
    expect(fromCache.championId).toBe(old);
    expect(fromCache.outcome).not.toBe('not-comparable');
    expect(fromCache.championMacroF1).toBe(same.championMacroF1);
    // A space the store holds nothing of cannot be scored: the run says so and keeps its version a candidate.
    await inSpace('test-gone');
    expect((await decisionOf()).outcome).toBe('not-comparable');
    const restored = await engine.invoke('models promote', { id: String(champion) }, { transport: 'test', caller: moderator });
    if (!restored.ok) throw restored.error;
  }, 240_000);

  it('GIVEN tune --trials 3 THEN trials run as child jobs, a plot is made and the best is registered as candidate', async () => {
    const r = await engine.invoke('tune', { task: 'brand', trials: 3, epochs: 6, wait: true }, { transport: 'test', caller: moderator });
    if (!r.ok) throw r.error;
    const data = r.reply.data as { model: number; tuneId: string; trials: { trial: number; value: number; tta: string }[]; best: { trial: number; value: number }; decision: { promote: boolean } };
    expect(data.trials).toHaveLength(3);
    // Brand asks for the mirror; this worker has no embedder to make it, so every trial is scored photo-alone.
    expect(data.trials.map((t) => t.tta)).toEqual(['none', 'none', 'none']);
    expect(r.reply.text).toMatch(/^Best of 3 trials: trial \d \(validation macro-F1 [\d.]+, photo alone; /);
    expect(data.best.value).toBe(Math.max(...data.trials.map((t) => t.value)));
    expect(data.decision.promote).toBe(false);
    expect(await engine.services.store.models.getAlias('brand', 'candidate')).toBe(data.model);
    expect(r.reply.images?.[0]?.name).toMatch(/^tune-brand-/);
    const children = await runner.list({ states: ['completed'] });
    expect(children.filter((j) => j.name === 'training.trial')).toHaveLength(3);
  }, 240_000);

  it('GIVEN a dataset whose pictures come from two sources THEN the run removes their style directions and says so', async () => {
    await seedSynthetic(engine.services.store, { task: 'hype', dataset: 'two-sources', perClass: 80, dim: 12, seed: 5, sources: 2 });
    const r = await engine.invoke('train', { task: 'hype', dataset: 'two-sources', epochs: 10, seed: 7, wait: true }, { transport: 'test', caller: moderator });
    if (!r.ok) throw r.error;
    // Each class has both sources with ≥ 20 training pictures: one direction per class's source difference.
    const directions = (r.reply.data as { nuisance: { mode: string; directions: number } }).nuisance.directions;
    expect(directions).toBeGreaterThan(0);
    expect(r.reply.fields?.find((f) => f.name === 'Sources')?.value).toBe(`2; ${directions} style direction${directions === 1 ? '' : 's'} removed`);
    const version = await engine.services.store.models.get((r.reply.data as { model: number }).model);
    expect(version?.params).toMatchObject({ nuisance: 'source', nuisanceDirections: directions, seed: 7, labelSmoothing: 0.1 });
    expect(JSON.parse(version!.artifact.toString('utf8')).meta.nuisance).toEqual({ grouping: 'source', groups: 2, directions });
  }, 240_000);
});
