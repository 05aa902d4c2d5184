/**
 * Turning sneaker photos into a GAN training set: each image is fitted into a white square (the product-shot
 * convention of the data, so padding matches the background), resized, and scaled to [-1, 1].
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import type { GanImageSet } from './gan-train.ts';
import { mulberry32 } from './gan.ts';

/** Decodes and fits one encoded image into a `size`² white square, as floats in [-1, 1] (HWC, RGB). */
export async function imageToGanPixels(bytes: Uint8Array, size: number): Promise<Float32Array> {
  const { data } = await sharp(bytes, { limitInputPixels: 50_000_000 })
    .rotate()
    .flatten({ background: '#ffffff' })
    .resize(size, size, { fit: 'contain', background: '#ffffff', kernel: 'lanczos3' })
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  const out = new Float32Array(size * size * 3);
  for (let i = 0; i < out.length; i++) out[i] = data[i]! / 127.5 - 1;
  return out;
}

/** Builds a training set from encoded images (unreadable ones are skipped and counted). */
export async function buildImageSet(
  images: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  size: number,
): Promise<{ set: GanImageSet; skipped: number }> {
  const chunks: Float32Array[] = [];
  let skipped = 0;
  for await (const bytes of images) {
    try {
      chunks.push(await imageToGanPixels(bytes, size));
    } catch {
      skipped++;
    }
  }
  const pixels = new Float32Array(chunks.length * size * size * 3);
  chunks.forEach((c, i) => pixels.set(c, i * size * size * 3));
  return { set: { size, count: chunks.length, pixels }, skipped };
}

/** One row of a labelled manifest (`file,brand,hype,name,…`). */
export interface ManifestRow {
  readonly file: string;
  readonly brand: string;
  readonly hype: string;
  readonly name: string;
}

/** Parses a manifest.csv (quoted fields allowed); `file` is resolved against the CSV's folder. */
export async function readManifest(csvPath: string): Promise<ManifestRow[]> {
  const text = await readFile(csvPath, 'utf8');
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
  const header = parseCsvLine(lines[0] ?? '');
  const col = (name: string) => header.indexOf(name);
  const [fi, bi, hi, ni] = [col('file'), col('brand'), col('hype'), col('name')];
  if (fi < 0) throw new Error(`${csvPath}: no "file" column`);
  const dir = path.dirname(csvPath);
  return lines.slice(1).map((line) => {
    const cells = parseCsvLine(line);
    return {
      file: path.resolve(dir, cells[fi] ?? ''),
      brand: bi >= 0 ? (cells[bi] ?? '') : '',
      hype: hi >= 0 ? (cells[hi] ?? '') : '',
      name: ni >= 0 ? (cells[ni] ?? '') : '',
    };
  });
}

function parseCsvLine(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cur += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out.map((s) => s.trim());
}

/** A deterministic shuffle-and-split: the last `heldOut` fraction is held back (for quality figures). */
export function splitHeldOut<T>(items: readonly T[], heldOut: number, seed: number): { train: T[]; held: T[] } {
  const order = items.map((_, i) => i);
  const rng = mulberry32(seed);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const cut = Math.round(items.length * (1 - heldOut));
  return { train: order.slice(0, cut).map((i) => items[i]!), held: order.slice(cut).map((i) => items[i]!) };
}
