import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { createEngine, loadConfig, type Engine } from '../../engine/index.ts';
import { openStore, type Store } from '../../engine/store/index.ts';
import monitors from '../../plugins/monitors/index.ts';
import { sign } from '../../plugins/monitors/lib/tokens.ts';
import { createHttpApp, serveHttp } from '../../bot/http.ts';
import { createWebhookRouter } from '../../bot/webhooks.ts';
import { createChannelPoster } from '../../bot/channel-poster.ts';
import { startFakeDiscord, type FakeDiscord } from '../discord/fake-discord.ts';
import { listen } from '../helpers/http.ts';
import scoring from './scoring-plugin.ts';
import { footlockerPayload, shopifyPayload, snkrsPayload } from './fixtures.ts';

const CHANNEL = '100000000000000001';
const JORDAN_CHANNEL = '100000000000000002';

let store: Store;
let engine: Engine;
let discord: FakeDiscord;
let base: string;
let closeHttp: () => Promise<void>;
let imageServer: Server;
let imageUrl: string;
let hook: { id: string; token: string; url: string; signingSecret: string };

const redPng = () => sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 220, g: 40, b: 30 } } }).png().toBuffer();

async function build(s: Store, allowPrivate: boolean): Promise<Engine> {
  const e = createEngine({ config: loadConfig({ SOLESCOPE_ALLOW_PRIVATE_URLS: allowPrivate ? 'true' : 'false' }), store: s });
  await e.registerAll([monitors, scoring]);
  return e;
}

async function events(h = hook): Promise<Record<string, unknown>[]> {
  const res = await fetch(`${base}/api/webhooks/${h.id}/${h.token}/events`);
  return ((await res.json()) as { events: Record<string, unknown>[] }).events;
}

async function settled(eventCount: number, h = hook): Promise<Record<string, unknown>[]> {
  for (let i = 0; i < 200; i++) {
    const list = await events(h);
    if (list.length >= eventCount && list.every((e) => e.status !== 'received')) return list;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('events did not settle');
}

const postJson = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });

beforeAll(async () => {
  store = await openStore({ url: ':memory:' });
  discord = await startFakeDiscord();
  engine = await build(store, false);
  engine.provide('channelPoster', createChannelPoster(discord.token, discord.apiUrl));
  ({ url: base, close: closeHttp } = await listen(createHttpApp(engine, { mounts: [{ path: '/api/webhooks', router: createWebhookRouter(engine) }] })));
  const png = await redPng();
  imageServer = createServer((req, res) => {
    if (req.url === '/redirect') {
      res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data' }).end();
      return;
    }
    if (req.url === '/text') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('not an image');
      return;
    }
    res.writeHead(200, { 'content-type': 'image/png' }).end(png);
  });
  await new Promise<void>((r) => imageServer.listen(0, '127.0.0.1', r));
  imageUrl = `http://127.0.0.1:${(imageServer.address() as AddressInfo).port}`;
  const created = await engine.invoke('webhooks create', { channel: CHANNEL, route: `channel=${JORDAN_CHANNEL},brand=jordan`, name: 'snkrs' }, { transport: 'test', caller: { id: 'mod', isModerator: true } });
  if (!created.ok) throw created.error;
  hook = created.reply.data as typeof hook;
});

afterAll(async () => {
  await closeHttp();
  await new Promise<void>((r) => imageServer.close(() => r()));
  await engine.close();
  await discord.close();
});

