/**
 * The vision feature pipeline: decoded image → model input → backbone embedding, with the steps measured in
 * assets/models/README.md:
 * - trim: crop the near-white margin so the shoe fills the frame (sources frame shoes differently);
 * - contain on white at the backbone's input size (no stretching: silhouettes keep their proportions);
 * - flip-average: embed the image and its mirror and average — left- and right-pointing shoes give the same
 *   vector, which removes the orientation cue one source (all shoes pointing left) otherwise leaks.
 * Training-only views (never served): augmented copies (crop/colour/background jitter) and scene composites
 * (the shoe pasted onto a generated floor, fabric, room or clutter first: composite.ts).
 * Embeddings are cached in the store per (image sha256, backbone, prep key), so a re-run embeds nothing twice.
 */
import sharp, { type Sharp } from 'sharp';
import { EngineError } from '../../../engine/errors.ts';
import type { Store } from '../../../engine/store/index.ts';
import type { Backbone } from '../../../engine/ml/backbones.ts';
import { preprocess, PREP_VERSION, UPRIGHT_VERSION, type BackgroundKind } from '../../../engine/ml/preprocess.ts';
import type { HeatmapPlacement } from '../../../engine/ml/cam.ts';
import { l2normalise } from '../../../engine/ml/head.ts';
import type { Box, RawImage } from '../../../engine/ml/types.ts';
import type { FeatureSpec } from './head.ts';
import { seededRandom } from './split.ts';
import { pairWornComposite, sceneComposite, turnedComposite } from './composite.ts';
import { decodePixels } from './input.ts';
import { LOCALISER_VERSION, makeLocator, shippedLocaliser, type Locator } from './localise.ts';
import { ANGLE_VERSION, LEARNT_TURN_MIN, makeTurner, shippedAngleModel, type Turner } from './angle.ts';

/** Version of the scene compositing (part of scene variants' cache keys); bump when composites change (2: a share is worn). */
export const SCENE_VERSION = 2;

/**
 * Version of this pipeline; bump it when any pixel operation changes so cached embeddings are not reused.
 * (vprep-1: sharp trim threshold 20 on white, contain on white, Lanczos resize, [0,1] floats.)
 */
export const VISION_PREP_VERSION = 'vprep-1';

/** One way of turning an image into a model input (an augmentation is one too). */
export interface PrepVariant {
  readonly trim: boolean;
  readonly flip: boolean;
  /** Augmentation seed; undefined = the plain image. */
  readonly augment?: number;
  /** Study normalisation first (engine/ml/preprocess: background whitening + crop to the shoe); replaces trim. */
  readonly normalise?: boolean;
  /** With `normalise`: mirror so the toe points right. */
  readonly orient?: boolean;
  /**
   * Scene seed (training only): the shoe is first pasted onto a generated scene (plugins/vision/lib/composite.ts),
   * as if photographed on a floor, a bed or a table; undefined = the photo as it is.
   */
  readonly scene?: number;
  /**
   * With `normalise` (training only): flood-fill any near-uniform border, as normaliser v2 did, so a scene
   * composite keeps patches of its floor around the shoe (see `floodAnyUniform` in engine/ml/preprocess).
   */
  readonly remnants?: boolean;
  /** With `normalise`: start the segmentation from the shoe localiser's box (see `locate` in FeatureSpec). */
  readonly locate?: boolean;
  /** With `normalise`: turn a steeply tilted shoe upright (see `upright` in FeatureSpec). */
  readonly upright?: boolean;
  /**
   * With `normalise`: turn the photo by exactly this many degrees (counter-clockwise) instead of what the upright
   * step measures (engine/ml/preprocess `turn`): the serving path's second look, after the learnt turn.
   */
  readonly turn?: number;
  /** With `normalise`: turn by what the learnt turn reads from the embedding, where its model says (see `learntTurn` in FeatureSpec). */
  readonly learntTurn?: boolean;
}

/** The cache-key part of the study normalisation (its own version included, so a change re-embeds). */
export function normaliseKey(v: { normalise?: boolean | undefined; orient?: boolean | undefined; locate?: boolean | undefined; upright?: boolean | undefined; learntTurn?: boolean | undefined }): string {
  return v.normalise ? `+norm${PREP_VERSION}${v.orient ? 'o' : ''}${v.upright ? `u${UPRIGHT_VERSION}` : ''}${v.locate ? `+loc${LOCALISER_VERSION}` : ''}${v.learntTurn ? `+lt${ANGLE_VERSION}` : ''}` : '';
}

