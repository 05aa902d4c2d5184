/**
 * The vision plugin's pictures (PNG via @napi-rs/canvas): the confusion matrix and reliability diagram of `evaluate`, the labelled
 * thumbnail strip of `similar`, and a caption band under explanation overlays.
 */
import { createCanvas, loadImage, type Canvas, type SKRSContext2D } from '@napi-rs/canvas';
import sharp from 'sharp';
import { encodePng } from '../../../engine/ml/cam.ts';
import type { ReliabilityBin } from '../../../engine/ml/calibration.ts';

const FONT = 'DejaVu Sans, sans-serif';

/** A white canvas with a bold title line, the start of every chart here. */
function titledCanvas(width: number, height: number, title: string): { canvas: Canvas; g: SKRSContext2D } {
  const canvas = createCanvas(width, height);
  const g = canvas.getContext('2d');
  g.fillStyle = '#ffffff';
  g.fillRect(0, 0, width, height);
  g.fillStyle = '#111111';
  g.font = `bold 16px ${FONT}`;
  g.fillText(title, 12, 24);
  return { canvas, g };
}

/** A confusion matrix as a heat-coloured grid with counts and row-normalised shading. */
export async function renderConfusionMatrix(labels: readonly string[], matrix: readonly (readonly number[])[], title: string): Promise<Buffer> {
  const cell = 84;
  const left = 120;
  const top = 70;
  const width = left + cell * labels.length + 30;
  const height = top + cell * labels.length + 60;
  const { canvas, g } = titledCanvas(width, height, title);
  g.font = `12px ${FONT}`;
  g.fillText('predicted →', left, top - 30);
  g.save();
  g.translate(18, top + (cell * labels.length) / 2 + 30);
  g.rotate(-Math.PI / 2);
  g.fillText('true →', 0, 0);
  g.restore();
  labels.forEach((l, j) => {
    g.fillStyle = '#111111';
    g.font = `12px ${FONT}`;
    g.fillText(l, left + j * cell + 6, top - 8);
    g.fillText(l, 34, top + j * cell + cell / 2 + 4);
  });
  matrix.forEach((row, i) => {
    const total = row.reduce((a, b) => a + b, 0);
    row.forEach((v, j) => {
      const share = total > 0 ? v / total : 0;
      // White → deep blue by the share of the true class; the diagonal is what we want dark.
      const shade = Math.round(255 - share * 200);
      g.fillStyle = `rgb(${shade},${Math.round(255 - share * 140)},255)`;
      g.fillRect(left + j * cell, top + i * cell, cell - 2, cell - 2);
      g.fillStyle = share > 0.55 ? '#ffffff' : '#111111';
      g.font = `bold 18px ${FONT}`;
      g.fillText(String(v), left + j * cell + 10, top + i * cell + cell / 2);
      g.font = `11px ${FONT}`;
      g.fillText(`${(share * 100).toFixed(0)}%`, left + j * cell + 10, top + i * cell + cell / 2 + 18);
    });
  });
  return canvas.encode('png');
}

/**
 * A reliability diagram: per confidence bin, how often the answers in it were right (bar) against how sure they
 * said they were (the diagonal), with each bin's count. Bars under the diagonal are overconfidence.
 */
export async function renderReliability(bins: readonly ReliabilityBin[], title: string, subtitle: string): Promise<Buffer> {
  const left = 64;
  const top = 84;
  const plot = 360;
  const width = left + plot + 30;
  const height = top + plot + 56;
  const { canvas, g } = titledCanvas(width, height, title);
  g.font = `12px ${FONT}`;
  g.fillText(subtitle, 12, 46);
  g.font = `11px ${FONT}`;
  g.fillStyle = '#555555';
  g.fillText('dashed: as sure as right · red bar: right less often than claimed · blue: more', 12, 64);
  const x = (v: number) => left + v * plot;
  const y = (v: number) => top + (1 - v) * plot;
  g.strokeStyle = '#bbbbbb';
  g.lineWidth = 1;
  for (let k = 0; k <= 10; k++) {
    g.beginPath();
    g.moveTo(x(0), y(k / 10));
    g.lineTo(x(1), y(k / 10));
    g.stroke();
    g.fillStyle = '#555555';
    g.font = `10px ${FONT}`;
    if (k % 2 === 0) {
      g.fillText(`${k * 10}%`, left - 34, y(k / 10) + 4);
      g.fillText(`${k * 10}%`, x(k / 10) - 10, top + plot + 16);
    }
  }
  for (const b of bins) {
    if (b.n === 0 || b.accuracy === null || b.confidence === null) continue;
    const under = b.accuracy < b.confidence;
    // Red where answers were right less often than they claimed, blue where more.
    g.fillStyle = under ? 'rgba(214,69,65,0.75)' : 'rgba(52,101,164,0.75)';
    g.fillRect(x(b.lo) + 2, y(b.accuracy), (b.hi - b.lo) * plot - 4, y(0) - y(b.accuracy));
    g.fillStyle = '#111111';
    g.font = `10px ${FONT}`;
    g.fillText(`n=${b.n}`, x(b.lo) + 4, Math.min(y(b.accuracy) - 4, y(0) - 4));
  }
  g.strokeStyle = '#111111';
  g.lineWidth = 2;
  g.setLineDash([6, 4]);
  g.beginPath();
  g.moveTo(x(0), y(0));
  g.lineTo(x(1), y(1));
  g.stroke();
  g.setLineDash([]);
  g.fillStyle = '#111111';
  g.font = `12px ${FONT}`;
  g.fillText('stated confidence of the answer →', left + 60, top + plot + 38);
  g.save();
  g.translate(16, top + plot / 2 + 70);
  g.rotate(-Math.PI / 2);
  g.fillText('share right →', 0, 0);
  g.restore();
  return canvas.encode('png');
}