describe('resale-monitor webhooks', () => {
  it('GIVEN webhooks create THEN id, token, URL and signing secret; members may not create', async () => {
    expect(hook.url).toMatch(new RegExp(`/api/webhooks/${hook.id}/${hook.token}$`));
    expect(hook.token.length).toBeGreaterThanOrEqual(60);
    const member = await engine.invoke('webhooks create', { channel: CHANNEL }, { transport: 'discord', caller: { id: 'm' }, guildId: 'g' });
    expect(!member.ok && member.error.code).toBe('FORBIDDEN');
    const row = await store.webhooks.get(hook.id);
    expect(row?.tokenHash).not.toContain(hook.token);
  });

  it('GIVEN a multipart post with a file THEN acked at once (?wait=true message), scored, stored as hyped, enriched message delivered', async () => {
    const form = new FormData();
    form.set('payload_json', JSON.stringify(snkrsPayload('attachment://shoe.png', { embeds: [{ ...(snkrsPayload('x').embeds as Record<string, unknown>[])[0], thumbnail: undefined }] })));
    form.set('files[0]', new Blob([await redPng()], { type: 'image/png' }), 'shoe.png');
    const res = await fetch(`${base}/api/webhooks/${hook.id}/${hook.token}?wait=true`, { method: 'POST', body: form });
    expect(res.status).toBe(200);
    const msg = await res.json();
    expect(msg).toMatchObject({ channel_id: CHANNEL, webhook_id: hook.id, solescope: { status: 'received' } });
    const [event] = await settled(1);
    expect(event).toMatchObject({ status: 'processed', hype: { label: 'hyped' }, brand: { label: 'jordan' } });
    expect(event?.heatmap).toMatch(/heatmap\.png$/);
    const heat = await fetch(`${base}${event?.heatmap as string}`);
    expect(heat.headers.get('content-type')).toMatch(/png/);
    // Routed by brand to the Jordan channel, with the solescope field and the heatmap thumbnail.
    const posted = await discord.waitFor(() => discord.requests.find((r) => r.method === 'POST' && r.path === `/channels/${JORDAN_CHANNEL}/messages`));
    const body = posted.body as { embeds: { fields: { name: string; value: string }[]; thumbnail: { url: string } }[] };
    expect(body.embeds[0]?.fields.at(-1)).toMatchObject({ name: 'solescope', value: expect.stringMatching(/Hype \*\*\d+%\*\*.*Brand \*\*jordan\*\*/) });
    expect(body.embeds[0]?.thumbnail.url).toBe('attachment://heatmap.png');
    expect(posted.files.map((f) => f.name)).toEqual(['heatmap.png']);
    const stored = await store.images.find({ source: 'monitor:snkrs' });
    expect(stored).toHaveLength(1);
    expect(stored[0]).toMatchObject({ hype: 'hyped', brand: 'jordan' });
  });

  it('GIVEN the same drop again THEN recorded as duplicate and not delivered twice', async () => {
    const before = discord.requests.filter((r) => r.path.startsWith('/channels/')).length;
    const form = new FormData();
    form.set('payload_json', JSON.stringify(snkrsPayload('attachment://shoe.png', { embeds: [{ ...(snkrsPayload('x').embeds as Record<string, unknown>[])[0], thumbnail: undefined }] })));
    form.set('files[0]', new Blob([await redPng()], { type: 'image/png' }), 'shoe.png');
    expect((await fetch(`${base}/api/webhooks/${hook.id}/${hook.token}`, { method: 'POST', body: form })).status).toBe(204);
    const list = await settled(2);
    expect(list[0]).toMatchObject({ status: 'duplicate' });
    expect(discord.requests.filter((r) => r.path.startsWith('/channels/')).length).toBe(before);
  });

  it.each([
    ['loopback', () => `${imageUrl}/shoe.png`],
    ['cloud metadata', () => 'http://169.254.169.254/latest/meta-data/iam'],
    ['a private range', () => 'http://10.0.0.7/shoe.png'],
    ['a redirect to metadata', () => `${imageUrl}/redirect`],
  ])('GIVEN an image URL pointing at %s THEN refused and recorded with a reason, never fetched', async (_what, url) => {
    const payload = footlockerPayload(url());
    (payload.embeds as { fields: { name: string; value: string }[] }[])[0]!.fields[1]!.value = `SKU-${Math.random()}`;
    expect((await postJson(`/api/webhooks/${hook.id}/${hook.token}`, payload)).status).toBe(204);
    const list = await settled((await events()).length);
    expect(list[0]).toMatchObject({ status: 'rejected', reason: expect.stringMatching(/^FORBIDDEN/) });
  });

  it('GIVEN embeds without any image THEN accepted, recorded as skipped with a reason, delivered unenriched', async () => {
    const res = await postJson(`/api/webhooks/${hook.id}/${hook.token}`, { content: 'Restock soon', embeds: [{ title: 'Mystery drop', fields: [{ name: 'SKU', value: 'NOIMG-1' }] }] });
    expect(res.status).toBe(204);
    const list = await settled((await events()).length);
    expect(list[0]).toMatchObject({ status: 'processed', reason: expect.stringMatching(/no image/) });
  });

  it('GIVEN an unknown id or a wrong token THEN the same 401', async () => {
    const a = await postJson(`/api/webhooks/nope/${hook.token}`, snkrsPayload('https://x/a.png'));
    const b = await postJson(`/api/webhooks/${hook.id}/wrong-token`, snkrsPayload('https://x/a.png'));
    expect(a.status).toBe(401);
    expect(b.status).toBe(401);
    expect(await a.json()).toEqual(await b.json());
  });

  it.each([
    ['invalid JSON', '{"embeds":[', 400],
    ['an empty message', {}, 400],
    ['too many embeds', { embeds: Array.from({ length: 11 }, () => ({ title: 'x' })) }, 400],
    ['an oversized body', { content: 'x', filler: 'y'.repeat(9 * 1024 * 1024) }, 413],
  ])('GIVEN %s THEN %i and nothing recorded', async (_what, body, status) => {
    const before = (await events()).length;
    const res = await postJson(`/api/webhooks/${hook.id}/${hook.token}`, body as never);
    expect(res.status).toBe(status);
    expect((await events()).length).toBe(before);
  });

  it('GIVEN a signed request THEN accepted; a bad signature, a replay or a stale timestamp THEN 401', async () => {
    const body = Buffer.from(JSON.stringify(shopifyPayload('attachment://none')));
    const ts = String(Math.floor(Date.now() / 1000));
    const headers = { 'content-type': 'application/json', 'x-solescope-timestamp': ts, 'x-solescope-signature': sign(hook.signingSecret, ts, body) };
    const ok = await fetch(`${base}/api/webhooks/${hook.id}`, { method: 'POST', headers, body });
    expect(ok.status).toBe(204);
    const replay = await fetch(`${base}/api/webhooks/${hook.id}`, { method: 'POST', headers, body });
    expect(replay.status).toBe(401);
    const bad = await fetch(`${base}/api/webhooks/${hook.id}`, { method: 'POST', headers: { ...headers, 'x-solescope-signature': 'sha256=00' }, body });
    expect(bad.status).toBe(401);
    const old = String(Math.floor(Date.now() / 1000) - 600);
    const stale = await fetch(`${base}/api/webhooks/${hook.id}`, { method: 'POST', headers: { ...headers, 'x-solescope-timestamp': old, 'x-solescope-signature': sign(hook.signingSecret, old, body) }, body });
    expect(stale.status).toBe(401);
  });

  it('GIVEN more calls than the webhook’s rate THEN 429 with Retry-After like Discord', async () => {
    const created = await engine.invoke('webhooks create', { channel: CHANNEL, ratePerMinute: 2 }, { transport: 'test', caller: { id: 'mod', isModerator: true } });
    const h = (created.ok ? created.reply.data : {}) as typeof hook;
    const codes: number[] = [];
    let last: Response | undefined;
    for (let i = 0; i < 3; i++) {
      last = await postJson(`/api/webhooks/${h.id}/${h.token}`, { content: `drop ${i}`, embeds: [{ title: `Drop ${i}` }] });
      codes.push(last.status);
    }
    expect(codes).toEqual([204, 204, 429]);
    expect(Number(last?.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await last?.json()).toMatchObject({ message: 'You are being rate limited.', global: false, retry_after: expect.any(Number) });
  });

  it('GIVEN a revoked webhook THEN 401', async () => {
    const created = await engine.invoke('webhooks create', { channel: CHANNEL }, { transport: 'test', caller: { id: 'mod', isModerator: true } });
    const h = (created.ok ? created.reply.data : {}) as typeof hook;
    await engine.invoke('webhooks revoke', { id: h.id }, { transport: 'test', caller: { id: 'mod', isModerator: true } });
    expect((await postJson(`/api/webhooks/${h.id}/${h.token}`, { content: 'x' })).status).toBe(401);
  });

  it('GIVEN a slow-loris body THEN the server drops it and keeps serving', async () => {
    const server = await serveHttp(createHttpApp(engine, { mounts: [{ path: '/api/webhooks', router: createWebhookRouter(engine) }] }), { port: 0, host: '127.0.0.1', requestTimeoutMs: 800 });
    const port = (server.address() as AddressInfo).port;
    const close = () => new Promise<void>((r) => server.close(() => r()));
    const closed = await new Promise<string>((resolve) => {
      const req = request({ host: '127.0.0.1', port, method: 'POST', path: `/api/webhooks/${hook.id}/${hook.token}`, headers: { 'content-type': 'application/json', 'content-length': '100000' } });
      req.on('response', (res) => resolve(`status ${res.statusCode}`));
      req.on('error', () => resolve('closed'));
      req.write('{"content":"');
      setTimeout(() => resolve('still open'), 4000);
    });
    await close();
    expect(['closed', 'status 408', 'status 400']).toContain(closed);
  });

  it('GIVEN webhooks stats THEN counts per status', async () => {
    const r = await engine.invoke('webhooks stats', { id: hook.id }, { transport: 'test' });
    expect(r.ok && (r.reply.data as { webhooks: { counts: Record<string, number> }[] }).webhooks[0]?.counts).toMatchObject({ processed: expect.any(Number), duplicate: 1, rejected: 5 });
  });

  it('GIVEN a worker that died before processing THEN recovery re-enqueues and nothing is lost', async () => {
    const s2 = await openStore({ url: ':memory:' });
    const dying = await build(s2, true);
    const created = await dying.invoke('webhooks create', { channel: CHANNEL }, { transport: 'test', caller: { id: 'mod', isModerator: true } });
    const h = (created.ok ? created.reply.data : {}) as typeof hook;
    // The job runner is closed first: the event is accepted and stored but its job never runs.
    await dying.services.jobs.close();
    await dying.services.monitors.ingest({ id: h.id, channelId: CHANNEL, name: null }, snkrsPayload(`${imageUrl}/shoe.png`));
    expect((await s2.webhookEvents.list({ webhookId: h.id }))[0]?.status).toBe('received');
    const restarted = await build(s2, true);
    expect(await restarted.services.monitors.recover(0)).toBe(1);
    for (let i = 0; i < 100 && (await s2.webhookEvents.list({ webhookId: h.id }))[0]?.status === 'received'; i++) await new Promise((r) => setTimeout(r, 50));
    const [event] = await s2.webhookEvents.list({ webhookId: h.id });
    expect(event).toMatchObject({ status: 'processed', result: { hypeLabel: 'hyped' } });
    await restarted.close();
  });
});
