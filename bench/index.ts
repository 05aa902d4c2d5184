/**
 * `npm run bench [-- --json] [--runs 20] [--quick]`: the numbers of the vision issue.
 * - warm `hype` latency end to end (decode → preprocess → backbone → head → Grad-CAM → PNG), p50/p95, through
 *   `engine.invoke` with the shipped default model, the way every transport calls it;
 * - head training throughput (rows × epochs per second of one linear and one MLP fit);
 * - embedding throughput (img/s) per engine row — tfjs here; onnxruntime rows and PyTorch
 *   (`/usr/bin/python3` with Debian's python3-torch, bench/torch-embed.py) come from bench/onnx.ts — and the
 *   ratio to PyTorch.
 * Adding an engine: append an {@link EmbedEngineRow} to `engineRows` (name + a function returning img/s).
 * Numbers only; no test asserts any of them. On a shared machine run it under `nice` and read the load average.
 */
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { createEngine } from '../engine/index.ts';
import { openStore } from '../engine/store/index.ts';
import { getTf, mlStatus } from '../engine/ml/runtime.ts';
import { loadBackbone, type BackboneName } from '../engine/ml/backbones.ts';
import { createVisionPlugin } from '../plugins/vision/index.ts';
import { locatorFor, prepareInput, turnerFor, variantOf } from '../plugins/vision/lib/features.ts';
import { angleFileName } from '../plugins/vision/lib/angle.ts';
import { DEFAULT_LOCALISER_DIR } from '../plugins/vision/lib/localise.ts';
import { DEFAULT_HEAD_PARAMS, trainHead as trainCommunityHead } from '../plugins/training/lib/head.ts';
import { fitDense, trainHead } from '../plugins/vision/lib/train.ts';
import { featureKey } from '../plugins/vision/service.ts';
import { seededRandom } from '../engine/random.ts';
import { decodeBytes } from '../plugins/vision/lib/input.ts';
import { benchWebhooks } from './webhooks.ts';

const { values: args } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    runs: { type: 'string', default: '20' },
    quick: { type: 'boolean', default: false },
    'no-onnx': { type: 'boolean', default: false },
    'no-webhooks': { type: 'boolean', default: false },
    'no-train': { type: 'boolean', default: false },
  },
});
const runs = args.quick ? 6 : Math.max(3, Number(args.runs));
const say = (line: string): void => {
  if (!args.json) console.log(line);
  else console.error(line);
};

/** One engine row of the embedding benchmark. */
export interface EmbedEngineRow {
  readonly name: string;
  /** img/s including decode and preprocessing, or a string saying why it was not measured. */
  measure(): Promise<number | string>;
}

function quantile(sorted: readonly number[], q: number): number {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/**
 * A photo-like test image (gradients + shapes), so the bench needs no data set. `offStudio`: on a textured
 * floor instead of a light backdrop, so the normaliser runs the shoe localiser and GrabCut (a phone photo's path).
 */
async function benchImage(seed: number, offStudio = false): Promise<Buffer> {
  const w = 640;
  const h = 480;
  const data = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      const inShoe = y > 200 && y < 360 && x > 80 + ((y - 200) * seed) % 40 && x < 560;
      // Floor: planks of varying tone with grain, never uniform along the border.
      const floor = 70 + ((Math.floor(y / 37) * 53 + seed * 17) % 60) + ((x * 7 + y * 3) % 23);
      data[i] = inShoe ? (120 + seed * 30) % 255 : offStudio ? floor : 245;
      data[i + 1] = inShoe ? (40 + x / 8) % 255 : offStudio ? floor * 0.8 : 245;
      data[i + 2] = inShoe ? (60 + y / 4) % 255 : offStudio ? floor * 0.6 : 245;
    }
  }
  return sharp(data, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
}

const tf = await getTf();
const loadBefore = loadavg()[0] ?? 0;
const store = await openStore({ url: ':memory:' });
const engine = createEngine({ store });
await engine.register(createVisionPlugin());
const head = await engine.services.vision.model('hype');
const backboneName = head.backbone as BackboneName;
const images = await Promise.all(Array.from({ length: Math.max(runs, 8) }, (_, i) => benchImage(i)));