/** One thumbnail of the strip. */
export interface StripItem {
  /** Encoded image bytes. */
  readonly bytes: Uint8Array;
  /** Caption lines (name, labels, distance). */
  readonly lines: readonly string[];
}

function wrapText(g: SKRSContext2D, text: string, maxWidth: number): string {
  if (g.measureText(text).width <= maxWidth) return text;
  let t = text;
  while (t.length > 1 && g.measureText(`${t}…`).width > maxWidth) t = t.slice(0, -1);
  return `${t}…`;
}

/** A horizontal strip of labelled thumbnails (the query first when given). */
export async function renderStrip(items: readonly StripItem[], title: string, thumb = 160): Promise<Buffer> {
  const pad = 10;
  const captionH = 58;
  const width = pad + items.length * (thumb + pad);
  const height = 34 + thumb + captionH + pad;
  const canvas = createCanvas(Math.max(width, 320), height);
  const g = canvas.getContext('2d');
  g.fillStyle = '#ffffff';
  g.fillRect(0, 0, canvas.width, height);
  g.fillStyle = '#111111';
  g.font = `bold 15px ${FONT}`;
  g.fillText(title, pad, 22);
  for (let k = 0; k < items.length; k++) {
    const item = items[k]!;
    const x = pad + k * (thumb + pad);
    const png = await sharp(item.bytes).rotate().resize(thumb, thumb, { fit: 'contain', background: '#ffffff' }).flatten({ background: '#ffffff' }).png().toBuffer();
    const img = await loadImage(png);
    g.drawImage(img, x, 30, thumb, thumb);
    g.strokeStyle = '#cccccc';
    g.strokeRect(x, 30, thumb, thumb);
    g.fillStyle = '#111111';
    g.font = `11px ${FONT}`;
    item.lines.slice(0, 4).forEach((line, i) => g.fillText(wrapText(g, line, thumb), x, 30 + thumb + 14 + i * 13));
  }
  return canvas.encode('png');
}

/** Add a caption band under a PNG (e.g. "hyped 0.93 — design-hype opinion, not a legit check"). */
export async function captionPng(png: Uint8Array, lines: readonly string[]): Promise<Buffer> {
  const { data, info } = await sharp(png).flatten({ background: '#ffffff' }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return captionRgb({ data, width: info.width, height: info.height }, lines);
}

/**
 * {@link captionPng} for raw RGB pixels (the overlay path): only the text band goes through the canvas, and
 * the picture is encoded once — decoding and re-encoding the overlay cost more than the rest of a warm
 * `hype` request.
 */
export async function captionRgb(rgb: { data: Buffer; width: number; height: number }, lines: readonly string[]): Promise<Buffer> {
  const bandH = 10 + lines.length * 16;
  const band = createCanvas(rgb.width, bandH);
  const g = band.getContext('2d');
  g.fillStyle = '#ffffff';
  g.fillRect(0, 0, band.width, bandH);
  g.fillStyle = '#111111';
  g.font = `12px ${FONT}`;
  lines.forEach((line, i) => g.fillText(wrapText(g, line, rgb.width - 8), 4, 16 + i * 16));
  const bandRgba = g.getImageData(0, 0, rgb.width, bandH).data;
  const out = Buffer.alloc(rgb.width * (rgb.height + bandH) * 3);
  rgb.data.copy(out, 0, 0, rgb.width * rgb.height * 3);
  let o = rgb.width * rgb.height * 3;
  // The band is opaque (white fill), so dropping alpha is exact.
  for (let i = 0; i < bandRgba.length; i += 4) {
    out[o++] = bandRgba[i]!;
    out[o++] = bandRgba[i + 1]!;
    out[o++] = bandRgba[i + 2]!;
  }
  return encodePng(out, rgb.width, rgb.height + bandH, 3);
}

