/**
 * Downloads Discord attachments — and nothing else.
 *
 * The general URL fetcher refuses private addresses (SSRF rules). Attachments are a different case: the
 * bot only ever needs bytes from Discord's own CDN, so this small downloader accepts exactly the CDN
 * origins (`DISCORD_CDN_URL`, plus `https://cdn.discordapp.com` and `https://media.discordapp.net`) and
 * refuses every other URL, including redirects that leave them. Tests point `DISCORD_CDN_URL` at the fake
 * server; the general fetcher's rules are never loosened for it.
 */
import { EngineError, type ImageRef } from '../../engine/index.ts';

/** Discord's CDN and media proxy origins, always accepted. */
export const DISCORD_CDN_ORIGINS = ['https://cdn.discordapp.com', 'https://media.discordapp.net'] as const;

/** Options of {@link CdnDownloader}. */
export interface CdnDownloaderOptions {
  /** `DISCORD_CDN_URL`: an extra accepted base (origin + optional path prefix). */
  readonly cdnUrl?: string | undefined;
  /** Size cap in bytes (default 25 MiB). */
  readonly maxBytes?: number;
  /** Whole-download timeout in ms (default 15 s). */
  readonly timeoutMs?: number;
  /** Redirects followed when they stay on an accepted origin (default 3). */
  readonly maxRedirects?: number;
}

/** An attachment as Discord describes it (the subset we read). */
export interface AttachmentInfo {
  readonly url: string;
  readonly name: string;
  readonly size?: number | undefined;
  readonly contentType?: string | null | undefined;
}

const IMAGE_EXT = /\.(png|jpe?g|gif|webp|avif|tiff?|bmp|heic|heif)$/i;

/** Whether an attachment looks like an image (by declared content type, else by file extension). */
export function looksLikeImage(info: Pick<AttachmentInfo, 'name' | 'contentType'>): boolean {
  if (info.contentType) return info.contentType.toLowerCase().startsWith('image/');
  return IMAGE_EXT.test(info.name);
}

/** The attachment downloader. */
export class CdnDownloader {
  readonly maxBytes: number;
  private readonly bases: { origin: string; prefix: string }[];
  private readonly timeoutMs: number;
  private readonly maxRedirects: number;

  constructor(options: CdnDownloaderOptions = {}) {
    this.maxBytes = options.maxBytes ?? 25 * 1024 * 1024;
    this.timeoutMs = options.timeoutMs ?? 15_000;
    this.maxRedirects = options.maxRedirects ?? 3;
    this.bases = DISCORD_CDN_ORIGINS.map((o) => ({ origin: o, prefix: '/' }));
    if (options.cdnUrl) {
      const u = new URL(options.cdnUrl);
      this.bases.push({ origin: u.origin, prefix: u.pathname.endsWith('/') ? u.pathname : `${u.pathname}/` });
    }
  }

  /** Whether `url` is on an accepted CDN origin (and under its path prefix). */
  accepts(url: string): boolean {
    if (!URL.canParse(url)) return false;
    const u = new URL(url);
    if (u.username || u.password) return false;
    return this.bases.some((b) => u.origin === b.origin && u.pathname.startsWith(b.prefix));
  }

  /**
   * Download an attachment as an engine image ref. Refuses non-images (NOT_AN_IMAGE), declared or actual
   * sizes over the cap (TOO_LARGE), foreign URLs (BAD_INPUT), expired links (NOT_FOUND) and slow CDNs
   * (TIMEOUT) with catalogue errors.
   */
  async download(info: AttachmentInfo, signal?: AbortSignal): Promise<ImageRef> {
    if (!looksLikeImage(info)) {
      throw new EngineError('NOT_AN_IMAGE', `"${info.name}" is not an image (${info.contentType ?? 'unknown type'}); attach a PNG, JPEG or WebP photo.`);
    }
    if (info.size !== undefined && info.size > this.maxBytes) {
      throw new EngineError('TOO_LARGE', `"${info.name}" is ${formatBytes(info.size)}; the limit is ${formatBytes(this.maxBytes)}.`);
    }
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    let url = info.url;
    for (let hop = 0; ; hop += 1) {
      if (!this.accepts(url)) {
        throw new EngineError('BAD_INPUT', 'Attachments are only downloaded from the Discord CDN.', { details: { host: URL.canParse(url) ? new URL(url).host : 'invalid' } });
      }
      let res: Response;
      try {
        res = await fetch(url, { redirect: 'manual', signal: combined });
      } catch (err) {
        if (timeout.aborted) throw new EngineError('TIMEOUT', `Downloading "${info.name}" took longer than ${Math.round(this.timeoutMs / 1000)}s.`, { cause: err });
        throw new EngineError('UNAVAILABLE', `The Discord CDN could not be reached for "${info.name}".`, { cause: err });
      }
      if (res.status >= 300 && res.status < 400 && res.headers.get('location')) {
        await res.body?.cancel();
        if (hop >= this.maxRedirects) throw new EngineError('BAD_INPUT', 'Too many redirects from the Discord CDN.');
        url = new URL(res.headers.get('location') ?? '', url).href;
        continue;
      }
      if (res.status === 404 || res.status === 403 || res.status === 410) {
        await res.body?.cancel();
        throw new EngineError('NOT_FOUND', `The link to "${info.name}" has expired or was deleted; upload the photo again.`);
      }
      if (!res.ok) {
        await res.body?.cancel();
        throw new EngineError('UNAVAILABLE', `The Discord CDN answered ${res.status} for "${info.name}".`);
      }
      const declared = Number(res.headers.get('content-length') ?? NaN);
      if (Number.isFinite(declared) && declared > this.maxBytes) {
        await res.body?.cancel();
        throw new EngineError('TOO_LARGE', `"${info.name}" is ${formatBytes(declared)}; the limit is ${formatBytes(this.maxBytes)}.`);
      }
      const data = await this.readCapped(res, info.name, timeout);
      const contentType = res.headers.get('content-type') ?? info.contentType ?? undefined;
      return { kind: 'buffer', data, name: info.name, ...(contentType ? { contentType } : {}) };
    }
  }

  private async readCapped(res: Response, name: string, timeout: AbortSignal): Promise<Buffer> {
    const chunks: Uint8Array[] = [];
    let total = 0;
    try {
      for await (const chunk of res.body ?? []) {
        total += (chunk as Uint8Array).byteLength;
        if (total > this.maxBytes) {
          await res.body?.cancel().catch(() => undefined);
          throw new EngineError('TOO_LARGE', `"${name}" is over the ${formatBytes(this.maxBytes)} limit.`);
        }
        chunks.push(chunk as Uint8Array);
      }
    } catch (err) {
      if (err instanceof EngineError) throw err;
      if (timeout.aborted) throw new EngineError('TIMEOUT', `Downloading "${name}" took too long.`, { cause: err });
      throw new EngineError('UNAVAILABLE', `Downloading "${name}" failed.`, { cause: err });
    }
    return Buffer.concat(chunks);
  }
}

/** `1.5 MB`-style sizes for messages. */
export function formatBytes(n: number): string {
  if (n >= 1024 * 1024) return `${(n / (1024 * 1024)).toFixed(1)} MB`;
  if (n >= 1024) return `${Math.round(n / 1024)} KB`;
  return `${n} B`;
}
