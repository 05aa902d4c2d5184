import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { createEngine, loadConfig, silentLogger } from '../../engine/index.ts';
import { createBullJobRunner } from '../../jobs/runner.ts';
import { startJobWorkers } from '../../jobs/worker.ts';
import testJobs from './fixtures/test-plugin.ts';

// A SEPARATE redis-server on a random port with AOF in a temp dir (the shared 6379 is never restarted),
// configured as the README recommends: appendonly yes, appendfsync everysec, maxmemory-policy noeviction.
const dir = mkdtempSync(path.join(tmpdir(), 'solescope-redis-'));
let server: ChildProcess | undefined;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

async function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'everysec', '--save', '', '--maxmemory-policy', 'noeviction'], { stdio: 'ignore' });
  const probe = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  for (let i = 0; i < 100; i++) {
    try {
      await probe.connect();
      if ((await probe.ping()) === 'PONG') break;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  probe.disconnect();
  return child;
}

async function stopRedis(child: ChildProcess): Promise<void> {
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM'); // a restart: redis flushes the AOF and exits
  await exited;
}

afterAll(async () => {
  if (server && server.exitCode === null) await stopRedis(server);
  rmSync(dir, { recursive: true, force: true });
});

describe('GIVEN jobs waiting in Redis (AOF) WHEN Redis restarts', () => {
  it('THEN they are still there afterwards and get processed', async () => {
    const port = await freePort();
    server = await startRedis(port);
    const url = `redis://127.0.0.1:${port}`;
    const engine = createEngine({ config: loadConfig({ REDIS_URL: url }), logger: silentLogger() });
    await engine.register(testJobs);
    const runner = createBullJobRunner({ engine, prefix: 'persist', maxJobsPerGuild: 5 });
    const ids = [];
    for (let n = 1; n <= 3; n++) ids.push((await runner.enqueue('test.echo', { n, steps: 0 }, { guildId: 'g' })).id);
    await new Promise((r) => setTimeout(r, 1_200)); // let everysec fsync happen

    await stopRedis(server);
    server = await startRedis(port);

    const after = await Promise.all(ids.map((id) => runner.get(id)));
    expect(after.map((j) => j?.state)).toEqual(['waiting', 'waiting', 'waiting']);
    expect(after.map((j) => j?.queuePosition)).toEqual([1, 2, 3]);
    expect(after.map((j) => j?.guildId)).toEqual(['g', 'g', 'g']);
    const workers = await startJobWorkers({ engine, redisUrl: url, prefix: 'persist', sandbox: 'never' });
    const results = await Promise.all(ids.map((id) => runner.waitFor(id)));
    expect(results).toEqual([{ sum: 1, attempt: 1 }, { sum: 3, attempt: 1 }, { sum: 6, attempt: 1 }]);
    await workers.close();
    await runner.close();
  });
});
