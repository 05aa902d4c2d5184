import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngine, type Engine } from '../../engine/index.ts';
import { openStore } from '../../engine/store/index.ts';
import training from '../../plugins/training/index.ts';
import { createVisionPlugin } from '../../plugins/vision/index.ts';
import { featuresOf } from '../../plugins/training/lib/head.ts';
import type { TrainResult } from '../../plugins/training/lib/pipeline.ts';
import { parseHead, predictHead } from '../../plugins/vision/lib/head.ts';
import type { Embedder } from '../../plugins/vision/service.ts';
import { writeDataset } from '../vision/fixtures.ts';
import { handHead } from './hand-heads.ts';

// The whole path of a training run with views, in one process: the vision plugin's real embedder (InceptionV3-m7
// on generated shoes) makes the photos' and their views' embeddings; the training plugin adds the views' rows.
const moderator = () => ({ transport: 'cli' as const, allowLocalPaths: true, caller: { id: 'mod-views', isModerator: true } });
// What `train --wait` replies with (the job's result, less the data counts).
type TrainReply = Pick<TrainResult, 'model' | 'decision' | 'metrics' | 'tta'>;
let engine: Engine;
let photoFiles: string[] = [];
// The vision plugin's shipped-models folder: empty until a test writes a default head into it.
let modelsDir = '';

