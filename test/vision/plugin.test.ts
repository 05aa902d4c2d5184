import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createEngine, type Engine } from '../../engine/index.ts';
import { openStore } from '../../engine/store/index.ts';
import { getTf } from '../../engine/ml/runtime.ts';
import { createVisionPlugin, parseVoteAction } from '../../plugins/vision/index.ts';
import { DEFAULT_BACKBONE, DEFAULT_FEATURES, featureKey, type Embedder } from '../../plugins/vision/service.ts';
import { angleFileKey, angleFileName } from '../../plugins/vision/lib/angle.ts';
import { DEFAULT_LOCALISER_DIR } from '../../plugins/vision/lib/localise.ts';
import { parseHead, predictHead } from '../../plugins/vision/lib/head.ts';
import { prepKey, turnedCopyKey, variantOf } from '../../plugins/vision/lib/features.ts';
import sharp from 'sharp';
import { seededRandom } from '../../engine/random.ts';
import { pasteShoe, SHIFT_BACKGROUNDS } from '../../plugins/vision/lib/composite.ts';
import { writeAwkwardImages, writeDataset } from './fixtures.ts';
import { drawShoe, turnRaw } from '../ml/fixtures.ts';

const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47]);
// A fresh caller per call: commands have per-user cooldowns, which these tests are not about.
let calls = 0;
const cliInit = () => ({ transport: 'cli' as const, allowLocalPaths: true, caller: { id: `cli:tester-${++calls}`, isModerator: true } });

