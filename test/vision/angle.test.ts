import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it, expect } from 'vitest';
import { preprocess } from '../../engine/ml/preprocess.ts';
import { angleFileKey, fitAngleModel, loadAngleModel, mergeAngleModels, parseAngleModel, predictTurn, turnDistance, type Turner, LEARNT_TURN_MIN } from '../../plugins/vision/lib/angle.ts';
import { loadBackbone } from '../../engine/ml/backbones.ts';
import { openStore } from '../../engine/store/index.ts';
import { embedItems, embedTurnedCopy, mirrorInput, prepareInputKeepingLook, prepareInputPlaced, prepKey, turnerFor, variantOf } from '../../plugins/vision/lib/features.ts';
import { featureKey } from '../../plugins/vision/service.ts';
import { featureSpecSchema, type FeatureSpec } from '../../plugins/vision/lib/head.ts';
import type { RawImage } from '../../engine/ml/types.ts';
import { pairWornComposite, pasteShoePlaced, SHIFT_BACKGROUNDS, turnedComposite } from '../../plugins/vision/lib/composite.ts';
import type { Locator } from '../../plugins/vision/lib/localise.ts';
import { drawShoe, rng } from '../ml/fixtures.ts';

/** Embeddings that carry a turn: a fixed random projection of (cos, sin) of the turn, plus noise and distractors. */
function turnedRows(n: number, seed: number): { x: Float32Array[]; turns: number[] } {
  const dim = 24;
  const proj = rng(7);
  const a = Array.from({ length: dim }, () => proj() * 2 - 1);
  const b = Array.from({ length: dim }, () => proj() * 2 - 1);
  const random = rng(seed);
  const x: Float32Array[] = [];
  const turns: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = random() * 360 - 180;
    const c = Math.cos((t * Math.PI) / 180);
    const s = Math.sin((t * Math.PI) / 180);
    x.push(Float32Array.from({ length: dim }, (_, d) => a[d]! * c + b[d]! * s + (random() - 0.5) * 0.1 + (d % 5 === 0 ? random() : 0)));
    turns.push(t);
  }
  return { x, turns };
}

