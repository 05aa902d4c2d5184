/**
 * The one image loader every capability uses. Whatever the user gave — a local path (trusted callers
 * only), an http(s) URL (fetched through {@link safeFetch}), uploaded bytes or a `data:` URL — comes out
 * as the same thing: 8-bit sRGB, 3 channels, EXIF orientation applied, alpha flattened on white,
 * the first frame of an animation, with a content hash that dedupes the same picture across encodings.
 *
 * Accepted formats: JPEG, PNG, WebP, GIF, TIFF, AVIF/HEIF (as far as the installed libvips decodes them).
 * Refused with NOT_AN_IMAGE: everything else, recognised by magic bytes *before* any decoder runs —
 * notably SVG (a vector document that can reference external resources and is not a photo), PDF, HTML
 * and BMP/ICO. Limits: `maxBytes` (25 MB) and `maxPixels` (50 MP, checked from the header before
 * decoding; sharp's `limitInputPixels` guards the decoder too) → TOO_LARGE; sides under `minSide`
 * (16 px) → BAD_INPUT.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import sharp, { type Metadata, type OutputInfo, type SharpOptions } from 'sharp';
import { EngineError, isEngineError } from './errors.ts';
import { safeFetch, type SafeFetchOptions } from './fetch.ts';
import type { ImageRef } from './schema.ts';

/** Decoded pixels: 8-bit, interleaved (HWC), `channels` per pixel (3 unless stated). */
export interface RawImage {
  readonly data: Uint8Array;
  readonly width: number;
  readonly height: number;
  readonly channels?: 1 | 3 | 4;
}

/** Where a loaded image came from. */
export type ImageSource = 'path' | 'url' | 'upload';

/** The result of {@link loadImage}. */
export interface LoadedImage extends RawImage {
  /** Decoded RGB, 8-bit, 3 channels, row-major (length = width × height × 3). */
  readonly data: Buffer;
  readonly width: number;
  readonly height: number;
  readonly channels: 3;
  /**
   * SHA-256 (hex) of the normalised full-resolution pixels (`rgb8:<w>x<h>:` + RGB bytes). The same
   * picture gets the same hash whether it arrived as PNG, lossless WebP, or with an EXIF rotation flag
   * instead of rotated pixels; pass it as `sha256` to `store.images.put`.
   */
  readonly sha256: string;
  readonly source: ImageSource;
  /** File name (path basename, last URL segment, upload name) or a fallback (`upload`, the host). */
  readonly name: string;
  /** Detected input format: `jpeg`, `png`, `webp`, `gif`, `tiff`, `heif`. */
  readonly format: string;
  /** The input bytes as received. */
  readonly original: Buffer;
  /** Decoded size before `maxSide` downscaling (equal to width/height without it). */
  readonly originalWidth: number;
  readonly originalHeight: number;
  /** Content type the server or uploader declared, if any. */
  readonly contentType?: string;
  /** The final URL after redirects, for URL sources. */
  readonly url?: string;
  /** PNG encoding of `data` (computed once, then cached). */
  png(): Promise<Buffer>;
  /** JPEG encoding of `data` (quality 90 by default). */
  jpeg(quality?: number): Promise<Buffer>;
}

/** Options of {@link loadImage}. */
export interface LoadImageOptions {
  /** Accept local file paths (CLI, trusted jobs). Never true for HTTP or Discord input. */
  readonly allowLocalPaths: boolean;
  /** Input size cap in bytes (default 25 MB). */
  readonly maxBytes?: number;
  /** Pixel cap, width × height of the (first frame of the) input (default 50 000 000). */
  readonly maxPixels?: number;
  /** Smallest accepted side in pixels (default 16). */
  readonly minSide?: number;
  /**
   * Downscale the returned pixels to fit inside `maxSide` × `maxSide` (never upscales). The hash is
   * still of the full-resolution pixels, so dedupe does not depend on this.
   */
  readonly maxSide?: number;
  /** Options for URL fetching (timeouts, `allowPrivate`, test-only `allowHosts`/`resolve`). */
  readonly fetch?: Omit<SafeFetchOptions, 'maxBytes' | 'signal'>;
  readonly signal?: AbortSignal | undefined;
}

/** Default input size cap (25 MB). */
export const DEFAULT_MAX_IMAGE_BYTES = 25 * 1024 * 1024;
/** Default pixel cap (50 MP). */
export const DEFAULT_MAX_IMAGE_PIXELS = 50_000_000;
/** Default smallest side. */
export const DEFAULT_MIN_IMAGE_SIDE = 16;

