import { describe, it, expect } from 'vitest';
import { concatEmbeddings, prepareInput, prepareInputPlaced, prepKey, variantOf, variantsOf, meanVector, mirrorInput } from '../../plugins/vision/lib/features.ts';
import { PREP_VERSION } from '../../engine/ml/preprocess.ts';
import { decodeBytes } from '../../plugins/vision/lib/input.ts';
import { drawShoe } from './fixtures.ts';

function meanAbsDiff(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i]! - b[i]!);
  return s / a.length;
}

describe('vision feature pipeline', () => {
  it('GIVEN a left- and a right-pointing shoe THEN mirroring one gives the other (what flip augmentation relies on)', async () => {
    const right = await decodeBytes(await drawShoe({ upper: '#c92a2a', pointsRight: true, size: 112 }));
    const left = await decodeBytes(await drawShoe({ upper: '#c92a2a', pointsRight: false, size: 112 }));
    const r = await prepareInput(right.raw, 64, { trim: false, flip: false });
    const lFlipped = await prepareInput(left.raw, 64, { trim: false, flip: true });
    const l = await prepareInput(left.raw, 64, { trim: false, flip: false });
    expect(meanAbsDiff(r, lFlipped)).toBeLessThan(0.01);
    expect(meanAbsDiff(r, l)).toBeGreaterThan(0.03);
    expect(r).toHaveLength(64 * 64 * 3);
    expect(Math.max(...r)).toBeLessThanOrEqual(1);
  });

  it('GIVEN trim THEN the shoe fills more of the frame; augmentation is deterministic per seed', async () => {
    const pic = await decodeBytes(await drawShoe({ upper: '#1c7ed6', size: 160 }));
    const plain = await prepareInput(pic.raw, 64, { trim: false, flip: false });
    const trimmed = await prepareInput(pic.raw, 64, { trim: true, flip: false });
    const white = (v: Float32Array): number => {
      let n = 0;
      for (let i = 0; i < v.length; i += 3) if (v[i]! > 0.97 && v[i + 1]! > 0.97 && v[i + 2]! > 0.97) n++;
      return n;
    };
    expect(white(trimmed)).toBeLessThan(white(plain));
    const a1 = await prepareInput(pic.raw, 64, { trim: false, flip: false, augment: 3 });
    const a2 = await prepareInput(pic.raw, 64, { trim: false, flip: false, augment: 3 });
    const b = await prepareInput(pic.raw, 64, { trim: false, flip: false, augment: 4 });
    expect(a1).toEqual(a2);
    expect(meanAbsDiff(a1, b)).toBeGreaterThan(0.005);
    expect(meanAbsDiff(a1, plain)).toBeGreaterThan(0.005);
  });

  it('GIVEN a shoe on a grey wall THEN study normalisation whitens the background and crops to the shoe, and orient points the toe right', async () => {
    const onGrey = await decodeBytes(await drawShoe({ upper: '#c92a2a', pointsRight: false, size: 160, background: '#7a7a7a' }));
    const onWhite = await decodeBytes(await drawShoe({ upper: '#c92a2a', pointsRight: false, size: 160 }));
    const plain = await prepareInput(onGrey.raw, 64, { trim: false, flip: false });
    const norm = await prepareInput(onGrey.raw, 64, variantOf({ trim: false, flipAverage: false, l2: true, normalise: true }, false));
    const normWhite = await prepareInput(onWhite.raw, 64, variantOf({ trim: false, flipAverage: false, l2: true, normalise: true }, false));
    const corner = (v: Float32Array): number[] => [v[0]!, v[1]!, v[2]!];
    expect(corner(plain)[0]).toBeLessThan(0.6); // the grey wall is still there without normalisation
    for (const c of corner(norm)) expect(c).toBeGreaterThan(0.95); // ...and painted white with it
    // On grey or on white, the normalised inputs look alike (what makes phone photos look like the training set).
    expect(meanAbsDiff(norm, normWhite)).toBeLessThan(0.05);
    expect(meanAbsDiff(plain, normWhite)).toBeGreaterThan(meanAbsDiff(norm, normWhite));
    // The mirrored variant is the mirror; orientation normalisation turns the left-pointing toe right.
    const mirrored = await prepareInput(onGrey.raw, 64, variantOf({ trim: false, flipAverage: false, l2: true, normalise: true }, true));
    expect(meanAbsDiff(mirrored, mirrorInput(norm, 64))).toBe(0);
    const right = await decodeBytes(await drawShoe({ upper: '#c92a2a', pointsRight: true, size: 160, background: '#7a7a7a' }));
    const spec = { trim: false, flipAverage: false, l2: true, normalise: true, orient: true };
    const orientedLeft = await prepareInput(onGrey.raw, 64, variantOf(spec, false));
    const orientedRight = await prepareInput(right.raw, 64, variantOf(spec, false));
    expect(meanAbsDiff(orientedLeft, orientedRight)).toBeLessThan(0.02);
    expect(prepKey(variantOf(spec, true))).toBe(`vprep-1+norm${PREP_VERSION}o+flip`);
    // Explanations get the crop and mirroring, to draw heatmaps back onto the photo.
    const placed = await prepareInputPlaced(onGrey.raw, 64, variantOf(spec, false));
    expect(placed.input).toEqual(orientedLeft);
    expect(placed.placement?.mirrored).toBe(true);
    expect(placed.placement!.crop.width).toBeLessThan(160);
    expect((await prepareInputPlaced(onGrey.raw, 64, { trim: false, flip: false })).placement).toBeUndefined();
  });

  it('names cache keys per variant and averages flip pairs', () => {
    expect(prepKey({ trim: true, flip: true })).toBe('vprep-1+trim+flip');
    expect(variantsOf({ trim: false, flipAverage: true, l2: true })).toEqual([
      { trim: false, flip: false },
      { trim: false, flip: true },
    ]);
    expect(Array.from(meanVector([Float32Array.from([1, 2]), Float32Array.from([3, 6])]))).toEqual([2, 4]);
  });

  it('GIVEN two backbones\' embeddings of a photo THEN concatEmbeddings lays them end to end, each at unit length', () => {
    // A large-valued part (3, 4: length 5) and a small one (0.1: length 0.1): both come out at length 1, in order.
    const out = concatEmbeddings([Float32Array.from([3, 4]), [0, 0.1, 0], Float32Array.from([0, 0])]);
    expect(out).toHaveLength(7);
    expect(Array.from(out.slice(0, 5)).map((v) => Number(v.toFixed(6)))).toEqual([0.6, 0.8, 0, 1, 0]);
    // An all-zero part stays zero (no NaN from dividing by its zero length).
    expect(Array.from(out.slice(5))).toEqual([0, 0]);
  });
});
