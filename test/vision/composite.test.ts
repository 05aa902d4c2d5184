import { describe, it, expect } from 'vitest';
import { borderMatte, pasteShoe, pasteShoePlaced, SHIFT_BACKGROUNDS, sceneComposite, sceneCompositePlaced, TRAINING_SCENES, type BackgroundFn } from '../../plugins/vision/lib/composite.ts';
import { embedItems, prepareInput, prepKey, SCENE_VERSION, variantOf } from '../../plugins/vision/lib/features.ts';
import { decodeBytes } from '../../plugins/vision/lib/input.ts';
import { seededRandom } from '../../engine/random.ts';
import { openStore } from '../../engine/store/index.ts';
import type { Backbone } from '../../engine/ml/backbones.ts';
import { PREP_VERSION } from '../../engine/ml/preprocess.ts';
import type { RawImage } from '../../engine/ml/types.ts';
import { drawShoe } from './fixtures.ts';

const solid =
  (rgb: [number, number, number]): BackgroundFn =>
  (w, h) => {
    const out = new Uint8Array(w * h * 3);
    for (let i = 0; i < w * h; i++) out.set(rgb, i * 3);
    return out;
  };

const shoe = async (upper = '#c92a2a'): Promise<RawImage> => (await decodeBytes(await drawShoe({ upper, size: 160 }))).raw;

function countColour(img: RawImage, rgb: readonly number[], tol = 2): number {
  let n = 0;
  for (let i = 0; i < img.width * img.height; i++) {
    if (Math.abs(img.data[i * 3]! - rgb[0]!) <= tol && Math.abs(img.data[i * 3 + 1]! - rgb[1]!) <= tol && Math.abs(img.data[i * 3 + 2]! - rgb[2]!) <= tol) n++;
  }
  return n;
}