/** The cache-key part of `remnants` (only meaningful with `normalise`). */
function remnantsKey(v: PrepVariant): string {
  return v.normalise && v.remnants ? '+rem' : '';
}

/** The embedding cache key of a variant, e.g. `vprep-1+trim+flip`. */
export function prepKey(v: PrepVariant): string {
  return `${VISION_PREP_VERSION}${normaliseKey(v)}${remnantsKey(v)}${v.trim && !v.normalise ? '+trim' : ''}${v.flip ? '+flip' : ''}${v.augment !== undefined ? `+aug${v.augment}` : ''}${v.scene !== undefined ? `+scene${SCENE_VERSION}.${v.scene}` : ''}${v.normalise && v.turn !== undefined ? `+turn${v.turn.toFixed(1)}` : ''}`;
}

/** The variant of a feature spec for the plain (or mirrored) image. */
export function variantOf(spec: FeatureSpec, flip: boolean, augment?: number): PrepVariant {
  return {
    trim: spec.trim,
    flip,
    ...(augment !== undefined ? { augment } : {}),
    ...(spec.normalise ? { normalise: true, orient: spec.orient === true, ...(spec.locate ? { locate: true } : {}), ...(spec.upright ? { upright: true } : {}), ...(spec.learntTurn ? { learntTurn: true } : {}) } : {}),
  };
}

/** The variants whose embeddings a feature spec needs (one, or the image and its mirror). */
export function variantsOf(spec: FeatureSpec, augment?: number): PrepVariant[] {
  return spec.flipAverage ? [variantOf(spec, false, augment), variantOf(spec, true, augment)] : [variantOf(spec, false, augment)];
}

function toSharp(image: RawImage | Uint8Array): Sharp {
  if (image instanceof Uint8Array) return sharp(image, { failOn: 'error' }).rotate();
  const channels = image.channels ?? 3;
  return sharp(Buffer.from(image.data.buffer, image.data.byteOffset, image.data.byteLength), {
    raw: { width: image.width, height: image.height, channels },
  });
}

/**
 * Augment a flattened RGB image deterministically from a seed: random crop (80–100 % of each side), colour
 * jitter (brightness, saturation, hue) and background jitter (the white studio background replaced by a
 * light random tint, since user photos are rarely on pure white).
 */
async function augmentRaw(rgb: { data: Buffer; width: number; height: number }, seed: number): Promise<{ data: Buffer; width: number; height: number }> {
  const random = seededRandom(seed * 7919 + 17);
  const { width, height } = rgb;
  const cw = Math.max(8, Math.round(width * (0.8 + 0.2 * random())));
  const ch = Math.max(8, Math.round(height * (0.8 + 0.2 * random())));
  const left = Math.floor(random() * (width - cw + 1));
  const top = Math.floor(random() * (height - ch + 1));
  const tint = [200 + random() * 55, 200 + random() * 55, 200 + random() * 55];
  const data = Buffer.from(rgb.data);
  for (let i = 0; i < data.length; i += 3) {
    // Near-white pixels are background on studio shots: replace them with the tint.
    if (data[i]! > 235 && data[i + 1]! > 235 && data[i + 2]! > 235) {
      data[i] = tint[0]!;
      data[i + 1] = tint[1]!;
      data[i + 2] = tint[2]!;
    }
  }
  const out = await sharp(data, { raw: { width, height, channels: 3 } })
    .extract({ left, top, width: cw, height: ch })
    .modulate({ brightness: 0.85 + 0.3 * random(), saturation: 0.7 + 0.6 * random(), hue: Math.round((random() - 0.5) * 30) })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { data: out.data, width: out.info.width, height: out.info.height };
}

/**
 * One model input (`size*size*3` floats in [0,1], HWC) for a decoded image (or encoded bytes) and a variant.
 * Transparent pixels are composited on white first; grayscale becomes RGB.
 */
export async function prepareInput(image: RawImage | Uint8Array, size: number, variant: PrepVariant, locator?: Locator, turner?: Turner): Promise<Float32Array> {
  return (await prepareInputPlaced(image, size, variant, locator, turner)).input;
}

/**
 * The locator a variant needs (the backbone's shipped localiser), or undefined when it needs none.
 * MODEL_MISSING when the variant asks for one and the backbone has none.
 */
