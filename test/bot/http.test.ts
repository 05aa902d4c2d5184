import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { createEngine, loadConfig, type Engine } from '../../engine/index.ts';
import core from '../../plugins/core/index.ts';
import { createHttpApp } from '../../bot/http.ts';
import testPlugin, { solidPng } from '../helpers/test-plugin.ts';
import { listen } from '../helpers/http.ts';

let engine: Engine;
let base: string;
let close: () => Promise<void>;

beforeAll(async () => {
  engine = createEngine({ config: loadConfig({ SOLESCOPE_ADMIN_TOKEN: 'admintoken123', SOLESCOPE_MAX_IMAGE_BYTES: '4096' }) });
  await engine.registerAll([core, testPlugin]);
  ({ url: base, close } = await listen(createHttpApp(engine, { jsonLimitBytes: 2048 })));
});
afterAll(async () => {
  await close();
  await engine.close();
});

const post = (path: string, body: BodyInit, headers: Record<string, string> = {}) =>
  fetch(`${base}${path}`, { method: 'POST', body, headers });

describe('HTTP transport', () => {
  it('GIVEN a JSON body THEN the envelope with base64 PNGs', async () => {
    const res = await post('/api/commands/probe', JSON.stringify({ image: 'https://example.com/a.jpg', k: 4 }), { 'content-type': 'application/json' });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toBeTruthy();
    const env = await res.json();
    expect(env).toMatchObject({ ok: true, command: 'probe', text: 'probed fast k=4', data: { k: 4, transport: 'http' } });
    const png = Buffer.from(env.images[0].base64, 'base64');
    expect((await sharp(png).metadata()).format).toBe('png');
  });

  it('GIVEN multipart with a file and string fields THEN the file is the image option and fields are coerced', async () => {
    const form = new FormData();
    form.set('image', new Blob([await solidPng()], { type: 'image/png' }), 'shoe.png');
    form.set('k', '5');
    form.set('flag', 'true');
    const res = await post('/api/commands/probe', form);
    const env = await res.json();
    expect(res.status).toBe(200);
    expect(env.data).toMatchObject({ image: { kind: 'buffer', name: 'shoe.png' }, k: 5, flag: true });
  });

  it('GIVEN a space-separated command THEN it is served at /api/commands/<word>/<word>; admin token grants moderator', async () => {
    const denied = await post('/api/commands/admin/wipe', JSON.stringify({ id: 'a' }), { 'content-type': 'application/json' });
    expect(denied.status).toBe(403);
    expect((await denied.json()).error.code).toBe('FORBIDDEN');
    const wrong = await post('/api/commands/admin/wipe', JSON.stringify({ id: 'a' }), { 'content-type': 'application/json', authorization: 'Bearer nope' });
    expect(wrong.status).toBe(403);
    const ok = await post('/api/commands/admin/wipe', JSON.stringify({ id: 'a' }), { 'content-type': 'application/json', authorization: 'Bearer admintoken123' });
    expect(ok.status).toBe(200);
  });

  it.each([
    ['unknown command', '/api/commands/nope', '{}', 'application/json', 404, 'UNKNOWN_COMMAND'],
    ['malformed JSON', '/api/commands/probe', '{"image":', 'application/json', 400, 'BAD_INPUT'],
    ['a JSON array', '/api/commands/probe', '[1,2]', 'application/json', 400, 'BAD_INPUT'],
    ['wrong content type', '/api/commands/probe', 'image=x', 'text/plain', 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['an oversized JSON body', '/api/commands/probe', JSON.stringify({ image: 'x'.repeat(5000) }), 'application/json', 413, 'TOO_LARGE'],
    ['invalid options', '/api/commands/probe', JSON.stringify({ image: 'a', k: 0 }), 'application/json', 400, 'BAD_INPUT'],
    ['an unknown option', '/api/commands/probe', JSON.stringify({ image: 'a', zzz: 1 }), 'application/json', 400, 'BAD_INPUT'],
    ['a handler bug', '/api/commands/boom', '{}', 'application/json', 500, 'INTERNAL'],
  ])('GIVEN %s THEN %i %s', async (_what, path, body, type, status, code) => {
    const res = await post(path, body, { 'content-type': type });
    expect(res.status).toBe(status);
    const env = await res.json();
    expect(env).toMatchObject({ ok: false, error: { code } });
    expect(JSON.stringify(env)).not.toMatch(/\/srv\/app|at .*\.ts/);
  });

  it('GIVEN an uploaded file over the limit THEN 413 TOO_LARGE', async () => {
    const form = new FormData();
    form.set('image', new Blob([Buffer.alloc(10_000, 1)], { type: 'image/png' }), 'big.png');
    const res = await post('/api/commands/probe', form);
    expect(res.status).toBe(413);
    expect((await res.json()).error.code).toBe('TOO_LARGE');
  });

  it('GIVEN a malformed multipart body THEN 400, and the server keeps serving', async () => {
    const res = await post('/api/commands/probe', '--xx\r\nContent-Disposition: form-data; name="k"\r\n\r\n3', { 'content-type': 'multipart/form-data; boundary=xx' });
    expect(res.status).toBe(400);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
  });

  it('GIVEN GET /api/commands THEN every command with its path, options and JSON Schema', async () => {
    const body = await (await fetch(`${base}/api/commands`)).json();
    const wipe = body.commands.find((c: { name: string }) => c.name === 'admin wipe');
    expect(wipe.path).toBe('/api/commands/admin/wipe');
    expect(wipe.schema).toMatchObject({ type: 'object', required: ['id'] });
  });

  it('GIVEN /healthz and /metrics THEN ok and Prometheus text with command counters', async () => {
    expect(await (await fetch(`${base}/healthz`)).json()).toMatchObject({ ok: true });
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toContain('solescope_commands_total');
    expect(metrics).toMatch(/solescope_commands_total\{command="probe",transport="http",outcome="ok"\} \d+/);
  });

  it('GIVEN an unknown API route or job THEN 404 NOT_FOUND envelopes', async () => {
    const a = await fetch(`${base}/api/nothing`);
    expect(a.status).toBe(404);
    const b = await fetch(`${base}/api/jobs/does-not-exist`);
    expect(b.status).toBe(404);
    expect((await b.json()).error.code).toBe('NOT_FOUND');
  });
});
