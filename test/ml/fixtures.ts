/**
 * Generated fixtures for the ML tests: side-view sneaker drawings and tiny TF.js models. Nothing here reads
 * ../shared; every image is drawn from a seed.
 */
import { createCanvas } from '@napi-rs/canvas';
import sharp from 'sharp';
import type * as tfTypes from '@tensorflow/tfjs';
import type { RawImage } from '../../engine/ml/index.ts';
import { toRgb } from '../../engine/ml/preprocess.ts';
import { seededRandom as rng } from '../../engine/random.ts';

/** The project's seeded PRNG (engine/random.ts), under this fixture's name. */
export { rng };

/** Options of {@link drawShoe}. */
export interface ShoeOptions {
  readonly seed: number;
  /** Which way the toe points. */
  readonly toe: 'left' | 'right';
  readonly width?: number;
  readonly height?: number;
  /** Background colour (CSS); default white. */
  readonly background?: string;
  /** Draw a busy floor instead (wooden planks of varying colour, with scattered blobs). */
  readonly busy?: boolean;
  /**
   * Blotches of this second colour on the background (a patterned rug or a stained carpet): most of the border
   * keeps the background colour, so it looks uniform, but the floor is not.
   */
  readonly blotches?: string;
}

/**
 * Draws a side-view sneaker: a flat sole, a tall heel collar at the back, laces descending along a sloped toe
 * line, and a rounded low toe box. Shape, size, position and colours vary with the seed. A left-pointing shoe
 * is the exact mirror image of the right-pointing one with the same seed.
 */
export function drawShoe(opts: ShoeOptions): RawImage {
  const width = opts.width ?? 256;
  const height = opts.height ?? 192;
  const r = rng(opts.seed);
  const canvas = createCanvas(width, height);
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = opts.background ?? '#ffffff';
  ctx.fillRect(0, 0, width, height);
  if (opts.busy === true) {
    const floor = rng(opts.seed + 1000);
    for (let y = 0; y < height; y += 11) {
      ctx.fillStyle = `hsl(${20 + floor() * 20}, ${35 + floor() * 30}%, ${30 + floor() * 30}%)`;
      ctx.fillRect(0, y, width, 11);
    }
    for (let i = 0; i < 25; i++) {
      ctx.fillStyle = `hsla(${floor() * 360}, 50%, ${20 + floor() * 60}%, 0.6)`;
      ctx.beginPath();
      ctx.ellipse(floor() * width, floor() * height, 3 + floor() * 12, 3 + floor() * 8, floor() * 3, 0, Math.PI * 2);
      ctx.fill();
    }
  }
  if (opts.blotches !== undefined) {
    const floor = rng(opts.seed + 2000);
    ctx.fillStyle = opts.blotches;
    for (let i = 0; i < 8; i++) {
      const rx = width * (0.06 + floor() * 0.06);
      const ry = height * (0.06 + floor() * 0.06);
      const cx = floor() * width;
      const cy = floor() * height;
      ctx.beginPath();
      ctx.ellipse(cx, cy, rx, ry, 0, 0, Math.PI * 2);
      ctx.fill();
    }
  }
  if (opts.toe === 'left') {
    ctx.translate(width, 0);
    ctx.scale(-1, 1);
  }
  const length = width * (0.6 + 0.25 * r());
  const x0 = (width - length) * (0.3 + 0.4 * r());
  const ground = height * (0.75 + 0.15 * r());
  const tall = length * (0.32 + 0.15 * r()); // collar height
  const toeHeight = tall * (0.3 + 0.1 * r());
  const px = (u: number): number => x0 + u * length;
  const py = (v: number): number => ground - v * tall;
  const hue = Math.floor(r() * 360);

  // Upper: heel back, collar, lace line sloping down to a rounded toe.
  ctx.fillStyle = `hsl(${hue}, ${40 + r() * 50}%, ${25 + r() * 40}%)`;
  ctx.beginPath();
  ctx.moveTo(px(0.0), py(0.1));
  ctx.lineTo(px(0.0), py(0.85));
  ctx.quadraticCurveTo(px(0.03), py(1.0), px(0.12), py(0.95));
  ctx.lineTo(px(0.3), py(0.8));
  ctx.lineTo(px(0.75), py(toeHeight / tall + 0.12));
  ctx.quadraticCurveTo(px(0.97), py(toeHeight / tall), px(1.0), py(0.12));
  ctx.lineTo(px(1.0), py(0.1));
  ctx.closePath();
  ctx.fill();

  // Sole.
  ctx.fillStyle = `hsl(${(hue + 180) % 360}, 10%, ${70 + r() * 20}%)`;
  ctx.beginPath();
  ctx.moveTo(px(-0.01), py(0.0));
  ctx.lineTo(px(0.97), py(0.0));
  ctx.quadraticCurveTo(px(1.02), py(0.02), px(1.01), py(0.13));
  ctx.lineTo(px(-0.01), py(0.13));
  ctx.closePath();
  ctx.fill();

  // Laces across the lace line and a side stripe.
  ctx.strokeStyle = '#f4f4f4';
  ctx.lineWidth = Math.max(1, length * 0.012);
  for (let i = 0; i < 5; i++) {
    const u = 0.33 + i * 0.08;
    const v = 0.8 - ((0.8 - (toeHeight / tall + 0.12)) * (u - 0.3)) / 0.45;
    ctx.beginPath();
    ctx.moveTo(px(u - 0.02), py(v - 0.05));
    ctx.lineTo(px(u + 0.03), py(v + 0.01));
    ctx.stroke();
  }
  ctx.strokeStyle = `hsl(${(hue + 90) % 360}, 70%, 50%)`;
  ctx.lineWidth = Math.max(1, length * 0.03);
  ctx.beginPath();
  ctx.moveTo(px(0.15), py(0.35));
  ctx.quadraticCurveTo(px(0.5), py(0.15), px(0.8), py(0.3));
  ctx.stroke();

  const rgba = ctx.getImageData(0, 0, width, height).data;
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    rgb[i * 3] = rgba[i * 4]!;
    rgb[i * 3 + 1] = rgba[i * 4 + 1]!;
    rgb[i * 3 + 2] = rgba[i * 4 + 2]!;
  }
  return { data: rgb, width, height, channels: 3 };
}