export function locatorFor(backbone: Backbone, variant: Pick<PrepVariant, 'normalise' | 'locate'>): Locator | undefined {
  return variant.normalise && variant.locate ? makeLocator(backbone, shippedLocaliser(backbone.name)) : undefined;
}

/**
 * The turner a variant needs (the backbone's shipped angle model), or undefined when it needs none.
 * MODEL_MISSING when the variant asks for one and the backbone has none.
 */
export function turnerFor(backbone: Backbone, variant: Pick<PrepVariant, 'normalise' | 'learntTurn'>): Turner | undefined {
  return variant.normalise && variant.learntTurn ? makeTurner(backbone, shippedAngleModel(backbone.name)) : undefined;
}

/**
 * How the normaliser framed a photo, for answers to say (`data.framing`): what it took for the background, how
 * far it turned the photo to level the sole, and where the shoe is in the photo the user sent.
 */
export interface Framing {
  /** `uniform` studio backdrop, `segmented` (GrabCut), `located` (the shoe localiser's box), `busy` (left as is). */
  readonly background: BackgroundKind;
  /** Degrees the upright step (and the learnt turn) turned the photo (counter-clockwise as displayed); 0 when it did not. */
  readonly rotation: number;
  /** Of {@link rotation}, the degrees the learnt turn added (plugins/vision/lib/angle.ts); absent when it added none. */
  readonly learntTurn?: number;
  /** Whether the view was mirrored (orientation normalisation: the toe pointed left). */
  readonly mirrored: boolean;
  /** The object's box in the photo's own pixels (through the turn, the box of the turned box); the whole photo when none was found. */
  readonly shoeBox: Box;
}

/** The box, in original pixels, of a frame box: its corners through the inverse of the frame map, clipped to the photo. */
function boxInPhoto(box: Box, frame: readonly number[] | undefined, width: number, height: number): Box {
  if (!frame) return box;
  const [a, b, c, d, e, f] = frame as [number, number, number, number, number, number];
  const det = a * e - b * d;
  const corners = [
    [box.x, box.y],
    [box.x + box.width, box.y],
    [box.x, box.y + box.height],
    [box.x + box.width, box.y + box.height],
  ].map(([u, v]) => [(e * (u! - c) - b * (v! - f)) / det, (-d * (u! - c) + a * (v! - f)) / det] as const);
  const x0 = Math.max(0, Math.min(...corners.map((p) => p[0])));
  const y0 = Math.max(0, Math.min(...corners.map((p) => p[1])));
  const x1 = Math.min(width, Math.max(...corners.map((p) => p[0])));
  const y1 = Math.min(height, Math.max(...corners.map((p) => p[1])));
  return { x: Math.round(x0), y: Math.round(y0), width: Math.max(0, Math.round(x1 - x0)), height: Math.max(0, Math.round(y1 - y0)) };
}

/**
 * {@link prepareInput} plus, for normalised variants, where the model input sits on the photo (the square
 * crop and whether it was mirrored): explanations draw the heatmap back onto the user's own photo;
 * and how it was framed ({@link Framing}), which answers report.
 */
