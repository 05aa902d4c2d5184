/**
 * The image loader on tiny generated images: normalisation (EXIF rotation, alpha, 16-bit, grey, CMYK,
 * animation), content hashing, refusals (corrupt, SVG, pixel bombs, tiny, too many bytes, local paths),
 * URL loading through the SSRF-safe fetcher, and the model/PNG helpers.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import type { AddressInfo } from 'node:net';
import sharp, { type Sharp } from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ftypBrands, loadImage, resizeForModel, sniffImageFormat, toPng, type LoadImageOptions } from '../../engine/image.ts';
import { EngineError } from '../../engine/errors.ts';
import type { ImageRef } from '../../engine/schema.ts';

const RED = { r: 220, g: 30, b: 30 };
const BLUE = { r: 20, g: 40, b: 230 };
const TRUSTED: LoadImageOptions = { allowLocalPaths: true };
const UNTRUSTED: LoadImageOptions = { allowLocalPaths: false };

const upload = (data: Buffer, name = 'shoe.png'): ImageRef => ({ kind: 'buffer', data, name });
const solid = (width: number, height: number, colour = RED) => sharp({ create: { width, height, channels: 3, background: colour } });

/** A 40×20 picture: left half red, right half blue. */
async function halves(): Promise<Sharp> {
  const left = await solid(20, 20, RED).png().toBuffer();
  const right = await solid(20, 20, BLUE).png().toBuffer();
  return sharp({ create: { width: 40, height: 20, channels: 3, background: RED } }).composite([
    { input: left, left: 0, top: 0 },
    { input: right, left: 20, top: 0 },
  ]);
}

function pixel(img: { data: Uint8Array; width: number }, x: number, y: number): number[] {
  const i = (y * img.width + x) * 3;
  return [img.data[i] ?? -1, img.data[i + 1] ?? -1, img.data[i + 2] ?? -1];
}

function near(actual: number[], expected: number[], tolerance: number): boolean {
  return actual.every((v, i) => Math.abs(v - (expected[i] ?? 0)) <= tolerance);
}

async function codeOf(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'expected an EngineError').toBeInstanceOf(EngineError);
  return { code: (err as EngineError).code, message: (err as EngineError).message };
}

/** CRC-32 as PNG chunks use it. */
function crc32(bytes: Buffer): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k += 1) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

