import { describe, it, expect } from 'vitest';
import sharp from 'sharp';
import {
  boxIou,
  detectOrientation,
  floodsBackground,
  getTf,
  orientationFigure,
  PREP_VERSION,
  prepCacheKey,
  preprocess,
  toRgb,
  UPRIGHT_MIN_ELONGATION,
  UPRIGHT_RULE,
  UPRIGHT_VERSION,
  uprightEvidence,
  uprightTurn,
} from '../../engine/ml/index.ts';
import { pasteShoePlaced, SHIFT_BACKGROUNDS } from '../../plugins/vision/lib/composite.ts';
import { drawShoe, mirrorRaw, rng, turnRaw } from './fixtures.ts';

const BACKGROUNDS = ['#ffffff', '#d9d9d9', '#f3e9dc', '#9aa0a6'] as const;

describe('orientation normalisation (Canny → Hough → toe-line sign, plus silhouette)', () => {
  it('GIVEN 24 generated left and right shoes on uniform backgrounds THEN every toe direction is detected', async () => {
    const wrong: string[] = [];
    for (let seed = 1; seed <= 12; seed++) {
      for (const toe of ['left', 'right'] as const) {
        const o = await detectOrientation(drawShoe({ seed, toe, background: BACKGROUNDS[seed % 4]! }));
        if (o.toe !== toe) wrong.push(`seed ${seed} ${toe}: ${JSON.stringify(o)}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('GIVEN a left shoe THEN preprocess mirrors it into the right shoe of the same seed', async () => {
    const right = drawShoe({ seed: 21, toe: 'right' });
    const left = mirrorRaw(right);
    const a = await preprocess(right, { size: 64 });
    const b = await preprocess(left, { size: 64 });
    expect(a.mirrored).toBe(false);
    expect(b.mirrored).toBe(true);
    expect(b.orientation.toe).toBe('left');
    expect(a.angle).toBeGreaterThan(0); // the toe line descends to the right (image coordinates)
    expect(b.angle).toBeLessThan(0);
    let maxDiff = 0;
    for (let i = 0; i < a.tensorData.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a.tensorData[i]! - b.tensorData[i]!));
    // Crops of a mirror image can differ by a pixel of rounding at the edges; the content is the same.
    let meanDiff = 0;
    for (let i = 0; i < a.tensorData.length; i++) meanDiff += Math.abs(a.tensorData[i]! - b.tensorData[i]!);
    expect(meanDiff / a.tensorData.length).toBeLessThan(0.02);
  });

  it('GIVEN a left shoe THEN the orientation figure shows edges, voting lines and the mirrored result', async () => {
    const { png, result } = await orientationFigure(drawShoe({ seed: 8, toe: 'left' }), { size: 96 });
    expect(result.mirrored).toBe(true);
    const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([3 * 96 + 8, 96]);
    // Panel 2 holds red (toe-left) vote lines and no green ones.
    let red = 0;
    let green = 0;
    for (let y = 0; y < 96; y++) {
      for (let x = 100; x < 196; x++) {
        const p = (y * info.width + x) * info.channels;
        if (data[p]! > 200 && data[p + 1]! < 40 && data[p + 2]! < 40) red++;
        if (data[p + 1]! > 180 && data[p]! < 40 && data[p + 2]! < 40) green++;
      }
    }
    expect(red).toBeGreaterThan(green);
    expect(red).toBeGreaterThan(10);
  });

  it('GIVEN orient: false THEN nothing is mirrored but the evidence is still reported', async () => {
    const r = await preprocess(drawShoe({ seed: 3, toe: 'left' }), { size: 32, orient: false });
    expect(r.mirrored).toBe(false);
    expect(r.orientation.toe).toBe('left');
  });
});

describe('background handling and framing', () => {
  it('GIVEN a product shot on a light backdrop THEN the backdrop is flood-filled (exact) and cropped', async () => {
    for (const background of ['#ffffff', '#f3e9dc']) {
      const img = drawShoe({ seed: 7, toe: 'right', background, width: 300, height: 200 });
      const r = await preprocess(img, { size: 64 });
      expect(r.background).toBe('uniform');
      expect(r.bbox.width).toBeLessThan(300);
    }
  });

  it('GIVEN a shoe on a uniform grey floor THEN GrabCut crops it to its box with margin and the floor turns white', async () => {
    const img = drawShoe({ seed: 7, toe: 'right', background: '#9aa0a6', width: 300, height: 200 });
    const r = await preprocess(img, { size: 96 });
    // Only light uniform borders count as studio backdrops; a grey floor goes through GrabCut.
    expect(r.background).toBe('segmented');
    expect(r.backgroundColor).toEqual([154, 160, 166]);
    expect(r.tensorData).toHaveLength(96 * 96 * 3);
    expect(r.size).toBe(96);
    // The box hugs the drawn shoe: narrower than the canvas, and the square crop contains it.
    expect(r.bbox.width).toBeLessThan(300);
    expect(r.bbox.width).toBeGreaterThan(150);
    expect(r.crop.width).toBe(r.crop.height);
    expect(r.crop.x).toBeLessThanOrEqual(r.bbox.x);
    expect(r.crop.x + r.crop.width).toBeGreaterThanOrEqual(r.bbox.x + r.bbox.width);
    // Corners were floor (or padding): now white. The centre row holds the shoe: not all white.
    for (const p of [0, 95, 95 * 96, 96 * 96 - 1]) {
      expect([r.tensorData[p * 3], r.tensorData[p * 3 + 1], r.tensorData[p * 3 + 2]]).toEqual([1, 1, 1]);
    }
    let dark = 0;
    for (let x = 0; x < 96; x++) if (r.tensorData[(60 * 96 + x) * 3]! < 0.9) dark++;
    expect(dark).toBeGreaterThan(30);
    for (const v of r.tensorData) expect(v >= 0 && v <= 1).toBe(true);
  });

  it('GIVEN a shoe on a blotched carpet (uniform border, patchy floor) THEN the crop hugs the shoe, not the blotches', async () => {
    const ious: number[] = [];
    const kinds: string[] = [];
    for (let seed = 1; seed <= 4; seed++) {
      // The same shoe on white gives the exact box (flood fill).
      const truth = (await preprocess(drawShoe({ seed, toe: 'right', width: 300, height: 200 }), { size: 32 })).bbox;
      const img = drawShoe({ seed, toe: 'right', width: 300, height: 200, background: '#7d6b5a', blotches: '#3f5f7f' });
      const r = await preprocess(img, { size: 32 });
      kinds.push(r.background);
      ious.push(boxIou(r.bbox, truth));
    }
    // A flood fill from the border colour keeps every blotch as "object" and frames much of the floor (box
    // IoU 0.39–0.57 on these four); GrabCut models both floor colours (0.96–0.99).
    expect(kinds).toEqual(['segmented', 'segmented', 'segmented', 'segmented']);
    expect(Math.min(...ious)).toBeGreaterThan(0.85);
    // floodAnyUniform (training-only "remnants") restores the flood fill, blotches and all, under its own key.
    const img = drawShoe({ seed: 1, toe: 'right', width: 300, height: 200, background: '#7d6b5a', blotches: '#3f5f7f' });
    const remnant = await preprocess(img, { size: 32, floodAnyUniform: true });
    expect(remnant.background).toBe('uniform');
    const segmented = await preprocess(img, { size: 32 });
    expect(remnant.bbox.width * remnant.bbox.height).toBeGreaterThan(segmented.bbox.width * segmented.bbox.height);
    expect(prepCacheKey({ size: 32, floodAnyUniform: true })).not.toBe(prepCacheKey({ size: 32 }));
  });

  it('GIVEN crop: false THEN the whole image is kept (padded square) and the floor colour stays', async () => {
    const img = drawShoe({ seed: 7, toe: 'right', background: '#9aa0a6', width: 300, height: 200 });
    const r = await preprocess(img, { size: 60, crop: false });
    expect(r.bbox).toEqual({ x: 0, y: 0, width: 300, height: 200 });
    expect(r.crop).toEqual({ x: 0, y: -50, width: 300, height: 300 });
    // Row 30 of 60 is inside the image (rows 10..50): floor grey, not white.
    expect(r.tensorData[(30 * 60 + 1) * 3]).toBeCloseTo(154 / 255, 1);
    // Row 2 is padding: white.
    expect(r.tensorData[(2 * 60 + 1) * 3]).toBe(1);
  });

  it('GIVEN shoes on a busy floor THEN GrabCut finds them: segmented, cropped, whitened, oriented', async () => {
    const wrong: string[] = [];
    for (let seed = 1; seed <= 5; seed++) {
      for (const toe of ['left', 'right'] as const) {
        const img = drawShoe({ seed, toe, busy: true });
        const r = await preprocess(img, { size: 64 });
        if (r.orientation.toe !== toe) wrong.push(`seed ${seed} ${toe}: ${JSON.stringify(r.orientation)}`);
        if (r.background !== 'segmented') wrong.push(`seed ${seed} ${toe}: background ${r.background}`);
        else if (r.bbox.width >= img.width) wrong.push(`seed ${seed} ${toe}: not cropped`);
      }
    }
    expect(wrong).toEqual([]);
    // Deterministic even though GrabCut uses a random initialisation.
    const img = drawShoe({ seed: 4, toe: 'left', busy: true });
    const a = await preprocess(img, { size: 32 });
    await preprocess(drawShoe({ seed: 9, toe: 'right', busy: true }), { size: 32 });
    const b = await preprocess(img, { size: 32 });
    expect(Array.from(b.tensorData)).toEqual(Array.from(a.tensorData));
  });

  it('GIVEN a small shoe on a busy shelf THEN GrabCut from the frame misses it and an object hint finds it', async () => {
    const misses: number[] = [];
    const finds: number[] = [];
    const kinds = new Set<string>();
    for (let seed = 1; seed <= 4; seed++) {
      const placed = await pasteShoePlaced(drawShoe({ seed, toe: 'right', width: 200, height: 150 }), SHIFT_BACKGROUNDS.busy, rng(seed), { scale: [0.35, 0.45] });
      misses.push(boxIou((await preprocess(placed.image, { size: 32 })).bbox, placed.box));
      // The hint a localiser gives is rough: grow the true box by 15 % and shift it.
      const b = placed.box;
      const hint = { x: b.x - b.width * 0.1, y: b.y - b.height * 0.2, width: b.width * 1.15, height: b.height * 1.15 };
      const r = await preprocess(placed.image, { size: 32, objectHint: hint });
      kinds.add(r.background);
      finds.push(boxIou(r.bbox, placed.box));
    }
    // GrabCut started from the whole frame keeps the shelf (IoU 0.06–0.09); from the rough hint (IoU 0.69) it
    // ends on the shoe (0.59–0.91).
    expect(Math.max(...misses)).toBeLessThan(0.3);
    expect(Math.min(...finds)).toBeGreaterThan(0.5);
    expect(finds.reduce((a, v) => a + v, 0) / finds.length).toBeGreaterThan(0.65);
    for (const k of kinds) expect(['segmented', 'located']).toContain(k);
  });

  it('GIVEN an object hint that GrabCut disagrees with THEN the hint box is the object (located); on a studio shot it is ignored', async () => {
    const placed = await pasteShoePlaced(drawShoe({ seed: 1, toe: 'right', width: 200, height: 150 }), SHIFT_BACKGROUNDS.busy, rng(1), { scale: [0.35, 0.45] });
    const r = await preprocess(placed.image, { size: 32, objectHint: placed.box });
    expect(r.background).toBe('located');
    // The crop is the hint's box (analysis pixels, scaled back: within a couple of pixels).
    expect(Math.abs(r.bbox.x - placed.box.x)).toBeLessThanOrEqual(3);
    expect(Math.abs(r.bbox.width - placed.box.width)).toBeLessThanOrEqual(4);
    // A hint outside the frame is no hint.
    const outside = await preprocess(placed.image, { size: 32, objectHint: { x: 900, y: 900, width: 50, height: 50 } });
    expect(outside.tensorData).toEqual((await preprocess(placed.image, { size: 32 })).tensorData);
    const studio = drawShoe({ seed: 5, toe: 'right' });
    expect(await floodsBackground(studio)).toBe(true);
    expect(await floodsBackground(placed.image)).toBe(false);
    const plain = await preprocess(studio, { size: 32 });
    const hinted = await preprocess(studio, { size: 32, objectHint: { x: 0, y: 0, width: 20, height: 20 } });
    expect(hinted.tensorData).toEqual(plain.tensorData);
    expect(hinted.background).toBe('uniform');
  });

  it('GIVEN a busy background and segment: false THEN it is neither whitened nor cropped', async () => {
    const w = 120;
    const h = 90;
    const data = new Uint8Array(w * h * 3);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7919) % 251; // deterministic noise
    const r = await preprocess({ data, width: w, height: h }, { size: 40, segment: false });
    expect(r.background).toBe('busy');
    expect(r.bbox).toEqual({ x: 0, y: 0, width: w, height: h });
    const floor = drawShoe({ seed: 2, toe: 'right', busy: true });
    const kept = await preprocess(floor, { size: 40, segment: false });
    expect(kept.background).toBe('busy');
    expect(kept.bbox).toEqual({ x: 0, y: 0, width: floor.width, height: floor.height });
  });

  it('GIVEN RGBA, grayscale and tiny inputs THEN they are accepted; bad sizes are BAD_INPUT', async () => {
    const rgba = new Uint8Array(4 * 4 * 4).fill(0);
    expect(Array.from(toRgb({ data: rgba, width: 4, height: 4, channels: 4 }).subarray(0, 3))).toEqual([255, 255, 255]);
    const gray = await preprocess({ data: new Uint8Array(10 * 8).fill(30), width: 10, height: 8, channels: 1 }, { size: 16 });
    expect(gray.tensorData).toHaveLength(16 * 16 * 3);
    const one = await preprocess({ data: new Uint8Array([10, 20, 30]), width: 1, height: 1 }, { size: 8 });
    expect(one.orientation.toe).toBe('unknown');
    await expect(preprocess({ data: new Uint8Array(5), width: 2, height: 2 }, { size: 16 })).rejects.toMatchObject({
      code: 'BAD_INPUT',
    });
    await expect(preprocess({ data: new Uint8Array(0), width: 0, height: 0 }, { size: 16 })).rejects.toMatchObject({
      code: 'BAD_INPUT',
    });
    await expect(preprocess({ data: new Uint8Array(12), width: 2, height: 2 }, { size: 4 })).rejects.toMatchObject({
      code: 'BAD_INPUT',
    });
  });

  it('GIVEN the same image twice THEN the output is identical; it creates no tensors', async () => {
    const tf = await getTf();
    const before = tf.memory().numTensors;
    const img = drawShoe({ seed: 33, toe: 'left', background: '#f3e9dc' });
    const a = await preprocess(img, { size: 48 });
    const b = await preprocess(img, { size: 48 });
    expect(Array.from(a.tensorData)).toEqual(Array.from(b.tensorData));
    expect(tf.memory().numTensors).toBe(before);
    expect(prepCacheKey({ size: 224 })).toBe(`p${PREP_VERSION}-224-o1c1s1`);
    expect(prepCacheKey({ size: 299, orient: false, crop: false })).toBe(`p${PREP_VERSION}-299-o0c0s1`);
  });
});

/** Object pixels (darker or more colourful than near-white) of a model input, as a mask. */
function objectMask(t: Float32Array): Uint8Array {
  const m = new Uint8Array(t.length / 3);
  for (let i = 0; i < m.length; i++) m[i] = Math.min(t[i * 3]!, t[i * 3 + 1]!, t[i * 3 + 2]!) < 0.9 ? 1 : 0;
  return m;
}

function maskIou(a: Uint8Array, b: Uint8Array): number {
  let inter = 0;
  let union = 0;
  for (let i = 0; i < a.length; i++) {
    inter += a[i]! & b[i]!;
    union += a[i]! | b[i]!;
  }
  return union === 0 ? 0 : inter / union;
}

/** A filled ellipse (radii `rx`, `ry`, turned by `rotation` radians) centred on a white `w`×`h` RGBA image. */
async function drawEllipse(w: number, h: number, rx: number, ry: number, rotation: number, colour: string): Promise<{ data: Uint8Array; width: number; height: number; channels: 4 }> {
  const { createCanvas } = await import('@napi-rs/canvas');
  const canvas = createCanvas(w, h);
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, w, h);
  ctx.fillStyle = colour;
  ctx.beginPath();
  ctx.ellipse(w / 2, h / 2, rx, ry, rotation, 0, Math.PI * 2);
  ctx.fill();
  return { data: new Uint8Array(ctx.getImageData(0, 0, w, h).data), width: w, height: h, channels: 4 };
}

/** Smallest difference of two angles in degrees (0..180). */
const angleGap = (a: number, b: number): number => Math.abs((((a - b) % 360) + 540) % 360 - 180);

describe('upright step (long axis level, sole down)', () => {
  it('GIVEN generated shoes turned 45°, 90°, 135°, 180°+50° and −60° THEN each is turned back and looks like the untouched shoe', async () => {
    const problems: string[] = [];
    for (let seed = 1; seed <= 4; seed++) {
      const shoe = drawShoe({ seed, toe: seed % 2 === 0 ? 'left' : 'right' });
      const reference = await preprocess(shoe, { size: 64, orient: false, upright: true });
      expect(reference.rotation).toBe(0);
      expect(reference.frame).toBeUndefined();
      for (const deg of [45, 90, 135, 230, -60]) {
        const r = await preprocess(await turnRaw(shoe, deg), { size: 64, orient: false, upright: true });
        // sharp turns clockwise, the step counter-clockwise (OpenCV): turning back by the same number of degrees.
        if (angleGap(r.rotation, deg) > 3) problems.push(`seed ${seed} ${deg}°: turned ${r.rotation}°`);
        const iou = maskIou(objectMask(r.tensorData), objectMask(reference.tensorData));
        if (iou < 0.8) problems.push(`seed ${seed} ${deg}°: silhouette IoU ${iou.toFixed(2)} with the untouched shoe`);
        expect(r.frame).toHaveLength(6);
      }
    }
    expect(problems).toEqual([]);
  });

  it('GIVEN a shoe within the studio tilt, a round object, or upright off THEN nothing turns and the output is the same as without the step', async () => {
    const shoe = drawShoe({ seed: 5, toe: 'right' });
    for (const img of [shoe, await turnRaw(shoe, 15), await turnRaw(shoe, -20)]) {
      const plain = await preprocess(img, { size: 48, orient: false });
      const up = await preprocess(img, { size: 48, orient: false, upright: true });
      expect(up.rotation).toBe(0);
      expect(Array.from(up.tensorData)).toEqual(Array.from(plain.tensorData));
    }
    // A disc has no long axis to level.
    const evidence = await uprightEvidence(await drawEllipse(120, 100, 30, 26, 0.9, '#c03'));
    expect(evidence.axis!.elongation).toBeLessThan(UPRIGHT_MIN_ELONGATION);
    expect(evidence.turn).toBe(0);
    // Off by default: a turned shoe stays turned.
    expect((await preprocess(await turnRaw(shoe, 60), { size: 48 })).rotation).toBe(0);
    expect(prepCacheKey({ size: 299, orient: false, upright: true })).toBe(`p${PREP_VERSION}-299-o0c1s1r${UPRIGHT_VERSION}`);
  });

  it('GIVEN upright shoes THEN the evidence finds the sole at the bottom and the sole level; turned upside down, at the top', async () => {
    for (let seed = 6; seed <= 9; seed++) {
      const shoe = drawShoe({ seed, toe: 'right', background: BACKGROUNDS[seed % 4]! });
      const up = await uprightEvidence(shoe);
      expect(up.axis!.elongation).toBeGreaterThan(UPRIGHT_MIN_ELONGATION);
      expect(up.axis!.sole).toBeGreaterThan(0.3);
      expect(Math.abs(up.axis!.angle + up.axis!.tilt)).toBeLessThan(3);
      const down = await uprightEvidence(await turnRaw(shoe, 180));
      expect(down.axis!.sole).toBeLessThan(-0.3);
      // Level but standing on its collar, with a clear sole: turned over (never, with flipping off).
      expect(angleGap(down.turn, 180)).toBeLessThan(5);
      expect(uprightTurn(down.axis!, { ...UPRIGHT_RULE, flipSole: null })).toBe(0);
    }
    // A level, elongated silhouette with no straighter edge (an ellipse: nothing says which side is the sole) stays.
    const ellipse = await uprightEvidence(await drawEllipse(200, 100, 80, 30, 0, '#238'));
    expect(ellipse.axis!.elongation).toBeGreaterThan(UPRIGHT_MIN_ELONGATION);
    expect(ellipse.turn).toBe(0);
  });

  it('GIVEN a small turned shoe that the localiser\'s box frames (GrabCut\'s object too small for the frame) THEN it is still turned back and framed tightly', async () => {
    const shoe = drawShoe({ seed: 12, toe: 'right', width: 120, height: 90 });
    const turned = await turnRaw(shoe, 55);
    // A 480×480 grey wall with the shoe in one corner: its object is ~1 % of the frame, below what GrabCut is
    // believed for on its own, so the box is the object (`located`).
    const placed = await pasteShoePlaced(turned, SHIFT_BACKGROUNDS.grey, rng(5), { width: 480, height: 480, scale: [0.35, 0.36], mirror: 0 });
    const pad = 6;
    const hint = { x: placed.box.x - pad, y: placed.box.y - pad, width: placed.box.width + 2 * pad, height: placed.box.height + 2 * pad };
    const r = await preprocess(placed.image, { size: 64, orient: false, upright: true, objectHint: hint });
    expect(r.background).toBe('located');
    expect(angleGap(r.rotation, 55)).toBeLessThan(8);
    // Framed on the turned shoe, not on the turned box (a diamond twice its size).
    const level = await preprocess(await pasteShoePlaced(shoe, SHIFT_BACKGROUNDS.grey, rng(5), { width: 480, height: 480, scale: [0.35, 0.36], mirror: 0 }).then((p) => p.image), { size: 64, orient: false });
    expect(r.crop.width).toBeLessThan(1.4 * level.crop.width);
  });

  it('GIVEN a turned shoe on a grey floor THEN GrabCut finds it, it is turned back, and frame maps its pixels into the box', async () => {
    const shoe = drawShoe({ seed: 11, toe: 'right', width: 200, height: 150 });
    const turned = await turnRaw(shoe, 70);
    const placed = await pasteShoePlaced(turned, SHIFT_BACKGROUNDS.grey, rng(4), { scale: [0.5, 0.6], mirror: 0 });
    const r = await preprocess(placed.image, { size: 64, orient: false, upright: true });
    expect(r.background).toBe('segmented');
    expect(angleGap(r.rotation, 70)).toBeLessThan(6);
    const [a, b, c, d, e, f] = r.frame as number[];
    let inside = 0;
    let total = 0;
    for (let y = 0; y < placed.image.height; y++) {
      for (let x = 0; x < placed.image.width; x++) {
        if (placed.mask[y * placed.image.width + x] !== 1) continue;
        total++;
        const fx = a! * (x + 0.5) + b! * (y + 0.5) + c!;
        const fy = d! * (x + 0.5) + e! * (y + 0.5) + f!;
        if (fx >= r.bbox.x - 2 && fx <= r.bbox.x + r.bbox.width + 2 && fy >= r.bbox.y - 2 && fy <= r.bbox.y + r.bbox.height + 2) inside++;
      }
    }
    expect(inside / total).toBeGreaterThan(0.95);
  });
});