const ACCEPTED = 'JPEG, PNG, WebP, GIF, TIFF or AVIF';

/**
 * Recognise an image format from its first bytes, or describe what the bytes are instead. Runs before
 * any decoder so that documents (SVG, PDF, HTML) never reach one.
 */
export function sniffImageFormat(bytes: Uint8Array): { format: string } | { notImage: string } {
  const b = bytes;
  const ascii = (start: number, end: number) => Buffer.from(b.subarray(start, end)).toString('latin1');
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return { format: 'jpeg' };
  if (b.length >= 8 && ascii(0, 8) === '\x89PNG\r\n\x1a\n') return { format: 'png' };
  if (b.length >= 6 && (ascii(0, 6) === 'GIF87a' || ascii(0, 6) === 'GIF89a')) return { format: 'gif' };
  if (b.length >= 12 && ascii(0, 4) === 'RIFF' && ascii(8, 12) === 'WEBP') return { format: 'webp' };
  if (b.length >= 4 && (ascii(0, 4) === 'II*\x00' || ascii(0, 4) === 'MM\x00*')) return { format: 'tiff' };
  if (b.length >= 12 && ascii(4, 8) === 'ftyp' && /^(avif|avis|heic|heix|hevc|heim|heis|mif1|msf1)$/.test(ascii(8, 12))) return { format: 'heif' };
  const head = Buffer.from(b.subarray(0, 512)).toString('utf8').replace(/^\uFEFF/, '').trimStart().toLowerCase();
  if (head.startsWith('<svg') || (head.startsWith('<?xml') && head.includes('<svg')) || head.includes('<!doctype svg')) {
    return { notImage: 'SVG is a vector document, not a photo; send a JPEG or PNG' };
  }
  if (head.startsWith('<!doctype html') || head.startsWith('<html')) return { notImage: 'that is a web page (HTML), not an image' };
  if (head.startsWith('<')) return { notImage: 'that is a markup document, not an image' };
  if (ascii(0, 5) === '%PDF-') return { notImage: 'PDF documents are not supported' };
  if (ascii(0, 2) === 'BM') return { notImage: `BMP is not supported; use ${ACCEPTED}` };
  if (b.length === 0) return { notImage: 'the file is empty' };
  return { notImage: `it is not a ${ACCEPTED} image` };
}

function mb(n: number): string {
  return `${Math.round((n / 1024 / 1024) * 10) / 10} MB`;
}

interface Acquired {
  readonly bytes: Buffer;
  readonly source: ImageSource;
  readonly name: string;
  readonly contentType?: string;
  readonly url?: string;
}

/** Decode a `data:` URL's payload, checking the size before decoding base64. */
function fromDataUrl(ref: string, maxBytes: number): Acquired {
  const match = /^data:([^;,]*)((?:;[^;,]*)*),(.*)$/s.exec(ref);
  if (!match) throw new EngineError('BAD_INPUT', 'That data: URL is malformed.');
  const isBase64 = (match[2] ?? '').split(';').includes('base64');
  const payload = match[3] ?? '';
  const estimated = isBase64 ? Math.floor((payload.length * 3) / 4) : payload.length;
  if (estimated > maxBytes + 3) throw new EngineError('TOO_LARGE', `The image is about ${mb(estimated)}; the limit is ${mb(maxBytes)}.`);
  const bytes = isBase64 ? Buffer.from(payload, 'base64') : Buffer.from(decodeURIComponent(payload), 'latin1');
  return { bytes, source: 'upload', name: 'upload', ...(match[1] ? { contentType: match[1].toLowerCase() } : {}) };
}

function nameFromUrl(url: URL): string {
  const last = url.pathname.split('/').filter(Boolean).at(-1);
  if (!last) return url.hostname;
  try {
    return decodeURIComponent(last);
  } catch {
    return last;
  }
}

