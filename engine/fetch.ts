/**
 * SSRF-safe HTTP(S) fetching for user-supplied URLs (image links in commands, webhook payloads).
 *
 * Every hop — the first request and each redirect — is checked the same way:
 * 1. only `http:` / `https:` URLs without credentials;
 * 2. the host is resolved here (or taken literally when it is an IP), and the request is refused with
 *    FORBIDDEN when ANY resolved address is loopback, private, link-local (incl. cloud metadata at
 *    169.254.169.254), CGNAT, multicast, reserved, or an IPv6 form of those (mapped, NAT64, 6to4);
 * 3. the connection is pinned to the checked address through a custom `lookup`, so a DNS answer that
 *    changes between check and connect (DNS rebinding) cannot redirect it;
 * 4. redirects are followed manually, at most {@link SafeFetchOptions.maxRedirects} (5) times;
 * 5. the body streams through a byte counter that aborts past `maxBytes` (TOO_LARGE), and bodies are
 *    never decompressed (`accept-encoding: identity`), so a small gzip bomb stays small.
 * Errors are catalogue codes: FORBIDDEN, BAD_INPUT, TIMEOUT, TOO_LARGE, NOT_FOUND, UNAVAILABLE.
 */
import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { LookupFunction } from 'node:net';
import { EngineError, isEngineError } from './errors.ts';

/** A resolved address. */
export interface ResolvedAddress {
  readonly address: string;
  readonly family: 4 | 6;
}

/** Resolves a hostname to its addresses (injectable for tests). */
export type HostResolver = (hostname: string) => Promise<readonly ResolvedAddress[]>;

/** Options of {@link safeFetch}. */
export interface SafeFetchOptions {
  /** Body size cap in bytes (default 25 MB). */
  readonly maxBytes?: number;
  /** Total time budget for all hops and the body (default 20 s). */
  readonly timeoutMs?: number;
  /** Time to establish each TCP/TLS connection and get response headers (default 10 s). */
  readonly connectTimeoutMs?: number;
  /** Caller cancellation. */
  readonly signal?: AbortSignal | undefined;
  /**
   * Skip the address checks entirely (operator setting `SOLESCOPE_ALLOW_PRIVATE_URLS`, for a bot running
   * on a private network). The connection is still pinned to the resolved address.
   */
  readonly allowPrivate?: boolean | undefined;
  /**
   * Hostnames (exactly as in the URL, e.g. `127.0.0.1` or `cdn.internal`) exempt from the address
   * checks on any hop. For tests and explicit operator allowlists only; any other host reached by a
   * redirect is still checked.
   */
  readonly allowHosts?: readonly string[] | undefined;
  /** At most this many redirects (default 5). */
  readonly maxRedirects?: number;
  /** DNS resolver (default: the system resolver via `dns.lookup`, all addresses). */
  readonly resolve?: HostResolver | undefined;
  /** Extra request headers. */
  readonly headers?: Readonly<Record<string, string>>;
}

/** A fetched response (2xx only; other statuses become errors). */
export interface SafeFetchResult {
  /** The final URL after redirects. */
  readonly url: string;
  readonly status: number;
  /** `content-type` without parameters, lower-cased (`image/jpeg`), or undefined. */
  readonly contentType: string | undefined;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Buffer;
  /** How many redirects were followed. */
  readonly redirects: number;
}

const DEFAULT_MAX_BYTES = 25 * 1024 * 1024;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

// ---------------------------------------------------------------------------------------------------
// Address classification

/** Parse an IPv4 dotted quad into 4 bytes, or undefined. */
function parseIPv4(text: string): number[] | undefined {
  if (!net.isIPv4(text)) return undefined;
  return text.split('.').map(Number);
}