export async function prepareInputPlaced(
  image: RawImage | Uint8Array,
  size: number,
  variant: PrepVariant,
  locator?: Locator,
  turner?: Turner,
): Promise<{ input: Float32Array; placement?: HeatmapPlacement; framing?: Framing; shoeFound?: boolean; embedding?: Float32Array }> {
  let rgb = await flatRgb(image);
  if (variant.scene !== undefined) {
    const scene = await sceneComposite({ data: rgb.data, width: rgb.width, height: rgb.height, channels: 3 }, variant.scene);
    rgb = { data: Buffer.from(scene.data.buffer, scene.data.byteOffset, scene.data.byteLength), width: scene.width, height: scene.height };
  }
  if (variant.normalise) {
    if (variant.augment !== undefined) rgb = await augmentRaw(rgb, variant.augment);
    const raw: RawImage = { data: rgb.data, width: rgb.width, height: rgb.height, channels: 3 };
    if (variant.locate && locator === undefined) throw new EngineError('INTERNAL', 'This feature pipeline locates the shoe first: pass the backbone\'s locator');
    if (variant.learntTurn && turner === undefined) throw new EngineError('INTERNAL', 'This feature pipeline reads the learnt turn: pass the backbone\'s turner');
    const hint = variant.locate ? await locator!(raw, variant.remnants ? { floodAnyUniform: true } : {}) : undefined;
    const opts = {
      size,
      orient: variant.orient === true,
      ...(variant.remnants ? { floodAnyUniform: true } : {}),
      ...(hint ? { objectHint: hint } : {}),
      ...(variant.upright ? { upright: true } : {}),
      ...(variant.turn !== undefined ? { turn: variant.turn } : {}),
    };
    let r = await preprocess(raw, opts);
    let embedding: Float32Array | undefined;
    let learnt = 0;
    // The learnt turn, on the background kinds its model says (the shipped one: segmented and located; never a
    // studio backdrop, whose shoes are level). There the embedding of this first look says how far the shoe is still
    // turned; far enough, and read with enough confidence, and the same segmentation is turned by that much more.
    // The turned view is kept only when a second look reads it as level: a wrong turn (or a level shoe misread)
    // is then seen as still turned and undone (without that check the first model cost more tilted shoes on a
    // floor than it won on a busy shelf: assets/models/README.md, "The learnt turn"). Both looks' embeddings are the
    // answer's, so this costs one forward pass only when a turn is tried.
    if (variant.learntTurn && variant.turn === undefined && turner!.applyTo.includes(r.background)) {
      const look = await turner!.look(r.tensorData);
      embedding = look.embedding;
      if (Math.abs(look.prediction.turn) >= LEARNT_TURN_MIN && look.prediction.confidence >= turner!.minConfidence) {
        const tried = await preprocess(raw, { ...opts, turn: r.rotation + look.prediction.turn });
        const check = await turner!.look(tried.tensorData);
        if (Math.abs(check.prediction.turn) < LEARNT_TURN_MIN) {
          learnt = look.prediction.turn;
          r = tried;
          embedding = check.embedding;
        }
      }
      // A mirrored variant's input is the mirror of what was looked at: its embedding is not at hand.
      if (variant.flip) embedding = undefined;
    }
    return {
      input: variant.flip ? mirrorInput(r.tensorData, size) : r.tensorData,
      placement: { crop: r.crop, mirrored: r.mirrored !== variant.flip, ...(r.frame ? { frame: r.frame } : {}) },
      framing: { background: r.background, rotation: r.rotation, ...(learnt !== 0 ? { learntTurn: learnt } : {}), mirrored: r.mirrored, shoeBox: boxInPhoto(r.bbox, r.frame, raw.width, raw.height) },
      ...(hint !== undefined ? { shoeFound: hint !== null } : {}),
      ...(embedding ? { embedding } : {}),
    };
  }
  return { input: await containInput(rgb, size, variant) };
}

/** How {@link prepareInputKeepingLook} looks: one forward pass that returns the embedding and what to keep of it. */
export interface KeptLook<T> {
  look(input: Float32Array): Promise<{ readonly embedding: Float32Array; readonly keep: T }>;
  /** Frees what a look kept (tensors) when its view is not the one served. */
  release(kept: T): void;
}

/**
 * {@link prepareInputPlaced} whose learnt-turn looks go through `how.look`, so what a look computed besides the
 * embedding (the activations Grad-CAM needs) is handed back for the view that is served (`kept`, undefined when no
 * look saw it: no turner, a background it is not asked about, a mirrored variant). Every other look's is released,
 * also when preparing fails. Without `how` (or a turner) it is {@link prepareInputPlaced}.
 */
export async function prepareInputKeepingLook<T>(
  image: RawImage | Uint8Array,
  size: number,
  variant: PrepVariant,
  locator: Locator | undefined,
  turner: Turner | undefined,
  how: KeptLook<T> | undefined,
): Promise<{ placed: Awaited<ReturnType<typeof prepareInputPlaced>>; kept?: T }> {
  if (turner === undefined || how === undefined) return { placed: await prepareInputPlaced(image, size, variant, locator, turner) };
  const looks: { input: Float32Array; keep: T }[] = [];
  const looking: Turner = {
    ...turner,
    look: async (input) => {
      const seen = await how.look(input);
      looks.push({ input, keep: seen.keep });
      return { embedding: seen.embedding, prediction: turner.read(seen.embedding) };
    },
  };
  let placed: Awaited<ReturnType<typeof prepareInputPlaced>>;
  try {
    placed = await prepareInputPlaced(image, size, variant, locator, looking);
  } catch (err) {
    for (const l of looks) how.release(l.keep);
    throw err;
  }
  // The served input is the looked-at array itself (a mirrored variant's is a new array: no look saw it).
  const served = looks.find((l) => l.input === placed.input);
  for (const l of looks) if (l !== served) how.release(l.keep);
  return { placed, ...(served ? { kept: served.keep } : {}) };
}

