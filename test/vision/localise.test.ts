import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it, expect } from 'vitest';
import { loadBackbone } from '../../engine/ml/backbones.ts';
import type { RawImage } from '../../engine/ml/types.ts';
import { EngineError } from '../../engine/errors.ts';
import { pasteShoePlaced, SHIFT_BACKGROUNDS } from '../../plugins/vision/lib/composite.ts';
import {
  boxFromCells,
  cellCoverage,
  cellProbabilities,
  fitLocaliser,
  letterbox,
  loadLocaliser,
  localise,
  localiserFileName,
  LOCALISER_FORMAT,
  makeLocator,
  parseLocaliser,
  shippedLocaliser,
  type LocaliserModel,
} from '../../plugins/vision/lib/localise.ts';
import { embedItems, prepKey, variantOf } from '../../plugins/vision/lib/features.ts';
import { floodsBackground } from '../../engine/ml/preprocess.ts';
import { drawShoe, rng } from '../ml/fixtures.ts';

const solid = (width: number, height: number, v = 128): RawImage => ({ data: new Uint8Array(width * height * 3).fill(v), width, height, channels: 3 });

/** A localiser that scores every cell the same (`bias` decides shoe or not), for geometry and plumbing tests. */
function constantModel(bias: number, channels: number, grid: number, layer: string, inputSize: number, backbone = 'mobilenet_v2'): LocaliserModel {
  return {
    format: LOCALISER_FORMAT,
    backbone,
    layer,
    inputSize,
    grid,
    mean: new Array<number>(channels).fill(0),
    std: new Array<number>(channels).fill(1),
    weights: new Array<number>(channels).fill(0),
    bias,
    threshold: 0.5,
  };
}

describe('shoe localiser: geometry', () => {
  it('GIVEN a wide photo THEN the letterbox keeps its aspect, centres it and pads with white', async () => {
    const lb = await letterbox(solid(40, 20, 0), 16);
    expect(lb).toMatchObject({ size: 16, scale: 0.4, offsetX: 0, offsetY: 4, width: 40, height: 20 });
    expect(lb.input[(0 * 16 + 3) * 3]).toBe(1); // top bar
    expect(lb.input[(8 * 16 + 3) * 3]).toBe(0); // photo
    expect(lb.input[(15 * 16 + 3) * 3]).toBe(1); // bottom bar
  });

  it('GIVEN a mask of the left half THEN cell coverage is 1 there, 0 elsewhere and in the padding', async () => {
    const w = 40;
    const h = 20;
    const mask = new Uint8Array(w * h);
    for (let y = 0; y < h; y++) for (let x = 0; x < w / 2; x++) mask[y * w + x] = 1;
    const lb = await letterbox(solid(w, h), 16);
    const cov = cellCoverage(mask, lb, 4);
    // Rows 1–2 of 4 cover the photo (input rows 4..12); row 0 and 3 are the white bars.
    expect(Array.from(cov.subarray(4, 8))).toEqual([1, 1, 0, 0]);
    expect(Array.from(cov.subarray(0, 4))).toEqual([0, 0, 0, 0]);
    expect(Array.from(cov.subarray(12, 16))).toEqual([0, 0, 0, 0]);
  });

  it('GIVEN high probabilities in a block of cells THEN the box maps back onto the photo; none above threshold is null', async () => {
    const lb = await letterbox(solid(80, 80), 32);
    const probs = new Float32Array(16);
    // Cells (1,1), (2,1), (1,2), (2,2) of a 4×4 grid: the middle of the photo.
    for (const i of [5, 6, 9, 10]) probs[i] = 0.9;
    const box = boxFromCells(probs, 4, lb, 0.5)!;
    expect(box.x).toBeGreaterThanOrEqual(15);
    expect(box.x).toBeLessThanOrEqual(25);
    expect(box.x + box.width).toBeGreaterThanOrEqual(55);
    expect(box.x + box.width).toBeLessThanOrEqual(65);
    expect(box.y).toBe(box.x);
    expect(boxFromCells(probs, 4, lb, 0.95)).toBeNull();
    // Two blobs: the larger wins.
    const two = new Float32Array(16);
    for (const i of [0, 10, 11, 14, 15]) two[i] = 0.9;
    const big = boxFromCells(two, 4, lb, 0.5)!;
    expect(big.x).toBeGreaterThan(30);
  });

  it('GIVEN separable cell vectors THEN the fitted logistic regression scores shoe cells above the rest', () => {
    const random = rng(3);
    const x: Float32Array[] = [];
    const y: number[] = [];
    for (let i = 0; i < 400; i++) {
      const shoe = i % 5 === 0 ? 1 : 0; // the minority, as in photos
      x.push(Float32Array.from({ length: 6 }, (_, j) => (j === 2 ? shoe * 3 : 0) + random() * 2 + 10));
      y.push(shoe);
    }
    const fit = fitLocaliser(x, y, { epochs: 150, learningRate: 0.05 });
    const model: LocaliserModel = { format: LOCALISER_FORMAT, backbone: 'b', layer: 'l', inputSize: 8, grid: 1, ...fit, threshold: 0.5 };
    let correct = 0;
    for (let i = 0; i < x.length; i++) if ((cellProbabilities(model, x[i]!)[0]! >= 0.5 ? 1 : 0) === y[i]) correct++;
    expect(correct / x.length).toBeGreaterThan(0.95);
    expect(() => fitLocaliser([], [])).toThrow(EngineError);
    expect(() => cellProbabilities(model, new Float32Array(7))).toThrow(/expects a 1x1x6 map/);
  });
});