/** Parse any IPv6 text form (incl. `::`, embedded IPv4, zone ids) into 16 bytes, or undefined. */
function parseIPv6(text: string): number[] | undefined {
  const bare = text.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  if (!net.isIPv6(bare)) return undefined;
  let head = bare;
  const tailBytes: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(bare);
  if (v4?.[1]) {
    tailBytes.push(...(parseIPv4(v4[1]) ?? []));
    head = bare.slice(0, -v4[1].length);
    if (head.endsWith(':') && !head.endsWith('::')) head = head.slice(0, -1);
  }
  const groupsNeeded = 8 - tailBytes.length / 2;
  const [left = '', right] = head.split('::');
  const leftGroups = left === '' ? [] : left.split(':');
  const rightGroups = right === undefined || right === '' ? [] : right.split(':');
  const fill = right === undefined ? 0 : groupsNeeded - leftGroups.length - rightGroups.length;
  const groups = [...leftGroups, ...Array<string>(Math.max(0, fill)).fill('0'), ...rightGroups];
  if (groups.length !== groupsNeeded) return undefined;
  const bytes: number[] = [];
  for (const g of groups) {
    const n = Number.parseInt(g, 16);
    bytes.push((n >> 8) & 0xff, n & 0xff);
  }
  return [...bytes, ...tailBytes];
}

function inPrefix(bytes: readonly number[], prefix: readonly number[], bits: number): boolean {
  for (let i = 0; i < bits; i += 1) {
    const byte = i >> 3;
    const mask = 0x80 >> (i & 7);
    if (((bytes[byte] ?? 0) & mask) !== ((prefix[byte] ?? 0) & mask)) return false;
  }
  return true;
}

const V4_BLOCKS: readonly (readonly [number[], number, string])[] = [
  [[0, 0, 0, 0], 8, '"this network" (0.0.0.0/8)'],
  [[10, 0, 0, 0], 8, 'private (10.0.0.0/8)'],
  [[100, 64, 0, 0], 10, 'carrier-grade NAT (100.64.0.0/10)'],
  [[127, 0, 0, 0], 8, 'loopback (127.0.0.0/8)'],
  [[169, 254, 0, 0], 16, 'link-local / cloud metadata (169.254.0.0/16)'],
  [[172, 16, 0, 0], 12, 'private (172.16.0.0/12)'],
  [[192, 0, 0, 0], 24, 'IETF protocol assignments (192.0.0.0/24)'],
  [[192, 0, 2, 0], 24, 'documentation (192.0.2.0/24)'],
  [[192, 88, 99, 0], 24, '6to4 relay anycast (192.88.99.0/24)'],
  [[192, 168, 0, 0], 16, 'private (192.168.0.0/16)'],
  [[198, 18, 0, 0], 15, 'benchmarking (198.18.0.0/15)'],
  [[198, 51, 100, 0], 24, 'documentation (198.51.100.0/24)'],
  [[203, 0, 113, 0], 24, 'documentation (203.0.113.0/24)'],
  [[224, 0, 0, 0], 4, 'multicast (224.0.0.0/4)'],
  [[240, 0, 0, 0], 4, 'reserved / broadcast (240.0.0.0/4)'],
];

function classifyV4(bytes: readonly number[]): string | undefined {
  for (const [prefix, bits, reason] of V4_BLOCKS) if (inPrefix(bytes, prefix, bits)) return reason;
  return undefined;
}

const V6_BLOCKS: readonly (readonly [number[], number, string])[] = [
  [[0xfc], 7, 'unique-local IPv6 (fc00::/7)'],
  [[0xfe, 0x80], 10, 'link-local IPv6 (fe80::/10)'],
  [[0xfe, 0xc0], 10, 'site-local IPv6 (fec0::/10)'],
  [[0xff], 8, 'multicast IPv6 (ff00::/8)'],
  [[0x01, 0x00, 0, 0, 0, 0, 0, 0], 64, 'discard-only IPv6 (100::/64)'],
  [[0x20, 0x01, 0x0d, 0xb8], 32, 'documentation IPv6 (2001:db8::/32)'],
  [[0x20, 0x01, 0x00, 0x00], 23, 'IETF special-purpose IPv6 (2001::/23)'],
];