describe('vision plugin on generated sneakers', () => {
  let engine: Engine;
  let dir: string;
  let modelsDir: string;
  let manifest: string;
  let files: string[];
  let odd: Record<string, string>;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'vision-plugin-'));
    modelsDir = path.join(dir, 'models');
    mkdirSync(modelsDir);
    ({ manifest, files } = await writeDataset(path.join(dir, 'data')));
    odd = await writeAwkwardImages(path.join(dir, 'odd'));
    const store = await openStore({ url: ':memory:' });
    engine = createEngine({ store });
    await engine.register(createVisionPlugin({ modelsDir, limits: { maxPixels: 4_000_000 } }));
    // Import, then train tiny default heads on the fixtures (the same path `npm run train:defaults` takes).
    const imported = await engine.invoke('dataset import', { source: manifest, name: 'fixtures' }, cliInit());
    expect(imported.ok).toBe(true);
    for (const task of ['hype', 'brand'] as const) {
      const result = await engine.services.vision.train(task, { epochs: 40, learningRate: 0.01, testSize: 0.25, backbone: 'mobilenet_v2', id: `${task}-test` });
      writeFileSync(path.join(modelsDir, `${task}.head.json`), result.artifact);
    }
  }, 300_000);

  afterAll(async () => {
    await engine?.close();
  });

  it('GIVEN the same manifest twice THEN the import is idempotent and deduplicated', async () => {
    const again = await engine.invoke('dataset import', { source: manifest, name: 'fixtures' }, cliInit());
    expect(again.ok).toBe(true);
    if (!again.ok) return;
    expect(again.reply.data).toMatchObject({ dataset: 'fixtures', rows: 13, added: 0, duplicates: 13 });
    const stats = await engine.invoke('dataset stats', { name: 'fixtures' }, cliInit());
    expect(stats.ok && stats.reply.data).toMatchObject({ images: 13, brand: { jordan: 4, nike: 4, adidas: 4, unlabelled: 1 }, hype: { hyped: 8, not_hyped: 4, unlabelled: 1 } });
    if (stats.ok) expect((stats.reply.data as { sources: Record<string, number> }).sources).toEqual({ 'test/a': 7, 'test/b': 6 });
  });

  it('GIVEN a sneaker photo THEN hype answers with P(hyped), a Grad-CAM PNG, the disclaimer and vote buttons', async () => {
    const r = await engine.invoke('hype', { image: files[0]! }, cliInit());
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const data = r.reply.data as { label: string; probability: number; model: string; imageSha: string };
    expect(['hyped', 'not_hyped']).toContain(data.label);
    expect(data.probability).toBeGreaterThanOrEqual(0);
    expect(data.probability).toBeLessThanOrEqual(1);
    expect(data.model).toBe('hype-test');
    expect(r.reply.text).toMatch(/not a legit check/);
    expect(r.reply.images?.[0]?.png.subarray(0, 4)).toEqual(PNG);
    const ids = (r.reply.actions ?? []).map((a) => a.id);
    expect(ids).toHaveLength(2);
    for (const id of ids) expect(parseVoteAction(id)?.sha).toBe(data.imageSha);
  });

  it('GIVEN a tilted shoe THEN hype turns it level and says so; data.framing gives the turn and the shoe\'s box in the photo', async () => {
    type Framing = { background: string; rotation: number; mirrored: boolean; shoeBox: { x: number; y: number; width: number; height: number } };
    const level = drawShoe({ seed: 8, toe: 'right', width: 200, height: 150 });
    const tilted = await turnRaw(level, 55);
    const file = path.join(dir, 'tilted.png');
    writeFileSync(file, await sharp(Buffer.from(tilted.data), { raw: { width: tilted.width, height: tilted.height, channels: 3 } }).png().toBuffer());
    const r = await engine.invoke('hype', { image: file }, cliInit());
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const f = (r.reply.data as { framing?: Framing }).framing!;
    expect(Math.abs(f.rotation)).toBeGreaterThan(35);
    expect(Math.abs(f.rotation)).toBeLessThan(75);
    expect(r.reply.text).toMatch(new RegExp(`turned the photo ${Math.round(Math.abs(f.rotation))}°`));
    // The box is the turned shoe's, in the photo's own pixels: inside the photo, most of it, not all of it.
    expect(f.shoeBox.x).toBeGreaterThanOrEqual(0);
    expect(f.shoeBox.y).toBeGreaterThanOrEqual(0);
    expect(f.shoeBox.x + f.shoeBox.width).toBeLessThanOrEqual(tilted.width);
    expect(f.shoeBox.y + f.shoeBox.height).toBeLessThanOrEqual(tilted.height);
    expect(f.shoeBox.width * f.shoeBox.height).toBeGreaterThan(0.2 * tilted.width * tilted.height);
    // The level studio shot: no turn, no turn line, a studio backdrop, and its box hugs the drawn shoe.
    const flat = path.join(dir, 'level.png');
    writeFileSync(flat, await sharp(Buffer.from(level.data), { raw: { width: 200, height: 150, channels: 3 } }).png().toBuffer());
    const l = await engine.invoke('brand', { image: flat }, cliInit());
    expect(l.ok).toBe(true);
    if (!l.ok) return;
    const lf = (l.reply.data as { framing?: Framing }).framing!;
    expect(lf).toMatchObject({ background: 'uniform', rotation: 0 });
    expect(l.reply.text).not.toMatch(/turned the photo/);
    let x0 = 200;
    let x1 = 0;
    for (let y = 0; y < 150; y++) {
      for (let x = 0; x < 200; x++) {
        if (Math.min(...[0, 1, 2].map((c) => level.data[(y * 200 + x) * 3 + c]!)) >= 200) continue;
        x0 = Math.min(x0, x);
        x1 = Math.max(x1, x + 1);
      }
    }
    expect(Math.abs(lf.shoeBox.x - x0)).toBeLessThanOrEqual(4);
    expect(Math.abs(lf.shoeBox.x + lf.shoeBox.width - x1)).toBeLessThanOrEqual(4);
  });

  it('GIVEN brand THEN the four probabilities sum to one and a vote is stored once per user', async () => {
    const r = await engine.invoke('brand', { image: files[5]! }, cliInit());
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const data = r.reply.data as { label: string; probabilities: Record<string, number>; imageSha: string };
    expect(Object.keys(data.probabilities).sort()).toEqual(['adidas', 'jordan', 'nike', 'other']);
    expect(Object.values(data.probabilities).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    const actions = r.reply.actions ?? [];
    expect(actions).toHaveLength(4);
    const voter = { transport: 'discord' as const, caller: { id: 'user-7' }, guildId: 'g1' };
    expect((await engine.action(actions[1]!.id, voter)).ok).toBe(true);
    expect((await engine.action(actions[0]!.id, voter)).ok).toBe(true);
    const labels = await engine.services.store.labels.list(data.imageSha, 'brand');
    const mine = labels.filter((l) => l.by === 'user-7');
    expect(mine).toHaveLength(1);
    expect(mine[0]!.value).toBe(parseVoteAction(actions[0]!.id)!.value);
    expect((await engine.action('vision:vote:brand:nothex:nike', voter)).ok).toBe(false);
  });

  it('GIVEN explain THEN Score-CAM and the filter grid come back as PNGs without leaking tensors', async () => {
    const tf = await getTf();
    await engine.invoke('explain', { image: files[2]!, method: 'gradcam' }, cliInit()); // warm-up (lazy sub-models)
    const before = tf.memory().numTensors;
    for (const method of ['gradcam', 'scorecam', 'filters'] as const) {
      const r = await engine.invoke('explain', { image: files[2]!, method, task: 'brand' }, cliInit());
      expect(r.ok).toBe(true);
      if (r.ok) expect(r.reply.images?.[0]?.png.subarray(0, 4)).toEqual(PNG);
    }
    const hype = await engine.invoke('hype', { image: files[3]! }, cliInit());
    expect(hype.ok).toBe(true);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('GIVEN a brand head on the multi-level inception_v3_m7 THEN brand answers from it and Grad-CAM weighs mixed7 and mixed10 together, without leaking', async () => {
    const tf = await getTf();
    const trained = await engine.services.vision.train('brand', { epochs: 20, learningRate: 0.01, testSize: 0.25, backbone: 'inception_v3_m7', id: 'brand-m7' });
    expect(trained.head).toMatchObject({ backbone: 'inception_v3_m7' });
    expect(trained.head.standardise.mean).toHaveLength(768 + 2048);
    const version = await engine.services.store.models.create({ task: 'brand', artifact: trained.artifact, metrics: {}, params: {}, dataSnapshot: {}, createdBy: 'test' });
    const brand = await engine.invoke('brand', { image: files[6]!, model: String(version.id) }, cliInit());
    expect(brand.ok ? brand.reply.data : brand.error).toMatchObject({ backbone: 'inception_v3_m7' });
    await engine.invoke('explain', { image: files[6]!, method: 'gradcam', task: 'brand', model: String(version.id) }, cliInit()); // warm-up
    const before = tf.memory().numTensors;
    for (const [method, layer] of [['gradcam', 'mixed7+mixed10'], ['scorecam', 'mixed10']] as const) {
      const r = await engine.invoke('explain', { image: files[6]!, method, task: 'brand', model: String(version.id) }, cliInit());
      expect(r.ok ? r.reply.data : r.error).toMatchObject({ method, layer, model: `store:${version.id}` });
      if (r.ok) expect(r.reply.images?.[0]?.png.subarray(0, 4)).toEqual(PNG);
    }
    expect(tf.memory().numTensors).toBe(before);
  }, 120_000);

  it('GIVEN a head served with the learnt turn THEN hype on a shoe off a studio backdrop answers as the cached classify path does, Grad-CAM from the looks\' forward pass, without leaking', async () => {
    const tf = await getTf();
    const trained = await engine.services.vision.train('hype', { epochs: 20, learningRate: 0.01, testSize: 0.25, backbone: 'inception_v3_m67', features: { ...DEFAULT_FEATURES, learntTurn: true }, id: 'hype-m67-lt' });
    expect(trained.head.features).toMatchObject({ locate: true, upright: true, learntTurn: true });
    const version = await engine.services.store.models.create({ task: 'hype', artifact: trained.artifact, metrics: {}, params: {}, dataSnapshot: {}, createdBy: 'test' });
    // A shoe tilted on the busy shelf, framed by the localiser's box: the shipped angle model is asked about it (on
    // this drawing it reads about -60°, tries the turn, and a second look undoes it: two looks, one kept).
    const photo = await pasteShoe(drawShoe({ seed: 5, toe: 'right', width: 220, height: 160 }), SHIFT_BACKGROUNDS.busy, seededRandom(2), { rotate: -60, width: 300, height: 300, scale: [0.5, 0.6] });
    const file = path.join(dir, 'busy-tilted.png');
    writeFileSync(file, await sharp(Buffer.from(photo.data), { raw: { width: photo.width, height: photo.height, channels: 3 } }).png().toBuffer());
    const model = String(version.id);
    const warm = await engine.invoke('hype', { image: file, model }, cliInit());
    if (!warm.ok) throw warm.error;
    const data = warm.reply.data as { probability: number; framing: { background: string } };
    expect(['segmented', 'located']).toContain(data.framing.background);
    // The classify service embeds through the feature pipeline (embedImages); `hype` answered from Grad-CAM's
    // activations, taken by the learnt turn's own look: the same embedding, so the same answer.
    const classified = await engine.services.vision.classify(file, 'hype', { modelId: model, allowLocalPaths: true });
    expect(classified.probability).toBeCloseTo(data.probability, 5);
    const before = tf.memory().numTensors;
    for (const method of ['gradcam', 'scorecam'] as const) {
      const r = await engine.invoke('explain', { image: file, method, task: 'hype', model }, cliInit());
      expect(r.ok ? r.reply.images?.[0]?.png.subarray(0, 4) : r.error).toEqual(PNG);
    }
    const again = await engine.invoke('hype', { image: file, model }, cliInit());
    expect(again.ok && (again.reply.data as { probability: number }).probability).toBeCloseTo(data.probability, 6);
    expect(tf.memory().numTensors).toBe(before);
  }, 180_000);

  it('GIVEN a head with a mirror test-time view THEN brand, explain and evaluate answer from the photo and its mirror, the mirror cached once', async () => {
    const store = engine.services.store;
    const file = readFileSync(path.join(modelsDir, 'brand.head.json'));
    const plainHead = parseHead(JSON.parse(file.toString('utf8')), 'test');
    expect(plainHead.tta).toBeUndefined();
    const ttaHead = parseHead({ ...JSON.parse(file.toString('utf8')), id: 'brand-tta', tta: 'mirror' }, 'test');
    const version = await store.models.create({ task: 'brand', artifact: Buffer.from(JSON.stringify(ttaHead)), metrics: {}, params: {}, dataSnapshot: {}, createdBy: 'test' });
    const image = files[4]!;
    const plain = await engine.invoke('brand', { image }, cliInit());
    const mirrored = await engine.invoke('brand', { image, model: String(version.id) }, cliInit());
    if (!plain.ok || !mirrored.ok) throw new Error('brand failed');
    const sha = (plain.reply.data as { imageSha: string }).imageSha;
    const backbone = ttaHead.backbone;
    const photo = (await store.embeddings.get(sha, backbone, featureKey(ttaHead.features)))!;
    const mirror = await store.embeddings.get(sha, backbone, prepKey(variantOf(ttaHead.features, true)));
    expect(mirror).toBeDefined();
    const probs = (r: typeof plain): Record<string, number> => (r.ok ? (r.reply.data as { probabilities: Record<string, number> }).probabilities : {});
    const expectClose = (got: Record<string, number>, want: Readonly<Record<string, number>>): void => {
      for (const [l, p] of Object.entries(want)) expect(got[l]).toBeCloseTo(p, 6);
    };
    expectClose(probs(plain), predictHead(plainHead, photo).probabilities);
    expectClose(probs(mirrored), predictHead(ttaHead, photo, [mirror!]).probabilities);
    // The mirror is a different picture (a generated shoe is not symmetric), so the two answers differ.
    expect(Math.max(...Object.keys(probs(plain)).map((l) => Math.abs(probs(plain)[l]! - probs(mirrored)[l]!)))).toBeGreaterThan(1e-4);
    // `brand` answers from Grad-CAM's forward pass and mirrors its prepared input; the classify service (monitors,
    // batch scoring) embeds through the cache: the same answer.
    const classified = await engine.services.vision.classify(image, 'brand', { modelId: String(version.id), allowLocalPaths: true });
    expectClose(classified.probabilities, probs(mirrored));
    expect(classified.label).toBe((mirrored.reply.data as { label: string }).label);
    // evaluate reports what serving answers: every labelled row gets its mirror.
    const evaluated = await engine.invoke('evaluate', { task: 'brand', data: manifest, model: String(version.id) }, cliInit());
    if (!evaluated.ok) throw evaluated.error;
    expect(evaluated.reply.data).toMatchObject({ tta: 'mirror' });
    expect(evaluated.reply.text).toContain('answering from each photo and its mirror');
    const rows = [];
    for await (const img of store.images.iterate({ dataset: 'fixtures' })) rows.push(img.sha256);
    const mirrors = await store.embeddings.getMany(rows, backbone, prepKey(variantOf(ttaHead.features, true)));
    expect(mirrors.size).toBeGreaterThanOrEqual(12);
  }, 120_000);

  it('GIVEN the embedder THEN training views (mirror, scene, turned and its mirror) are embedded, cached under their own keys, and differ from the photo', async () => {
    const embedder = engine.service<Embedder>('embedder')!;
    const store = engine.services.store;
    const shas: string[] = [];
    for await (const img of store.images.iterate({ dataset: 'fixtures' })) if (shas.length < 3) shas.push(img.sha256);
    const plain = await embedder.embedImages(shas);
    // Community runs embed as the shipped heads are served: with the learnt turn (`+lt<n>`).
    expect(embedder.prepVersion).toBe(featureKey({ ...DEFAULT_FEATURES, learntTurn: true }));
    expect(embedder.prepVersion).toMatch(/\+lt\d+$/);
    expect(embedder.viewPrepVersion('mirror')).toBe(`${embedder.prepVersion}+flip`);
    expect(embedder.viewPrepVersion('scene')).toMatch(/\+scene\d+\.0$/);
    // Turned views: train:defaults' seed and the hash of the angle model that serves them.
    const angleKey = angleFileKey(path.join(DEFAULT_LOCALISER_DIR, angleFileName(DEFAULT_BACKBONE)));
    expect(embedder.viewPrepVersion('turned')).toBe(turnedCopyKey(42, angleKey));
    expect(embedder.viewPrepVersion('turned-mirror')).toBe(`${turnedCopyKey(42, angleKey)}+m`);
    const turned = await embedder.embedViews(shas, 'turned');
    const turnedMirror = await embedder.embedViews(shas, 'turned-mirror');
    for (const sha of shas) {
      const a = turned.get(sha)!;
      const b = turnedMirror.get(sha)!;
      expect(a.reduce((d, v, i) => d + Math.abs(v - b[i]!), 0)).toBeGreaterThan(1e-3 * a.length);
    }
    for (const view of ['mirror', 'scene', 'turned', 'turned-mirror'] as const) {
      const got = await embedder.embedViews(shas, view);
      const cached = await store.embeddings.getMany(shas, embedder.backbone, embedder.viewPrepVersion(view)!);
      expect(cached.size).toBe(shas.length);
      for (const sha of shas) {
        expect(Array.from(cached.get(sha)!)).toEqual(Array.from(got.get(sha)!));
        const a = plain.get(sha)!;
        const b = got.get(sha)!;
        expect(b.length).toBe(a.length);
        // A generated shoe is not left-right symmetric, and a scene is not a studio backdrop: a view is new data.
        expect(a.reduce((d, v, i) => d + Math.abs(v - b[i]!), 0)).toBeGreaterThan(1e-3 * a.length);
      }
    }
  }, 120_000);

  it('GIVEN stored embeddings THEN similar returns sorted neighbours with labels and a strip PNG', async () => {
    const r = await engine.invoke('similar', { image: files[1]!, k: 3 }, cliInit());
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const n = (r.reply.data as { neighbours: { id: string; brand: string | null; distance: number }[] }).neighbours;
    expect(n).toHaveLength(3);
    expect(n.map((x) => x.distance)).toEqual([...n.map((x) => x.distance)].sort((a, b) => a - b));
    expect(n[0]!.brand).not.toBeNull();
    expect(r.reply.images?.[0]?.png.subarray(0, 4)).toEqual(PNG);
  });

  it('GIVEN a manifest THEN evaluate reports per-class metrics, a confusion matrix and skipped rows', async () => {
    const r = await engine.invoke('evaluate', { task: 'brand', data: manifest }, cliInit());
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const d = r.reply.data as { task: string; n: number; skipped: number; accuracy: number; macroF1: number; perClass: Record<string, { support: number }>; confusion: { labels: string[]; matrix: number[][] } };
    expect(d).toMatchObject({ task: 'brand', n: 12, skipped: 1, tta: 'none' });
    expect(r.reply.text).not.toContain('mirror');
    expect(d.perClass.jordan!.support).toBe(4);
    expect(d.confusion.labels).toEqual(['jordan', 'nike', 'adidas', 'other']);
    expect(d.confusion.matrix.flat().reduce((a, b) => a + b, 0)).toBe(12);
    // How far 12 photos' figures could move: an interval around them, in the data and in words.
    const interval = (r.reply.data as { interval: { accuracy: [number, number]; macroF1: [number, number] } }).interval;
    expect(interval.accuracy[0]).toBeLessThanOrEqual(d.accuracy);
    expect(interval.accuracy[1]).toBeGreaterThanOrEqual(d.accuracy);
    expect(r.reply.text).toContain(`95 % bootstrap interval over these photos: accuracy ${interval.accuracy[0].toFixed(3)}–${interval.accuracy[1].toFixed(3)}`);
    expect(r.reply.text).toMatch(/precision\s+recall\s+f1-score\s+support/);
    expect(r.reply.images?.[0]?.png.subarray(0, 4)).toEqual(PNG);
    // How far the stated probabilities can be trusted: the same answers, binned by confidence, and a diagram.
    const cal = (r.reply.data as { calibration: { n: number; accuracy: number; meanConfidence: number; ece: number; nll: number; brier: number; bins: { n: number; confidence: number | null; accuracy: number | null }[] } }).calibration;
    expect(cal.n).toBe(12);
    expect(cal.accuracy).toBeCloseTo(d.accuracy, 12);
    expect(cal.bins.reduce((a, b) => a + b.n, 0)).toBe(12);
    expect(cal.ece).toBeGreaterThanOrEqual(0);
    expect(cal.ece).toBeLessThanOrEqual(1);
    const binned = cal.bins.filter((b) => b.n > 0).reduce((a, b) => a + (b.n / 12) * Math.abs(b.accuracy! - b.confidence!), 0);
    expect(cal.ece).toBeCloseTo(binned, 12);
    expect(cal.meanConfidence).toBeGreaterThanOrEqual(0.25);
    expect(r.reply.text).toContain(`were right ${(cal.accuracy * 100).toFixed(1)} % (ECE ${cal.ece.toFixed(3)}`);
    // The calibration is of the head's answers at its softmax temperature: this one's file leaves it at 1, unsaid.
    expect((r.reply.data as { temperature: number }).temperature).toBe(1);
    expect(r.reply.text).toContain('\nCalibration: the answers said');
    const warnings = (r.reply.data as { warnings: { lowConfidence: number; accuracyWithoutWarning: number | null } }).warnings;
    expect(warnings.lowConfidence).toBeGreaterThanOrEqual(0);
    expect(warnings.lowConfidence).toBeLessThanOrEqual(12);
    expect(r.reply.images?.map((i) => i.name)).toEqual(['confusion-brand.png', 'reliability-brand.png']);
    expect(r.reply.images?.[1]?.png.subarray(0, 4)).toEqual(PNG);
    expect('reliabilityPng' in (r.reply.data as object)).toBe(false);
    // Not from HTTP or Discord: evaluate reads server files.
    const remote = await engine.invoke('evaluate', { task: 'brand', data: manifest }, { transport: 'http', caller: { id: `http:${++calls}` } });
    expect(remote.ok || remote.error.code).toBe('FORBIDDEN');
  });

  it('GIVEN awkward but valid images THEN they are classified; broken ones get catalogue codes', async () => {
    for (const name of ['grayscale.png', 'cmyk.jpg', 'sixteen-bit.png', 'transparent.png']) {
      const r = await engine.invoke('brand', { image: odd[name]! }, cliInit());
      expect(r.ok, name).toBe(true);
    }
    const code = async (name: string): Promise<string | undefined> => {
      const r = await engine.invoke('hype', { image: odd[name]! }, cliInit());
      return r.ok ? undefined : r.error.code;
    };
    expect(await code('not-an-image.png')).toBe('NOT_AN_IMAGE');
    expect(await code('corrupt.jpg')).toBe('NOT_AN_IMAGE');
    expect(await code('tiny.png')).toBe('BAD_INPUT');
    expect(await code('huge.png')).toBe('TOO_LARGE');
    const upload = await engine.invoke('hype', { image: { kind: 'buffer', data: new Uint8Array(readFileSync(odd['not-an-image.png']!)) } }, { transport: 'http', caller: { id: `http:${++calls}` } });
    expect(upload.ok || upload.error.code).toBe('NOT_AN_IMAGE');
    const localOverHttp = await engine.invoke('hype', { image: files[0]! }, { transport: 'http', caller: { id: `http:${++calls}` } });
    expect(localOverHttp.ok || localOverHttp.error.code).toBe('BAD_INPUT');
  });

  it('GIVEN a photo with no shoe THEN the answer is flagged low confidence instead of a confident brand', async () => {
    const r = await engine.invoke('brand', { image: odd['noise.png']! }, cliInit());
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const d = r.reply.data as { lowConfidence: boolean; ood: { outside: boolean } };
    expect(d.lowConfidence).toBe(true);
    expect(d.ood.outside).toBe(true);
    expect(r.reply.text).toMatch(/don't see a sneaker/);
  });

  it('GIVEN an empty floor (no shoe) THEN the shoe localiser finds none and the answer says so, also from the cache', async () => {
    const floor = path.join(dir, 'empty-floor.png');
    writeFileSync(floor, await sharp(Buffer.from(SHIFT_BACKGROUNDS.floor(320, 240, seededRandom(99))), { raw: { width: 320, height: 240, channels: 3 } }).png().toBuffer());
    for (let attempt = 0; attempt < 2; attempt++) {
      // The second time the embedding comes from the store: the localiser is asked again.
      const r = await engine.invoke('brand', { image: floor }, cliInit());
      expect(r.ok).toBe(true);
      if (!r.ok) return;
      const d = r.reply.data as { lowConfidence: boolean; shoeFound?: boolean; lowConfidenceReason?: string };
      expect(d.shoeFound).toBe(false);
      expect(d.lowConfidence).toBe(true);
      expect(r.reply.text).toMatch(/don't see a sneaker/);
    }
    const hype = await engine.invoke('hype', { image: floor }, cliInit());
    expect(hype.ok && (hype.reply.data as { shoeFound?: boolean }).shoeFound).toBe(false);
    // A studio shot: the localiser does not look (flood fill), so nothing is claimed either way.
    const studio = await engine.invoke('brand', { image: files[0]! }, cliInit());
    expect(studio.ok && 'shoeFound' in (studio.reply.data as object)).toBe(false);
  });

  it('GIVEN status THEN the vision section names the backend, the shipped shoe localisers and learnt turns', async () => {
    const plugin = createVisionPlugin({ modelsDir });
    const section = (await plugin.status!(engine)) as Record<string, unknown>;
    expect(section.backend).toBeTypeOf('string');
    expect(section.localisers).toMatch(/^mobilenet_v2 \(block_13_expand_relu, threshold 0\.\d+\); inception_v3 \(mixed5, threshold 0\.\d+\)$/);
    // The shipped heads' backbone ships its learnt turn (assets/models/angle-inception_v3_m67.json).
    expect(section.angleModels).toMatch(/^inception_v3_m67 \(3 fits of 128 hidden, median error \d+(\.\d)?°\)$/);
  });

  it('GIVEN the shipped default heads THEN they name the feature space they are served in, the one community runs train in', () => {
    // The training gate scores the shipped head against a community candidate only when both read the same
    // features (plugins/training pipeline `evaluateArtifact`): the file's prepVersion must be what serving embeds.
    const embedder = engine.service<Embedder>('embedder')!;
    for (const task of ['hype', 'brand'] as const) {
      const file = path.join(DEFAULT_LOCALISER_DIR, `${task}.head.json`);
      const head = parseHead(JSON.parse(readFileSync(file, 'utf8')), file);
      expect(head.backbone).toBe(embedder.backbone);
      expect(featureKey(head.features)).toBe(head.prepVersion);
      expect(head.prepVersion).toBe(embedder.prepVersion);
    }
  });

  it('GIVEN a missing or corrupt model file THEN MODEL_MISSING says how to rebuild it', async () => {
    const emptyDir = path.join(dir, 'no-models');
    mkdirSync(emptyDir);
    const store = await openStore({ url: ':memory:' });
    const bare = createEngine({ store });
    await bare.register(createVisionPlugin({ modelsDir: emptyDir }));
    const missing = await bare.invoke('hype', { image: files[0]! }, cliInit());
    expect(missing.ok).toBe(false);
    if (!missing.ok) {
      expect(missing.error.code).toBe('MODEL_MISSING');
      expect(missing.error.message).toMatch(/npm run train:defaults/);
    }
    writeFileSync(path.join(emptyDir, 'brand.head.json'), '{"format":"solescope-head","version":1,"layers":[]}');
    const corrupt = await bare.invoke('brand', { image: files[0]! }, cliInit());
    expect(corrupt.ok || corrupt.error.code).toBe('MODEL_MISSING');
    await bare.close();
  });

  it('GIVEN a folder with files it cannot score THEN evaluate names each one and why, and scores the rest', async () => {
    const folder = path.join(dir, 'messy');
    mkdirSync(path.join(folder, 'jordan'), { recursive: true });
    mkdirSync(path.join(folder, 'nike'), { recursive: true });
    const good = readFileSync(files[0]!);
    writeFileSync(path.join(folder, 'jordan', 'ok.png'), good);
    const jpeg = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#c33' } }).jpeg().toBuffer();
    writeFileSync(path.join(folder, 'nike', 'broken.jpg'), jpeg.subarray(0, jpeg.length >> 1));
    // An iPhone photo's container header (ftyp heic, compatible mif1 + heic), which the prebuilt decoder cannot read.
    const ftyp = Buffer.concat([Buffer.alloc(4), Buffer.from('ftypheic\0\0\0\0mif1heic', 'latin1')]);
    ftyp.writeUInt32BE(ftyp.length, 0);
    writeFileSync(path.join(folder, 'nike', 'IMG_0001.HEIC'), Buffer.concat([ftyp, Buffer.alloc(200, 5)]));
    writeFileSync(path.join(folder, 'nike', 'receipt.pdf'), '%PDF-1.4\n');
    const r = await engine.invoke('evaluate', { task: 'brand', data: folder }, cliInit());
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const d = r.reply.data as { n: number; unreadable: number; notScored: { item: string; reason: string }[] };
    expect(d.n).toBe(1);
    expect(d.unreadable).toBe(2);
    const why = Object.fromEntries(d.notScored.map((x) => [x.item, x.reason]));
    expect(Object.keys(why).sort()).toEqual([path.join('nike', 'IMG_0001.HEIC'), path.join('nike', 'broken.jpg'), path.join('nike', 'receipt.pdf')]);
    expect(why[path.join('nike', 'broken.jpg')]).toMatch(/corrupt or truncated/);
    expect(why[path.join('nike', 'receipt.pdf')]).toBe('not an image file name');
    if (!(sharp.format.heif?.input.fileSuffix ?? []).some((s) => s === '.heic' || s === '.heif')) expect(why[path.join('nike', 'IMG_0001.HEIC')]).toMatch(/HEIC photo.*JPEG/);
    expect(r.reply.text).toMatch(/^Not scored: .*broken\.jpg \(/m);
    // Nothing readable at all: a clear error that names why, not a report of nothing.
    const none = path.join(dir, 'unreadable');
    mkdirSync(path.join(none, 'nike'), { recursive: true });
    writeFileSync(path.join(none, 'nike', 'broken.jpg'), jpeg.subarray(0, jpeg.length >> 1));
    const empty = await engine.invoke('evaluate', { task: 'brand', data: none }, cliInit());
    expect(empty.ok).toBe(false);
    if (empty.ok) return;
    expect(empty.error.code).toBe('BAD_INPUT');
    expect(empty.error.message).toMatch(/none of the 1 .*could be read.*broken\.jpg.*corrupt or truncated/s);
  });

  // Last in this block: the overlay import gives the fixtures' unlabelled photo labels in the shared store.
  it('GIVEN a label overlay THEN evaluate and dataset import add the labels the manifest lacks, keep its own, and say so', async () => {
    const overlay = path.join(dir, 'data', 'hand-labels.csv');
    // unlabelled.png gains both labels; jordan-0 keeps the manifest's brand (a conflict); ghost.png matches nothing.
    writeFileSync(overlay, 'file,brand,hype,basis\nimages/unlabelled.png,nike,not_hyped,by eye\nimages/jordan-0.png,adidas,,by eye\nimages/ghost.png,nike,,by eye\n');
    const r = await engine.invoke('evaluate', { task: 'brand', data: manifest, labels: overlay }, cliInit());
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.reply.data).toMatchObject({
      n: 13,
      skipped: 0,
      labelOverlays: [{ overlay, matched: 2, unmatched: 1, added: { brand: 1, hype: 1 }, conflicts: { brand: 1, hype: 0 } }],
    });
    expect((r.reply.data as { perClass: Record<string, { support: number }> }).perClass.jordan!.support).toBe(4);
    expect(r.reply.text).toMatch(/^labels hand-labels\.csv: 2 rows matched \(1 unmatched\), added 1 brand \/ 1 hype labels, 1 conflicts/);

    const imported = await engine.invoke('dataset import', { source: manifest, name: 'fixtures-labelled', labels: overlay }, cliInit());
    expect(imported.ok && imported.reply.data).toMatchObject({ rows: 13, added: 0, duplicates: 13, labels: 26 });
    const stats = await engine.invoke('dataset stats', { name: 'fixtures-labelled' }, cliInit());
    expect(stats.ok && stats.reply.data).toMatchObject({ brand: { nike: 5 }, hype: { not_hyped: 5 } });

    const missing = await engine.invoke('evaluate', { task: 'brand', data: manifest, labels: path.join(dir, 'none.csv') }, cliInit());
    expect(missing.ok || missing.error.code).toBe('NOT_FOUND');
  });
});