// 1. Warm hype latency, end to end. Distinct images so no embedding cache hit; distinct callers so no cooldown.
async function commandLatency(eng: typeof engine, label: string, photos: readonly Buffer[] = images, command: 'hype' | 'brand' = 'hype'): Promise<{ p50: number; p95: number; runs: number }> {
  say(`${command} latency (${label}): ${runs} warm runs on ${tf.getBackend()}`);
  // Callers are per series: hype has a per-user cooldown, and with --quick the next series starts within it.
  const caller = (run: string): { id: string } => ({ id: `bench:${label}:${run}` });
  const first = await eng.invoke(command, { image: { kind: 'buffer', data: photos[0]! } }, { transport: 'cli', caller: caller('warmup') });
  if (!first.ok) throw first.error;
  const latencies: number[] = [];
  for (let i = 0; i < runs; i++) {
    const img = photos[(i + 1) % photos.length]!;
    // Vary the pixels of a copy so the content id differs (a cached embedding would flatter the number).
    const bytes = Buffer.from(await sharp(img).modulate({ brightness: 1 + (i + 1) * 0.001 }).jpeg({ quality: 90 }).toBuffer());
    const t0 = performance.now();
    const r = await eng.invoke(command, { image: { kind: 'buffer', data: bytes } }, { transport: 'cli', caller: caller(String(i)) });
    latencies.push(performance.now() - t0);
    if (!r.ok) throw r.error;
  }
  latencies.sort((a, b) => a - b);
  const out = { p50: Math.round(quantile(latencies, 0.5)), p95: Math.round(quantile(latencies, 0.95)), runs };
  say(`  p50 ${out.p50} ms, p95 ${out.p95} ms`);
  return out;
}
const hypeLatencyMs = await commandLatency(engine, `shipped model ${head.id}, ${backboneName}`);
// The same on photos off a studio backdrop: + the shoe localiser's partial forward pass and GrabCut.
const offStudioImages = await Promise.all(Array.from({ length: Math.max(runs, 8) }, (_, i) => benchImage(i, true)));
const hypeLatencyMsOffStudio = await commandLatency(engine, `shipped model, photos on a textured floor`, offStudioImages);
// The shipped brand head also answers from the photo's mirror (`tta: "mirror"`): one more forward pass.
const brandLatencyMs = await commandLatency(engine, `shipped brand model (photo + mirror)`, images, 'brand');
// The same pipeline on the other built-in backbone: a head of the shipped head's shape with random weights
// (latency does not depend on the weights), so the table shows what each backbone costs per request.
const hypeLatencyMsByBackbone: Record<string, { p50: number; p95: number; runs: number }> = { [backboneName]: hypeLatencyMs };
const otherBackbone: BackboneName = backboneName.startsWith('inception_v3') ? 'mobilenet_v2' : 'inception_v3_m7';
{
  const other = await loadBackbone(otherBackbone);
  const random = seededRandom(5);
  const x = Array.from({ length: 40 }, () => Float32Array.from({ length: other.embedDim }, () => random()));
  const y = x.map((_, i) => (i % 4 === 0 ? 'not_hyped' : 'hyped'));
  // The learnt turn needs the backbone's own angle model: without one, the same pipeline less that step.
  const features = existsSync(path.join(DEFAULT_LOCALISER_DIR, angleFileName(otherBackbone))) ? head.features : (({ learntTurn: _learnt, ...rest }) => rest)(head.features);
  const h = await trainHead({ task: 'hype', id: `bench-${otherBackbone}`, backbone: otherBackbone, prepVersion: featureKey(features), features, x, y }, { type: 'mlp', epochs: 2, seed: 5 });
  const dir = mkdtempSync(path.join(tmpdir(), 'solescope-bench-'));
  writeFileSync(path.join(dir, 'hype.head.json'), JSON.stringify(h));
  const otherEngine = createEngine({ store: await openStore({ url: ':memory:' }) });
  await otherEngine.register(createVisionPlugin({ modelsDir: dir }));
  hypeLatencyMsByBackbone[otherBackbone] = await commandLatency(otherEngine, `same pipeline on ${otherBackbone}, random head weights`);
  await otherEngine.close();
}

// 2. Embedding throughput per engine row.
const backbone = await loadBackbone(backboneName);
const embedN = args.quick ? 16 : 48;
const embedImages = Array.from({ length: embedN }, (_, i) => images[i % images.length]!);
const engineRows: EmbedEngineRow[] = [
  {
    name: `tfjs-${mlStatus().backend ?? tf.getBackend()}`,
    async measure() {
      const batch = 16;
      const started = performance.now();
      for (let i = 0; i < embedImages.length; i += batch) {
        const chunk = embedImages.slice(i, i + batch);
        const inputs = await Promise.all(chunk.map(async (b) => prepareInput((await decodeBytes(b)).raw, backbone.inputSize, variantOf(head.features, false), locatorFor(backbone, variantOf(head.features, false)), turnerFor(backbone, variantOf(head.features, false)))));
        await backbone.embedImages(inputs, { batchSize: batch });
      }
      return embedImages.length / ((performance.now() - started) / 1000);
    },
  },
];
const embedImgPerSec: Record<string, number> = {};
const notMeasured: Record<string, string> = {};
for (const row of engineRows) {
  const v = await row.measure();
  if (typeof v === 'number') embedImgPerSec[row.name] = Math.round(v * 10) / 10;
  else notMeasured[row.name] = v;
  say(`embed ${row.name}: ${typeof v === 'number' ? `${v.toFixed(1)} img/s (batch 16, incl. decode + preprocess)` : v}`);
}