/**
 * Why an IP address must not be fetched from, or undefined when it is a public unicast address.
 * Accepts IPv4 and IPv6 text (brackets and zone ids allowed); anything unparseable is refused.
 */
export function classifyAddress(address: string): string | undefined {
  const v4 = parseIPv4(address);
  if (v4) return classifyV4(v4);
  const v6 = parseIPv6(address);
  if (!v6) return 'not an IP address';
  const embedded = (offset: number, via: string): string | undefined => {
    const reason = classifyV4(v6.slice(offset, offset + 4));
    return reason ? `${reason} via ${via}` : undefined;
  };
  if (v6.every((b) => b === 0)) return 'unspecified IPv6 (::)';
  if (v6.slice(0, 15).every((b) => b === 0) && v6[15] === 1) return 'loopback IPv6 (::1)';
  // ::ffff:a.b.c.d (IPv4-mapped) and ::ffff:0:a.b.c.d (IPv4-translated) reach the IPv4 address.
  if (inPrefix(v6, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff], 96)) return embedded(12, 'IPv4-mapped IPv6');
  if (inPrefix(v6, [0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0], 96)) return embedded(12, 'IPv4-translated IPv6');
  if (inPrefix(v6, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 96)) return 'deprecated IPv4-compatible IPv6 (::/96)';
  if (inPrefix(v6, [0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0], 96)) return embedded(12, 'NAT64 (64:ff9b::/96)') ;
  if (inPrefix(v6, [0x00, 0x64, 0xff, 0x9b, 0x00, 0x01], 48)) return 'local-use NAT64 (64:ff9b:1::/48)';
  if (inPrefix(v6, [0x20, 0x02], 16)) return embedded(2, '6to4 (2002::/16)');
  for (const [prefix, bits, reason] of V6_BLOCKS) if (inPrefix(v6, prefix, bits)) return reason;
  return undefined;
}

// ---------------------------------------------------------------------------------------------------
// Fetching

const systemResolver: HostResolver = async (hostname) => {
  const records = await dns.promises.lookup(hostname, { all: true, verbatim: true });
  return records.map((r) => ({ address: r.address, family: r.family === 6 ? 6 : 4 }));
};

/** Parse, validate the scheme, and describe the URL safely for messages (no query, no credentials). */
function checkUrl(raw: string | URL): URL {
  let url: URL;
  try {
    url = new URL(String(raw));
  } catch {
    throw new EngineError('BAD_INPUT', 'That is not a valid URL.');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new EngineError('BAD_INPUT', `Only http(s) URLs can be fetched (got ${url.protocol.replace(/:$/, '')}:).`);
  }
  if (url.username !== '' || url.password !== '') throw new EngineError('BAD_INPUT', 'URLs with credentials are not accepted.');
  if (url.hostname === '') throw new EngineError('BAD_INPUT', 'That URL has no host.');
  return url;
}

function shownHost(url: URL): string {
  return url.port ? `${url.hostname}:${url.port}` : url.hostname;
}

/** Resolve and check the host of `url`; returns the (all checked) addresses to pin the connection to. */
async function resolveChecked(url: URL, options: SafeFetchOptions): Promise<readonly ResolvedAddress[]> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const exempt = options.allowPrivate === true || (options.allowHosts ?? []).includes(url.hostname) || (options.allowHosts ?? []).includes(host);
  let addresses: readonly ResolvedAddress[];
  if (net.isIP(host)) addresses = [{ address: host, family: net.isIPv6(host) ? 6 : 4 }];
  else {
    try {
      addresses = await (options.resolve ?? systemResolver)(host);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (code === 'ENOTFOUND' || code === 'ENODATA') {
        throw new EngineError('NOT_FOUND', `The host ${host} does not exist.`, { cause: err });
      }
      throw new EngineError('UNAVAILABLE', `Could not resolve ${host} (${String(code ?? (err as Error).message)}).`, { cause: err });
    }
    if (addresses.length === 0) throw new EngineError('NOT_FOUND', `The host ${host} has no addresses.`);
  }
  if (!exempt) {
    for (const a of addresses) {
      const reason = classifyAddress(a.address);
      if (reason) {
        const via = net.isIP(host) ? '' : ` (${host} resolves to ${a.address})`;
        throw new EngineError('FORBIDDEN', `Refusing to fetch ${shownHost(url)}: it is a ${reason} address${via}.`, {
          details: { host, address: a.address, reason },
        });
      }
    }
  }
  return addresses;
}

