import type { AddressInfo } from 'node:net';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngine, loadConfig, silentLogger } from '../../engine/index.ts';
import { mountQueueDashboard } from '../../jobs/dashboard.ts';
import { createBullJobRunner, type BullJobRunner } from '../../jobs/runner.ts';
import { cleanRedis, randomPrefix } from './fixtures/synthetic.ts';
import testJobs from './fixtures/test-plugin.ts';

const prefix = randomPrefix('dash');
let runner: BullJobRunner;
let base: string;
let server: ReturnType<ReturnType<typeof express>['listen']>;

beforeAll(async () => {
  const engine = createEngine({ config: loadConfig({}), logger: silentLogger() });
  await engine.register(testJobs);
  runner = createBullJobRunner({ engine, prefix });
  await runner.enqueue('test.echo', { n: 2 });
  const app = express();
  mountQueueDashboard(app, runner, 's3cret-token');
  server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/admin/queues`;
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
  await runner.close();
  await cleanRedis(prefix);
});

describe('bull-board at /admin/queues', () => {
  it('GIVEN no or a wrong token THEN 401 with a coded error', async () => {
    const none = await fetch(`${base}/api/queues`);
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({ ok: false, error: { code: 'UNAUTHORIZED' } });
    expect((await fetch(`${base}/api/queues`, { headers: { authorization: 'Bearer nope' } })).status).toBe(401);
  });

  it('GIVEN the Bearer token THEN the queues API lists every job queue with its jobs', async () => {
    const res = await fetch(`${base}/api/queues?activeQueue=test.echo&status=waiting&page=1`, { headers: { authorization: 'Bearer s3cret-token' } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { queues: { name: string; counts: Record<string, number> }[] };
    expect(body.queues.map((q) => q.name).sort()).toEqual(['test.echo', 'test.flaky', 'test.slow']);
    expect(body.queues.find((q) => q.name === 'test.echo')?.counts.waiting).toBe(1);
  });

  it('GIVEN ?token= THEN the UI loads and a dashboard-scoped HttpOnly cookie carries the token afterwards', async () => {
    const res = await fetch(`${base}?token=s3cret-token`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('<html');
    const cookie = res.headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(/solescope_admin=s3cret-token; Path=\/admin\/queues; HttpOnly; SameSite=Strict/);
    const api = await fetch(`${base}/api/queues`, { headers: { cookie: cookie.split(';')[0]! } });
    expect(api.status).toBe(200);
  });

  it('GIVEN no admin token configured THEN the dashboard is disabled (403)', async () => {
    const app = express();
    mountQueueDashboard(app, runner, undefined);
    const s = app.listen(0, '127.0.0.1');
    await new Promise((r) => s.once('listening', r));
    const res = await fetch(`http://127.0.0.1:${(s.address() as AddressInfo).port}/admin/queues?token=anything`);
    expect(res.status).toBe(403);
    await new Promise((r) => s.close(r));
  });
});