// 3. onnxruntime and PyTorch rows (bench/onnx.ts): forward passes only, batch 1 and 16, best batch reported.
let onnx: unknown;
let ratiosByBackbone: Record<string, { ortVsTfjs: number; ortVsPytorch: number | null }> | undefined;
if (!args['no-onnx']) {
  try {
    const { runOnnxBench, formatOnnxBench } = await import('./onnx.ts');
    const result = await runOnnxBench({ backbones: [backboneName, otherBackbone], batches: [1, 16], secondsPerCase: args.quick ? 2 : 4, log: (l) => say(`  ${l}`) });
    onnx = result;
    ratiosByBackbone = { ...result.ratios };
    for (const [engineName, v] of Object.entries(result.embedImgPerSec[backboneName] ?? {})) {
      // The decode-inclusive tfjs row above stays the tfjs number; forward-only rows get their own names.
      embedImgPerSec[engineName.startsWith('tfjs-') ? `${engineName}-forward` : engineName] = v;
    }
    if (result.pytorch.startsWith('torch')) say(`PyTorch: ${result.pytorch}`);
    else notMeasured.pytorch = result.pytorch;
    say(formatOnnxBench(result));
  } catch (error) {
    notMeasured.onnxruntime = `bench/onnx.ts failed: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`;
    say(notMeasured.onnxruntime);
  }
}

// 4. Head training throughput: training rows × epochs per second of one fit on synthetic rows of the backbone's
// width. `npm run train:defaults` fits in tfjs (plugins/vision: the linear brand head, 4 classes, and the 64-unit
// MLP hype head, 2 classes); the queued `train` jobs fit in plain TypeScript (plugins/training: its default
// 64-unit head, 4 classes, with the source projection's cost when the rows come from two sources).
let headFitRowsPerSec: { linear: number; mlp: number; community: number; communityTypescript: number; rows: number; dim: number } | undefined;
if (!args['no-train']) {
  const rows = args.quick ? 2048 : 8192;
  const dim = backbone.embedDim;
  const random = seededRandom(11);
  const x = Array.from({ length: rows }, () => Float32Array.from({ length: dim }, () => random() - 0.5));
  const rate = async (type: 'linear' | 'mlp', classes: number): Promise<number> => {
    const epochs = 3;
    const y = x.map((_, i) => i % classes);
    const started = performance.now();
    await fitDense(x, y, classes, { type, epochs, seed: 11 });
    return Math.round((rows * epochs) / ((performance.now() - started) / 1000));
  };
  // The train job runs its head's matrix products on the tfjs backend when one starts (`community`), else in
  // TypeScript (`communityTypescript`).
  const community = async (onTf: boolean): Promise<number> => {
    const epochs = 3;
    const n = Math.min(rows, 2048);
    const y = x.slice(0, n).map((_, i) => i % 4);
    const started = performance.now();
    await trainCommunityHead({
      task: 'brand',
      classes: ['jordan', 'nike', 'adidas', 'other'],
      features: { backbone: backbone.name, prepVersion: 'bench' },
      train: { x: x.slice(0, n), y },
      validation: { x: x.slice(0, 64), y: y.slice(0, 64) },
      epochs,
      params: DEFAULT_HEAD_PARAMS,
      seed: 11,
      nuisance: { groups: y.map((_, i) => (i % 8 < 4 ? 'a' : 'b')) },
      ...(onTf ? { tf } : {}),
    });
    return Math.round((n * epochs) / ((performance.now() - started) / 1000));
  };
  headFitRowsPerSec = { linear: await rate('linear', 4), mlp: await rate('mlp', 2), community: await community(true), communityTypescript: await community(false), rows, dim };
  say(`head fit: linear ${headFitRowsPerSec.linear} rows·epochs/s, mlp ${headFitRowsPerSec.mlp} rows·epochs/s (${rows} × ${dim} rows); train job's head ${headFitRowsPerSec.community} rows·epochs/s (${headFitRowsPerSec.communityTypescript} in TypeScript)`);
}