/** A structurally valid PNG whose header claims `width`×`height` but carries almost no data. */
function pngClaiming(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([
    Buffer.from('\x89PNG\r\n\x1a\n', 'latin1'),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(Buffer.alloc(64))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

describe('loadImage normalisation', () => {
  it('GIVEN the same picture as PNG, lossless WebP and 16-bit PNG THEN the pixels and sha256 are identical', async () => {
    const base = await halves();
    const png = await loadImage(upload(await base.clone().png().toBuffer()), UNTRUSTED);
    const webp = await loadImage(upload(await base.clone().webp({ lossless: true }).toBuffer(), 's.webp'), UNTRUSTED);
    const png16 = await loadImage(upload(await base.clone().toColourspace('rgb16').png().toBuffer()), UNTRUSTED);
    expect(png).toMatchObject({ width: 40, height: 20, channels: 3, format: 'png', source: 'upload', name: 'shoe.png' });
    expect(png.data.length).toBe(40 * 20 * 3);
    expect(pixel(png, 2, 2)).toEqual([RED.r, RED.g, RED.b]);
    expect(pixel(png, 37, 10)).toEqual([BLUE.r, BLUE.g, BLUE.b]);
    expect(webp.format).toBe('webp');
    expect(png16.data.equals(png.data)).toBe(true);
    expect(webp.sha256).toBe(png.sha256);
    expect(png16.sha256).toBe(png.sha256);
    expect(png.sha256).toMatch(/^[0-9a-f]{64}$/);
    const other = await loadImage(upload(await solid(40, 20, BLUE).png().toBuffer()), UNTRUSTED);
    expect(other.sha256).not.toBe(png.sha256);
  });

  it('GIVEN an EXIF orientation flag THEN the pixels are rotated and hash like the physically rotated picture', async () => {
    const base = await halves();
    const flagged = await loadImage(upload(await base.clone().png().withMetadata({ orientation: 6 }).toBuffer()), UNTRUSTED);
    // Orientation 6 = display rotated 90° clockwise: the red left half ends up on top.
    expect([flagged.width, flagged.height]).toEqual([20, 40]);
    expect(pixel(flagged, 10, 2)).toEqual([RED.r, RED.g, RED.b]);
    expect(pixel(flagged, 10, 37)).toEqual([BLUE.r, BLUE.g, BLUE.b]);
    const rotated = await loadImage(upload(await sharp(await base.clone().png().toBuffer()).rotate(90).png().toBuffer()), UNTRUSTED);
    expect(flagged.sha256).toBe(rotated.sha256);
    const jpeg = await loadImage(upload(await base.clone().jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer(), 'p.jpg'), UNTRUSTED);
    expect([jpeg.width, jpeg.height, jpeg.format]).toEqual([20, 40, 'jpeg']);
    expect(near(pixel(jpeg, 10, 2), [RED.r, RED.g, RED.b], 12)).toBe(true);
  });

  it('GIVEN transparency THEN alpha is flattened on white', async () => {
    const clear = await sharp({ create: { width: 20, height: 20, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } }).png().toBuffer();
    const img = await loadImage(upload(clear), UNTRUSTED);
    expect(img.channels).toBe(3);
    expect(pixel(img, 5, 5)).toEqual([255, 255, 255]);
    const half = await sharp({ create: { width: 20, height: 20, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0.5 } } }).png().toBuffer();
    const grey = pixel(await loadImage(upload(half), UNTRUSTED), 5, 5);
    expect(near(grey, [128, 128, 128], 2)).toBe(true);
  });

  it('GIVEN grayscale and CMYK inputs THEN the output is sRGB with 3 channels', async () => {
    const grey = await loadImage(upload(await solid(24, 24).toColourspace('b-w').png().toBuffer()), UNTRUSTED);
    const [r, g, b] = pixel(grey, 3, 3);
    expect(grey.data.length).toBe(24 * 24 * 3);
    expect(r).toBe(g);
    expect(g).toBe(b);
    const cmyk = await loadImage(upload(await solid(24, 24).toColourspace('cmyk').jpeg().toBuffer(), 'c.jpg'), UNTRUSTED);
    expect(cmyk.data.length).toBe(24 * 24 * 3);
    const [cr, cg, cb] = pixel(cmyk, 3, 3);
    expect(cr).toBeGreaterThan(180);
    expect(cg).toBeLessThan(80);
    expect(cb).toBeLessThan(80);
  });

  it.each(['gif', 'webp'] as const)('GIVEN an animated %s THEN only the first frame is returned', async (format) => {
    const f1 = await solid(40, 20, RED).raw().toBuffer();
    const f2 = await solid(40, 20, BLUE).raw().toBuffer();
    const frames = sharp(Buffer.concat([f1, f2]), { raw: { width: 40, height: 40, channels: 3, pageHeight: 20 } });
    const animated = await (format === 'gif' ? frames.gif() : frames.webp({ quality: 100 })).toBuffer();
    expect((await sharp(animated).metadata()).pages).toBe(2);
    const img = await loadImage(upload(animated, `a.${format}`), UNTRUSTED);
    expect([img.width, img.height, img.format]).toEqual([40, 20, format]);
    expect(near(pixel(img, 20, 10), [RED.r, RED.g, RED.b], 8)).toBe(true);
  });

  it('GIVEN maxSide THEN the pixels are downscaled but the hash is of the full picture', async () => {
    const buf = await (await halves()).png().toBuffer();
    const full = await loadImage(upload(buf), UNTRUSTED);
    const small = await loadImage(upload(buf), { ...UNTRUSTED, maxSide: 20 });
    expect([small.width, small.height, small.originalWidth, small.originalHeight]).toEqual([20, 10, 40, 20]);
    expect(small.data.length).toBe(20 * 10 * 3);
    expect(small.sha256).toBe(full.sha256);
  });

  it('GIVEN a loaded image THEN png() and jpeg() re-encode the normalised pixels', async () => {
    const img = await loadImage(upload(await (await halves()).jpeg().toBuffer(), 'x.jpg'), UNTRUSTED);
    const png = await img.png();
    expect(sniffImageFormat(png)).toEqual({ format: 'png' });
    expect(await img.png()).toBe(png); // cached
    const back = await sharp(png).raw().toBuffer();
    expect(back.equals(img.data)).toBe(true);
    const again = await loadImage(upload(png), UNTRUSTED);
    expect(again.sha256).toBe(img.sha256);
    expect(sniffImageFormat(await img.jpeg(80))).toEqual({ format: 'jpeg' });
  });
});

describe('loadImage refusals', () => {
  it('GIVEN corrupt, truncated or non-image bytes THEN NOT_AN_IMAGE', async () => {
    const jpeg = await solid(64, 64).jpeg().toBuffer();
    const cases: [string, Buffer][] = [
      ['truncated.jpg', jpeg.subarray(0, Math.floor(jpeg.length / 2))],
      ['garbage.jpg', Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(300, 7)])],
      ['notes.txt', Buffer.from('just some text, not a picture')],
      ['empty.png', Buffer.alloc(0)],
      ['random.bin', Buffer.from(Array.from({ length: 256 }, (_, i) => (i * 97) % 256))],
      ['doc.pdf', Buffer.from('%PDF-1.4\n%…')],
      ['page.html', Buffer.from('<!DOCTYPE html><html><body>hi</body></html>')],
      ['bad.png', Buffer.concat([Buffer.from('\x89PNG\r\n\x1a\n', 'latin1'), Buffer.alloc(40, 1)])],
    ];
    for (const [name, bytes] of cases) {
      const { code, message } = await codeOf(loadImage(upload(bytes, name), UNTRUSTED));
      expect(code, name).toBe('NOT_AN_IMAGE');
      expect(message).toContain(name);
    }
  });

  it('GIVEN an iPhone HEIC photo the decoder cannot read THEN NOT_AN_IMAGE names HEIC and how to send a JPEG, not corruption', async () => {
    // The ISO-BMFF header of an iPhone photo (ftyp: major brand heic, compatible mif1 + heic), then a meta box the
    // decoder never gets through: sharp's prebuilt libvips has no HEVC decoder, so a whole photo fails the same way.
    const box = (type: string, body: Buffer): Buffer => {
      const b = Buffer.concat([Buffer.alloc(4), Buffer.from(type, 'latin1'), body]);
      b.writeUInt32BE(b.length, 0);
      return b;
    };
    const heic = Buffer.concat([box('ftyp', Buffer.from('heic\0\0\0\0mif1heic', 'latin1')), box('meta', Buffer.alloc(120, 3))]);
    expect(ftypBrands(heic)).toEqual(['heic', 'mif1', 'heic']);
    const { code, message } = await codeOf(loadImage(upload(heic, 'IMG_0420.HEIC'), UNTRUSTED));
    expect(code).toBe('NOT_AN_IMAGE');
    if (!(sharp.format.heif?.input.fileSuffix ?? []).some((s) => s === '.heic' || s === '.heif')) {
      expect(message).toMatch(/IMG_0420\.HEIC is a HEIC photo/);
      expect(message).toMatch(/JPEG/);
      expect(message).not.toMatch(/corrupt/);
    }
    // An AVIF that is broken is still called broken: the brands say it is not HEVC.
    const avif = Buffer.concat([box('ftyp', Buffer.from('avif\0\0\0\0mif1avif', 'latin1')), box('meta', Buffer.alloc(120, 3))]);
    const broken = await codeOf(loadImage(upload(avif, 'broken.avif'), UNTRUSTED));
    expect(broken.code).toBe('NOT_AN_IMAGE');
    expect(broken.message).toMatch(/corrupt or truncated/);
  });

  it('GIVEN an SVG THEN NOT_AN_IMAGE without it reaching a decoder', async () => {
    const svg = Buffer.from('<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><image href="http://169.254.169.254/"/></svg>');
    const { code, message } = await codeOf(loadImage(upload(svg, 'logo.svg'), UNTRUSTED));
    expect(code).toBe('NOT_AN_IMAGE');
    expect(message).toMatch(/SVG/);
  });

  it('GIVEN a header claiming huge dimensions THEN TOO_LARGE before decoding', async () => {
    const bomb = pngClaiming(100_000, 100_000);
    expect(bomb.length).toBeLessThan(200);
    const { code, message } = await codeOf(loadImage(upload(bomb, 'bomb.png'), UNTRUSTED));
    expect(code).toBe('TOO_LARGE');
    expect(message).toMatch(/100000×100000/);
    const real = await solid(100, 100).png().toBuffer();
    expect((await codeOf(loadImage(upload(real), { ...UNTRUSTED, maxPixels: 5000 }))).code).toBe('TOO_LARGE');
  });

  it('GIVEN more bytes than maxBytes THEN TOO_LARGE (upload, path and data: URL)', async () => {
    const buf = await solid(64, 64).png().toBuffer();
    expect((await codeOf(loadImage(upload(buf), { ...UNTRUSTED, maxBytes: 50 }))).code).toBe('TOO_LARGE');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'solescope-img-'));
    try {
      const file = path.join(dir, 'big.png');
      fs.writeFileSync(file, buf);
      expect((await codeOf(loadImage(file, { ...TRUSTED, maxBytes: 50 }))).code).toBe('TOO_LARGE');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    expect((await codeOf(loadImage(`data:image/png;base64,${buf.toString('base64')}`, { ...UNTRUSTED, maxBytes: 50 }))).code).toBe('TOO_LARGE');
  });

  it('GIVEN an image smaller than 16×16 THEN BAD_INPUT says so', async () => {
    const { code, message } = await codeOf(loadImage(upload(await solid(8, 40).png().toBuffer()), UNTRUSTED));
    expect(code).toBe('BAD_INPUT');
    expect(message).toMatch(/8×40/);
  });
});