async function acquire(ref: ImageRef, options: LoadImageOptions, maxBytes: number): Promise<Acquired> {
  if (typeof ref !== 'string') {
    if (!ref || ref.kind !== 'buffer' || !(ref.data instanceof Uint8Array)) throw new EngineError('BAD_INPUT', 'Expected an image.');
    if (ref.data.byteLength > maxBytes) {
      throw new EngineError('TOO_LARGE', `The image is ${mb(ref.data.byteLength)}; the limit is ${mb(maxBytes)}.`);
    }
    const bytes = Buffer.isBuffer(ref.data) ? ref.data : Buffer.from(ref.data.buffer, ref.data.byteOffset, ref.data.byteLength);
    return {
      bytes,
      source: 'upload',
      name: ref.name && ref.name.trim() !== '' ? path.basename(ref.name) : 'upload',
      ...(ref.contentType ? { contentType: ref.contentType.toLowerCase() } : {}),
    };
  }
  const text = ref.trim();
  if (text === '') throw new EngineError('BAD_INPUT', 'An image path or URL is required.');
  if (/^https?:\/\//i.test(text)) {
    const result = await safeFetch(text, { ...options.fetch, maxBytes, signal: options.signal });
    const finalUrl = new URL(result.url);
    return {
      bytes: result.body,
      source: 'url',
      name: nameFromUrl(finalUrl),
      url: result.url,
      ...(result.contentType ? { contentType: result.contentType } : {}),
    };
  }
  if (/^data:/i.test(text)) return fromDataUrl(text, maxBytes);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) {
    throw new EngineError('BAD_INPUT', `Only http(s) image URLs are accepted (got ${text.split(':')[0]}:).`);
  }
  if (!options.allowLocalPaths) {
    throw new EngineError('BAD_INPUT', 'Local file paths are not accepted here; attach the image or give an http(s) URL.');
  }
  const file = path.resolve(text);
  let stat: Awaited<ReturnType<typeof fs.stat>>;
  try {
    stat = await fs.stat(file);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new EngineError('NOT_FOUND', `There is no file at ${text}.`, { cause: err });
    throw new EngineError('BAD_INPUT', `Cannot read ${text} (${String(code)}).`, { cause: err });
  }
  if (stat.isDirectory()) throw new EngineError('BAD_INPUT', `${text} is a folder, not an image file.`);
  if (!stat.isFile()) throw new EngineError('BAD_INPUT', `${text} is not a regular file.`);
  if (stat.size > maxBytes) throw new EngineError('TOO_LARGE', `${path.basename(file)} is ${mb(stat.size)}; the limit is ${mb(maxBytes)}.`);
  let bytes: Buffer;
  try {
    bytes = await fs.readFile(file);
  } catch (err) {
    throw new EngineError('BAD_INPUT', `Cannot read ${text} (${String((err as { code?: unknown }).code ?? 'error')}).`, { cause: err });
  }
  return { bytes, source: 'path', name: path.basename(file) };
}

/** ISO-BMFF brands that mean HEVC-coded HEIF: the iPhone camera's HEIC photos (and HEIC bursts/sequences). */
const HEVC_BRANDS = new Set(['heic', 'heix', 'hevc', 'hevx', 'heim', 'heis', 'hevm', 'hevs']);

/**
 * The brands of an ISO-BMFF file's leading `ftyp` box (major brand, then the compatible ones), or none. A HEIF
 * container says which codec it holds only here: `mif1` alone could be AVIF or HEIC.
 */
export function ftypBrands(bytes: Uint8Array): string[] {
  if (bytes.length < 16 || Buffer.from(bytes.subarray(4, 8)).toString('latin1') !== 'ftyp') return [];
  const size = Math.min(bytes.length, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).readUInt32BE(0));
  const brands = [Buffer.from(bytes.subarray(8, 12)).toString('latin1')];
  for (let o = 16; o + 4 <= size; o += 4) brands.push(Buffer.from(bytes.subarray(o, o + 4)).toString('latin1'));
  return brands;
}

/**
 * Whether the installed libvips decodes HEVC-coded HEIF. sharp's prebuilt binaries do not (HEVC is patent-encumbered:
 * they read AVIF only, and list only `.avif` among the heif loader's suffixes); a custom libvips with libde265 does.
 */
const decodesHeic = (sharp.format.heif?.input.fileSuffix ?? []).some((s) => s === '.heic' || s === '.heif');

