/**
 * Pixel plumbing shared by the generative commands: tensors ↔ RGB bytes, grids, side-by-side panels,
 * watermarks and PNG encoding (sharp for codecs, @napi-rs/canvas only where text is drawn).
 */
import sharp from 'sharp';
import { createCanvas, type SKRSContext2D } from '@napi-rs/canvas';

/** An 8-bit RGB image, row-major. */
export interface Rgb {
  readonly data: Uint8Array;
  readonly width: number;
  readonly height: number;
}

/** Float pixels (HWC, RGB) in [lo, hi] → 8-bit RGB. */
export function floatsToRgb(values: ArrayLike<number>, width: number, height: number, lo = 0, hi = 1): Rgb {
  const data = new Uint8Array(width * height * 3);
  const scale = 255 / (hi - lo);
  for (let i = 0; i < data.length; i++) data[i] = Math.max(0, Math.min(255, Math.round((values[i]! - lo) * scale)));
  return { data, width, height };
}

/** PNG bytes of an RGB image. */
export async function rgbToPng(img: Rgb): Promise<Buffer> {
  return sharp(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength), {
    raw: { width: img.width, height: img.height, channels: 3 },
  })
    .png({ compressionLevel: 6 })
    .toBuffer();
}

/** Resizes an RGB image (nearest for pixel-art upscales of tiny GAN samples, lanczos otherwise). */
export async function resizeRgb(img: Rgb, width: number, height: number, kernel: 'nearest' | 'lanczos3' = 'lanczos3'): Promise<Rgb> {
  const { data, info } = await sharp(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength), {
    raw: { width: img.width, height: img.height, channels: 3 },
  })
    .resize(width, height, { kernel, fit: 'fill' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height };
}

/** Tiles equally sized images into a grid with a white gutter. */
export function grid(images: readonly Rgb[], columns: number, gutter = 2): Rgb {
  const first = images[0];
  if (!first) throw new Error('grid of no images');
  const cols = Math.max(1, Math.min(columns, images.length));
  const rows = Math.ceil(images.length / cols);
  const width = cols * first.width + (cols + 1) * gutter;
  const height = rows * first.height + (rows + 1) * gutter;
  const data = new Uint8Array(width * height * 3).fill(255);
  images.forEach((img, k) => {
    const ox = gutter + (k % cols) * (first.width + gutter);
    const oy = gutter + Math.floor(k / cols) * (first.height + gutter);
    for (let y = 0; y < img.height; y++) {
      const src = img.data.subarray(y * img.width * 3, (y + 1) * img.width * 3);
      data.set(src, ((oy + y) * width + ox) * 3);
    }
  });
  return { data, width, height };
}

function rgbToCanvasImage(img: Rgb): ImageDataLike {
  const rgba = new Uint8ClampedArray(img.width * img.height * 4);
  for (let i = 0, j = 0; i < img.data.length; i += 3, j += 4) {
    rgba[j] = img.data[i]!;
    rgba[j + 1] = img.data[i + 1]!;
    rgba[j + 2] = img.data[i + 2]!;
    rgba[j + 3] = 255;
  }
  return { data: rgba, width: img.width, height: img.height };
}

interface ImageDataLike {
  data: Uint8ClampedArray;
  width: number;
  height: number;
}

function canvasToRgb(ctx: SKRSContext2D, width: number, height: number): Rgb {
  const rgba = ctx.getImageData(0, 0, width, height).data;
  const data = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; j < rgba.length; i += 3, j += 4) {
    data[i] = rgba[j]!;
    data[i + 1] = rgba[j + 1]!;
    data[i + 2] = rgba[j + 2]!;
  }
  return { data, width, height };
}

/**
 * Stamps "generated" in the bottom-right corner on a translucent dark label: readable on white sneaker
 * backgrounds and on dark shoes alike, so a generated image is never mistaken for a photo.
 */