describe('shoe localiser: files and the backbone', () => {
  it('GIVEN a missing, corrupt or malformed file THEN MODEL_MISSING names the rebuild command', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'localiser-'));
    const expectMissing = (fn: () => unknown): void => {
      try {
        fn();
        expect.unreachable();
      } catch (err) {
        expect((err as EngineError).code).toBe('MODEL_MISSING');
        expect((err as EngineError).message).toContain('train:localiser');
      }
    };
    expectMissing(() => loadLocaliser(path.join(dir, 'nope.json')));
    writeFileSync(path.join(dir, 'bad.json'), '{"format": "solescope-localiser-1", "weights": [');
    expectMissing(() => loadLocaliser(path.join(dir, 'bad.json')));
    const model = constantModel(0, 3, 2, 'x', 8);
    writeFileSync(path.join(dir, 'short.json'), JSON.stringify({ ...model, std: [1] }));
    expectMissing(() => loadLocaliser(path.join(dir, 'short.json')));
    writeFileSync(path.join(dir, localiserFileName('inception_v3')), JSON.stringify(model)); // a mobilenet_v2 one
    expectMissing(() => shippedLocaliser('inception_v3', dir));
    expect(() => parseLocaliser({ ...model, format: 'other' })).toThrow(/Not a solescope localiser/);
    expect(loadLocaliser(path.join(dir, localiserFileName('inception_v3')))).toEqual(model);
  });

  it('GIVEN the shipped localisers THEN they validate and read the documented layers', () => {
    const inception = shippedLocaliser('inception_v3');
    expect([inception.layer, inception.grid, inception.weights.length, inception.inputSize]).toEqual(['mixed5', 17, 768, 299]);
    const mobilenet = shippedLocaliser('mobilenet_v2');
    expect([mobilenet.layer, mobilenet.grid, mobilenet.weights.length, mobilenet.inputSize]).toEqual(['block_13_expand_relu', 14, 576, 224]);
    for (const m of [inception, mobilenet]) expect(m.threshold).toBeGreaterThanOrEqual(0.5);
  });

  it('GIVEN a real backbone THEN localise reads the layer map, maps cells to the photo and leaks no tensors', async () => {
    const backbone = await loadBackbone('mobilenet_v2');
    const photo = solid(200, 100, 90);
    const before = backbone.tf.memory().numTensors;
    const all = await localise(backbone, constantModel(5, 576, 14, 'block_13_expand_relu', 224), photo);
    expect(all.probabilities).toHaveLength(14 * 14);
    // Every cell is "shoe": the box is the photo (the letterbox bars are cut off).
    expect(all.box!.x).toBe(0);
    expect(all.box!.width).toBe(200);
    expect(all.box!.y).toBeLessThanOrEqual(8);
    expect(all.box!.y + all.box!.height).toBeGreaterThanOrEqual(92);
    expect((await localise(backbone, constantModel(-5, 576, 14, 'block_13_expand_relu', 224), photo)).box).toBeNull();
    expect(backbone.tf.memory().numTensors).toBe(before);
    await expect(localise(backbone, constantModel(5, 576, 14, 'block_13_expand_relu', 224, 'inception_v3'), photo)).rejects.toThrow(/used with mobilenet_v2/);
    // The locator skips studio shots (the normaliser flood-fills them and would ignore a hint): undefined, "did
    // not look", unlike null, "looked and found no shoe".
    const locate = makeLocator(backbone, constantModel(5, 576, 14, 'block_13_expand_relu', 224));
    expect(await locate(drawShoe({ seed: 2, toe: 'right' }))).toBeUndefined();
    expect(await locate(photo)).not.toBeNull();
  });

  it('GIVEN a located feature spec THEN studio photos reuse the unlocated embedding and busy ones get their own', async () => {
    const backbone = await loadBackbone('mobilenet_v2');
    const dir = mkdtempSync(path.join(tmpdir(), 'localiser-'));
    const { openStore } = await import('../../engine/store/index.ts');
    const store = await openStore({ url: `sqlite:${path.join(dir, 'cache.db')}` });
    try {
      const studio = drawShoe({ seed: 3, toe: 'right', width: 160, height: 120 });
      const placed = await pasteShoePlaced(drawShoe({ seed: 3, toe: 'right', width: 160, height: 120 }), SHIFT_BACKGROUNDS.busy, rng(3), { scale: [0.35, 0.45] });
      const busy = placed.image;
      const items = [studio, busy].map((raw, i) => ({ sha256: `img${i}`, load: async () => raw }));
      const spec = { trim: false, flipAverage: false, l2: true, normalise: true, orient: false };
      const plain = await embedItems(backbone, items, spec, { store });
      const locKey = prepKey(variantOf({ ...spec, locate: true }, false));
      expect(locKey).toContain('+loc');
      expect(locKey).not.toBe(prepKey(variantOf(spec, false)));
      // With a locator that knows where the shoe is: the busy photo's input changes; the studio one's cannot
      // (flood fill), so its cached unlocated embedding is reused.
      let calls = 0;
      const locator = async (raw: RawImage): Promise<typeof placed.box | undefined> => {
        calls++;
        return (await floodsBackground(raw)) ? undefined : placed.box;
      };
      const located = await embedItems(backbone, items, { ...spec, locate: true }, { store, locator });
      expect(calls).toBe(2);
      expect(located[0]).toEqual(plain[0]);
      expect(located[1]).not.toEqual(plain[1]);
      expect(await store.embeddings.get('img1', backbone.name, locKey)).toEqual(located[1]);
      // A batch where every photo reuses its unlocated embedding runs no forward pass at all.
      const mirrored = await embedItems(backbone, [items[0]!], spec, { store, mirror: true });
      expect(await embedItems(backbone, [items[0]!], { ...spec, locate: true }, { store, mirror: true, locator })).toEqual(mirrored);
    } finally {
      await store.close();
    }
  });
});