/**
 * Whether the shoe localiser finds a shoe in a photo: undefined when the variant does not locate or the photo is
 * on a studio backdrop (it does not look there). The same decoding and localiser as {@link prepareInputPlaced}.
 */
export async function shoeFoundIn(image: RawImage | Uint8Array, variant: PrepVariant, locator?: Locator): Promise<boolean | undefined> {
  if (!variant.normalise || !variant.locate || locator === undefined) return undefined;
  const rgb = await flatRgb(image);
  const box = await locator({ data: rgb.data, width: rgb.width, height: rgb.height, channels: 3 });
  return box === undefined ? undefined : box !== null;
}

/** Decoded RGB of an image or its bytes: EXIF-rotated, alpha over white, grayscale/CMYK to sRGB. */
async function flatRgb(image: RawImage | Uint8Array): Promise<{ data: Buffer; width: number; height: number }> {
  const flat = await toSharp(image).flatten({ background: '#ffffff' }).toColourspace('srgb').removeAlpha().raw().toBuffer({ resolveWithObject: true });
  let rgb: { data: Buffer; width: number; height: number } = { data: flat.data, width: flat.info.width, height: flat.info.height };
  if (flat.info.channels !== 3) {
    const fixed = await sharp(flat.data, { raw: { width: rgb.width, height: rgb.height, channels: flat.info.channels } })
      .toColourspace('srgb')
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    rgb = { data: fixed.data, width: fixed.info.width, height: fixed.info.height };
  }
  return rgb;
}

/** The contain-on-white model input (trimmed, augmented, mirrored as the variant says). */
async function containInput(input: { data: Buffer; width: number; height: number }, size: number, variant: PrepVariant): Promise<Float32Array> {
  let rgb = input;
  if (variant.trim) {
    try {
      const t = await sharp(rgb.data, { raw: { width: rgb.width, height: rgb.height, channels: 3 } })
        .trim({ background: '#ffffff', threshold: 20 })
        .raw()
        .toBuffer({ resolveWithObject: true });
      // A blank or nearly blank picture trims to (almost) nothing: keep the original framing then.
      if (t.info.width >= 8 && t.info.height >= 8) rgb = { data: t.data, width: t.info.width, height: t.info.height };
    } catch {
      // sharp refuses to trim a uniform image; the untrimmed image is the honest input.
    }
  }
  if (variant.augment !== undefined) rgb = await augmentRaw(rgb, variant.augment);
  let pipeline = sharp(rgb.data, { raw: { width: rgb.width, height: rgb.height, channels: 3 } });
  if (variant.flip) pipeline = pipeline.flop();
  const { data } = await pipeline
    .resize(size, size, { fit: 'contain', background: '#ffffff' })
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  const out = new Float32Array(size * size * 3);
  for (let i = 0; i < out.length; i++) out[i] = data[i]! / 255;
  return out;
}

/** A model input (`size*size*3`, HWC) mirrored left-right. */
export function mirrorInput(data: Float32Array, size: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const from = (y * size + (size - 1 - x)) * 3;
      const to = (y * size + x) * 3;
      out[to] = data[from]!;
      out[to + 1] = data[from + 1]!;
      out[to + 2] = data[from + 2]!;
    }
  }
  return out;
}

/** Average of vectors (flip-averaging). */
export function meanVector(vectors: readonly Float32Array[]): Float32Array {
  const first = vectors[0];
  if (!first) return new Float32Array(0);
  const out = new Float32Array(first.length);
  for (const v of vectors) for (let i = 0; i < out.length; i++) out[i]! += v[i]!;
  for (let i = 0; i < out.length; i++) out[i]! /= vectors.length;
  return out;
}

/**
 * One embedding from several backbones' embeddings of the same photo: the parts laid end to end, each scaled to unit
 * length first, so a wider or larger-valued part does not outweigh the others before the head standardises them
 * (`train:defaults --concat-backbone`, `eval-shift --concat-backbone`: a measurement, assets/models/README.md).
 */
export function concatEmbeddings(parts: readonly ArrayLike<number>[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    // l2normalise leaves an all-zero part at zero rather than dividing by its zero length.
    out.set(l2normalise(p), at);
    at += p.length;
  }
  return out;
}

