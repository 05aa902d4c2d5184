/**
 * Webhook ingest benchmark: 1,000 monitor-shaped posts (distinct SKUs, so none is de-duplicated) at a
 * fixed concurrency against the real server in a child process; reports throughput and acknowledgement
 * latency percentiles. Run alone with `npx tsx bench/webhooks.ts [--json] [--posts N] [--concurrency C]`.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

/** Result of {@link benchWebhooks}. */
export interface WebhookBenchResult {
  readonly posts: number;
  readonly concurrency: number;
  readonly reqPerSec: number;
  readonly ackMs: { p50: number; p95: number; p99: number; max: number };
  readonly statuses: Record<string, number>;
  readonly jobRunner: string;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

function payload(i: number): string {
  return JSON.stringify({
    username: 'Bench Monitor',
    embeds: [
      {
        title: `Nike Dunk Low Retro ${i}`,
        url: `https://shop.example/dunk-${i}`,
        thumbnail: { url: `https://images.example/dunk-${i}.jpg` },
        fields: [
          { name: 'Price', value: `$${110 + (i % 50)}`, inline: true },
          { name: 'SKU', value: `DD1391-${100000 + i}`, inline: true },
          { name: 'Sizes', value: '[8](https://atc/8) | [9](https://atc/9) | [10](https://atc/10)' },
        ],
      },
    ],
  });
}

/** Run the benchmark. */
export async function benchWebhooks(options: { posts?: number; concurrency?: number } = {}): Promise<WebhookBenchResult> {
  const posts = options.posts ?? 1000;
  const concurrency = options.concurrency ?? 16;
  const here = path.dirname(fileURLToPath(import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(here, 'webhook-server.ts')], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, LOG_LEVEL: 'error' },
  });
  try {
    const line = await new Promise<string>((resolve, reject) => {
      const rl = readline.createInterface({ input: child.stdout });
      rl.once('line', resolve);
      child.once('exit', (code) => reject(new Error(`bench server exited with ${code}`)));
    });
    const { url, jobs } = JSON.parse(line) as { url: string; jobs: string };
    // Warm-up: JIT, SQLite page cache, the express stack.
    for (let i = 0; i < 50; i++) await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: payload(1_000_000 + i) });
    const latencies: number[] = [];
    const statuses: Record<string, number> = {};
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < posts) {
          const i = next++;
          const t0 = performance.now();
          const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: payload(i) });
          await res.arrayBuffer();
          latencies.push(performance.now() - t0);
          statuses[res.status] = (statuses[res.status] ?? 0) + 1;
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    const sorted = [...latencies].sort((a, b) => a - b);
    const round = (n: number) => Math.round(n * 100) / 100;
    return {
      posts,
      concurrency,
      reqPerSec: Math.round(posts / seconds),
      ackMs: { p50: round(percentile(sorted, 50)), p95: round(percentile(sorted, 95)), p99: round(percentile(sorted, 99)), max: round(sorted.at(-1) ?? 0) },
      statuses,
      jobRunner: jobs,
    };
  } finally {
    child.kill('SIGTERM');
  }
}

const isMain = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === path.resolve(process.argv[1]);
if (isMain) {
  const arg = (name: string) => {
    const i = process.argv.indexOf(name);
    return i >= 0 ? Number(process.argv[i + 1]) : undefined;
  };
  const posts = arg('--posts');
  const concurrency = arg('--concurrency');
  const result = await benchWebhooks({ ...(posts ? { posts } : {}), ...(concurrency ? { concurrency } : {}) });
  if (process.argv.includes('--json')) process.stdout.write(`${JSON.stringify({ webhooks: result })}\n`);
  else {
    process.stdout.write(`webhook ingest: ${result.posts} posts, concurrency ${result.concurrency}, runner ${result.jobRunner}\n`);
    process.stdout.write(`  throughput ${result.reqPerSec} req/s (target >= 200)\n`);
    process.stdout.write(`  ack latency p50 ${result.ackMs.p50} ms, p95 ${result.ackMs.p95} ms, p99 ${result.ackMs.p99} ms (target p99 < 50 ms), max ${result.ackMs.max} ms\n`);
    process.stdout.write(`  statuses ${JSON.stringify(result.statuses)}\n`);
  }
  process.exit(0);
}