/** Mirrors a raw RGB image left↔right. */
export function mirrorRaw(img: RawImage): RawImage {
  const c = img.channels ?? 3;
  const out = new Uint8Array(img.data.length);
  for (let y = 0; y < img.height; y++) {
    for (let x = 0; x < img.width; x++) {
      const s = (y * img.width + x) * c;
      const d = (y * img.width + (img.width - 1 - x)) * c;
      for (let k = 0; k < c; k++) out[d + k] = img.data[s + k]!;
    }
  }
  return { data: out, width: img.width, height: img.height, channels: c as 1 | 3 | 4 };
}

/**
 * A tiny conv "backbone": 16×16×3 → conv 1×1 with fixed weights that copy R and G into channels 0 and 1
 * (channel 2 = B) → relu (`feat`) → global average pool (`pool`). Its spatial mean IS the embedding, so
 * CAMs are exact: class k's evidence sits where channel k is bright.
 */
export function tinyConvModel(tf: typeof tfTypes): tfTypes.LayersModel {
  const input = tf.input({ shape: [16, 16, 3] });
  const conv = tf.layers.conv2d({
    filters: 3,
    kernelSize: 1,
    useBias: false,
    name: 'feat',
    activation: 'relu',
    weights: [tf.tensor4d([1, 0, 0, 0, 1, 0, 0, 0, 1], [1, 1, 3, 3])],
  });
  const feat = conv.apply(input) as tfTypes.SymbolicTensor;
  const pooled = tf.layers.globalAveragePooling2d({ name: 'pool' }).apply(feat) as tfTypes.SymbolicTensor;
  return tf.model({ inputs: input, outputs: pooled });
}

/** A 16×16 model input: a red square top-left, a green square bottom-right, black elsewhere. */
export function twoSquares(): Float32Array {
  const s = 16;
  const data = new Float32Array(s * s * 3);
  for (let y = 0; y < s; y++) {
    for (let x = 0; x < s; x++) {
      const p = (y * s + x) * 3;
      if (x < 5 && y < 5) data[p] = 1;
      if (x >= 11 && y >= 11) data[p + 1] = 1;
    }
  }
  return data;
}

/** `img` turned `deg` degrees clockwise on white (the canvas grows to hold it), as a photo taken at an angle. */
export async function turnRaw(img: RawImage, deg: number): Promise<RawImage> {
  const r = await sharp(Buffer.from(toRgb(img)), { raw: { width: img.width, height: img.height, channels: 3 } }).rotate(deg, { background: '#ffffff' }).raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(r.data), width: r.info.width, height: r.info.height, channels: 3 };
}