/** An image to embed: its content id (cache key) and a way to get its pixels when not cached. */
export interface EmbedItem {
  readonly sha256: string;
  readonly load: () => Promise<RawImage | Uint8Array>;
}

/** Options of {@link embedItems}. */
export interface EmbedItemsOptions {
  /** Cache (the store's embeddings table). */
  readonly store?: Store;
  /** Augmentation seed (embeds an augmented copy instead of the image). */
  readonly augment?: number;
  /** Embed the mirrored image instead (flip augmentation); ignored with flip-averaging. */
  readonly mirror?: boolean;
  /** Scene seed: embed each image's shoe pasted onto a generated scene (see {@link PrepVariant.scene}). */
  readonly scene?: number;
  /** With a normalised spec: flood-fill any near-uniform border (see {@link PrepVariant.remnants}). */
  readonly remnants?: boolean;
  /** The shoe locator of located specs (default: the backbone's shipped localiser). */
  readonly locator?: Locator;
  /** The turner of specs with the learnt turn (default: the backbone's shipped angle model). */
  readonly turner?: Turner;
  /** Images per forward pass (default 8). */
  readonly batchSize?: number;
  readonly onProgress?: (done: number, total: number) => void;
  readonly signal?: AbortSignal;
}

/**
 * Embeddings of many images under a feature spec (flip-averaged when the spec says so), reading and
 * filling the store's cache. Each variant is cached separately, so `flipAverage` on/off share work.
 */
export async function embedItems(backbone: Backbone, items: readonly EmbedItem[], spec: FeatureSpec, opts: EmbedItemsOptions = {}): Promise<Float32Array[]> {
  const variants = (spec.flipAverage || !opts.mirror ? variantsOf(spec, opts.augment) : variantsOf(spec, opts.augment).map((v) => ({ ...v, flip: true }))).map((v) =>
    ({ ...v, ...(opts.scene !== undefined ? { scene: opts.scene } : {}), ...(opts.remnants && v.normalise ? { remnants: true } : {}) }),
  );
  const perVariant: Float32Array[][] = [];
  const locator = variants.some((v) => v.normalise && v.locate) ? (opts.locator ?? locatorFor(backbone, { normalise: true, locate: true })) : undefined;
  const turner = variants.some((v) => v.normalise && v.learntTurn) ? (opts.turner ?? turnerFor(backbone, { normalise: true, learntTurn: true })) : undefined;
  const total = items.length * variants.length;
  let done = 0;
  for (const variant of variants) {
    const key = prepKey(variant);
    const cached = opts.store ? await opts.store.embeddings.getMany(items.map((i) => i.sha256), backbone.name, key) : new Map<string, Float32Array>();
    const result: (Float32Array | undefined)[] = items.map((i) => cached.get(i.sha256));
    done += result.filter((r) => r !== undefined).length;
    opts.onProgress?.(done, total);
    const missing = items.map((it, k) => ({ it, k })).filter(({ k }) => result[k] === undefined);
    // Where the localiser finds nothing to do (a studio backdrop is flood-filled, hint or not), the upright step
    // leaves the shoe as it is (it was not steeply tilted), or the learnt turn is not asked or turns nothing, the
    // variant's input IS the one without that step: reuse that cached embedding instead of a forward pass.
    const steps = (['locate', 'upright', 'learntTurn'] as const).filter((k) => variant[k]);
    const alternatives = new Map<string, Map<string, Float32Array>>();
    if (opts.store && missing.length > 0) {
      for (let mask = 1; mask < 1 << steps.length; mask++) {
        const alt = { ...variant, ...Object.fromEntries(steps.filter((_, b) => mask & (1 << b)).map((k) => [k, false])) };
        alternatives.set(prepKey(alt), await opts.store.embeddings.getMany(missing.map(({ it }) => it.sha256), backbone.name, prepKey(alt)));
      }
    }
    const batchSize = opts.batchSize ?? 8;
    for (let start = 0; start < missing.length; start += batchSize) {
      opts.signal?.throwIfAborted();
      const batch = missing.slice(start, start + batchSize);
      const hinted = new Array<boolean>(batch.length).fill(false);
      const prepared = await Promise.all(
        batch.map(async ({ it }, j) =>
          prepareInputPlaced(await it.load(), backbone.inputSize, variant, locator && (async (raw, o) => {
            const box = await locator(raw, o);
            hinted[j] = box !== null && box !== undefined;
            return box;
          }), turner),
        ),
      );
      const reused = batch.map(({ it }, j) => {
        const applied = prepKey({
          ...variant,
          ...(variant.locate && !hinted[j] ? { locate: false } : {}),
          // No frame: nothing was turned, by the step or by the learnt turn.
          ...(variant.upright && prepared[j]!.placement?.frame === undefined ? { upright: false } : {}),
          ...(variant.learntTurn && prepared[j]!.framing?.learntTurn === undefined ? { learntTurn: false } : {}),
        });
        return applied === key ? undefined : alternatives.get(applied)?.get(it.sha256);
      });
      const forward = batch.map((_, j) => j).filter((j) => reused[j] === undefined && prepared[j]!.embedding === undefined);
      const vectors = forward.length > 0 ? await backbone.embedImages(forward.map((j) => prepared[j]!.input), { batchSize }) : [];
      for (let j = 0; j < batch.length; j++) {
        const { it, k } = batch[j]!;
        const f = forward.indexOf(j);
        result[k] = f >= 0 ? vectors[f]! : (reused[j] ?? prepared[j]!.embedding!);
        await opts.store?.embeddings.put(it.sha256, backbone.name, key, result[k]);
      }
      done += batch.length;
      opts.onProgress?.(done, total);
    }
    perVariant.push(result as Float32Array[]);
  }
  return items.map((_, k) => meanVector(perVariant.map((v) => v[k]!)));
}

