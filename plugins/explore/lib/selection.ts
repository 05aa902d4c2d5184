/**
 * What every exploration command shares: the selection filters (one zod shape, so every transport gets the
 * same flags), resolving a selection against the store, the result cache keyed by (selection, parameters,
 * model, preprocessing version), streaming orientation-normalised pixels with progress, and thumbnails.
 */
import { createHash } from 'node:crypto';
import sharp from 'sharp';
import { z } from 'zod';
import { EngineError, fail, type CommandContext, type ProgressEvent, type Reply, type ReplyImage } from '../../../engine/index.ts';
import type { ImageFilter, ImageRow, JsonValue, Store } from '../../../engine/store/index.ts';
import type { RawImage } from '../../../engine/ml/types.ts';

/** Side of the orientation-normalised images every command works on (the study's 224×224). */
export const PREP_SIZE = 224;

/** Bump when a command's output for the same selection and parameters changes (invalidates the cache). */
export const EXPLORE_CACHE_VERSION = 3;

/** Cached results live this long (the key already changes with the selection, so this only bounds growth). */
export const CACHE_TTL_MS = 30 * 24 * 3600 * 1000;

const sinceSchema = z
  .string()
  .max(40)
  .refine((v) => parseSince(v, new Date()) !== undefined, 'use a date (2026-01-31) or a span back from now (30d, 12h, 2w)')
  .describe('Only images added since this date (YYYY-MM-DD) or span (30d, 2w, 12h)');

/** The selection flags of every exploration command (`--dataset --brand --hype --name-includes …`). */
export const selectionShape = {
  dataset: z.string().min(1).max(100).optional().describe('Only images of this dataset'),
  brand: z.enum(['jordan', 'nike', 'adidas', 'other', 'unlabelled']).optional().describe('Only this brand (unlabelled: no brand label)'),
  hype: z.enum(['hyped', 'not_hyped', 'unlabelled']).optional().describe('Only this hype class (unlabelled: no hype label)'),
  nameIncludes: z.string().min(1).max(100).optional().describe('Only names containing this text (e.g. "jordan 1")'),
  nameExcludes: z.string().min(1).max(100).optional().describe('Leave out names containing this text'),
  source: z.enum(['discord', 'import', 'upload', 'url', 'monitor']).optional().describe('Only images that came from here'),
  guild: z.string().min(1).max(40).optional().describe('Only images posted in this Discord server: its id, or "here"'),
  since: sinceSchema.optional(),
};

/** The parsed selection flags. */
export interface Selection {
  readonly dataset?: string | undefined;
  readonly brand?: 'jordan' | 'nike' | 'adidas' | 'other' | 'unlabelled' | undefined;
  readonly hype?: 'hyped' | 'not_hyped' | 'unlabelled' | undefined;
  readonly nameIncludes?: string | undefined;
  readonly nameExcludes?: string | undefined;
  readonly source?: string | undefined;
  readonly guild?: string | undefined;
  readonly since?: string | undefined;
}

/** `2026-01-31` (UTC midnight), an ISO timestamp, or `30d` / `2w` / `12h` / `90m` back from `now`. */
export function parseSince(value: string, now: Date): Date | undefined {
  const span = /^(\d{1,5})\s*([mhdw])$/i.exec(value.trim());
  if (span) {
    const unit = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }[span[2]!.toLowerCase() as 'm' | 'h' | 'd' | 'w'];
    return new Date(now.getTime() - Number(span[1]) * unit);
  }
  if (!/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(value.trim())) return undefined;
  const d = new Date(value.trim());
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/** The store filter of a selection. Generated images (GAN output) are never part of an exploration. */
export function toImageFilter(sel: Selection, now = new Date()): ImageFilter {
  const since = sel.since === undefined ? undefined : parseSince(sel.since, now);
  return {
    generated: false,
    ...(sel.dataset !== undefined ? { dataset: sel.dataset } : {}),
    ...(sel.brand !== undefined ? { brand: sel.brand === 'unlabelled' ? null : sel.brand } : {}),
    ...(sel.hype !== undefined ? { hype: sel.hype === 'unlabelled' ? null : sel.hype } : {}),
    ...(sel.nameIncludes !== undefined ? { nameIncludes: sel.nameIncludes } : {}),
    ...(sel.nameExcludes !== undefined ? { nameExcludes: sel.nameExcludes } : {}),
    ...(sel.source !== undefined ? { source: sel.source } : {}),
    ...(sel.guild !== undefined ? { guildId: sel.guild } : {}),
    ...(since !== undefined ? { since } : {}),
  };
}

/** The selection as given (only the flags that were set), for `data.filters` and messages. */
export function describeFilters(sel: Selection): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of Object.keys(selectionShape) as (keyof Selection)[]) {
    const v = sel[key];
    if (v !== undefined) out[key] = v;
  }
  return out;
}

/** A one-line human form of the filters: `brand=nike, since=30d` or `everything`. */
export function filtersText(sel: Selection): string {
  const parts = Object.entries(describeFilters(sel)).map(([k, v]) => `${k}=${v}`);
  return parts.length > 0 ? parts.join(', ') : 'all images';
}