/** Map a sharp failure to a catalogue error. */
function decodeError(err: unknown, got: Acquired, maxPixels: number): EngineError {
  if (isEngineError(err)) return err;
  const message = (err as Error)?.message ?? String(err);
  if (/pixel limit/i.test(message)) {
    return new EngineError('TOO_LARGE', `The image has more than ${Math.round(maxPixels / 1e6)} megapixels.`, { cause: err });
  }
  // An iPhone photo is the likeliest file to get here: calling it corrupt would send the user looking for a fault
  // that is not there, so name the format and the two ways to get a JPEG out of the phone.
  const brands = ftypBrands(got.bytes);
  if (!decodesHeic && brands.some((b) => HEVC_BRANDS.has(b)) && !brands.some((b) => b === 'avif' || b === 'avis')) {
    return new EngineError(
      'NOT_AN_IMAGE',
      `${got.name} is a HEIC photo (the iPhone camera's default format), which solescope's image decoder (sharp's prebuilt libvips) cannot read. Send it as a JPEG: share or export it as JPEG, or set iPhone Settings → Camera → Formats → Most Compatible.`,
      { cause: err },
    );
  }
  const htmlHint = got.contentType?.startsWith('text/') ? ` The server sent ${got.contentType}, not an image.` : '';
  return new EngineError('NOT_AN_IMAGE', `${got.name} could not be decoded (corrupt or truncated ${got.source === 'url' ? 'download' : 'file'}).${htmlHint}`, {
    cause: err,
  });
}

/**
 * Load an image from a path, URL, upload or data: URL and normalise it (see the module doc).
 *
 * @throws EngineError BAD_INPUT (local path not allowed, folder, malformed ref, image smaller than
 *   `minSide`), NOT_FOUND (missing file, 404), NOT_AN_IMAGE (not an accepted format, corrupt),
 *   TOO_LARGE (bytes or pixels), FORBIDDEN / TIMEOUT / UNAVAILABLE (URL fetching).
 */
export async function loadImage(ref: ImageRef, options: LoadImageOptions): Promise<LoadedImage> {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_IMAGE_BYTES;
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_IMAGE_PIXELS;
  const minSide = options.minSide ?? DEFAULT_MIN_IMAGE_SIDE;
  const got = await acquire(ref, options, maxBytes);
  if (got.bytes.byteLength > maxBytes) throw new EngineError('TOO_LARGE', `The image is ${mb(got.bytes.byteLength)}; the limit is ${mb(maxBytes)}.`);

  const sniffed = sniffImageFormat(got.bytes);
  if ('notImage' in sniffed) {
    const declared = got.contentType && !got.contentType.startsWith('image/') ? ` (the server said ${got.contentType})` : '';
    throw new EngineError('NOT_AN_IMAGE', `${got.name}: ${sniffed.notImage}${declared}.`);
  }

  // `failOn: 'error'` rejects truncated and corrupt data instead of decoding grey garbage;
  // `limitInputPixels` makes the decoder itself refuse pixel bombs even if the header check is fooled.
  const decoderOptions: SharpOptions = { limitInputPixels: maxPixels, failOn: 'error' };
  let meta: Metadata;
  try {
    // Header only: no pixel limit here, so the size check below can say how large the image claims to be.
    meta = await sharp(got.bytes, { ...decoderOptions, limitInputPixels: false }).metadata();
  } catch (err) {
    throw decodeError(err, got, maxPixels);
  }
  const format = String(meta.format ?? sniffed.format).replace(/^jpg$/, 'jpeg');
  if (!['jpeg', 'png', 'webp', 'gif', 'tiff', 'heif'].includes(format)) {
    throw new EngineError('NOT_AN_IMAGE', `${got.name}: ${format.toUpperCase()} is not supported; use ${ACCEPTED}.`);
  }
  const w0 = meta.width ?? 0;
  const h0 = meta.pageHeight ?? meta.height ?? 0;
  if (w0 * h0 > maxPixels) {
    throw new EngineError('TOO_LARGE', `The image is ${w0}×${h0} (${Math.round((w0 * h0) / 1e5) / 10} MP); the limit is ${Math.round(maxPixels / 1e5) / 10} MP.`, {
      details: { width: w0, height: h0, maxPixels },
    });
  }
  if (Math.min(w0, h0) < minSide) {
    throw new EngineError('BAD_INPUT', `The image is only ${w0}×${h0} pixels; send one at least ${minSide}×${minSide}.`);
  }

  let full: { data: Buffer; info: OutputInfo };
  try {
    full = await sharp(got.bytes, decoderOptions)
      .rotate() // apply EXIF orientation, then drop the tag
      .flatten({ background: '#ffffff' })
      .toColourspace('srgb') // CMYK (via profile), grey, 16-bit → 8-bit sRGB
      .removeAlpha()
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw decodeError(err, got, maxPixels);
  }
  const { width, height } = full.info;
  let data = full.data;
  if (full.info.channels !== 3) data = expandToRgb(data, width, height, full.info.channels);
  const sha256 = createHash('sha256').update(`rgb8:${width}x${height}:`).update(data).digest('hex');

  let outW = width;
  let outH = height;
  if (options.maxSide !== undefined && Math.max(width, height) > options.maxSide) {
    const resized = await sharp(data, { raw: { width, height, channels: 3 } })
      .resize({ width: options.maxSide, height: options.maxSide, fit: 'inside', withoutEnlargement: true })
      .raw()
      .toBuffer({ resolveWithObject: true });
    data = resized.data;
    outW = resized.info.width;
    outH = resized.info.height;
  }

  const finalData = data;
  let pngPromise: Promise<Buffer> | undefined;
  return {
    data: finalData,
    width: outW,
    height: outH,
    channels: 3,
    sha256,
    source: got.source,
    name: got.name,
    format,
    original: got.bytes,
    originalWidth: width,
    originalHeight: height,
    ...(got.contentType ? { contentType: got.contentType } : {}),
    ...(got.url ? { url: got.url } : {}),
    png() {
      pngPromise ??= toPng(finalData, outW, outH);
      return pngPromise;
    },
    jpeg(quality = 90) {
      return sharp(finalData, { raw: { width: outW, height: outH, channels: 3 } }).jpeg({ quality, mozjpeg: false }).toBuffer();
    },
  };
}