beforeAll(async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'train-views-'));
  const { manifest, files } = await writeDataset(path.join(dir, 'data'), 6);
  photoFiles = files;
  engine = createEngine({ store: await openStore({ url: ':memory:' }) });
  modelsDir = path.join(dir, 'models');
  mkdirSync(modelsDir);
  await engine.register(createVisionPlugin({ modelsDir }));
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
    // Brand trained with mirror views answers from the photo and its mirror unless told otherwise (defaultTta); a
    // brand head that never saw a mirrored photo is not asked about one (auto, which compares only after mirror training).
    expect((r.reply.data as unknown as TrainReply).tta).toEqual({ mode: 'mirror', used: 'mirror' });
    expect((photosOnly.reply.data as unknown as TrainReply).tta).toEqual({ mode: 'auto', used: 'none' });
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
    for (const view of ['mirror', 'scene'] as const) expect(await store.embeddings.count(embedder.backbone, embedder.viewPrepVersion(view)!)).toBeGreaterThan(0);
  }, 300_000);

  it('GIVEN train --views mirror+turned THEN each training photo adds its mirror, a turned view and that view\'s mirror, and the version is served with the learnt turn', async () => {
    const store = engine.services.store;
    const embedder = engine.service<Embedder>('embedder')!;
    const r = await engine.invoke('train', { task: 'brand', dataset: 'shoes', epochs: 3, views: 'mirror+turned', wait: true }, moderator());
    if (!r.ok) throw r.error;
    const data = r.reply.data as { model: number; views: string[] };
    expect(data.views).toEqual(['mirror', 'turned']);
    expect(r.reply.fields?.find((f) => f.name === 'Views')?.value).toBe('photo + mirror + turned');
    const version = (await store.models.get(data.model))!;
    const split = (version.dataSnapshot as { split: { train: number; trainRows: number } }).split;
    expect(split.trainRows).toBe(4 * split.train);
    // Both turned rows of every training photo are cached under the embedder's keys (a second run embeds nothing).
    for (const row of ['turned', 'turned-mirror'] as const) expect(await store.embeddings.count(embedder.backbone, embedder.viewPrepVersion(row)!)).toBe(split.train);
    // The file names the embedder's feature space, learnt turn included, so serving turns tilted photos as the
    // turned rows were turned.
    const head = parseHead(JSON.parse(Buffer.from(version.artifact).toString('utf8')), 'registry');
    expect(head.prepVersion).toBe(embedder.prepVersion);
    expect(head.features).toMatchObject({ normalise: true, locate: true, upright: true, learntTurn: true });
  }, 300_000);

  it('GIVEN train --tta mirror THEN the version answers from photo + mirror: its test score, the gate and serving all use the mirror', async () => {
    const store = engine.services.store;
    const embedder = engine.service<Embedder>('embedder')!;
    const r = await engine.invoke('train', { task: 'brand', dataset: 'shoes', epochs: 3, tta: 'mirror', wait: true }, moderator());
    if (!r.ok) throw r.error;
    const data = r.reply.data as unknown as TrainReply;
    expect(data.tta).toEqual({ mode: 'mirror', used: 'mirror' });
    expect(r.reply.fields?.find((f) => f.name === 'Answers with')?.value).toBe('photo + mirror');
    const version = (await store.models.get(data.model))!;
    const head = parseHead(JSON.parse(Buffer.from(version.artifact).toString('utf8')), 'registry');
    expect(head.tta).toBe('mirror');
    expect(version.params).toMatchObject({ tta: { mode: 'mirror', used: 'mirror' } });
    // Served through the vision plugin with its mirror: the answer averages the photo's and the mirror's. A 3-epoch
    // head can be sure of both views of a photo, so the photos are asked in turn until one shows that the mirror
    // changed the answer (every answer must match the average). One caller per photo: `brand` has a per-user cooldown.
    let mirrorChanged = false;
    for (const [i, file] of photoFiles.entries()) {
      const served = await engine.invoke('brand', { image: file, model: String(data.model) }, { ...moderator(), caller: { id: `mod-views-${i}`, isModerator: true } });
      if (!served.ok) throw served.error;
      const sha = (served.reply.data as { imageSha: string }).imageSha;
      const photo = (await store.embeddings.getMany([sha], embedder.backbone, embedder.prepVersion)).get(sha)!;
      const mirror = (await store.embeddings.getMany([sha], embedder.backbone, embedder.viewPrepVersion('mirror')!)).get(sha)!;
      const expected = predictHead(head, photo, [mirror]).probabilities;
      const got = (served.reply.data as { probabilities: Record<string, number> }).probabilities;
      for (const label of Object.keys(expected)) expect(got[label]).toBeCloseTo(expected[label]!, 5);
      const alone = predictHead(head, photo).probabilities;
      mirrorChanged = Object.keys(expected).some((label) => Math.abs(alone[label]! - expected[label]!) > 1e-4);
      if (mirrorChanged) break;
    }
    expect(mirrorChanged).toBe(true);
    // The gate scores a mirror champion with its mirror: promoted, then judged again on the same split (same
    // seed), it gets exactly its registered test score.
    const promoted = await engine.invoke('models promote', { id: data.model }, moderator());
    if (!promoted.ok) throw promoted.error;
    const next = await engine.invoke('train', { task: 'brand', dataset: 'shoes', epochs: 3, tta: 'none', wait: true }, moderator());
    if (!next.ok) throw next.error;
    const nextData = next.reply.data as unknown as TrainReply;
    expect(nextData.tta).toEqual({ mode: 'none', used: 'none' });
    expect(nextData.decision.championId).toBe(data.model);
    expect(nextData.decision.championMacroF1).toBe(data.metrics.macroF1);
  }, 300_000);

  it('GIVEN tune on brand THEN every trial is ranked by its validation score with the mirror, as the version will answer', async () => {
    const r = await engine.invoke('tune', { task: 'brand', dataset: 'shoes', trials: 2, epochs: 3, wait: true }, moderator());
    if (!r.ok) throw r.error;
    const data = r.reply.data as { model: number; trials: { value: number; tta: string }[]; best: { value: number; tta: string }; tta: { used: string } };
    expect(data.trials.map((t) => t.tta)).toEqual(['mirror', 'mirror']);
    expect(data.best.value).toBe(Math.max(...data.trials.map((t) => t.value)));
    expect(r.reply.text).toMatch(/^Best of 2 trials: trial \d \(validation macro-F1 [\d.]+, photo \+ mirror; /);
    // The version the search trains answers the same way.
    expect(data.tta.used).toBe('mirror');
    // Asked for the photo alone, the trials are scored so.
    const plain = await engine.invoke('tune', { task: 'brand', dataset: 'shoes', trials: 1, epochs: 3, tta: 'none', wait: true }, moderator());
    if (!plain.ok) throw plain.error;
    expect((plain.reply.data as typeof data).trials.map((t) => t.tta)).toEqual(['none']);
  }, 300_000);

  it('GIVEN a shipped mirror champion and hype runs THEN the gate scores it with its mirror; auto (the hype default) lets the validation photos decide', async () => {
    // A shipped default hype head that answers with the mirror, in this run's feature space: with no registry
    // champion yet it is what the gate must beat, scored with its mirror (without mirror embeddings of the test
    // photos it could not be scored at all, and the run would report no champion).
    const store = engine.services.store;
    const embedder = engine.service<Embedder>('embedder')!;
    const sha = (await store.images.find({ dataset: 'shoes', limit: 1 }))[0]!.sha256;
    const dim = (await embedder.embedImages([sha])).get(sha)!.length;
    // Calls every photo hyped (bias only).
    const shipped = handHead({
      id: 'shipped-hype-mirror',
      task: 'hype',
      labels: ['hyped', 'not_hyped'],
      backbone: embedder.backbone,
      prepVersion: embedder.prepVersion,
      features: featuresOf(embedder.prepVersion),
      kernel: new Array<number>(dim * 2).fill(0),
      bias: [1, 0],
      ood: { centroids: [new Array<number>(dim).fill(1 / Math.sqrt(dim))], threshold: 2 },
      tta: 'mirror',
    });
    writeFileSync(path.join(modelsDir, 'hype.head.json'), JSON.stringify(shipped));
    // A photo-alone candidate: its own scoring needs no mirror, the champion's does.
    const plain = await engine.invoke('train', { task: 'hype', dataset: 'shoes', epochs: 3, tta: 'none', wait: true }, moderator());
    if (!plain.ok) throw plain.error;
    const decision = (plain.reply.data as unknown as TrainReply).decision;
    expect(decision.championId).toBe(0);
    // It calls every photo hyped, so its hyped F1 (and macro-F1) is above 0.
    expect(decision.championMacroF1).toBeGreaterThan(0);
    expect(decision.outcome).not.toBe('no-champion');
    const auto = await engine.invoke('train', { task: 'hype', dataset: 'shoes', epochs: 3, wait: true }, moderator());
    if (!auto.ok) throw auto.error;
    const t = (auto.reply.data as unknown as TrainReply).tta;
    expect(t.mode).toBe('auto');
    expect(t.validation!.photo).toBeGreaterThanOrEqual(0);
    expect(t.validation!.mirror).toBeLessThanOrEqual(1);
    expect(t.used).toBe(t.validation!.mirror > t.validation!.photo ? 'mirror' : 'none');
    expect(auto.reply.fields?.find((f) => f.name === 'Answers with')?.value).toMatch(/^photo (\+ mirror|alone) \(validation macro-F1 .* with the mirror, .* without\)$/);
    // Without mirror training rows the mirror is out of distribution: auto keeps the photo alone, nothing compared.
    const photos = await engine.invoke('train', { task: 'hype', dataset: 'shoes', epochs: 3, views: 'photos', wait: true }, moderator());
    if (!photos.ok) throw photos.error;
    expect((photos.reply.data as unknown as TrainReply).tta).toEqual({ mode: 'auto', used: 'none' });
  }, 300_000);
});