/** The light metadata of one selected image (no pixels). */
export interface SelectedImage {
  readonly sha: string;
  readonly name: string | null;
  readonly width: number;
  readonly height: number;
  readonly brand: string | null;
  readonly hype: string | null;
  readonly source: string;
}

/** A resolved selection: the matching images' metadata and a fingerprint of exactly which images they are. */
export interface ResolvedSelection {
  readonly images: readonly SelectedImage[];
  /** SHA-256 over the sorted image ids: any added or removed image changes it (and so the cache key). */
  readonly fingerprint: string;
}

/** The store, or UNAVAILABLE with a clear message. */
export function storeOf(ctx: CommandContext): Store {
  return ctx.services.store;
}

/**
 * Resolve the selection (metadata only, streamed page by page from the store). NOT_FOUND when nothing
 * matches, naming the filters, so "brand=adidas, since=7d" that matches nothing says so.
 */
export async function resolveSelection(store: Store, given: Selection, ctx?: CommandContext): Promise<ResolvedSelection> {
  let sel = given;
  if (sel.guild === 'here') {
    // "This server's average sneaker": the guild the command was called from.
    if (!ctx?.guildId) fail('BAD_INPUT', '--guild here only works inside a Discord server; pass a server id instead.');
    sel = { ...sel, guild: ctx.guildId };
  }
  if (sel.dataset !== undefined && !(await store.datasets.get(sel.dataset))) {
    fail('NOT_FOUND', `There is no dataset named "${sel.dataset}".`);
  }
  const images: SelectedImage[] = [];
  for await (const row of store.images.iterate(toImageFilter(sel))) {
    images.push(toSelected(row));
    if (images.length % 2000 === 0) ctx?.signal.throwIfAborted();
  }
  if (images.length === 0) fail('NOT_FOUND', `No images match ${filtersText(sel)}.`, { filters: describeFilters(sel) });
  images.sort((a, b) => (a.sha < b.sha ? -1 : a.sha > b.sha ? 1 : 0));
  const hash = createHash('sha256');
  for (const img of images) hash.update(img.sha);
  return { images, fingerprint: hash.digest('hex') };
}

function toSelected(row: ImageRow): SelectedImage {
  return { sha: row.sha256, name: row.name, width: row.width, height: row.height, brand: row.brand, hype: row.hype, source: row.source };
}

/** A cache key: command, fingerprint, parameters, model and preprocessing version, hashed. */
export function cacheKey(command: string, parts: Record<string, unknown>): string {
  const canonical = JSON.stringify(parts, Object.keys(parts).sort());
  const digest = createHash('sha256').update(`${command}\u0000${EXPLORE_CACHE_VERSION}\u0000${canonical}`).digest('hex');
  return `explore:${command}:${digest}`;
}

interface CachedReply {
  readonly text: string;
  readonly title?: string;
  readonly data: JsonValue;
  readonly images: { name: string; alt?: string; png: string }[];
}

/** A cached reply, marked `data.cached = true`, or undefined. A corrupt entry is ignored (and recomputed). */
export async function readCachedReply(store: Store, key: string): Promise<Reply | undefined> {
  let value: unknown;
  try {
    value = await store.kv.get(key);
  } catch {
    return undefined;
  }
  if (!value || typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array) return undefined;
  const cached = value as unknown as CachedReply;
  if (typeof cached.text !== 'string' || !Array.isArray(cached.images)) return undefined;
  return {
    text: cached.text,
    ...(cached.title !== undefined ? { title: cached.title } : {}),
    data: { ...(cached.data as Record<string, unknown>), cached: true },
    images: cached.images.map((i) => ({ name: i.name, png: Buffer.from(i.png, 'base64'), ...(i.alt !== undefined ? { alt: i.alt } : {}) })),
  };
}

/** Store a reply under `key` (PNGs base64 inside the JSON value). A failing cache never fails the command. */
export async function writeCachedReply(store: Store, key: string, value: Reply, ctx: CommandContext): Promise<void> {
  const cached: CachedReply = {
    text: value.text,
    ...(value.title !== undefined ? { title: value.title } : {}),
    data: JSON.parse(JSON.stringify(value.data ?? {})) as JsonValue,
    images: (value.images ?? []).map((i: ReplyImage) => ({ name: i.name, png: i.png.toString('base64'), ...(i.alt !== undefined ? { alt: i.alt } : {}) })),
  };
  try {
    await store.kv.set(key, cached as unknown as JsonValue, CACHE_TTL_MS);
  } catch (err) {
    ctx.logger.warn('explore cache write failed', { key, err });
  }
}

/**
 * Progress that transports can render: throttled to one event per 250 ms (plus the last), each with the
 * fraction done and a `done/total` line.
 */
