/**
 * The shoe localiser: where is the shoe in a photo that is not a studio shot?
 *
 * The normaliser (engine/ml/preprocess) finds the shoe by flood fill on a studio backdrop and by GrabCut
 * elsewhere. GrabCut starts from "everything but a thin frame is object", so on a busy scene (a shop shelf, a
 * cluttered room) with a small, off-centre shoe it frames the clutter (box IoU 0.24 on the busy shift
 * background: scripts/eval-segment.ts). The backbone already knows what a shoe looks like: this module reads
 * a mid-level feature map over the whole photo (InceptionV3 `mixed5`: 17×17 cells of 768 channels; the last
 * map, `mixed10`, has 8×8 cells, too coarse for a box) and scores each cell with a logistic regression — 768
 * weights, trained on shoes pasted onto the generated training scenes (`scripts/train-localiser.ts`), where we
 * know every shoe pixel. The cells that score high give the shoe's box, which the normaliser then uses as GrabCut's starting
 * rectangle (`objectHint`).
 *
 * The model file is small JSON (`assets/models/localiser-<backbone>.json`): the layer, per-channel mean/std,
 * weights, bias and the decision threshold chosen on held-out composites.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { z } from 'zod';
import { EngineError } from '../../../engine/errors.ts';
import { isBackboneName, pretrainedOf, type FeatureExtractor } from '../../../engine/ml/backbones.ts';
import { layerActivations } from '../../../engine/ml/cam.ts';
import { floodsBackground } from '../../../engine/ml/preprocess.ts';
import { readModelFile } from './model-file.ts';
import type { Box, RawImage } from '../../../engine/ml/types.ts';

/**
 * Version of the shipped localisers, part of the cache key of every embedding computed with one: bump it when
 * a shipped localiser file changes, so cached embeddings are not reused.
 */
export const LOCALISER_VERSION = 1;

/** The format tag of a localiser file. */
export const LOCALISER_FORMAT = 'solescope-localiser-1';

/** A trained localiser (the JSON file's content). */
export interface LocaliserModel {
  readonly format: typeof LOCALISER_FORMAT;
  /** Backbone whose features it reads (`inception_v3`, `mobilenet_v2`). */
  readonly backbone: string;
  /** The feature layer (`mixed5`, `block_13_expand_relu`). */
  readonly layer: string;
  /** The backbone's input side: the photo is letterboxed to it. */
  readonly inputSize: number;
  /** Cells per side of the layer's map (17 for `mixed5` at 299). */
  readonly grid: number;
  /** Per-channel standardisation learnt on the training cells. */
  readonly mean: readonly number[];
  readonly std: readonly number[];
  readonly weights: readonly number[];
  readonly bias: number;
  /** Cells whose upsampled probability reaches this are "shoe". */
  readonly threshold: number;
  /** How it was trained (data, command, seed, held-out figures). */
  readonly meta?: Record<string, unknown>;
}

/** Where a letterboxed model input sits on the photo. */
export interface Letterbox {
  /** `size*size*3` floats in [0,1], the photo contained on white. */
  readonly input: Float32Array;
  readonly size: number;
  /** Input pixels per photo pixel. */
  readonly scale: number;
  /** Offset of the photo inside the input, in input pixels. */
  readonly offsetX: number;
  readonly offsetY: number;
  readonly width: number;
  readonly height: number;
}

/** The whole photo contained (aspect kept, white bars) in a `size`×`size` model input. */
export async function letterbox(raw: RawImage, size: number): Promise<Letterbox> {
  const channels = raw.channels ?? 3;
  const scale = size / Math.max(raw.width, raw.height);
  const w = Math.max(1, Math.round(raw.width * scale));
  const h = Math.max(1, Math.round(raw.height * scale));
  const offsetX = Math.floor((size - w) / 2);
  const offsetY = Math.floor((size - h) / 2);
  const resized = await sharp(Buffer.from(raw.data.buffer, raw.data.byteOffset, raw.data.byteLength), { raw: { width: raw.width, height: raw.height, channels } })
    .removeAlpha()
    .resize(w, h, { fit: 'fill' })
    .raw()
    .toBuffer();
  const input = new Float32Array(size * size * 3).fill(1);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const s = (y * w + x) * 3;
      const d = ((y + offsetY) * size + x + offsetX) * 3;
      input[d] = resized[s]! / 255;
      input[d + 1] = resized[s + 1]! / 255;
      input[d + 2] = resized[s + 2]! / 255;
    }
  }
  return { input, size, scale, offsetX, offsetY, width: raw.width, height: raw.height };
}

/**
 * Share of each of the `grid`×`grid` cells of a letterboxed input covered by shoe pixels (`mask` is
 * photo-sized, 1 = shoe): the localiser's training targets.
 */