/**
 * The embedding of one image under a spec, without caching (the serving path for a new photo), and whether the
 * shoe localiser found a shoe (undefined when it did not look: see {@link shoeFoundIn}).
 */
export async function embedOne(backbone: Backbone, image: RawImage | Uint8Array, spec: FeatureSpec): Promise<{ embedding: Float32Array; inputs: Float32Array[]; shoeFound?: boolean }> {
  const prepared = await Promise.all(variantsOf(spec).map((v) => prepareInputPlaced(image, backbone.inputSize, v, locatorFor(backbone, v), turnerFor(backbone, v))));
  const inputs = prepared.map((p) => p.input);
  // The learnt turn's first look may already have embedded the input it kept.
  const todo = prepared.map((p, k) => (p.embedding ? -1 : k)).filter((k) => k >= 0);
  const fresh = todo.length > 0 ? await backbone.embedImages(todo.map((k) => inputs[k]!), { batchSize: todo.length }) : [];
  const vectors = prepared.map((p, k) => p.embedding ?? fresh[todo.indexOf(k)]!);
  const shoeFound = prepared[0]?.shoeFound;
  return { embedding: meanVector(vectors), inputs, ...(shoeFound !== undefined ? { shoeFound } : {}) };
}

/** How many augmentation seeds one augmented copy cycles over (one seed would crop and tint every image alike). */
export const AUGMENT_SEEDS = 16;

/**
 * Augmented copy number `copy` of every item (`train:defaults --augment N`): item i gets augmentation seed
 * `1000 + copy * AUGMENT_SEEDS + i % AUGMENT_SEEDS` (each seed is its own cache key), odd copies mirrored.
 */
export async function embedAugmentedCopy(backbone: Backbone, items: readonly EmbedItem[], spec: FeatureSpec, copy: number, opts: Pick<EmbedItemsOptions, 'store' | 'signal'> = {}): Promise<Float32Array[]> {
  const view = new Array<Float32Array>(items.length);
  for (let s = 0; s < AUGMENT_SEEDS; s++) {
    const members = items.map((_, i) => i).filter((i) => i % AUGMENT_SEEDS === s);
    const vectors = await embedItems(backbone, members.map((i) => items[i]!), { ...spec, flipAverage: false }, { ...opts, augment: 1000 + copy * AUGMENT_SEEDS + s, mirror: copy % 2 === 1 });
    members.forEach((i, k) => (view[i] = vectors[k]!));
  }
  return view;
}

/** Version of {@link embedTurnedCopy}'s composites (part of its cache keys); bump when they change. */
export const TURNED_COPY_VERSION = 1;

/** Version of {@link embedTurnedCopy}'s pair-and-worn composites (`kind: 'pair-worn'`; part of their cache keys). */
export const PAIR_WORN_COPY_VERSION = 1;

