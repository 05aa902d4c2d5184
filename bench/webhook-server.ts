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
import { createLogger } from '../engine/index.ts';

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'solescope-bench-'));
const runtime = await createRuntime({
  env: { ...process.env, SOLESCOPE_DATA_DIR: dataDir, SOLESCOPE_PLUGINS: 'monitors' },
  logger: createLogger({ level: 'error' }),
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