describe('the learnt turn (plugins/vision/lib/angle.ts)', () => {
  it('GIVEN embeddings that carry a turn THEN the fitted regressor reads it back on rows it did not see, across ±180°', async () => {
    const train = turnedRows(600, 1);
    const model = await fitAngleModel(train.x, train.turns, { backbone: 'test', hidden: 16, epochs: 40, seed: 3, learningRate: 3e-3 });
    const test = turnedRows(100, 2);
    const errs = test.x.map((x, i) => turnDistance(predictTurn(model, x).turn, test.turns[i]!)).sort((p, q) => p - q);
    expect(errs[50]!).toBeLessThan(10);
    expect(errs[90]!).toBeLessThan(25);
    expect(predictTurn(model, test.x[0]!).confidence).toBeGreaterThan(0.5);
    // The JSON round trip is the model.
    const again = parseAngleModel(JSON.parse(JSON.stringify(model)));
    expect(predictTurn(again, test.x[3]!).turn).toBeCloseTo(predictTurn(model, test.x[3]!).turn, 4);
    expect(() => predictTurn(model, new Float32Array(5))).toThrow(/24-d/);
  });

  it('GIVEN fits from several seeds THEN the merged file answers the mean of their (cos, sin), and fits of other rows refuse to merge', async () => {
    const train = turnedRows(300, 4);
    const fits = await Promise.all([5, 6, 7].map((seed) => fitAngleModel(train.x, train.turns, { backbone: 'test', hidden: 8, epochs: 10, seed, learningRate: 3e-3 })));
    const merged = mergeAngleModels(fits);
    expect(merged.hidden).toBe(24);
    // Still one hidden layer: the file parses and reads as one fit does.
    const parsed = parseAngleModel(JSON.parse(JSON.stringify(merged)));
    for (const x of turnedRows(20, 9).x) {
      const parts = fits.map((m) => predictTurn(m, x));
      const c = parts.reduce((sum, p) => sum + p.confidence * Math.cos((p.turn * Math.PI) / 180), 0) / parts.length;
      const s = parts.reduce((sum, p) => sum + p.confidence * Math.sin((p.turn * Math.PI) / 180), 0) / parts.length;
      const got = predictTurn(parsed, x);
      expect(turnDistance(got.turn, (Math.atan2(s, c) * 180) / Math.PI)).toBeLessThan(1e-6);
      expect(got.confidence).toBeCloseTo(Math.hypot(c, s), 9);
    }
    expect(mergeAngleModels([fits[0]!])).toBe(fits[0]);
    const other = await fitAngleModel(turnedRows(300, 8).x, turnedRows(300, 8).turns, { backbone: 'test', hidden: 8, epochs: 2, seed: 5 });
    expect(() => mergeAngleModels([fits[0]!, other])).toThrow(/standardisation/);
    expect(() => mergeAngleModels([])).toThrow(/no models/);
  });

  it('GIVEN turns on either side of ±180° THEN turnDistance is the short way round', () => {
    expect(turnDistance(170, -170)).toBeCloseTo(20);
    expect(turnDistance(-90, 90)).toBeCloseTo(180);
    expect(turnDistance(30, 390)).toBeCloseTo(0);
  });

  it('GIVEN a missing, corrupt or inconsistent angle file THEN MODEL_MISSING names the rebuild command, BAD_INPUT what is wrong', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'angle-'));
    expect(() => loadAngleModel(path.join(dir, 'nope.json'))).toThrow(/missing.*train:angle/);
    writeFileSync(path.join(dir, 'bad.json'), '{ not json');
    expect(() => loadAngleModel(path.join(dir, 'bad.json'))).toThrow(expect.objectContaining({ code: 'MODEL_MISSING' }));
    const model = { format: 'solescope-angle-1', backbone: 'b', mean: [0, 0], std: [1, 1], w1: [1, 2, 3], b1: [0, 0], w2: [1, 1, 1, 1], b2: [0, 0], hidden: 2 };
    expect(() => parseAngleModel(model)).toThrow(expect.objectContaining({ code: 'BAD_INPUT' }));
    expect(() => parseAngleModel({ ...model, w1: [1, 2, 3, 4] })).not.toThrow();
  });
});

