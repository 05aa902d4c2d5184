/**
 * Pictures in and out of the generative jobs: a command loads the user's image with the caller's rights
 * (engine/input.ts: SSRF-safe URLs, local paths only on the CLI, size caps), downscales huge ones with a
 * note, and hands the job plain PNG bytes (base64, so job data stays JSON for BullMQ).
 */
import sharp from 'sharp';
import type * as tfjs from '@tensorflow/tfjs';
import type { CommandContext, ImageRef, ProgressEvent } from '../../../engine/index.ts';
import { loadInputImage } from '../../../engine/input.ts';
import { floatsToRgb, rgbToPng, type Rgb } from './raster.ts';

type Tf = typeof tfjs;

/** A user picture ready for a job. */
export interface JobPicture {
  /** PNG bytes, base64. */
  readonly png: string;
  readonly width: number;
  readonly height: number;
  readonly name: string;
  /** Set when the picture was downscaled: "downscaled from 4000×3000 to 512×384". */
  readonly note?: string;
}

/** Loads an image option and fits it inside `maxSide` (never upscales), noting any downscale. */
export async function loadPicture(ref: ImageRef, ctx: CommandContext, maxSide: number): Promise<JobPicture> {
  const img = await loadInputImage(ref, ctx, { maxSide, minSide: 16 });
  const downscaled = img.width !== img.originalWidth || img.height !== img.originalHeight;
  const png = await img.png();
  return {
    png: png.toString('base64'),
    width: img.width,
    height: img.height,
    name: img.name,
    ...(downscaled
      ? { note: `downscaled from ${img.originalWidth}×${img.originalHeight} to ${img.width}×${img.height} (limit ${maxSide} px)` }
      : {}),
  };
}

/** Decodes encoded image bytes (PNG/JPEG…) to RGB, optionally resized to fit `width`×`height` exactly. */
export async function decodeRgb(bytes: Uint8Array, resize?: { width: number; height: number; fit: 'fill' | 'cover' }): Promise<Rgb> {
  let pipeline = sharp(bytes, { limitInputPixels: 50_000_000 }).rotate().flatten({ background: '#ffffff' }).removeAlpha();
  if (resize) pipeline = pipeline.resize(resize.width, resize.height, { fit: resize.fit, kernel: 'lanczos3' });
  const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height };
}

/** RGB bytes → [H, W, 3] float tensor in [0, 1]. */
export function rgbToTensor(tf: Tf, img: Rgb): tfjs.Tensor3D {
  return tf.tidy(() => tf.div(tf.tensor3d(img.data, [img.height, img.width, 3], 'int32'), 255) as tfjs.Tensor3D);
}

/** [H, W, 3] float tensor in [0, 1] → PNG. */
export async function tensorToPng(tf: Tf, t: tfjs.Tensor3D): Promise<Buffer> {
  return rgbToPng(tensorToRgb(t));
}

/** [H, W, 3] float tensor in [0, 1] → RGB bytes. */
export function tensorToRgb(t: tfjs.Tensor3D): Rgb {
  const [h, w] = t.shape;
  return floatsToRgb(t.dataSync(), w, h, 0, 1);
}

/**
 * A job's progress preview crosses a queue as JSON; whatever shape the PNG arrives in (Buffer, the JSON
 * form of a Buffer, base64), give the transport a Buffer again.
 */
export function normaliseProgress(event: ProgressEvent): ProgressEvent {
  const preview = event.preview as { name: string; png: unknown; alt?: string } | undefined;
  if (!preview || Buffer.isBuffer(preview.png)) return event;
  const raw = preview.png;
  let png: Buffer | undefined;
  if (typeof raw === 'string') png = Buffer.from(raw, 'base64');
  else if (raw instanceof Uint8Array) png = Buffer.from(raw);
  else if (raw && typeof raw === 'object' && Array.isArray((raw as { data?: unknown }).data)) png = Buffer.from((raw as { data: number[] }).data);
  if (!png) {
    const { preview: _dropped, ...rest } = event;
    return rest;
  }
  return { ...event, preview: { name: preview.name, png, ...(preview.alt !== undefined ? { alt: preview.alt } : {}) } };
}