export function cellCoverage(mask: Uint8Array, lb: Letterbox, grid: number): Float32Array {
  const out = new Float32Array(grid * grid);
  const cell = lb.size / grid;
  // Sample each cell on a 6×6 lattice of points mapped back onto the photo (padding counts as no shoe).
  const k = 6;
  for (let cy = 0; cy < grid; cy++) {
    for (let cx = 0; cx < grid; cx++) {
      let hit = 0;
      for (let j = 0; j < k; j++) {
        for (let i = 0; i < k; i++) {
          const px = Math.floor(((cx + (i + 0.5) / k) * cell - lb.offsetX) / lb.scale);
          const py = Math.floor(((cy + (j + 0.5) / k) * cell - lb.offsetY) / lb.scale);
          if (px >= 0 && py >= 0 && px < lb.width && py < lb.height && mask[py * lb.width + px] === 1) hit++;
        }
      }
      out[cy * grid + cx] = hit / (k * k);
    }
  }
  return out;
}

/** Cell vectors of a channels-last `[grid, grid, C]` map, standardised with the model's mean/std. */
function standardised(model: Pick<LocaliserModel, 'mean' | 'std'>, map: Float32Array, cell: number): Float32Array {
  const c = model.mean.length;
  const out = new Float32Array(c);
  for (let j = 0; j < c; j++) out[j] = (map[cell * c + j]! - model.mean[j]!) / model.std[j]!;
  return out;
}

/** P(shoe) of every cell of one image's `[grid, grid, C]` feature map (channels-last, flat). */
export function cellProbabilities(model: LocaliserModel, map: Float32Array): Float32Array {
  const c = model.weights.length;
  const cells = map.length / c;
  if (!Number.isInteger(cells) || cells !== model.grid * model.grid) {
    throw new EngineError('INTERNAL', `Localiser expects a ${model.grid}x${model.grid}x${c} map, got ${map.length} values`);
  }
  const out = new Float32Array(cells);
  for (let i = 0; i < cells; i++) {
    const v = standardised(model, map, i);
    let z = model.bias;
    for (let j = 0; j < c; j++) z += v[j]! * model.weights[j]!;
    out[i] = 1 / (1 + Math.exp(-z));
  }
  return out;
}

/**
 * The shoe's box on the photo from the cell probabilities: the map is upsampled bilinearly (cells are ~37
 * input pixels, too coarse for a box), thresholded, and the largest connected blob is kept (a second shoe of
 * the pair joins it when they touch). Null when no point reaches the threshold.
 */
export function boxFromCells(probs: Float32Array, grid: number, lb: Letterbox, threshold: number): Box | null {
  const up = 4 * grid;
  const fine = new Uint8Array(up * up);
  for (let y = 0; y < up; y++) {
    const gy = Math.min(grid - 1, Math.max(0, (y + 0.5) / 4 - 0.5));
    const y0 = Math.floor(gy);
    const y1 = Math.min(grid - 1, y0 + 1);
    const fy = gy - y0;
    for (let x = 0; x < up; x++) {
      const gx = Math.min(grid - 1, Math.max(0, (x + 0.5) / 4 - 0.5));
      const x0 = Math.floor(gx);
      const x1 = Math.min(grid - 1, x0 + 1);
      const fx = gx - x0;
      const p =
        (probs[y0 * grid + x0]! * (1 - fx) + probs[y0 * grid + x1]! * fx) * (1 - fy) +
        (probs[y1 * grid + x0]! * (1 - fx) + probs[y1 * grid + x1]! * fx) * fy;
      fine[y * up + x] = p >= threshold ? 1 : 0;
    }
  }
  const blob = largestBlob(fine, up);
  if (blob === null) return null;
  const k = lb.size / up;
  const toPhoto = (v: number, offset: number): number => (v * k - offset) / lb.scale;
  const x0 = Math.max(0, toPhoto(blob.x0, lb.offsetX));
  const y0 = Math.max(0, toPhoto(blob.y0, lb.offsetY));
  const x1 = Math.min(lb.width, toPhoto(blob.x1 + 1, lb.offsetX));
  const y1 = Math.min(lb.height, toPhoto(blob.y1 + 1, lb.offsetY));
  if (x1 <= x0 || y1 <= y0) return null;
  return { x: Math.floor(x0), y: Math.floor(y0), width: Math.ceil(x1 - x0), height: Math.ceil(y1 - y0) };
}