export function progressReporter(ctx: CommandContext, stage: string, total: number): (done: number, extra?: Partial<ProgressEvent>) => void {
  let last = 0;
  return (done, extra = {}) => {
    const now = Date.now();
    if (done < total && now - last < 250) return;
    last = now;
    ctx.progress({ stage, fraction: total > 0 ? done / total : 1, message: `${stage}: ${done}/${total} images`, ...extra });
  };
}

/** Decode stored image bytes to RGB (alpha flattened on white, as the loader does for uploads). */
export async function decodeRgb(bytes: Uint8Array): Promise<RawImage> {
  const { data, info } = await sharp(bytes, { limitInputPixels: 50_000_000 })
    .flatten({ background: '#ffffff' })
    .removeAlpha()
    .toColourspace('srgb')
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height, channels: 3 };
}

/** The preprocessing step (injected so tests and commands share one implementation). */
export type Preprocessor = (img: RawImage) => Promise<Float32Array>;

/** The study's preprocessing (crop, white background, toe to the right) at {@link PREP_SIZE}, from engine/ml. */
export async function defaultPreprocessor(): Promise<{ run: Preprocessor; version: string }> {
  const ml = await import('../../../engine/ml/preprocess.ts');
  const opts = { size: PREP_SIZE };
  return { run: async (img) => (await ml.preprocess(img, opts)).tensorData, version: ml.prepCacheKey(opts) };
}

/** One image of {@link streamPixels}. */
export interface StreamedImage {
  readonly index: number;
  readonly image: SelectedImage;
  /** `PREP_SIZE²·3` floats in [0,1], RGB, toe to the right. */
  readonly pixels: Float32Array;
}

/** Outcome of a {@link streamPixels} pass. */
export interface StreamResult {
  readonly processed: number;
  /** Images that could not be read or decoded (ids), skipped rather than failing the whole map. */
  readonly skipped: readonly string[];
}

/**
 * Visit every selected image as orientation-normalised pixels, one at a time: bytes are read from the
 * store, decoded, preprocessed, handed to `visit` and dropped, so memory stays constant whatever the size
 * of the selection. Reports progress and honours the context's abort signal.
 */
export async function streamPixels(
  store: Store,
  images: readonly SelectedImage[],
  ctx: CommandContext,
  stage: string,
  visit: (item: StreamedImage) => void | Promise<void>,
  preprocessor?: Preprocessor,
): Promise<StreamResult> {
  const prep = preprocessor ?? (await defaultPreprocessor()).run;
  const report = progressReporter(ctx, stage, images.length);
  const skipped: string[] = [];
  let processed = 0;
  for (let i = 0; i < images.length; i++) {
    ctx.signal.throwIfAborted();
    const image = images[i]!;
    let pixels: Float32Array;
    try {
      const bytes = await store.images.bytes(image.sha);
      if (!bytes) throw new Error('bytes missing');
      pixels = await prep(await decodeRgb(bytes));
    } catch (err) {
      if (err instanceof EngineError && err.code !== 'BAD_INPUT' && err.code !== 'NOT_AN_IMAGE') throw err;
      ctx.logger.warn('explore: skipping unreadable image', { sha: image.sha, err });
      skipped.push(image.sha);
      report(i + 1);
      continue;
    }
    await visit({ index: i, image, pixels });
    processed++;
    report(i + 1);
  }
  return { processed, skipped };
}

/**
 * Shrink a square RGB float image by an integer factor with a box filter (exact area averaging), e.g.
 * 224 → 56 for eigen-shoes or 224 → 28 for RGB cluster features.
 */
export function boxDownscale(pixels: Float32Array, size: number, factor: number): Float32Array {
  if (!Number.isInteger(factor) || factor < 1 || size % factor !== 0) throw new RangeError(`cannot shrink ${size} by ${factor}`);
  const out = size / factor;
  const res = new Float32Array(out * out * 3);
  const norm = 1 / (factor * factor);
  for (let y = 0; y < size; y++) {
    const oy = Math.floor(y / factor);
    for (let x = 0; x < size; x++) {
      const ox = Math.floor(x / factor);
      const src = (y * size + x) * 3;
      const dst = (oy * out + ox) * 3;
      res[dst]! += pixels[src]! * norm;
      res[dst + 1]! += pixels[src + 1]! * norm;
      res[dst + 2]! += pixels[src + 2]! * norm;
    }
  }
  return res;
}

/** Floats in [0,1] to bytes (thumbnails are kept as bytes: 4× less memory for big maps). */
export function toBytes(pixels: Float32Array | Float64Array): Uint8Array {
  const out = new Uint8Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) out[i] = Math.round(Math.max(0, Math.min(1, pixels[i]!)) * 255);
  return out;
}

/** Label text for charts: a null label is `unlabelled`. */
export function labelOf(value: string | null): string {
  return value ?? 'unlabelled';
}

/** Guard for numeric options against the selection size, with a message that says what to do. */
export function requireAtLeast(n: number, min: number, what: string): void {
  if (n < min) {
    throw new EngineError('BAD_INPUT', `${what} needs at least ${min} images; the selection has ${n}. Widen the filters or import more images.`, {
      details: { n, min },
    });
  }
}