describe('preprocess `turn` and the learnt turn in the feature pipeline', () => {
  const spec: FeatureSpec = { trim: false, flipAverage: false, l2: true, normalise: true, orient: false, upright: true };
  const onGrey = drawShoe({ seed: 11, toe: 'right', width: 200, height: 150, background: '#6e6e6e' });
  /** A small shoe on the busy shelf, with a locator that gives its box: GrabCut disagrees, the box is the object. */
  const onShelf = async (): Promise<{ raw: RawImage; locator: Locator }> => {
    const placed = await pasteShoePlaced(drawShoe({ seed: 1, toe: 'right', width: 200, height: 150 }), SHIFT_BACKGROUNDS.busy, rng(1), { scale: [0.35, 0.45] });
    return { raw: placed.image, locator: async () => placed.box };
  };

  it('GIVEN an explicit turn THEN preprocess turns by exactly that, instead of the upright step, and says so; a bad turn is BAD_INPUT', async () => {
    const level = await preprocess(onGrey, { size: 64, upright: true });
    expect(level.rotation).toBe(0);
    const turned = await preprocess(onGrey, { size: 64, upright: true, turn: 45 });
    expect(turned.rotation).toBe(45);
    expect(turned.frame).toHaveLength(6);
    expect(Array.from(turned.tensorData)).not.toEqual(Array.from(level.tensorData));
    expect((await preprocess(onGrey, { size: 64, turn: 0 })).rotation).toBe(0);
    await expect(preprocess(onGrey, { size: 64, turn: Number.NaN })).rejects.toMatchObject({ code: 'BAD_INPUT' });
  });

  it('GIVEN learntTurn in a head\'s spec THEN it is in the cache keys, and a pipeline without a turner refuses', async () => {
    expect(featureSpecSchema.parse({ ...spec, learntTurn: true }).learntTurn).toBe(true);
    expect(prepKey(variantOf({ ...spec, learntTurn: true }, false))).toContain('+lt2');
    expect(featureKey({ ...spec, learntTurn: true })).not.toBe(featureKey(spec));
    await expect(prepareInputPlaced(onGrey, 64, variantOf({ ...spec, learntTurn: true }, false))).rejects.toMatchObject({ code: 'INTERNAL' });
    // A head asking for it on a backbone that ships no angle model: MODEL_MISSING with the command that builds one.
    const mobilenet = await loadBackbone('mobilenet_v2');
    expect(() => turnerFor(mobilenet, { normalise: true, learntTurn: true })).toThrow(expect.objectContaining({ code: 'MODEL_MISSING', message: expect.stringMatching(/angle-mobilenet_v2\.json.*train:angle/) }));
    expect(turnerFor(mobilenet, { normalise: true })).toBeUndefined();
  });

  it('GIVEN what the turner reads THEN a located view is turned from 30° on and kept only when the second look reads it level; other views are never asked', async () => {
    const located = variantOf({ ...spec, locate: true, learntTurn: true }, false);
    const { raw, locator } = await onShelf();
    let asked = 0;
    /** A turner that reads these turns, one per look, and hands back the look's number as its embedding. */
    const turnerSaying = (...turns: number[]): Turner => ({
      applyTo: ['located'],
      minConfidence: 0.5,
      read: () => ({ turn: 0, confidence: 0 }),
      look: async () => {
        const turn = turns[asked++ % turns.length]!;
        return { embedding: new Float32Array([asked]), prediction: { turn, confidence: 1 } };
      },
    });
    const plain = await prepareInputPlaced(raw, 64, variantOf({ ...spec, locate: true }, false), locator);
    expect(plain.framing!.background).toBe('located');

    asked = 0;
    const kept = await prepareInputPlaced(raw, 64, located, locator, turnerSaying(LEARNT_TURN_MIN - 1));
    expect(asked).toBe(1);
    expect(Array.from(kept.input)).toEqual(Array.from(plain.input));
    expect(kept.embedding).toEqual(new Float32Array([1]));
    expect(kept.framing!.learntTurn).toBeUndefined();

    asked = 0;
    const turned = await prepareInputPlaced(raw, 64, located, locator, turnerSaying(-50, 4));
    expect(asked).toBe(2);
    expect(turned.framing!.rotation).toBe(-50);
    expect(turned.framing!.learntTurn).toBe(-50);
    expect(turned.placement!.frame).toHaveLength(6);
    expect(turned.embedding).toEqual(new Float32Array([2]));
    expect(Array.from(turned.input)).not.toEqual(Array.from(plain.input));

    // The second look still reads a turn: the first look's view and embedding stand.
    asked = 0;
    const undone = await prepareInputPlaced(raw, 64, located, locator, turnerSaying(-50, -45));
    expect(asked).toBe(2);
    expect(undone.framing!.rotation).toBe(0);
    expect(undone.framing!.learntTurn).toBeUndefined();
    expect(undone.embedding).toEqual(new Float32Array([1]));
    expect(Array.from(undone.input)).toEqual(Array.from(plain.input));

    // The mirrored variant is the turned view mirrored, and never hands back an unmirrored look's embedding.
    asked = 0;
    const mirrored = await prepareInputPlaced(raw, 64, variantOf({ ...spec, locate: true, learntTurn: true }, true), locator, turnerSaying(-50, 4));
    expect(mirrored.embedding).toBeUndefined();
    expect(Array.from(mirrored.input)).toEqual(Array.from(mirrorInput(turned.input, 64)));

    // A shoe GrabCut cut out (segmented: the step measured its silhouette) is not asked about.
    const variant = variantOf({ ...spec, learntTurn: true }, false);
    asked = 0;
    const segmented = await prepareInputPlaced(onGrey, 64, variant, undefined, turnerSaying(90));
    expect(segmented.framing!.background).toBe('segmented');
    expect(asked).toBe(0);
    // …unless the model says to ask there too.
    const everywhere = { ...turnerSaying(-50, 4), applyTo: ['segmented', 'located'] };
    expect((await prepareInputPlaced(onGrey, 64, variant, undefined, everywhere)).framing!.learntTurn).toBe(-50);
    expect(asked).toBe(2);
    // A first look less sure than the model's minimum tries no turn.
    asked = 0;
    const unsure: Turner = { ...turnerSaying(-50, 4), look: async () => ({ embedding: new Float32Array([++asked]), prediction: { turn: -50, confidence: 0.4 } }) };
    const notTried = await prepareInputPlaced(raw, 64, located, locator, unsure);
    expect(asked).toBe(1);
    expect(notTried.framing!.learntTurn).toBeUndefined();
    asked = 0;
    const studio = drawShoe({ seed: 11, toe: 'right', width: 200, height: 150 });
    const onWhite = await prepareInputPlaced(studio, 64, variant, undefined, turnerSaying(90));
    expect(asked).toBe(0);
    expect(onWhite.framing!.rotation).toBe(0);
  });

  it('GIVEN looks that keep something (Grad-CAM\'s activations) THEN the served view\'s is handed back and every other look\'s released, also on failure', async () => {
    const located = variantOf({ ...spec, locate: true, learntTurn: true }, false);
    const { raw, locator } = await onShelf();
    /** Reads the turns in order of the looks (the embedding is the look's number). */
    const turner = (...turns: number[]): Turner => ({
      applyTo: ['located'],
      minConfidence: 0,
      read: (e) => ({ turn: turns[(e[0]! - 1) % turns.length]!, confidence: 1 }),
      look: async () => {
        throw new Error('the keeping look is used instead');
      },
    });
    const released: number[] = [];
    let n = 0;
    const how = (failOn?: number) => ({
      look: async (input: Float32Array) => {
        n++;
        if (n === failOn) throw new Error('forward pass failed');
        return { embedding: new Float32Array([n]), keep: { n, input } };
      },
      release: (k: { n: number; input: Float32Array }) => void released.push(k.n),
    });
    // Turned and kept: the second look is the served view's.
    n = 0;
    released.length = 0;
    const turned = await prepareInputKeepingLook(raw, 64, located, locator, turner(-50, 4), how());
    expect(turned.placed.framing!.learntTurn).toBe(-50);
    expect(turned.kept?.n).toBe(2);
    expect(turned.kept?.input).toBe(turned.placed.input);
    expect(released).toEqual([1]);
    // Tried and undone: the first.
    n = 0;
    released.length = 0;
    const undone = await prepareInputKeepingLook(raw, 64, located, locator, turner(-50, -45), how());
    expect(undone.kept?.n).toBe(1);
    expect(released).toEqual([2]);
    // A mirrored view was never looked at: nothing kept, all released.
    n = 0;
    released.length = 0;
    const mirrored = await prepareInputKeepingLook(raw, 64, variantOf({ ...spec, locate: true, learntTurn: true }, true), locator, turner(-50, 4), how());
    expect(mirrored.kept).toBeUndefined();
    expect(released).toEqual([1, 2]);
    // The second look fails: the first one's is released and the error surfaces.
    n = 0;
    released.length = 0;
    await expect(prepareInputKeepingLook(raw, 64, located, locator, turner(-50, 4), how(2))).rejects.toThrow(/forward pass failed/);
    expect(released).toEqual([1]);
    // Without a turner: plain preparation, nothing looked at.
    n = 0;
    const plain = await prepareInputKeepingLook(raw, 64, variantOf({ ...spec, locate: true }, false), locator, undefined, how());
    expect(plain.kept).toBeUndefined();
    expect(n).toBe(0);
  });

  it('GIVEN embedItems with the learnt turn THEN photos it does not turn reuse their cached embedding without it; a turned one is the second look\'s', async () => {
    const backbone = await loadBackbone('mobilenet_v2');
    const store = await openStore({ url: `sqlite:${path.join(mkdtempSync(path.join(tmpdir(), 'learnt-')), 'cache.db')}` });
    try {
      const { raw, locator } = await onShelf();
      const studio = drawShoe({ seed: 3, toe: 'right', width: 160, height: 120 });
      const items = [studio, raw].map((r, i) => ({ sha256: `img${i}`, load: async () => r }));
      const located = { ...spec, locate: true };
      // Under the key of no step at all: a studio shot the localiser skips, the step leaves and the learnt turn is not
      // asked about has exactly that input.
      const plainKey = prepKey(variantOf({ ...spec, upright: false }, false));
      const sentinels = [new Float32Array(backbone.embedDim).fill(1), new Float32Array(backbone.embedDim).fill(2)];
      for (const [i, v] of sentinels.entries()) await store.embeddings.put(`img${i}`, backbone.name, plainKey, v);
      const looks: number[] = [];
      const turner: Turner = {
        applyTo: ['located'],
        minConfidence: 0,
        read: () => ({ turn: 0, confidence: 0 }),
        look: async (input) => {
          const [embedding] = await backbone.embedImages([input], { batchSize: 1 });
          looks.push(looks.length);
          // Read as turned on the first look, level on the second.
          return { embedding: embedding!, prediction: { turn: looks.length === 1 ? 60 : 0, confidence: 1 } };
        },
      };
      // As the shipped localiser, it does not look at a studio backdrop.
      const studioAware: Locator = async (r, o) => (r.width === studio.width && r.height === studio.height ? undefined : locator(r, o));
      const out = await embedItems(backbone, items, { ...located, learntTurn: true }, { store, locator: studioAware, turner });
      // The studio shot is never looked at and reuses its sentinel; the shelf shot was turned, and its vector is the
      // second look's, not the sentinel.
      expect(looks).toHaveLength(2);
      expect(out[0]).toEqual(sentinels[0]);
      expect(out[1]).not.toEqual(sentinels[1]);
      expect(await store.embeddings.get('img1', backbone.name, prepKey(variantOf({ ...located, learntTurn: true }, false)))).toEqual(out[1]);
    } finally {
      await store.close();
    }
  });
});