/** Bounding box of the largest 4-connected set of 1s of a square mask. */
function largestBlob(mask: Uint8Array, side: number): { x0: number; y0: number; x1: number; y1: number } | null {
  const seen = new Uint8Array(mask.length);
  const queue = new Int32Array(mask.length);
  let best: { x0: number; y0: number; x1: number; y1: number; n: number } | null = null;
  for (let start = 0; start < mask.length; start++) {
    if (mask[start] !== 1 || seen[start] === 1) continue;
    let head = 0;
    let tail = 0;
    queue[tail++] = start;
    seen[start] = 1;
    const b = { x0: side, y0: side, x1: -1, y1: -1, n: 0 };
    while (head < tail) {
      const i = queue[head++]!;
      const x = i % side;
      const y = (i - x) / side;
      b.n++;
      b.x0 = Math.min(b.x0, x);
      b.x1 = Math.max(b.x1, x);
      b.y0 = Math.min(b.y0, y);
      b.y1 = Math.max(b.y1, y);
      for (const j of [x > 0 ? i - 1 : -1, x < side - 1 ? i + 1 : -1, y > 0 ? i - side : -1, y < side - 1 ? i + side : -1]) {
        if (j >= 0 && mask[j] === 1 && seen[j] === 0) {
          seen[j] = 1;
          queue[tail++] = j;
        }
      }
    }
    if (best === null || b.n > best.n) best = b;
  }
  return best;
}

/** Options of {@link fitLocaliser}. */
export interface FitLocaliserOptions {
  readonly epochs?: number;
  readonly learningRate?: number;
  /** L2 penalty on the weights. */
  readonly l2?: number;
}

/**
 * Logistic regression of cell vectors `x` (each `C` floats) on 0/1 targets, full batch, Adam; returns the
 * standardisation and weights (a small, convex problem: plain loops are fast enough and exactly reproducible).
 */
export function fitLocaliser(x: readonly Float32Array[], y: readonly number[], opts: FitLocaliserOptions = {}): Pick<LocaliserModel, 'mean' | 'std' | 'weights' | 'bias'> {
  const n = x.length;
  if (n === 0 || n !== y.length) throw new EngineError('BAD_INPUT', `fitLocaliser needs as many targets as cells (got ${n} and ${y.length})`);
  const c = x[0]!.length;
  const mean = new Float64Array(c);
  const sq = new Float64Array(c);
  for (const v of x) for (let j = 0; j < c; j++) { mean[j]! += v[j]!; sq[j]! += v[j]! * v[j]!; }
  const std = new Float64Array(c);
  for (let j = 0; j < c; j++) {
    mean[j]! /= n;
    std[j] = Math.sqrt(Math.max(1e-8, sq[j]! / n - mean[j]! * mean[j]!)) + 1e-3;
  }
  const xs = x.map((v) => {
    const out = new Float32Array(c);
    for (let j = 0; j < c; j++) out[j] = (v[j]! - mean[j]!) / std[j]!;
    return out;
  });
  // Positives are the minority (a shoe fills a few cells): weigh both classes equally.
  const pos = y.filter((t) => t === 1).length;
  const wPos = n / (2 * Math.max(1, pos));
  const wNeg = n / (2 * Math.max(1, n - pos));
  const w = new Float64Array(c);
  let b = 0;
  const m = new Float64Array(c + 1);
  const v2 = new Float64Array(c + 1);
  const epochs = opts.epochs ?? 300;
  const lr = opts.learningRate ?? 0.01;
  const l2 = opts.l2 ?? 1e-3;
  const grad = new Float64Array(c + 1);
  for (let t = 1; t <= epochs; t++) {
    grad.fill(0);
    for (let i = 0; i < n; i++) {
      const v = xs[i]!;
      let z = b;
      for (let j = 0; j < c; j++) z += v[j]! * w[j]!;
      const p = 1 / (1 + Math.exp(-z));
      const e = (p - y[i]!) * (y[i] === 1 ? wPos : wNeg);
      for (let j = 0; j < c; j++) grad[j]! += e * v[j]!;
      grad[c]! += e;
    }
    for (let j = 0; j <= c; j++) {
      const g = grad[j]! / n + (j < c ? l2 * w[j]! : 0);
      m[j] = 0.9 * m[j]! + 0.1 * g;
      v2[j] = 0.999 * v2[j]! + 0.001 * g * g;
      const step = (lr * (m[j]! / (1 - 0.9 ** t))) / (Math.sqrt(v2[j]! / (1 - 0.999 ** t)) + 1e-8);
      if (j < c) w[j]! -= step;
      else b -= step;
    }
  }
  const round = (a: Float64Array): number[] => Array.from(a, (v) => Math.fround(v));
  return { mean: round(mean), std: round(std), weights: round(w), bias: Math.fround(b) };
}

