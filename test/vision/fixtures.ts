/**
 * Generated fixtures for the vision tests: tiny cartoon sneakers drawn with @napi-rs/canvas (a sole, an
 * upper and a toe cap, pointing left or right), in per-class colours, plus a manifest.csv.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createCanvas } from '@napi-rs/canvas';
import sharp from 'sharp';

/** Draw one sneaker PNG. */
export async function drawShoe(opts: { upper: string; sole?: string; pointsRight?: boolean; size?: number; background?: string; jitter?: number }): Promise<Buffer> {
  const size = opts.size ?? 96;
  const c = createCanvas(size, size);
  const g = c.getContext('2d');
  g.fillStyle = opts.background ?? '#ffffff';
  g.fillRect(0, 0, size, size);
  const j = opts.jitter ?? 0;
  const s = size / 96;
  g.save();
  if (opts.pointsRight === false) {
    g.translate(size, 0);
    g.scale(-1, 1);
  }
  // Upper: heel at the left, toe at the right.
  g.fillStyle = opts.upper;
  g.beginPath();
  g.moveTo((14 + j) * s, 66 * s);
  g.lineTo((16 + j) * s, (30 - j) * s);
  g.lineTo(40 * s, (28 - j) * s);
  g.lineTo(52 * s, 46 * s);
  g.lineTo((84 - j) * s, 54 * s);
  g.lineTo((86 - j) * s, 66 * s);
  g.closePath();
  g.fill();
  // Sole and toe cap.
  g.fillStyle = opts.sole ?? '#f1f1f1';
  g.fillRect(12 * s, 66 * s, 76 * s, 8 * s);
  g.strokeStyle = '#222222';
  g.lineWidth = 2 * s;
  g.strokeRect(12 * s, 66 * s, 76 * s, 8 * s);
  g.fillStyle = '#333333';
  g.beginPath();
  g.arc(76 * s, 60 * s, 6 * s, 0, Math.PI * 2);
  g.fill();
  g.restore();
  return c.encode('png');
}

/** Class colours: each brand has its own palette; hype follows the brand (as in the dev data). */
export const PALETTE = {
  jordan: ['#c92a2a', '#e03131', '#a61e4d'],
  nike: ['#1c7ed6', '#1971c2', '#364fc7'],
  adidas: ['#2b8a3e', '#37b24d', '#5c940d'],
} as const;

/** Write a small labelled dataset (manifest.csv + images/) and return its paths. */
export async function writeDataset(dir: string, perClass = 4): Promise<{ manifest: string; files: string[] }> {
  mkdirSync(path.join(dir, 'images'), { recursive: true });
  const lines = ['file,brand,hype,name,source_repo'];
  const files: string[] = [];
  for (const [brand, colours] of Object.entries(PALETTE)) {
    for (let i = 0; i < perClass; i++) {
      const png = await drawShoe({ upper: colours[i % colours.length]!, pointsRight: i % 2 === 0, jitter: i * 2 });
      const rel = `images/${brand}-${i}.png`;
      writeFileSync(path.join(dir, rel), png);
      files.push(path.join(dir, rel));
      const hype = brand === 'adidas' ? 'not_hyped' : 'hyped';
      lines.push(`${rel},${brand},${hype},${brand} model ${i % 2 ? 'alpha' : 'bravo'} ${i},test/${i % 2 ? 'a' : 'b'}`);
    }
  }
  // A row without any label: counted as skipped by evaluate.
  const unl = await drawShoe({ upper: '#868e96' });
  writeFileSync(path.join(dir, 'images', 'unlabelled.png'), unl);
  lines.push('images/unlabelled.png,,,,test/a');
  const manifest = path.join(dir, 'manifest.csv');
  writeFileSync(manifest, lines.join('\n') + '\n');
  return { manifest, files };
}

/** Awkward but valid encodings of a shoe, and broken inputs, for the bad-input tests. */
export async function writeAwkwardImages(dir: string): Promise<Record<string, string>> {
  mkdirSync(dir, { recursive: true });
  const shoe = await drawShoe({ upper: '#c92a2a', size: 128 });
  const out: Record<string, string> = {};
  const put = (name: string, bytes: Buffer): void => {
    out[name] = path.join(dir, name);
    writeFileSync(out[name]!, bytes);
  };
  put('grayscale.png', await sharp(shoe).toColourspace('b-w').png().toBuffer());
  put('cmyk.jpg', await sharp(shoe).toColourspace('cmyk').jpeg().toBuffer());
  put('sixteen-bit.png', await sharp(shoe).toColourspace('rgb16').png().toBuffer());
  const { data, info } = await sharp(shoe).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  for (let i = 0; i < data.length; i += 4) if (data[i]! > 240 && data[i + 1]! > 240 && data[i + 2]! > 240) data[i + 3] = 0;
  put('transparent.png', await sharp(data, { raw: { width: info.width, height: info.height, channels: 4 } }).png().toBuffer());
  const jpeg = await sharp(shoe).jpeg().toBuffer();
  put('corrupt.jpg', jpeg.subarray(0, Math.floor(jpeg.length / 3)));
  put('not-an-image.png', Buffer.from('hello, I am text pretending to be a PNG'));
  put('tiny.png', await sharp({ create: { width: 8, height: 8, channels: 3, background: '#ff0000' } }).png().toBuffer());
  put('huge.png', await sharp({ create: { width: 3000, height: 3000, channels: 3, background: '#ffffff' } }).png().toBuffer());
  // A photo with no shoe: coloured noise.
  const noise = Buffer.alloc(128 * 128 * 3);
  let s = 7;
  for (let i = 0; i < noise.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    noise[i] = s >>> 24;
  }
  put('noise.png', await sharp(noise, { raw: { width: 128, height: 128, channels: 3 } }).png().toBuffer());
  return out;
}