describe('turned training views (composite.ts turnedComposite, features.ts embedTurnedCopy)', () => {
  it('GIVEN two angle files THEN their cache keys differ exactly when their contents do', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'angle-key-'));
    for (const [name, text] of [['a.json', '{"w":1}'], ['b.json', '{"w":1}'], ['c.json', '{"w":2}']] as const) writeFileSync(path.join(dir, name), text);
    const key = (name: string): string => angleFileKey(path.join(dir, name));
    expect(key('a.json')).toBe(key('b.json'));
    expect(key('a.json')).not.toBe(key('c.json'));
    expect(key('a.json')).toMatch(/^[0-9a-f]{12}$/);
  });

  it('GIVEN many draws THEN the turns are level, tilted and any angle in train:angle\'s shares, and a seed repeats its composite', async () => {
    const shoe = drawShoe({ seed: 5, toe: 'right', width: 120, height: 90 });
    const turns: number[] = [];
    for (let i = 0; i < 60; i++) turns.push((await turnedComposite(shoe, rng(100 + i))).turn);
    const level = turns.filter((t) => Math.abs(t) <= 15).length;
    const tilted = turns.filter((t) => Math.abs(t) >= 20 && Math.abs(t) <= 90).length;
    // 30 % within ±15° and 40 % tilted 20–90° (plus the any-angle draws that land there): a loose band for 60 draws.
    expect(level).toBeGreaterThan(8);
    expect(level).toBeLessThan(35);
    expect(tilted).toBeGreaterThan(15);
    expect(turns.some((t) => Math.abs(t) > 90)).toBe(true);
    const a = await turnedComposite(shoe, rng(7));
    const b = await turnedComposite(shoe, rng(7));
    expect(b.turn).toBe(a.turn);
    expect(Buffer.from(b.image.data).equals(Buffer.from(a.image.data))).toBe(true);
  });

  it('GIVEN many pair-and-worn draws THEN each shows a pair, a worn shoe or both, nearly level, and a seed repeats its composite', async () => {
    const shoe = drawShoe({ seed: 6, toe: 'right', width: 120, height: 90 });
    const draws = [];
    for (let i = 0; i < 60; i++) draws.push(await pairWornComposite(shoe, rng(300 + i)));
    expect(draws.every((d) => d.pair || d.worn)).toBe(true);
    expect(draws.every((d) => Math.abs(d.turn) <= 10)).toBe(true);
    // 40 % pair, 35 % worn, 25 % both: a loose band for 60 draws.
    const pairOnly = draws.filter((d) => d.pair && !d.worn).length;
    const wornOnly = draws.filter((d) => d.worn && !d.pair).length;
    const both = draws.filter((d) => d.pair && d.worn).length;
    for (const n of [pairOnly, wornOnly, both]) expect(n).toBeGreaterThan(5);
    const a = await pairWornComposite(shoe, rng(9));
    const b = await pairWornComposite(shoe, rng(9));
    expect(Buffer.from(b.image.data).equals(Buffer.from(a.image.data))).toBe(true);
  });

  it('GIVEN photos THEN each gets one view served through the learnt turn and its mirror, drawn from its hash and cached, so two lists share rows', async () => {
    const backbone = await loadBackbone('mobilenet_v2');
    const store = await openStore({ url: `sqlite:${path.join(mkdtempSync(path.join(tmpdir(), 'turned-')), 'cache.db')}` });
    try {
      const photos = [1, 2, 3].map((seed) => drawShoe({ seed, toe: 'right', width: 160, height: 120 }));
      let loads = 0;
      const item = (i: number): { sha256: string; load: () => Promise<RawImage> } => ({
        sha256: `${'0'.repeat(7)}${i}photo`,
        load: async () => {
          loads++;
          return photos[i]!;
        },
      });
      let looks = 0;
      const turner: Turner = {
        applyTo: ['located', 'segmented', 'busy', 'uniform'],
        minConfidence: 0,
        read: () => ({ turn: 0, confidence: 0 }),
        look: async (input) => {
          looks++;
          const [embedding] = await backbone.embedImages([input], { batchSize: 1 });
          return { embedding: embedding!, prediction: { turn: 0, confidence: 1 } };
        },
      };
      // A locator that finds nothing: the normaliser works from the whole frame.
      const locator: Locator = async () => undefined;
      const opts = { seed: 42, modelKey: 'test', store, locator };
      const first = await embedTurnedCopy(backbone, [item(0), item(1)], turner, opts);
      expect(loads).toBe(2);
      // Served through the learnt turn: every composite was looked at (its look is the row).
      expect(looks).toBe(2);
      expect(first).toHaveLength(2);
      expect(first[0]).toHaveLength(2);
      expect(first[1][0]).toHaveLength(backbone.embedDim);
      // The mirror is another view of the same composite, not the same row.
      expect(Array.from(first[1][0]!)).not.toEqual(Array.from(first[0][0]!));
      // Another list, in another order, with one new photo: only the new one is loaded and composed.
      const second = await embedTurnedCopy(backbone, [item(2), item(1), item(0)], turner, opts);
      expect(loads).toBe(3);
      expect(second[0][1]).toEqual(first[0][1]);
      expect(second[1][2]).toEqual(first[1][0]);
      // Without the cache the rows are recomputed the same: the draw depends on the photo, not where it sits.
      const again = await embedTurnedCopy(backbone, [item(1)], turner, { seed: 42, modelKey: 'test', locator });
      for (const [k, v] of again[0][0]!.entries()) expect(v).toBeCloseTo(first[0][1]![k]!, 4);
      // Another angle model is another key: nothing is reused.
      await embedTurnedCopy(backbone, [item(0)], turner, { ...opts, modelKey: 'other' });
      expect(loads).toBe(5);
      expect(await store.embeddings.get(item(0).sha256, backbone.name, 'tilt1.s42.ltother+m')).toBeDefined();
      // The pair-and-worn kind is another composite under its own keys, served the same way (looked at).
      const pw = await embedTurnedCopy(backbone, [item(0)], turner, { ...opts, kind: 'pair-worn' });
      expect(loads).toBe(6);
      expect(looks).toBe(6);
      expect(await store.embeddings.get(item(0).sha256, backbone.name, 'pw1.s42.lttest')).toBeDefined();
      expect(Array.from(pw[0][0]!)).not.toEqual(Array.from(first[0][0]!));
    } finally {
      await store.close();
    }
  });
});