const tfjsForward = Object.entries(embedImgPerSec).find(([k]) => k.startsWith('tfjs-') && k.endsWith('-forward'))?.[1];
const pytorch = embedImgPerSec.pytorch;
const ort = embedImgPerSec.onnxruntime;
const ratios: Record<string, number | null> = {
  // Same work on both sides (forward passes at the best batch size): tfjs ÷ PyTorch.
  embedVsPytorch: pytorch && tfjsForward ? Math.round((tfjsForward / pytorch) * 100) / 100 : null,
  ...(ort !== undefined ? { ortVsPytorch: pytorch ? Math.round((ort / pytorch) * 100) / 100 : null } : {}),
};
// Resale-monitor webhook ingest (issue #8): 1,000 posts against the real server in a child process.
let webhooks: Awaited<ReturnType<typeof benchWebhooks>> | undefined;
if (!args['no-webhooks']) {
  try {
    webhooks = await benchWebhooks({ posts: 1000, concurrency: 4 });
  } catch (error) {
    notMeasured.webhooks = `bench/webhooks.ts failed: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`;
  }
}
const result = {
  hypeLatencyMs,
  hypeLatencyMsOffStudio,
  brandLatencyMs,
  hypeLatencyMsByBackbone,
  ...(webhooks ? { webhooks } : {}),
  embedImgPerSec,
  ...(headFitRowsPerSec ? { headFitRowsPerSec } : {}),
  ratios,
  ...(ratiosByBackbone ? { ratiosByBackbone } : {}),
  backbone: backboneName,
  backend: tf.getBackend(),
  model: head.id,
  cores: availableParallelism(),
  loadAverage: { before: Math.round(loadBefore * 100) / 100, after: Math.round((loadavg()[0] ?? 0) * 100) / 100 },
  ...(Object.keys(notMeasured).length > 0 ? { notMeasured } : {}),
  ...(onnx !== undefined ? { onnx } : {}),
};
if (args.json) console.log(JSON.stringify(result));
else {
  console.log('');
  console.log(`hype latency (warm, end to end): p50 ${hypeLatencyMs.p50} ms, p95 ${hypeLatencyMs.p95} ms over ${runs} runs (shipped ${backboneName} heads)`);
  console.log(`  on a textured floor (shoe localiser + GrabCut): p50 ${hypeLatencyMsOffStudio.p50} ms, p95 ${hypeLatencyMsOffStudio.p95} ms`);
  console.log(`brand latency (photo + its mirror view): p50 ${brandLatencyMs.p50} ms, p95 ${brandLatencyMs.p95} ms`);
  for (const [b, l] of Object.entries(hypeLatencyMsByBackbone)) if (b !== backboneName) console.log(`  same pipeline on ${b}: p50 ${l.p50} ms, p95 ${l.p95} ms`);
  for (const [k, v] of Object.entries(embedImgPerSec)) console.log(`embedding ${k.padEnd(24)} ${v.toFixed(1).padStart(8)} img/s`);
  if (headFitRowsPerSec) {
    const { linear, mlp, community, communityTypescript, rows, dim } = headFitRowsPerSec;
    console.log(`head fit (${rows} rows × ${dim}, on ${tf.getBackend()}): linear ${linear} rows·epochs/s, 64-unit MLP ${mlp} rows·epochs/s; train job's head ${community} (its TypeScript fallback ${communityTypescript})`);
  }
  console.log(`ratios (${backboneName}): ${JSON.stringify(ratios)}`);
  if (ratiosByBackbone) for (const [b, r] of Object.entries(ratiosByBackbone)) console.log(`  ${b}: onnxruntime = ${r.ortVsTfjs}x tfjs, ${r.ortVsPytorch ?? '–'}x PyTorch (forward passes at the same batch size, best of 1 and 16)`);
  if (webhooks) {
    console.log(`webhook ingest: ${webhooks.posts} posts at concurrency ${webhooks.concurrency}: ${webhooks.reqPerSec} req/s, ack p50 ${webhooks.ackMs.p50} ms, p99 ${webhooks.ackMs.p99} ms (targets: >= 200 req/s, p99 < 50 ms)`);
  }
  console.log(`load average ${result.loadAverage.before} → ${result.loadAverage.after} on ${result.cores} cores${result.loadAverage.before > result.cores ? ' (shared machine: numbers are noisy)' : ''}`);
}
await engine.close();