describe('loadImage sources', () => {
  let dir: string;
  let file: string;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'solescope-img-'));
    file = path.join(dir, 'air max.jpg');
    fs.writeFileSync(file, await solid(32, 32).jpeg().toBuffer());
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('GIVEN a local path THEN it loads only when local paths are allowed', async () => {
    const img = await loadImage(file, TRUSTED);
    expect(img).toMatchObject({ source: 'path', name: 'air max.jpg', format: 'jpeg', width: 32, height: 32 });
    const refused = await codeOf(loadImage(file, UNTRUSTED));
    expect(refused.code).toBe('BAD_INPUT');
    expect(refused.message).toMatch(/Local file paths are not accepted/);
  });

  it('GIVEN a missing path or a folder THEN NOT_FOUND or BAD_INPUT', async () => {
    expect((await codeOf(loadImage(path.join(dir, 'nope.png'), TRUSTED))).code).toBe('NOT_FOUND');
    expect((await codeOf(loadImage(dir, TRUSTED))).code).toBe('BAD_INPUT');
    expect((await codeOf(loadImage('   ', TRUSTED))).code).toBe('BAD_INPUT');
  });

  it('GIVEN other URL schemes THEN BAD_INPUT; a data: URL THEN it loads as an upload', async () => {
    expect((await codeOf(loadImage('ftp://example.com/a.png', TRUSTED))).code).toBe('BAD_INPUT');
    expect((await codeOf(loadImage('file:///etc/hostname', TRUSTED))).code).toBe('BAD_INPUT');
    const b64 = (await solid(20, 20).png().toBuffer()).toString('base64');
    const img = await loadImage(`data:image/png;base64,${b64}`, UNTRUSTED);
    expect(img).toMatchObject({ source: 'upload', width: 20, contentType: 'image/png' });
  });

  describe('over http', () => {
    let server: http.Server;
    let base: string;
    beforeAll(async () => {
      const png = await solid(30, 20).png().toBuffer();
      server = http.createServer((req, res) => {
        if (req.url === '/shoes/jordan%201.png') {
          res.writeHead(200, { 'content-type': 'image/png' });
          res.end(png);
        } else if (req.url === '/page') {
          res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
          res.end('<html><body>a product page</body></html>');
        } else {
          res.writeHead(404);
          res.end();
        }
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });

    it('GIVEN a loopback URL THEN FORBIDDEN (SSRF), even for trusted callers', async () => {
      const { code, message } = await codeOf(loadImage(`${base}/shoes/jordan%201.png`, TRUSTED));
      expect(code).toBe('FORBIDDEN');
      expect(message).toMatch(/loopback/);
    });

    it('GIVEN an allowed URL THEN it loads with its name and content type; a web page THEN NOT_AN_IMAGE', async () => {
      const opts: LoadImageOptions = { ...UNTRUSTED, fetch: { allowHosts: ['127.0.0.1'] } };
      const img = await loadImage(`${base}/shoes/jordan%201.png`, opts);
      expect(img).toMatchObject({ source: 'url', name: 'jordan 1.png', contentType: 'image/png', width: 30, height: 20 });
      const page = await codeOf(loadImage(`${base}/page`, opts));
      expect(page.code).toBe('NOT_AN_IMAGE');
      expect(page.message).toMatch(/text\/html/);
      expect((await codeOf(loadImage(`${base}/gone.png`, opts))).code).toBe('NOT_FOUND');
    });
  });
});

