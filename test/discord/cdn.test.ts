/**
 * The attachment downloader accepts only Discord CDN origins (plus the configured one), follows
 * redirects only within them, and enforces the size cap while streaming and the timeout.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CdnDownloader, looksLikeImage } from '../../bot/discord/cdn.ts';

let server: Server;
let base: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    const url = req.url ?? '/';
    if (url === '/cdn/ok.png') {
      res.setHeader('content-type', 'image/png');
      res.end(Buffer.from([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]));
    } else if (url === '/cdn/hop.png') {
      res.statusCode = 302;
      res.setHeader('location', '/cdn/ok.png');
      res.end();
    } else if (url === '/cdn/away.png') {
      res.statusCode = 302;
      res.setHeader('location', 'http://127.0.0.1:9/secret.png');
      res.end();
    } else if (url === '/cdn/stream.png') {
      // No content-length: the cap must hold while streaming.
      res.setHeader('content-type', 'image/png');
      res.write(Buffer.alloc(600));
      res.write(Buffer.alloc(600));
      res.end(Buffer.alloc(600));
    } else if (url === '/cdn/slow.png') {
      res.setHeader('content-type', 'image/png');
      res.write(Buffer.alloc(10));
      setTimeout(() => res.end(Buffer.alloc(10)), 2_000).unref();
    } else if (url === '/outside.png') {
      res.end('x');
    } else {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

describe('GIVEN the CDN downloader', () => {
  it('THEN it accepts Discord origins and the configured CDN path, nothing else', () => {
    const cdn = new CdnDownloader({ cdnUrl: `${base}/cdn` });
    expect(cdn.accepts('https://cdn.discordapp.com/attachments/1/2/a.png')).toBe(true);
    expect(cdn.accepts('https://media.discordapp.net/attachments/1/2/a.png?width=100')).toBe(true);
    expect(cdn.accepts(`${base}/cdn/ok.png`)).toBe(true);
    expect(cdn.accepts(`${base}/outside.png`)).toBe(false);
    expect(cdn.accepts('http://cdn.discordapp.com/attachments/a.png')).toBe(false);
    expect(cdn.accepts('https://cdn.discordapp.com.evil.example/a.png')).toBe(false);
    expect(cdn.accepts('https://user:pw@cdn.discordapp.com/a.png')).toBe(false);
    expect(cdn.accepts('not a url')).toBe(false);
    expect(new CdnDownloader().accepts(`${base}/cdn/ok.png`)).toBe(false);
  });

  it('THEN it downloads an image as a buffer image ref and follows same-origin redirects', async () => {
    const cdn = new CdnDownloader({ cdnUrl: `${base}/cdn` });
    const ref = await cdn.download({ url: `${base}/cdn/hop.png`, name: 'hop.png', size: 7, contentType: 'image/png' });
    expect(ref).toMatchObject({ kind: 'buffer', name: 'hop.png', contentType: 'image/png' });
    expect(typeof ref !== 'string' && [...ref.data]).toEqual([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]);
  });

  it('THEN redirects off the CDN, oversize streams, 404s and slow downloads are coded errors', async () => {
    const cdn = new CdnDownloader({ cdnUrl: `${base}/cdn`, maxBytes: 1000, timeoutMs: 300 });
    const info = (path: string) => ({ url: `${base}${path}`, name: path.slice(5), contentType: 'image/png' });
    await expect(cdn.download(info('/cdn/away.png'))).rejects.toMatchObject({ code: 'BAD_INPUT' });
    await expect(cdn.download(info('/cdn/stream.png'))).rejects.toMatchObject({ code: 'TOO_LARGE' });
    await expect(cdn.download(info('/cdn/missing.png'))).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(cdn.download(info('/cdn/slow.png'))).rejects.toMatchObject({ code: 'TIMEOUT' });
    await expect(cdn.download({ ...info('/cdn/ok.png'), size: 5000 })).rejects.toMatchObject({ code: 'TOO_LARGE' });
    await expect(cdn.download({ url: `${base}/cdn/ok.png`, name: 'ok.txt', contentType: 'text/plain' })).rejects.toMatchObject({ code: 'NOT_AN_IMAGE' });
  });

  it('THEN image detection uses the content type, else the extension', () => {
    expect(looksLikeImage({ name: 'a.bin', contentType: 'image/webp' })).toBe(true);
    expect(looksLikeImage({ name: 'a.png', contentType: 'application/pdf' })).toBe(false);
    expect(looksLikeImage({ name: 'IMG_1.JPG', contentType: null })).toBe(true);
    expect(looksLikeImage({ name: 'notes.txt' })).toBe(false);
  });
});