/** Defensive: turn 1/2/4-channel raw data into RGB (libvips normally hands back RGB already). */
function expandToRgb(data: Buffer, width: number, height: number, channels: number): Buffer {
  const out = Buffer.alloc(width * height * 3);
  for (let i = 0, j = 0; i < width * height; i += 1, j += 3) {
    const base = i * channels;
    if (channels <= 2) {
      const g = data[base] ?? 0;
      out[j] = g;
      out[j + 1] = g;
      out[j + 2] = g;
    } else {
      out[j] = data[base] ?? 0;
      out[j + 1] = data[base + 1] ?? 0;
      out[j + 2] = data[base + 2] ?? 0;
    }
  }
  return out;
}

/** PNG-encode raw 8-bit pixels (1, 3 or 4 channels; default 3). */
export async function toPng(raw: Uint8Array, width: number, height: number, channels: 1 | 3 | 4 = 3): Promise<Buffer> {
  if (raw.byteLength !== width * height * channels) {
    throw new EngineError('INTERNAL', `toPng: ${raw.byteLength} bytes do not make a ${width}×${height}×${channels} image.`);
  }
  const buf = Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  return sharp(buf, { raw: { width, height, channels } }).png({ compressionLevel: 6 }).toBuffer();
}

/**
 * How {@link resizeForModel} fits a picture into the model's square (or rectangle):
 * - `letterbox` (default): scale to fit inside, pad with white (the colour alpha is flattened on), so the
 *   whole shoe stays in frame and undistorted;
 * - `cover`: scale to fill, crop the centre;
 * - `fill`: stretch to the exact size, ignoring aspect ratio (what the study's Keras pipeline did).
 */
export type ResizeMode = 'letterbox' | 'cover' | 'fill';

/**
 * Resize decoded pixels for a model: Float32 RGB in [0, 1], HWC order, length `width × height × 3`.
 * `size` is the side of a square input (224 for MobileNetV2, 299 for InceptionV3) or `{ width, height }`.
 */
export async function resizeForModel(
  img: RawImage,
  size: number | { readonly width: number; readonly height: number },
  mode: ResizeMode = 'letterbox',
): Promise<Float32Array> {
  const target = typeof size === 'number' ? { width: size, height: size } : size;
  if (!(Number.isInteger(target.width) && target.width > 0 && Number.isInteger(target.height) && target.height > 0)) {
    throw new EngineError('BAD_INPUT', 'resizeForModel needs a positive integer size.');
  }
  const channels = img.channels ?? 3;
  const input = Buffer.isBuffer(img.data) ? img.data : Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength);
  const fit = mode === 'letterbox' ? 'contain' : mode === 'cover' ? 'cover' : 'fill';
  const { data, info } = await sharp(input, { raw: { width: img.width, height: img.height, channels } })
    .removeAlpha()
    .toColourspace('srgb')
    .resize({ width: target.width, height: target.height, fit, position: 'centre', background: { r: 255, g: 255, b: 255 } })
    .raw()
    .toBuffer({ resolveWithObject: true });
  const rgb = info.channels === 3 ? data : expandToRgb(data, info.width, info.height, info.channels);
  const out = new Float32Array(rgb.length);
  for (let i = 0; i < rgb.length; i += 1) out[i] = (rgb[i] ?? 0) / 255;
  return out;
}