/**
 * A lookup that only ever answers the checked addresses, never asking DNS again. `all: true` callers
 * (Node's happy-eyeballs connect) get every checked address so IPv4/IPv6 fallback still works.
 */
function pinnedLookup(pinned: readonly ResolvedAddress[]): LookupFunction {
  const first = pinned[0] as ResolvedAddress;
  return ((_hostname: string, opts: dns.LookupOptions, callback: (...args: unknown[]) => void) => {
    if (opts?.all) callback(null, pinned.map((a) => ({ address: a.address, family: a.family })));
    else callback(null, first.address, first.family);
  }) as unknown as LookupFunction;
}

interface HopResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body?: Buffer;
}

/** One request to one pinned address. Resolves after the full body (or immediately for redirects). */
function requestOnce(url: URL, pinned: readonly ResolvedAddress[], options: SafeFetchOptions, signal: AbortSignal, maxBytes: number): Promise<HopResponse> {
  return new Promise<HopResponse>((resolve, reject) => {
    const lib = url.protocol === 'https:' ? https : http;
    const connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(headerTimer);
      signal.removeEventListener('abort', onAbort);
      fn();
    };
    const req = lib.request(
      url,
      {
        method: 'GET',
        agent: false,
        lookup: pinnedLookup(pinned),
        headers: {
          'user-agent': 'solescope/0.1 (+image fetch)',
          accept: 'image/*,*/*;q=0.5',
          'accept-encoding': 'identity',
          ...options.headers,
        },
      },
      (res) => {
        clearTimeout(headerTimer);
        const status = res.statusCode ?? 0;
        if (REDIRECT_STATUSES.has(status) || status < 200 || status >= 300) {
          res.resume();
          finish(() => resolve({ status, headers: res.headers }));
          req.destroy();
          return;
        }
        const declared = Number(res.headers['content-length']);
        if (Number.isFinite(declared) && declared > maxBytes) {
          finish(() => reject(tooLarge(maxBytes, declared)));
          req.destroy();
          return;
        }
        const parts: Buffer[] = [];
        let received = 0;
        res.on('data', (chunk: Buffer) => {
          received += chunk.length;
          if (received > maxBytes) {
            finish(() => reject(tooLarge(maxBytes)));
            req.destroy();
            return;
          }
          parts.push(chunk);
        });
        res.on('end', () => finish(() => resolve({ status, headers: res.headers, body: Buffer.concat(parts) })));
        res.on('error', (err) => finish(() => reject(networkError(url, err))));
        res.on('aborted', () => finish(() => reject(new EngineError('UNAVAILABLE', `The connection to ${shownHost(url)} was cut mid-download.`))));
      },
    );
    const headerTimer = setTimeout(() => {
      finish(() =>
        reject(new EngineError('TIMEOUT', `${shownHost(url)} did not answer within ${Math.round(connectTimeoutMs / 100) / 10} s.`)),
      );
      req.destroy();
    }, connectTimeoutMs);
    const onAbort = () => {
      finish(() => reject(abortError(signal)));
      req.destroy();
    };
    if (signal.aborted) {
      onAbort();
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    req.on('error', (err) => finish(() => reject(networkError(url, err))));
    req.end();
  });
}

