/**
 * Embedding throughput of the backbones on each engine: tfjs (wasm here), onnxruntime on every core and on one,
 * onnxruntime through the single-image coalescer, and PyTorch (bench/torch-embed.py) when
 * `/usr/bin/python3 -c "import torch"` works. `bench/index.ts` calls {@link runOnnxBench} for its ORT rows; run
 * alone with `npx tsx bench/onnx.ts [--json] [--quick] [--backbones mobilenet_v2,inception_v3] [--batches 1,16]`.
 *
 * Numbers are medians of repeated runs after a warm-up; the machine is shared, so run it under `nice` and
 * expect ±20 % between runs. No test asserts any of them.
 */
import { execFile } from 'node:child_process';
import { availableParallelism, loadavg } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { loadBackbone, type BackboneName } from '../engine/ml/backbones.ts';
import { mlStatus } from '../engine/ml/runtime.ts';
import { accelerateBackbone } from '../engine/ml/onnx/index.ts';

const run = promisify(execFile);

/** One measured configuration. */
export interface OnnxBenchRow {
  readonly backbone: BackboneName;
  /** `tfjs-<backend>`, `onnxruntime`, `onnxruntime-1t`, `onnxruntime-coalesced` or `pytorch`. */
  readonly engine: string;
  readonly batch: number;
  readonly threads: number;
  readonly imgPerSec: number;
  readonly msPerBatch: number;
  readonly runs: number;
}

/** The benchmark's result: rows, best img/s per engine, and the ratios the issue asks for. */
export interface OnnxBenchResult {
  readonly rows: readonly OnnxBenchRow[];
  /** Best img/s per backbone and engine (over batch sizes). */
  readonly embedImgPerSec: Readonly<Record<string, Readonly<Record<string, number>>>>;
  /** Per backbone: onnxruntime ÷ tfjs and onnxruntime ÷ PyTorch at equal batch size (best over batches). */
  readonly ratios: Readonly<Record<string, { readonly ortVsTfjs: number; readonly ortVsPytorch: number | null }>>;
  /** PyTorch's version, or why it was not measured. */
  readonly pytorch: string;
  readonly cores: number;
  /** 1-minute load average before and after the run: above `cores`, other processes shared the CPU. */
  readonly loadAverage: { readonly before: number; readonly after: number };
}

/** Options of {@link runOnnxBench}. */
export interface OnnxBenchOptions {
  readonly backbones?: readonly BackboneName[];
  readonly batches?: readonly number[];
  /** Seconds of timed runs per configuration (at least 2 runs each; default 4). */
  readonly secondsPerCase?: number;
  /** Measure PyTorch when available (default true). */
  readonly pytorch?: boolean;
  /** Progress lines (default: none). */
  readonly log?: (line: string) => void;
}

/** Runs the embedding throughput benchmark (see the module doc). Takes 1–4 minutes on 2 cores. */
export async function runOnnxBench(opts: OnnxBenchOptions = {}): Promise<OnnxBenchResult> {
  const backbones = opts.backbones ?? ['mobilenet_v2', 'inception_v3'];
  const batches = opts.batches ?? [1, 16];
  const seconds = opts.secondsPerCase ?? 4;
  const log = opts.log ?? (() => undefined);
  const cores = availableParallelism();
  const loadBefore = round(loadavg()[0] ?? 0);
  const rows: OnnxBenchRow[] = [];

  for (const name of backbones) {
    const base = await loadBackbone(name);
    const tfjsEngine = `tfjs-${mlStatus().backend ?? 'unknown'}`;
    const tfjsThreads = mlStatus().threads;
    const all = await accelerateBackbone(base, { choice: 'auto', maxBatch: 16, maxWaitMs: 3 });
    const one = await accelerateBackbone(base, { choice: 'auto', threads: 1 });
    if (all.inference !== 'onnxruntime') log(`onnxruntime unavailable (${all.inferenceReason}); its rows are tfjs`);
    const s = base.inputSize;
    const pixels = s * s * 3;
    try {
      for (const batch of batches) {
        const data = new Float32Array(batch * pixels).map(() => Math.random());
        const images = Array.from({ length: batch }, (_, i) => data.subarray(i * pixels, (i + 1) * pixels));
        const cases: [string, number, () => Promise<unknown>][] = [
          [tfjsEngine, tfjsThreads, () => base.embedImages(images, { batchSize: batch })],
          ['onnxruntime', cores, () => all.embedBatch(data, batch)],
          ['onnxruntime-1t', 1, () => one.embedBatch(data, batch)],
        ];
        if (batch > 1) cases.push(['onnxruntime-coalesced', cores, () => Promise.all(images.map((img) => all.embedOne(img)))]);
        for (const [engine, threads, fn] of cases) {
          const m = await measure(fn, seconds);
          const row = { backbone: name, engine, batch, threads, imgPerSec: batch / (m.ms / 1000), msPerBatch: m.ms, runs: m.runs };
          rows.push(row);
          log(`${name} ${engine} batch ${batch}: ${row.imgPerSec.toFixed(1)} img/s (${row.msPerBatch.toFixed(1)} ms/batch, ${m.runs} runs)`);
        }
      }
    } finally {
      await all.releaseInference();
      await one.releaseInference();
    }
  }

  let pytorch = 'not measured';
  if (opts.pytorch !== false) {
    const torch = await measurePytorch(backbones, batches, seconds);
    pytorch = torch.version;
    rows.push(...torch.rows);
    for (const r of torch.rows) log(`${r.backbone} pytorch batch ${r.batch}: ${r.imgPerSec.toFixed(1)} img/s`);
  }
  return { ...summarise(rows, pytorch, cores), loadAverage: { before: loadBefore, after: round(loadavg()[0] ?? 0) } };
}