/**
 * Which served composite {@link embedTurnedCopy} makes: `turned` ({@link turnedComposite}: level, tilted or any angle)
 * or `pair-worn` ({@link pairWornComposite}: nearly level, always a pair in frame, worn, or both).
 */
export type ServedCopyKind = 'turned' | 'pair-worn';

/** The store key of {@link embedTurnedCopy}'s views (the mirrors': with `+m`). */
export function turnedCopyKey(seed: number, modelKey: string, kind: ServedCopyKind = 'turned'): string {
  return kind === 'turned' ? `tilt${TURNED_COPY_VERSION}.s${seed}.lt${modelKey}` : `pw${PAIR_WORN_COPY_VERSION}.s${seed}.lt${modelKey}`;
}

/**
 * One turned composite per item ({@link turnedComposite}, drawn from `seed` and the item's hash, so two lists that
 * share photos share their rows), served exactly as a head with `learntTurn` serves it (shoe localiser, upright
 * step, the learnt turn `turner` reads), embedded with its mirror: two training views, `[view, mirror]`. The heads
 * then learn from the views the learnt turn hands them, its 5–15° misses and twice-resampled pixels included.
 * Cached in `opts.store` under `tilt<version>.s<seed>.lt<modelKey>` (`+m` for the mirror): `modelKey` names the
 * angle model (a hash of its file), whose readings decide the views. `opts.kind: 'pair-worn'` serves
 * {@link pairWornComposite}s the same way instead (keys `pw<version>.s<seed>.lt<modelKey>`).
 */
export async function embedTurnedCopy(
  backbone: Backbone,
  items: readonly EmbedItem[],
  turner: Turner,
  opts: {
    readonly seed: number;
    readonly modelKey: string;
    /** Which composite to serve (default `turned`); each kind has its own cache keys ({@link turnedCopyKey}). */
    readonly kind?: ServedCopyKind;
    readonly store?: Store;
    /** The shoe localiser (default: the backbone's shipped one, as serving uses). */
    readonly locator?: Locator;
    readonly onProgress?: (done: number, total: number, turned: number) => void;
    readonly signal?: AbortSignal;
  },
): Promise<[Float32Array[], Float32Array[]]> {
  const kind = opts.kind ?? 'turned';
  const key = turnedCopyKey(opts.seed, opts.modelKey, kind);
  const shas = items.map((it) => it.sha256);
  const views = opts.store ? await opts.store.embeddings.getMany(shas, backbone.name, key) : new Map<string, Float32Array>();
  const mirrors = opts.store ? await opts.store.embeddings.getMany(shas, backbone.name, `${key}+m`) : new Map<string, Float32Array>();
  const serve = variantOf({ trim: false, flipAverage: false, l2: true, normalise: true, orient: false, locate: true, upright: true, learntTurn: true }, false);
  const locator = opts.locator ?? locatorFor(backbone, serve);
  const size = backbone.inputSize;
  const todo = items.filter((it) => !views.has(it.sha256) || !mirrors.has(it.sha256));
  let turned = 0;
  for (const [k, it] of todo.entries()) {
    opts.signal?.throwIfAborted();
    const loaded = await it.load();
    const raw = loaded instanceof Uint8Array ? (await decodePixels(loaded)).raw : loaded;
    // The pair-and-worn kind draws from its own stream (another offset), so its scenes are not the turned kind's.
    const random = seededRandom(opts.seed * 7919 + Number.parseInt(it.sha256.slice(0, 8), 16) + (kind === 'turned' ? 0 : 0x2545f491));
    const { image } = await (kind === 'turned' ? turnedComposite : pairWornComposite)(raw, random);
    const placed = await prepareInputPlaced(image, size, serve, locator, turner);
    if (placed.framing?.learntTurn !== undefined) turned++;
    const view = placed.embedding ?? (await backbone.embedImages([placed.input], { batchSize: 1 }))[0]!;
    const [mirror] = await backbone.embedImages([mirrorInput(placed.input, size)], { batchSize: 1 });
    await opts.store?.embeddings.put(it.sha256, backbone.name, key, view);
    await opts.store?.embeddings.put(it.sha256, backbone.name, `${key}+m`, mirror!);
    views.set(it.sha256, view);
    mirrors.set(it.sha256, mirror!);
    opts.onProgress?.(k + 1, todo.length, turned);
  }
  return [items.map((it) => views.get(it.sha256)!), items.map((it) => mirrors.get(it.sha256)!)];
}