function tooLarge(maxBytes: number, declared?: number): EngineError {
  const mb = (n: number) => `${Math.round((n / 1024 / 1024) * 10) / 10} MB`;
  return new EngineError(
    'TOO_LARGE',
    declared === undefined ? `The download exceeds the ${mb(maxBytes)} limit.` : `The file is ${mb(declared)}; the limit is ${mb(maxBytes)}.`,
    { details: { maxBytes } },
  );
}

function networkError(url: URL, err: unknown): EngineError {
  if (isEngineError(err)) return err;
  const code = String((err as { code?: unknown }).code ?? '');
  if (code === 'ETIMEDOUT') return new EngineError('TIMEOUT', `Connecting to ${shownHost(url)} timed out.`, { cause: err });
  if (code.startsWith('ERR_TLS') || code.includes('CERT') || code === 'EPROTO') {
    return new EngineError('UNAVAILABLE', `The secure connection to ${shownHost(url)} failed (${code}).`, { cause: err });
  }
  return new EngineError('UNAVAILABLE', `Could not download from ${shownHost(url)} (${code || (err as Error).message}).`, { cause: err });
}

/** The error for an aborted signal: TIMEOUT for our own budget, the caller's reason if it is coded. */
function abortError(signal: AbortSignal): EngineError {
  const reason: unknown = signal.reason;
  if (isEngineError(reason)) return reason;
  return new EngineError('TIMEOUT', 'The download was cancelled.', { cause: reason });
}

/**
 * Fetch a user-supplied http(s) URL safely (see the module doc for every check). Resolves with the body
 * of the final 2xx response.
 *
 * @throws EngineError BAD_INPUT (not http(s), credentials, too many redirects), FORBIDDEN (address
 *   refused; the message says which range), NOT_FOUND (404/410 or unknown host), TOO_LARGE, TIMEOUT,
 *   UNAVAILABLE (network failures and other HTTP errors; `details.status` holds the status).
 */
export async function safeFetch(rawUrl: string | URL, options: SafeFetchOptions = {}): Promise<SafeFetchResult> {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  const maxRedirects = options.maxRedirects ?? 5;
  const timeoutMs = options.timeoutMs ?? 20_000;
  const budget = new AbortController();
  const timer = setTimeout(
    () => budget.abort(new EngineError('TIMEOUT', `The download took longer than ${Math.round(timeoutMs / 100) / 10} s.`)),
    timeoutMs,
  );
  const signal = options.signal ? AbortSignal.any([options.signal, budget.signal]) : budget.signal;
  try {
    let url = checkUrl(rawUrl);
    for (let redirects = 0; ; redirects += 1) {
      if (signal.aborted) throw abortError(signal);
      const pinned = await resolveChecked(url, options);
      const res = await requestOnce(url, pinned, options, signal, maxBytes);
      if (REDIRECT_STATUSES.has(res.status)) {
        const location = res.headers.location;
        if (!location) throw new EngineError('UNAVAILABLE', `${shownHost(url)} answered a redirect without a location.`);
        if (redirects >= maxRedirects) throw new EngineError('BAD_INPUT', `The URL redirects more than ${maxRedirects} times.`);
        url = checkUrl(new URL(location, url));
        continue;
      }
      if (res.status === 404 || res.status === 410) {
        throw new EngineError('NOT_FOUND', `${shownHost(url)} has nothing at that address (HTTP ${res.status}).`, { details: { status: res.status } });
      }
      if (res.status < 200 || res.status >= 300 || !res.body) {
        throw new EngineError('UNAVAILABLE', `${shownHost(url)} answered HTTP ${res.status}.`, { details: { status: res.status } });
      }
      const type = res.headers['content-type'];
      return {
        url: url.toString(),
        status: res.status,
        contentType: typeof type === 'string' ? type.split(';')[0]?.trim().toLowerCase() || undefined : undefined,
        headers: res.headers,
        body: res.body,
        redirects,
      };
    }
  } catch (err) {
    if (isEngineError(err)) throw err;
    throw new EngineError('UNAVAILABLE', `The download failed (${(err as Error).message}).`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}