describe('resizeForModel and toPng', () => {
  it('GIVEN a 2:1 picture THEN letterbox pads white, cover and fill cover the square; values lie in [0, 1]', async () => {
    const img = await loadImage(upload(await solid(40, 20).png().toBuffer()), UNTRUSTED);
    const at = (t: Float32Array, size: number, x: number, y: number) => Array.from(t.subarray((y * size + x) * 3, (y * size + x) * 3 + 3));
    const letter = await resizeForModel(img, 16);
    expect(letter).toBeInstanceOf(Float32Array);
    expect(letter.length).toBe(16 * 16 * 3);
    expect(at(letter, 16, 8, 0)).toEqual([1, 1, 1]);
    expect(at(letter, 16, 8, 15)).toEqual([1, 1, 1]);
    expect(near(at(letter, 16, 8, 8), [RED.r / 255, RED.g / 255, RED.b / 255], 0.02)).toBe(true);
    for (const mode of ['cover', 'fill'] as const) {
      const t = await resizeForModel(img, 16, mode);
      expect(near(at(t, 16, 8, 0), [RED.r / 255, RED.g / 255, RED.b / 255], 0.02), mode).toBe(true);
    }
    const rect = await resizeForModel(img, { width: 10, height: 6 }, 'fill');
    expect(rect.length).toBe(10 * 6 * 3);
    expect(Math.min(...letter)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...letter)).toBeLessThanOrEqual(1);
    await expect(resizeForModel(img, 0)).rejects.toMatchObject({ code: 'BAD_INPUT' });
  });

  it('GIVEN raw pixels THEN toPng encodes them losslessly and rejects a wrong length', async () => {
    const raw = Buffer.from(Array.from({ length: 4 * 3 * 3 }, (_, i) => (i * 23) % 256));
    const png = await toPng(raw, 4, 3);
    const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([4, 3, 3]);
    expect(data.equals(raw)).toBe(true);
    await expect(toPng(raw, 5, 3)).rejects.toBeInstanceOf(EngineError);
  });
});
