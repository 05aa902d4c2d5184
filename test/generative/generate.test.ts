/**
 * `generate`: deterministic for a seed, watermarked grid, samples stored flagged `generated`, registry
 * resolution, MODEL_MISSING with the training command, schema bounds, no tensor leaks.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngine, type Engine } from '../../engine/index.ts';
import { openStore, type Store } from '../../engine/store/index.ts';
import { getTf } from '../../engine/ml/runtime.ts';
import plugin from '../../plugins/generative/index.ts';
import { createTrainer, WGAN_GP_DEFAULTS } from '../../plugins/generative/lib/gan.ts';
import { saveGenerator } from '../../plugins/generative/lib/gan-io.ts';
import { clearGeneratorCache, resolveGenerator } from '../../plugins/generative/lib/generator-source.ts';
import { sampleRgb } from '../../plugins/generative/lib/gan-train.ts';

let dir: string;
let store: Store;
let engine: Engine;
let modelId: number;

beforeAll(async () => {
  const tf = await getTf({ backend: 'wasm' });
  dir = mkdtempSync(path.join(tmpdir(), 'solescope-generate-'));
  store = await openStore({ dataDir: dir });
  // A tiny untrained generator is enough: determinism and plumbing do not depend on quality.
  const t = createTrainer(tf, { size: 32, zDim: 8, ngf: 4, ndf: 2 }, WGAN_GP_DEFAULTS, 3);
  const artifact = saveGenerator(t.arch, t.g, { iterations: 0, seed: 3 });
  t.dispose();
  modelId = (await store.models.create({ task: 'gan', artifact, metrics: {}, params: {}, dataSnapshot: {}, createdBy: 'test' })).id;
  engine = createEngine({ store });
  await engine.register(plugin);
});

afterAll(async () => {
  clearGeneratorCache();
  await engine.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

// A fresh caller per call: `generate` has a per-user cooldown, which is not what these tests are about.
let calls = 0;
const run = (input: Record<string, unknown>) => engine.invoke('generate', input, { transport: 'test', caller: { id: `u${++calls}` } });

describe('generate', () => {
  it('GIVEN the same seed THEN the same images; another seed THEN different images', async () => {
    const a = await run({ count: 4, seed: 11, model: String(modelId) });
    const b = await run({ count: 4, seed: 11, model: String(modelId) });
    const c = await run({ count: 4, seed: 12, model: String(modelId) });
    if (!a.ok || !b.ok || !c.ok) throw new Error('generate failed');
    const png = (r: typeof a) => (r.ok ? r.reply.images![0]!.png : Buffer.alloc(0));
    expect(Buffer.compare(png(a), png(b))).toBe(0);
    expect(Buffer.compare(png(a), png(c))).not.toBe(0);
    expect(a.reply.data).toMatchObject({ seed: 11, count: 4, model: String(modelId), generated: true, stored: 4 });
    const meta = await sharp(png(a)).metadata();
    expect(meta.format).toBe('png');
    expect(meta.width).toBeGreaterThanOrEqual(2 * 128); // a 2×2 grid of 128 px samples
  });

  it('GIVEN a seed THEN the first samples do not change when more are asked for', async () => {
    const tf = await getTf();
    const { generator } = await resolveGenerator(tf, store, String(modelId));
    const three = sampleRgb(tf, generator.weights, generator.arch, 5, 3);
    const five = sampleRgb(tf, generator.weights, generator.arch, 5, 5);
    for (let i = 0; i < 3; i++) expect(Buffer.compare(Buffer.from(five[i]!.data), Buffer.from(three[i]!.data))).toBe(0);
  });

  it('GIVEN generated samples THEN they are stored flagged generated and stay out of non-generated queries', async () => {
    await run({ count: 2, seed: 99, model: String(modelId) });
    const generated = await store.images.find({ generated: true, limit: 1000 });
    expect(generated.length).toBeGreaterThanOrEqual(2);
    expect(generated.every((r) => r.generated && r.source === 'generated')).toBe(true);
    const real = await store.images.find({ generated: false, limit: 1000 });
    expect(real.some((r) => r.generated)).toBe(false);
    expect(generated.find((r) => r.name === `generated-${modelId}-99-1.png`)?.meta).toMatchObject({ seed: 99, index: 1 });
  });

  it('GIVEN a watermark THEN the bottom-right corner differs from the same sample unmarked', async () => {
    const r = await run({ count: 1, seed: 7, model: String(modelId) });
    if (!r.ok) throw new Error(r.error.message);
    const { data, info } = await sharp(r.reply.images![0]!.png).raw().toBuffer({ resolveWithObject: true });
    // The label is a dark box with white text: the corner holds both near-black and near-white pixels.
    let dark = 0;
    let light = 0;
    for (let y = info.height - 20; y < info.height - 6; y++) {
      for (let x = info.width - 60; x < info.width - 6; x++) {
        const i = (y * info.width + x) * info.channels;
        const v = (data[i]! + data[i + 1]! + data[i + 2]!) / 3;
        if (v < 90) dark++;
        if (v > 200) light++;
      }
    }
    expect(dark).toBeGreaterThan(50);
    expect(light).toBeGreaterThan(10);
  });

  it('GIVEN a champion alias THEN generate uses it without --model', async () => {
    await store.models.setAlias('gan', 'champion', modelId, 'test');
    const r = await run({ count: 1, seed: 1 });
    expect(r.ok && r.reply.data?.model).toBe(String(modelId));
  });

  it('GIVEN no generator anywhere THEN MODEL_MISSING names the command that trains one', async () => {
    const tf = await getTf();
    const empty = await openStore({ url: ':memory:' });
    try {
      await expect(resolveGenerator(tf, empty, undefined, path.join(dir, 'missing.sgan'))).rejects.toMatchObject({
        code: 'MODEL_MISSING',
        message: expect.stringContaining('train --task gan'),
      });
    } finally {
      await empty.close();
    }
  });

  it('GIVEN bad model ids or absurd counts THEN coded errors, not crashes', async () => {
    const unknown = await run({ count: 1, model: '999' });
    expect(!unknown.ok && unknown.error.code).toBe('NOT_FOUND');
    const word = await run({ count: 1, model: 'latest' });
    expect(!word.ok && word.error.code).toBe('BAD_INPUT');
    const huge = await run({ count: 5000 });
    expect(!huge.ok && huge.error.code).toBe('BAD_INPUT');
    expect(!huge.ok && huge.error.message).toMatch(/count must be at most 64/);
    const other = await store.models.create({ task: 'hype', artifact: Buffer.from('x'), metrics: {}, params: {}, dataSnapshot: {}, createdBy: 'test' });
    const wrong = await run({ count: 1, model: String(other.id) });
    expect(!wrong.ok && wrong.error.code).toBe('BAD_INPUT');
  });

  it('GIVEN repeated generation THEN no tensor leaks', async () => {
    const tf = await getTf();
    expect((await run({ count: 3, seed: 2, model: String(modelId) })).ok).toBe(true); // warm the cache
    const before = tf.memory().numTensors;
    expect((await run({ count: 20, seed: 3, model: String(modelId) })).ok).toBe(true);
    expect(tf.memory().numTensors).toBe(before);
  });
});
