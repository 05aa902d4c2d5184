/**
 * Finding Redis for the embedded single-machine mode: use REDIS_URL when set; otherwise use whatever
 * answers on 127.0.0.1:6379; otherwise start a local `redis-server` child with its data (AOF) in the data
 * dir when the binary exists; otherwise explain how to get one.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { EngineError, type Logger } from '../engine/index.ts';

/** Resolve true when something accepts TCP connections on host:port within `timeoutMs`. */
export function portAnswers(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** Redis in use, and the child we started (if any). */
export interface RedisHandle {
  readonly url: string;
  readonly child?: ChildProcess;
  stop(): Promise<void>;
}

/** Make sure a Redis is reachable; see the module comment for the order. */
export async function ensureRedis(redisUrl: string | undefined, dataDir: string, logger: Logger): Promise<RedisHandle> {
  if (redisUrl) return { url: redisUrl, stop: async () => undefined };
  if (await portAnswers('127.0.0.1', 6379)) return { url: 'redis://127.0.0.1:6379', stop: async () => undefined };
  const which = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  const bin = which.stdout.trim();
  if (!bin) {
    throw new EngineError(
      'UNAVAILABLE',
      'Redis is needed for the job queue: set REDIS_URL, start one on 127.0.0.1:6379, or install redis-server (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis).',
    );
  }
  const dir = path.join(dataDir, 'redis');
  mkdirSync(dir, { recursive: true });
  const port = 6390 + Math.floor(Math.random() * 500);
  // AOF keeps waiting jobs across restarts; noeviction because BullMQ must never lose keys to eviction.
  const child = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'everysec', '--maxmemory-policy', 'noeviction', '--save', ''], {
    stdio: 'ignore',
  });
  for (let i = 0; i < 50; i++) {
    if (await portAnswers('127.0.0.1', port, 200)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  if (!(await portAnswers('127.0.0.1', port))) {
    child.kill('SIGKILL');
    throw new EngineError('UNAVAILABLE', `Started redis-server but it did not answer on port ${port}.`);
  }
  logger.info('started a local redis-server', { port, dir });
  return {
    url: `redis://127.0.0.1:${port}`,
    child,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 3000).unref();
      }),
  };
}