describe('scene compositing', () => {
  it('GIVEN white enclosed by a dark ring THEN the matte keeps it (soles and white panels stay part of the shoe)', () => {
    const w = 9;
    const h = 9;
    const rgb = new Uint8Array(w * h * 3).fill(255);
    for (let y = 2; y <= 6; y++) for (let x = 2; x <= 6; x++) if (y === 2 || y === 6 || x === 2 || x === 6) rgb.fill(0, (y * w + x) * 3, (y * w + x) * 3 + 3);
    const matte = borderMatte(rgb, w, h);
    expect(matte[0]).toBe(1);
    expect(matte[4 * w + 4]).toBe(0); // white, but enclosed by the ring
    expect(matte[2 * w + 2]).toBe(0); // the ring itself
    expect([...matte].filter((v) => v === 1)).toHaveLength(w * h - 25);
  });

  it('GIVEN pasteShoePlaced THEN its box is exactly where the background was painted over (the ground truth of eval-segment)', async () => {
    const raw = await shoe();
    for (const seed of [1, 2, 3]) {
      const bg = [20, 160, 40] as const;
      const { image, box } = await pasteShoePlaced(raw, solid([...bg]), seededRandom(seed), { width: 200, height: 150 });
      // The box of every pixel that is no longer background colour.
      let x0 = Infinity;
      let y0 = Infinity;
      let x1 = -1;
      let y1 = -1;
      for (let y = 0; y < image.height; y++) {
        for (let x = 0; x < image.width; x++) {
          const p = (y * image.width + x) * 3;
          if (image.data[p] === bg[0] && image.data[p + 1] === bg[1] && image.data[p + 2] === bg[2]) continue;
          x0 = Math.min(x0, x);
          y0 = Math.min(y0, y);
          x1 = Math.max(x1, x + 1);
          y1 = Math.max(y1, y + 1);
        }
      }
      expect(box).toEqual({ x: x0, y: y0, width: x1 - x0, height: y1 - y0 });
      // Same random stream, same picture as pasteShoe.
      expect(Buffer.from((await pasteShoe(raw, solid([...bg]), seededRandom(seed), { width: 200, height: 150 })).data).equals(Buffer.from(image.data))).toBe(true);
    }
    // The shift test's backgrounds are not training scenes.
    for (const name of Object.keys(SHIFT_BACKGROUNDS)) expect(Object.keys(TRAINING_SCENES)).not.toContain(name);
  });

  it('GIVEN rotate THEN the shoe lands turned: a wide shoe turned 90° is tall, and the turn leaves no white corners', async () => {
    const raw = await shoe();
    const flat = await pasteShoePlaced(raw, solid([20, 160, 40]), seededRandom(5), { width: 300, height: 300, mirror: 0 });
    const turned = await pasteShoePlaced(raw, solid([20, 160, 40]), seededRandom(5), { width: 300, height: 300, mirror: 0, rotate: 90 });
    expect(flat.box.width).toBeGreaterThan(flat.box.height * 1.3);
    expect(turned.box.height).toBeGreaterThan(turned.box.width * 1.3);
    // The corners the turn opened were white like the backdrop, so the matte dropped them: no more white is
    // pasted than the shoe's own (its laces), give or take the turn's resampling.
    expect(countColour(turned.image, [255, 255, 255], 4)).toBeLessThan(countColour(flat.image, [255, 255, 255], 4) * 1.5 + 20);
  });

  it('GIVEN a studio shot THEN the shoe lands on the background, smaller, its white surroundings replaced', async () => {
    const raw = await shoe();
    const out = await pasteShoe(raw, solid([20, 160, 40]), seededRandom(5), { width: 200, height: 150, scale: [0.5, 0.5], mirror: 0 });
    expect([out.width, out.height, out.data.length]).toEqual([200, 150, 200 * 150 * 3]);
    const green = countColour(out, [20, 160, 40]);
    // Most of the frame is background; the shoe (red upper) is there; no studio white is left around it.
    expect(green).toBeGreaterThan(0.5 * 200 * 150);
    expect(countColour(out, [0xc9, 0x2a, 0x2a], 12)).toBeGreaterThan(200);
    expect(countColour(out, [255, 255, 255], 10)).toBeLessThan(0.05 * 200 * 150);
    // With a shadow, some background pixels get darker than the background, none lighter.
    const shadowed = await pasteShoe(raw, solid([200, 200, 200]), seededRandom(5), { width: 200, height: 150, scale: [0.5, 0.5], mirror: 0, shadow: true });
    const plain = await pasteShoe(raw, solid([200, 200, 200]), seededRandom(5), { width: 200, height: 150, scale: [0.5, 0.5], mirror: 0 });
    expect(countColour(shadowed, [200, 200, 200], 0)).toBeLessThan(countColour(plain, [200, 200, 200], 0));
    // The pair: a second, mirrored shoe beside the first — more shoe, less background.
    const pair = await pasteShoe(raw, solid([200, 200, 200]), seededRandom(5), { width: 200, height: 150, scale: [0.5, 0.5], mirror: 0, pair: true });
    const upper = (img: RawImage): number => countColour(img, [0xc9, 0x2a, 0x2a], 12);
    expect(upper(pair)).toBeGreaterThan(1.2 * upper(plain));
  });

  it('GIVEN worn THEN a trouser leg comes down from the top of the frame onto the collar (the heel end), over the same placement; leg pixels are not shoe', async () => {
    const raw = await shoe();
    const bg = [20, 160, 40] as const;
    const opts = { width: 240, height: 200, scale: [0.6, 0.6] as [number, number] };
    for (const [seed, mirror] of [[3, 0], [4, 1]] as const) {
      const plain = await pasteShoePlaced(raw, solid([...bg]), seededRandom(seed), { ...opts, mirror });
      const worn = await pasteShoePlaced(raw, solid([...bg]), seededRandom(seed), { ...opts, mirror, worn: true });
      const W = 240;
      const changed = (x: number, y: number): boolean => {
        const p = (y * W + x) * 3;
        return [0, 1, 2].some((c) => worn.image.data[p + c] !== plain.image.data[p + c]);
      };
      // The leg reaches the top row of the frame, above the shoe, and nowhere below the shoe's box.
      const topRow = Array.from({ length: W }, (_, x) => x).filter((x) => changed(x, 0));
      expect(topRow.length).toBeGreaterThan(5);
      const { box } = plain;
      for (let y = box.y + box.height; y < 200; y++) for (let x = 0; x < W; x++) expect(changed(x, y)).toBe(false);
      // Over the shoe, the leg covers the collar: the heel end (the fixture's heel is on the left; mirror 1 flips it).
      let sumX = 0;
      let n = 0;
      for (let y = box.y; y < box.y + box.height; y++) {
        for (let x = box.x; x < box.x + box.width; x++) {
          if (!changed(x, y) || !plain.mask[y * W + x]) continue;
          sumX += x;
          n++;
          expect(worn.mask[y * W + x]).toBe(0);
        }
      }
      expect(n).toBeGreaterThan(20);
      const along = (sumX / n - box.x) / box.width;
      if (mirror === 0) expect(along).toBeLessThan(0.5);
      else expect(along).toBeGreaterThan(0.5);
      // The shoe's own pixels elsewhere are untouched, so the mask shrank by the leg only.
      expect(worn.box).toEqual(plain.box);
    }
  });

  it('GIVEN a tall image on a landscape frame THEN it is shrunk to fit, not squashed', async () => {
    const tall: RawImage = { data: new Uint8Array(40 * 200 * 3).fill(30), width: 40, height: 200, channels: 3 };
    const out = await pasteShoe(tall, solid([250, 0, 0]), seededRandom(1), { width: 320, height: 240, scale: [0.9, 0.9] });
    const dark = countColour(out, [30, 30, 30], 3);
    // Fit to the height: 236 px tall, 47 px wide (the 1:5 aspect kept).
    expect(dark).toBeGreaterThan(236 * 47 * 0.9);
    expect(dark).toBeLessThan(236 * 47 * 1.1);
  });

  it('GIVEN one scene seed THEN each image gets its own scene, deterministically; every training scene draws', async () => {
    const red = await shoe('#c92a2a');
    const blue = await shoe('#1c7ed6');
    const a1 = await sceneComposite(red, 0);
    const a2 = await sceneComposite(red, 0);
    expect(a1.data).toEqual(a2.data);
    expect(a1.data).not.toEqual((await sceneComposite(red, 1)).data);
    // Different pixels, same seed: a different scene or placement (the blue shoe is not just the red one recoloured).
    const b = await sceneComposite(blue, 0);
    const sameBackground = [0, 1, 2].every((c) => a1.data[c] === b.data[c]) && a1.width === b.width;
    expect(sameBackground).toBe(false);
    for (const [name, fn] of Object.entries(TRAINING_SCENES)) {
      const bg = fn(64, 48, seededRandom(name.length));
      expect(bg).toHaveLength(64 * 48 * 3);
      // Not a flat colour, not blank.
      expect(new Set(bg).size, name).toBeGreaterThan(8);
    }
  });

  it('GIVEN training scenes THEN about a third are worn, and forcing the leg off gives the same scene without it', async () => {
    const raw = await shoe();
    let worn = 0;
    for (let seed = 0; seed < 30; seed++) {
      const scene = await sceneCompositePlaced(raw, seed);
      const bare = await sceneCompositePlaced(raw, seed, { worn: false });
      expect(bare.worn).toBe(false);
      if (!scene.worn) {
        // Scenes that are not worn are exactly the scenes from before legs were added to training.
        expect(scene.image.data).toEqual(bare.image.data);
        continue;
      }
      worn++;
      const W = scene.image.width;
      const changed = (i: number): boolean => [0, 1, 2].some((c) => scene.image.data[i * 3 + c] !== bare.image.data[i * 3 + c]);
      // The leg comes down from the top row; nothing changes below the shoe and its contact shadow (whose
      // strength may differ: with the pair, the other shoe's leg draws from the same stream first); same box.
      expect(Array.from({ length: W }, (_, x) => x).some((x) => changed(x))).toBe(true);
      const below = scene.box.y + scene.box.height + Math.ceil(scene.box.height * 0.3) + 4;
      for (let i = below * W; i < W * scene.image.height; i++) expect(changed(i)).toBe(false);
      expect(scene.box).toEqual(bare.box);
      // Leg pixels are not shoe in the mask the localiser learns from.
      expect(scene.mask.reduce((a, v) => a + v, 0)).toBeLessThan(bare.mask.reduce((a, v) => a + v, 0));
    }
    expect(worn).toBeGreaterThanOrEqual(4);
    expect(worn).toBeLessThanOrEqual(16);
    // Sixty full-size scenes: about 30 s with a core to itself, past the default 60 s when the machine is busy.
  }, 180_000);

  it('GIVEN a scene variant THEN it has its own cache key and its input differs from the studio shot', async () => {
    const raw = await shoe();
    const spec = { trim: false, flipAverage: false, l2: true, normalise: true };
    expect(prepKey({ ...variantOf(spec, false), scene: 2 })).toBe(`vprep-1+norm${PREP_VERSION}+scene${SCENE_VERSION}.2`);
    const studio = await prepareInput(raw, 48, variantOf(spec, false));
    const scene = await prepareInput(raw, 48, { ...variantOf(spec, false), scene: 2 });
    expect(scene).toHaveLength(48 * 48 * 3);
    expect(scene).toEqual(await prepareInput(raw, 48, { ...variantOf(spec, false), scene: 2 }));
    expect(scene).not.toEqual(studio);

    // embedItems with a scene seed caches under the scene key, separately from the plain view.
    const seen: Float32Array[] = [];
    const backbone = {
      name: 'probe',
      inputSize: 48,
      embedImages: async (inputs: readonly Float32Array[]) => inputs.map((x) => (seen.push(x), Float32Array.from([x[0]!, x[x.length - 1]!]))),
    } as unknown as Backbone;
    const store = await openStore({ url: ':memory:' });
    try {
      const items = [{ sha256: 'a'.repeat(64), load: async () => raw }];
      const [v] = await embedItems(backbone, items, spec, { store, scene: 2 });
      expect(seen[0]).toEqual(scene);
      const cached = await store.embeddings.getMany(['a'.repeat(64)], 'probe', `vprep-1+norm${PREP_VERSION}+scene${SCENE_VERSION}.2`);
      expect(cached.get('a'.repeat(64))).toEqual(v);
      expect((await store.embeddings.getMany(['a'.repeat(64)], 'probe', `vprep-1+norm${PREP_VERSION}`)).size).toBe(0);
      await embedItems(backbone, items, spec, { store, scene: 2 });
      expect(seen).toHaveLength(1); // the second call is served from the cache
      // Floor remnants (training-only normalisation) are another view: their own key, embedded anew.
      await embedItems(backbone, items, spec, { store, scene: 2, remnants: true });
      expect(seen).toHaveLength(2);
      expect(seen[1]).toEqual(await prepareInput(raw, 48, { ...variantOf(spec, false), scene: 2, remnants: true }));
      expect((await store.embeddings.getMany(['a'.repeat(64)], 'probe', `vprep-1+norm${PREP_VERSION}+rem+scene${SCENE_VERSION}.2`)).size).toBe(1);
    } finally {
      await store.close();
    }
  });
});
