/**
 * Turning what a user gave (an {@link ImageRef}: path, URL, upload) or what a caller holds (encoded bytes,
 * raw pixels) into one decoded picture with a content id. Everything goes through the engine's image loader
 * (limits, EXIF rotation, alpha on white, SSRF-safe fetching), so ids match the rest of the store.
 */
import { createHash } from 'node:crypto';
import sharp from 'sharp';
import { loadImage } from '../../../engine/image.ts';
import type { ImageRef } from '../../../engine/schema.ts';
import type { RawImage } from '../../../engine/ml/types.ts';

/** A decoded picture ready for the feature pipeline and the store. */
export interface Picture {
  /** RGB pixels, EXIF-rotated, alpha flattened on white. */
  readonly raw: RawImage & { readonly channels: 3 };
  /** Content id: SHA-256 of the decoded pixels (same picture, any encoding → same id). */
  readonly sha256: string;
  /** A normalised encoding to store (PNG). */
  readonly bytes: Buffer;
  readonly width: number;
  readonly height: number;
  /** The original format (`jpeg`, `png`, …). */
  readonly format: string;
  /** File name when known. */
  readonly name?: string;
}

/** What the vision service accepts as an image. */
export type VisionImage = ImageRef | Uint8Array | RawImage | Picture;

/** Limits applied when decoding. */
export interface DecodeLimits {
  readonly maxBytes: number;
  readonly maxPixels: number;
  /** Smallest accepted side, in pixels (a 4×4 icon says nothing about a shoe). */
  readonly minSide: number;
}

/** Defaults (the engine config overrides bytes and pixels). */
export const DEFAULT_LIMITS: DecodeLimits = { maxBytes: 25 * 1024 * 1024, maxPixels: 50_000_000, minSide: 32 };

/** Content id of decoded RGB pixels: the engine image loader's hash (`rgb8:<w>x<h>:` + bytes). */
export function pixelSha(raw: RawImage): string {
  if ((raw.channels ?? 3) !== 3) throw new Error('pixelSha needs RGB pixels');
  return createHash('sha256').update(`rgb8:${raw.width}x${raw.height}:`).update(raw.data).digest('hex');
}

/** Whether a value is an already-decoded {@link Picture}. */
export function isPicture(v: unknown): v is Picture {
  return typeof v === 'object' && v !== null && 'raw' in v && 'sha256' in v && 'bytes' in v;
}

/** Whether a value is raw pixels. */
export function isRawImage(v: unknown): v is RawImage {
  return typeof v === 'object' && v !== null && !(v instanceof Uint8Array) && 'data' in v && 'width' in v && 'height' in v && !('kind' in v);
}

/** Options of {@link loadPicture}. */
export interface LoadPictureOptions {
  readonly allowLocalPaths?: boolean;
  readonly allowPrivateUrls?: boolean;
  readonly signal?: AbortSignal | undefined;
}

/**
 * Load an image reference (path, URL, upload) with the engine's loader — limits, format sniffing, first
 * frame only, EXIF rotation, 16-bit and CMYK to 8-bit sRGB, grayscale to RGB, transparency on white, the
 * loader's content hash — as a {@link Picture}.
 */
export async function loadPicture(ref: ImageRef, limits: DecodeLimits = DEFAULT_LIMITS, opts: LoadPictureOptions = {}): Promise<Picture> {
  const loaded = await loadImage(ref, {
    allowLocalPaths: opts.allowLocalPaths ?? false,
    maxBytes: limits.maxBytes,
    maxPixels: limits.maxPixels,
    minSide: limits.minSide,
    signal: opts.signal,
    ...(opts.allowPrivateUrls ? { fetch: { allowPrivate: true } } : {}),
  });
  return {
    raw: { data: loaded.data, width: loaded.width, height: loaded.height, channels: 3 },
    sha256: loaded.sha256,
    bytes: await loaded.png(),
    width: loaded.width,
    height: loaded.height,
    format: loaded.format,
    name: loaded.name,
  };
}

/** Decode encoded bytes (an upload, a dataset file's contents) as a {@link Picture}. */
export async function decodeBytes(bytes: Uint8Array, limits: DecodeLimits = DEFAULT_LIMITS, name?: string): Promise<Picture> {
  return loadPicture({ kind: 'buffer', data: bytes, ...(name !== undefined ? { name } : {}) }, limits);
}

/** {@link decodeBytes} without the normalised encoding (for batch jobs that only need pixels and ids). */
export async function decodePixels(bytes: Uint8Array, limits: DecodeLimits = DEFAULT_LIMITS, name?: string): Promise<Pick<Picture, 'raw' | 'sha256' | 'format'>> {
  const loaded = await loadImage({ kind: 'buffer', data: bytes, ...(name !== undefined ? { name } : {}) }, { allowLocalPaths: false, maxBytes: limits.maxBytes, maxPixels: limits.maxPixels, minSide: limits.minSide });
  return { raw: { data: loaded.data, width: loaded.width, height: loaded.height, channels: 3 }, sha256: loaded.sha256, format: loaded.format };
}

/** Raw pixels → a picture (RGBA composited on white, grayscale replicated). */
export async function pictureFromRaw(raw: RawImage, limits: DecodeLimits = DEFAULT_LIMITS): Promise<Picture> {
  const channels = raw.channels ?? 3;
  const png = await sharp(Buffer.from(raw.data.buffer, raw.data.byteOffset, raw.data.byteLength), { raw: { width: raw.width, height: raw.height, channels } })
    .png()
    .toBuffer();
  return decodeBytes(png, limits);
}