export function watermark(img: Rgb, text = 'generated'): Rgb {
  const canvas = createCanvas(img.width, img.height);
  const ctx = canvas.getContext('2d');
  const id = ctx.createImageData(img.width, img.height);
  id.data.set(rgbToCanvasImage(img).data);
  ctx.putImageData(id, 0, 0);
  const fontPx = Math.max(8, Math.round(img.width / 13));
  ctx.font = `bold ${fontPx}px sans-serif`;
  const tw = ctx.measureText(text).width;
  const pad = Math.max(2, Math.round(fontPx / 4));
  const bx = img.width - tw - 2 * pad;
  const by = img.height - fontPx - 2 * pad;
  ctx.fillStyle = 'rgba(0,0,0,0.55)';
  ctx.fillRect(bx, by, tw + 2 * pad, fontPx + 2 * pad);
  ctx.fillStyle = '#ffffff';
  ctx.textBaseline = 'top';
  ctx.fillText(text, bx + pad, by + pad);
  return canvasToRgb(ctx, img.width, img.height);
}

/** Images side by side with a caption under each (e.g. content | style | result). */
export function captionedRow(panels: readonly { img: Rgb; caption: string }[], gutter = 8): Rgb {
  const captionPx = 22;
  const height = Math.max(...panels.map((p) => p.img.height)) + captionPx + 2 * gutter;
  const width = panels.reduce((a, p) => a + p.img.width, 0) + (panels.length + 1) * gutter;
  const canvas = createCanvas(width, height);
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, width, height);
  let x = gutter;
  ctx.font = '14px sans-serif';
  ctx.fillStyle = '#222222';
  ctx.textBaseline = 'top';
  for (const p of panels) {
    const id = ctx.createImageData(p.img.width, p.img.height);
    id.data.set(rgbToCanvasImage(p.img).data);
    ctx.putImageData(id, x, gutter);
    ctx.fillText(p.caption, x, gutter + p.img.height + 4, p.img.width);
    x += p.img.width + gutter;
  }
  return canvasToRgb(ctx, width, height);
}

/** A small line chart PNG (loss curves). Series share the x axis; each gets its own colour and legend. */
export async function lineChartPng(
  title: string,
  xs: readonly number[],
  series: readonly { name: string; values: readonly number[] }[],
  width = 640,
  height = 360,
): Promise<Buffer> {
  const canvas = createCanvas(width, height);
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, width, height);
  const left = 56;
  const right = 16;
  const top = 32;
  const bottom = 36;
  const all = series.flatMap((s) => s.values.filter(Number.isFinite));
  const yMin = all.length ? Math.min(...all) : 0;
  const yMax = all.length ? Math.max(...all) : 1;
  const ySpan = yMax - yMin || 1;
  const xMin = xs.length ? xs[0]! : 0;
  const xMax = xs.length ? xs[xs.length - 1]! : 1;
  const xSpan = xMax - xMin || 1;
  const px = (x: number) => left + ((x - xMin) / xSpan) * (width - left - right);
  const py = (y: number) => top + (1 - (y - yMin) / ySpan) * (height - top - bottom);
  ctx.strokeStyle = '#999999';
  ctx.lineWidth = 1;
  ctx.strokeRect(left, top, width - left - right, height - top - bottom);
  ctx.fillStyle = '#222222';
  ctx.font = '13px sans-serif';
  ctx.fillText(title, left, 20);
  ctx.font = '11px sans-serif';
  ctx.fillText(yMax.toPrecision(3), 4, top + 8);
  ctx.fillText(yMin.toPrecision(3), 4, height - bottom);
  ctx.fillText(String(xMin), left, height - 14);
  ctx.fillText(String(xMax), width - right - 40, height - 14);
  const colours = ['#d62728', '#1f77b4', '#2ca02c', '#9467bd'];
  series.forEach((s, k) => {
    ctx.strokeStyle = colours[k % colours.length]!;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    s.values.forEach((v, i) => {
      const x = px(xs[i] ?? i);
      const y = py(Number.isFinite(v) ? v : yMin);
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.stroke();
    ctx.fillStyle = ctx.strokeStyle;
    ctx.fillText(s.name, left + 10 + k * 150, top + 14);
  });
  return canvas.toBuffer('image/png');
}