async function measure(fn: () => Promise<unknown>, seconds: number): Promise<{ ms: number; runs: number }> {
  await fn(); // warm-up: first runs allocate and (ORT) plan memory
  const times: number[] = [];
  const started = performance.now();
  while (times.length < 2 || (performance.now() - started < seconds * 1000 && times.length < 50)) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { ms: times[Math.floor(times.length / 2)]!, runs: times.length };
}

async function measurePytorch(
  backbones: readonly BackboneName[],
  batches: readonly number[],
  seconds: number,
): Promise<{ version: string; rows: OnnxBenchRow[] }> {
  const python = '/usr/bin/python3';
  try {
    await run(python, ['-c', 'import torch, torchvision'], { timeout: 60_000 });
  } catch {
    return { version: 'unavailable (/usr/bin/python3 cannot import torch and torchvision)', rows: [] };
  }
  const script = fileURLToPath(new URL('./torch-embed.py', import.meta.url));
  const args = [script, '--backbones', backbones.join(','), '--batches', batches.join(','), '--seconds', String(seconds)];
  try {
    const { stdout } = await run(python, args, { timeout: 30 * 60_000, maxBuffer: 1 << 20 });
    const parsed = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as {
      torch: string;
      threads: number;
      rows: { backbone: BackboneName; batch: number; imgPerSec: number; msPerBatch: number; runs: number }[];
    };
    return {
      version: `torch ${parsed.torch}`,
      rows: parsed.rows.map((r) => ({ ...r, engine: 'pytorch', threads: parsed.threads })),
    };
  } catch (error) {
    return { version: `failed: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`, rows: [] };
  }
}

function summarise(rows: readonly OnnxBenchRow[], pytorch: string, cores: number): Omit<OnnxBenchResult, 'loadAverage'> {
  const embedImgPerSec: Record<string, Record<string, number>> = {};
  for (const r of rows) {
    const perEngine = (embedImgPerSec[r.backbone] ??= {});
    perEngine[r.engine] = Math.max(perEngine[r.engine] ?? 0, round(r.imgPerSec));
  }
  const ratios: Record<string, { ortVsTfjs: number; ortVsPytorch: number | null }> = {};
  for (const backbone of Object.keys(embedImgPerSec)) {
    const at = (engine: string, batch: number) => rows.find((r) => r.backbone === backbone && r.batch === batch && r.engine === engine)?.imgPerSec;
    const batches = [...new Set(rows.filter((r) => r.backbone === backbone).map((r) => r.batch))];
    let vsTfjs = 0;
    let vsTorch: number | null = null;
    for (const b of batches) {
      const ort = at('onnxruntime', b);
      const tfjs = rows.find((r) => r.backbone === backbone && r.batch === b && r.engine.startsWith('tfjs-'))?.imgPerSec;
      const torch = at('pytorch', b);
      if (ort !== undefined && tfjs !== undefined) vsTfjs = Math.max(vsTfjs, ort / tfjs);
      if (ort !== undefined && torch !== undefined) vsTorch = Math.max(vsTorch ?? 0, ort / torch);
    }
    ratios[backbone] = { ortVsTfjs: round(vsTfjs), ortVsPytorch: vsTorch === null ? null : round(vsTorch) };
  }
  return { rows, embedImgPerSec, ratios, pytorch, cores };
}

function round(v: number): number {
  return Math.round(v * 100) / 100;
}

/** The rows as an aligned text table. */
export function formatOnnxBench(result: OnnxBenchResult): string {
  const lines = [`backbone       engine                 batch  threads    img/s   ms/batch`];
  for (const r of result.rows) {
    lines.push(
      `${r.backbone.padEnd(14)} ${r.engine.padEnd(22)} ${String(r.batch).padStart(5)}  ${String(r.threads).padStart(7)}  ${r.imgPerSec.toFixed(1).padStart(7)}  ${r.msPerBatch.toFixed(1).padStart(9)}`,
    );
  }
  for (const [backbone, ratio] of Object.entries(result.ratios)) {
    lines.push(
      `${backbone}: onnxruntime = ${ratio.ortVsTfjs}x tfjs, ${ratio.ortVsPytorch === null ? 'PyTorch not measured' : `${ratio.ortVsPytorch}x PyTorch`}`,
    );
  }
  lines.push(
    `PyTorch: ${result.pytorch}; cores: ${result.cores}; load average ${result.loadAverage.before} → ${result.loadAverage.after}` +
      (result.loadAverage.before > result.cores ? ' (shared machine: numbers are noisy)' : ''),
  );
  return lines.join('\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const argv = process.argv.slice(2);
  const flag = (name: string) => argv.includes(`--${name}`);
  const value = (name: string) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const json = flag('json');
  const quick = flag('quick');
  const result = await runOnnxBench({
    ...(value('backbones') ? { backbones: value('backbones')!.split(',') as BackboneName[] } : {}),
    ...(value('batches') ? { batches: value('batches')!.split(',').map(Number) } : {}),
    secondsPerCase: quick ? 1 : Number(value('seconds') ?? 4),
    pytorch: !flag('no-pytorch'),
    log: json ? () => undefined : (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(json ? `${JSON.stringify(result)}\n` : `${formatOnnxBench(result)}\n`);
  process.exit(0);
}