const localiserSchema = z.object({
  format: z.literal(LOCALISER_FORMAT),
  backbone: z.string(),
  layer: z.string(),
  inputSize: z.number().int().positive(),
  grid: z.number().int().positive(),
  mean: z.array(z.number()),
  std: z.array(z.number().positive()),
  weights: z.array(z.number()),
  bias: z.number(),
  threshold: z.number().min(0).max(1),
  meta: z.record(z.string(), z.unknown()).optional(),
});

/** Validates a parsed localiser file (BAD_INPUT naming what is wrong). */
export function parseLocaliser(json: unknown): LocaliserModel {
  const r = localiserSchema.safeParse(json);
  if (!r.success) throw new EngineError('BAD_INPUT', `Not a solescope localiser: ${r.error.issues[0]?.path.join('.')} ${r.error.issues[0]?.message}`);
  const m = r.data;
  if (m.mean.length !== m.weights.length || m.std.length !== m.weights.length) throw new EngineError('BAD_INPUT', 'Localiser mean, std and weights differ in length');
  return m as LocaliserModel;
}

/** Where the shipped localisers live. */
export const DEFAULT_LOCALISER_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../assets/models');

/** The file name of a backbone's localiser. */
export function localiserFileName(backbone: string): string {
  return `localiser-${backbone}.json`;
}

/** The command that rebuilds a shipped localiser (named in MODEL_MISSING errors). */
export const LOCALISER_REBUILD = 'npm run train:localiser -- --data <manifest.csv> --backbone inception_v3';

/** Reads and validates a localiser file; MODEL_MISSING (with the rebuild command) when absent or corrupt. */
export function loadLocaliser(file: string): LocaliserModel {
  return readModelFile(file, 'The shoe localiser', LOCALISER_REBUILD, parseLocaliser);
}

/**
 * Finds the shoe's box on a photo (original pixels): the box; null when it looked and found nothing shoe-like
 * (no cell reached the threshold); undefined when it did not look (a studio backdrop, flood-filled anyway).
 */
export type Locator = (raw: RawImage, opts?: { readonly floodAnyUniform?: boolean }) => Promise<Box | null | undefined>;

/** The localiser's cell probabilities and box for one photo (one forward pass up to the model's layer). */
export async function localise(backbone: FeatureExtractor, model: LocaliserModel, raw: RawImage): Promise<{ probabilities: Float32Array; box: Box | null; letterbox: Letterbox }> {
  if (localiserBackboneOf(backbone.name) !== model.backbone || backbone.inputSize !== model.inputSize) {
    throw new EngineError('INTERNAL', `Localiser for ${model.backbone}@${model.inputSize} used with ${backbone.name}@${backbone.inputSize}`);
  }
  const lb = await letterbox(raw, model.inputSize);
  const x = backbone.tf.tensor4d(lb.input, [1, lb.size, lb.size, 3]);
  let map: Float32Array;
  try {
    const act = await layerActivations(backbone, x, model.layer);
    try {
      map = (await act.data()) as Float32Array;
    } finally {
      act.dispose();
    }
  } finally {
    x.dispose();
  }
  const probabilities = cellProbabilities(model, map);
  return { probabilities, box: boxFromCells(probabilities, model.grid, lb, model.threshold), letterbox: lb };
}

/**
 * A {@link Locator} for a backbone and model: photos on a studio backdrop (which the normaliser flood-fills,
 * ignoring any hint) skip the forward pass.
 */
export function makeLocator(backbone: FeatureExtractor, model: LocaliserModel): Locator {
  return async (raw, opts = {}) => {
    if (await floodsBackground(raw, opts)) return undefined;
    return (await localise(backbone, model, raw)).box;
  };
}

const shipped = new Map<string, LocaliserModel>();

/** The backbone a localiser is trained for: a multi-level built-in uses its base model's layers and weights. */
export function localiserBackboneOf(name: string): string {
  return isBackboneName(name) ? pretrainedOf(name) : name;
}

/**
 * The shipped localiser of a backbone (read once per process); MODEL_MISSING when there is none. A multi-level
 * built-in (`inception_v3_m7`, `inception_v3_m67`) uses its base model's: same weights, same layers, same activations.
 */
export function shippedLocaliser(name: string, dir = DEFAULT_LOCALISER_DIR): LocaliserModel {
  const backbone = localiserBackboneOf(name);
  const file = path.join(dir, localiserFileName(backbone));
  let model = shipped.get(file);
  if (!model) {
    model = loadLocaliser(file);
    if (model.backbone !== backbone) throw new EngineError('MODEL_MISSING', `${file} is a localiser for ${model.backbone}, not ${backbone}. Rebuild it with \`${LOCALISER_REBUILD}\`.`, { details: { rebuild: LOCALISER_REBUILD } });
    shipped.set(file, model);
  }
  return model;
}
