/**
 * The server side of the webhook benchmark: the real runtime (SQLite file store, monitors plugin, the
 * same HTTP app and webhook router as `npm start`) in its own process, so the load generator does not
 * share its event loop. Prints one JSON line `{ "base", "url" }` when ready.
 */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHttpApp, serveHttp } from '../bot/http.ts';
import { createWebhookRouter } from '../bot/webhooks.ts';
import { createRuntime } from '../bot/runtime.ts';
import { randomUUID } from 'node:crypto';
import { createLogger } from '../engine/index.ts';
import { createBullJobRunner } from '../jobs/index.ts';

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'solescope-bench-'));
const runtime = await createRuntime({
  env: { ...process.env, SOLESCOPE_DATA_DIR: dataDir, SOLESCOPE_PLUGINS: 'monitors' },
  logger: createLogger({ level: 'error' }),
  // As `npm start` does: events go to the BullMQ queue. No worker here, so the figures are the
  // acknowledgement path alone (processing runs on workers, in-process or on other machines).
  configure: (engine) => {
    if (process.env.BENCH_INLINE !== '1') {
      engine.useJobRunner(createBullJobRunner({ engine, redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', prefix: `bench-${randomUUID().slice(0, 8)}` }));
    }
  },
});
const engine = runtime.engine;
const created = await engine.invoke('webhooks create', { channel: '100000000000000001', ratePerMinute: 100_000 }, { transport: 'cli', caller: { id: 'bench', isModerator: true } });
if (!created.ok) throw created.error;
const server = await serveHttp(createHttpApp(engine, { mounts: [{ path: '/api/webhooks', router: createWebhookRouter(engine) }] }), { port: 0, host: '127.0.0.1' });
const port = (server.address() as { port: number }).port;
const data = created.reply.data as { id: string; token: string };
process.stdout.write(`${JSON.stringify({ base: `http://127.0.0.1:${port}`, url: `http://127.0.0.1:${port}/api/webhooks/${data.id}/${data.token}`, jobs: engine.services.jobs.kind })}\n`);
process.on('SIGTERM', () => {
  server.close();
  void runtime.close().then(() => process.exit(0));
});
