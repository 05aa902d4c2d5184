/**
 * SSRF-safe fetching: address classification, refusals (also after redirects), pinning, size cap,
 * timeouts and HTTP status mapping. Servers run on loopback; tests reach them only through the
 * test-only `allowHosts` exemption for the literal host `127.0.0.1`, so every other way of naming
 * loopback (localhost, [::1], 2130706433, redirects) must still be refused.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { classifyAddress, safeFetch, type SafeFetchOptions } from '../../engine/fetch.ts';
import { EngineError } from '../../engine/errors.ts';

async function codeOf(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'expected an EngineError').toBeInstanceOf(EngineError);
  return { code: (err as EngineError).code, message: (err as EngineError).message };
}

const BODY = Buffer.from('pretend these are image bytes');

let server: http.Server;
let base: string;
let port: number;
const pending = new Set<http.ServerResponse>();
let lastHostHeader: string | undefined;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    lastHostHeader = req.headers.host;
    const url = new URL(req.url ?? '/', 'http://x');
    const p = url.pathname;
    if (p === '/img') {
      res.writeHead(200, { 'content-type': 'image/png; charset=binary', 'content-length': BODY.length });
      res.end(BODY);
    } else if (p === '/to-localhost') {
      res.writeHead(302, { location: `http://localhost:${port}/img` });
      res.end();
    } else if (p === '/to-ipv6-loopback') {
      res.writeHead(301, { location: `http://[::1]:${port}/img` });
      res.end();
    } else if (p === '/to-metadata') {
      res.writeHead(307, { location: 'http://169.254.169.254/latest/meta-data/' });
      res.end();
    } else if (p === '/to-relative') {
      res.writeHead(303, { location: '/img' });
      res.end();
    } else if (p === '/to-ftp') {
      res.writeHead(302, { location: 'ftp://example.com/x.png' });
      res.end();
    } else if (p.startsWith('/loop/')) {
      const n = Number(p.slice(6));
      res.writeHead(302, { location: n >= 5 ? '/img' : `/loop/${n + 1}` });
      res.end();
    } else if (p === '/declared-big') {
      res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': 5000 });
      res.end(Buffer.alloc(5000));
    } else if (p === '/chunked-big') {
      res.writeHead(200, { 'content-type': 'image/jpeg' });
      let sent = 0;
      const tick = () => {
        if (res.destroyed || sent >= 20) {
          res.end();
          return;
        }
        res.write(Buffer.alloc(500));
        sent += 1;
        setImmediate(tick);
      };
      tick();
    } else if (p === '/slow-headers') {
      pending.add(res); // never answers
    } else if (p === '/slow-body') {
      res.writeHead(200, { 'content-type': 'image/jpeg' });
      res.write(Buffer.alloc(10));
      pending.add(res); // never finishes
    } else if (p === '/missing') {
      res.writeHead(404);
      res.end('nope');
    } else if (p === '/broken') {
      res.writeHead(500);
      res.end('oops');
    } else if (p === '/no-location') {
      res.writeHead(302);
      res.end();
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  base = `http://127.0.0.1:${port}`;
});

afterAll(async () => {
  for (const res of pending) res.destroy();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const TEST_ONLY: SafeFetchOptions = { allowHosts: ['127.0.0.1'] };

describe('classifyAddress', () => {
  it.each([
    ['127.0.0.1', /loopback/],
    ['127.255.0.9', /loopback/],
    ['10.0.0.1', /private/],
    ['172.16.5.4', /private/],
    ['172.31.255.255', /private/],
    ['192.168.1.1', /private/],
    ['169.254.169.254', /metadata/],
    ['100.64.0.1', /carrier-grade/],
    ['0.0.0.0', /this network/],
    ['224.0.0.251', /multicast/],
    ['255.255.255.255', /broadcast/],
    ['198.18.0.1', /benchmarking/],
    ['::1', /loopback/],
    ['::', /unspecified/],
    ['fc00::1', /unique-local/],
    ['fd12:3456::1', /unique-local/],
    ['fe80::1', /link-local/],
    ['fe80::1%eth0', /link-local/],
    ['ff02::1', /multicast/],
    ['::ffff:127.0.0.1', /loopback.*IPv4-mapped/],
    ['::ffff:7f00:1', /loopback.*IPv4-mapped/],
    ['::ffff:169.254.169.254', /metadata.*IPv4-mapped/],
    ['::ffff:10.1.2.3', /private/],
    ['64:ff9b::a9fe:a9fe', /metadata.*NAT64/],
    ['2002:7f00:1::', /loopback.*6to4/],
    ['::127.0.0.1', /IPv4-compatible/],
    ['2001:db8::1', /documentation/],
    ['not-an-ip', /not an IP/],
  ])('GIVEN %s THEN it is refused (%s)', (address, reason) => {
    expect(classifyAddress(address)).toMatch(reason);
  });

  it.each(['8.8.8.8', '1.1.1.1', '151.101.1.69', '172.32.0.1', '100.128.0.1', '2606:4700:4700::1111', '2a00:1450:4001:80b::200e', '::ffff:8.8.8.8'])(
    'GIVEN public address %s THEN it is allowed',
    (address) => {
      expect(classifyAddress(address)).toBeUndefined();
    },
  );
});

describe('safeFetch refusals', () => {
  it.each([
    ['http://127.0.0.1/', /loopback/],
    ['http://localhost/', /loopback/],
    ['http://[::1]/', /loopback/],
    ['http://169.254.169.254/latest/meta-data/', /metadata/],
    ['http://10.0.0.1/x.png', /private/],
    ['http://[::ffff:127.0.0.1]/', /loopback/],
    ['http://2130706433/', /loopback/],
    ['http://0x7f.1/', /loopback/],
    ['http://0.0.0.0/', /this network/],
    ['https://192.168.0.10/', /private/],
  ])('GIVEN %s THEN FORBIDDEN saying why', async (url, why) => {
    const { code, message } = await codeOf(safeFetch(url));
    expect(code).toBe('FORBIDDEN');
    expect(message).toMatch(why);
  });

  it.each(['ftp://example.com/a.png', 'file:///etc/passwd', 'gopher://x/', 'not a url', 'http://user:pw@example.com/'])(
    'GIVEN %s THEN BAD_INPUT',
    async (url) => {
      expect((await codeOf(safeFetch(url))).code).toBe('BAD_INPUT');
    },
  );

  it('GIVEN a host resolving to any private address THEN FORBIDDEN names host and address', async () => {
    const resolve = async () => [
      { address: '93.184.216.34', family: 4 as const },
      { address: '10.1.2.3', family: 4 as const },
    ];
    const { code, message } = await codeOf(safeFetch('http://mixed.example/x.png', { resolve }));
    expect(code).toBe('FORBIDDEN');
    expect(message).toContain('mixed.example resolves to 10.1.2.3');
  });

  it('GIVEN an unknown host THEN NOT_FOUND; a resolver failure THEN UNAVAILABLE', async () => {
    const notFound = Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND' });
    const again = Object.assign(new Error('getaddrinfo EAI_AGAIN'), { code: 'EAI_AGAIN' });
    expect((await codeOf(safeFetch('http://nope.invalid/', { resolve: () => Promise.reject(notFound) }))).code).toBe('NOT_FOUND');
    expect((await codeOf(safeFetch('http://flaky.example/', { resolve: () => Promise.reject(again) }))).code).toBe('UNAVAILABLE');
  });
});

describe('safeFetch against a local server (test-only allowHosts for 127.0.0.1)', () => {
  it('GIVEN an allowed URL THEN it returns body, status and content type', async () => {
    const res = await safeFetch(`${base}/img`, TEST_ONLY);
    expect(res.status).toBe(200);
    expect(res.contentType).toBe('image/png');
    expect(res.body.equals(BODY)).toBe(true);
    expect(res.redirects).toBe(0);
  });

  it('GIVEN a redirect to localhost, [::1] or the metadata address THEN FORBIDDEN', async () => {
    for (const path of ['/to-localhost', '/to-ipv6-loopback', '/to-metadata']) {
      const { code, message } = await codeOf(safeFetch(`${base}${path}`, TEST_ONLY));
      expect(code, path).toBe('FORBIDDEN');
      expect(message).toMatch(/loopback|metadata/);
    }
  });

  it('GIVEN a redirect to another scheme THEN BAD_INPUT; without location THEN UNAVAILABLE', async () => {
    expect((await codeOf(safeFetch(`${base}/to-ftp`, TEST_ONLY))).code).toBe('BAD_INPUT');
    expect((await codeOf(safeFetch(`${base}/no-location`, TEST_ONLY))).code).toBe('UNAVAILABLE');
  });

  it('GIVEN relative redirects THEN they are followed up to 5 times, and the 6th is refused', async () => {
    const rel = await safeFetch(`${base}/to-relative`, TEST_ONLY);
    expect(rel.body.equals(BODY)).toBe(true);
    expect(rel.redirects).toBe(1);
    expect(rel.url).toBe(`${base}/img`);
    const five = await safeFetch(`${base}/loop/1`, TEST_ONLY); // /loop/1 → … → /loop/5 → /img: 5 redirects
    expect(five.redirects).toBe(5);
    const { code, message } = await codeOf(safeFetch(`${base}/loop/0`, TEST_ONLY));
    expect(code).toBe('BAD_INPUT');
    expect(message).toMatch(/more than 5/);
  });

  it('GIVEN a body over maxBytes THEN TOO_LARGE, declared or streamed', async () => {
    expect((await codeOf(safeFetch(`${base}/declared-big`, { ...TEST_ONLY, maxBytes: 1000 }))).code).toBe('TOO_LARGE');
    expect((await codeOf(safeFetch(`${base}/chunked-big`, { ...TEST_ONLY, maxBytes: 2000 }))).code).toBe('TOO_LARGE');
    const ok = await safeFetch(`${base}/chunked-big`, { ...TEST_ONLY, maxBytes: 20_000 });
    expect(ok.body.length).toBe(10_000);
  });

  it('GIVEN a server that stalls THEN TIMEOUT (headers and body)', async () => {
    expect((await codeOf(safeFetch(`${base}/slow-headers`, { ...TEST_ONLY, connectTimeoutMs: 300 }))).code).toBe('TIMEOUT');
    expect((await codeOf(safeFetch(`${base}/slow-body`, { ...TEST_ONLY, timeoutMs: 400 }))).code).toBe('TIMEOUT');
  });

  it('GIVEN the caller aborts THEN the download stops with TIMEOUT (cancelled)', async () => {
    const controller = new AbortController();
    const promise = safeFetch(`${base}/slow-body`, { ...TEST_ONLY, signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    const { code, message } = await codeOf(promise);
    expect(code).toBe('TIMEOUT');
    expect(message).toMatch(/cancelled/);
  });

  it('GIVEN 404 / 500 / a closed port THEN NOT_FOUND / UNAVAILABLE / UNAVAILABLE', async () => {
    expect((await codeOf(safeFetch(`${base}/missing`, TEST_ONLY))).code).toBe('NOT_FOUND');
    const broken = await codeOf(safeFetch(`${base}/broken`, TEST_ONLY));
    expect(broken.code).toBe('UNAVAILABLE');
    expect(broken.message).toContain('500');
    expect((await codeOf(safeFetch('http://127.0.0.1:1/', TEST_ONLY))).code).toBe('UNAVAILABLE');
  });

  it('GIVEN a checked host name THEN DNS is asked once and the connection is pinned to that answer', async () => {
    // Rebinding attempt: the first answer passes the check, later answers point elsewhere. The request
    // must go to the first answer (our server), and the name must not be resolved again.
    let calls = 0;
    const resolve = async () => {
      calls += 1;
      return calls === 1 ? [{ address: '127.0.0.1', family: 4 as const }] : [{ address: '10.255.255.1', family: 4 as const }];
    };
    const res = await safeFetch(`http://pinned.test:${port}/img`, { allowHosts: ['pinned.test'], resolve });
    expect(res.body.equals(BODY)).toBe(true);
    expect(calls).toBe(1);
    expect(lastHostHeader).toBe(`pinned.test:${port}`);
  });

  it('GIVEN allowPrivate THEN loopback is fetched (operator opt-in)', async () => {
    const res = await safeFetch(`http://localhost:${port}/img`, { allowPrivate: true });
    expect(res.body.equals(BODY)).toBe(true);
  });
});
