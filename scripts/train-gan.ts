/**
 * Trains the default sneaker generator (WGAN-GP) from a labelled manifest and writes it, with its sample
 * grid and loss curves, to an output folder. Resumable: point `--checkpoint` at the same file again.
 *
 *   nice -n 10 npx tsx scripts/train-gan.ts --data ../shared/datasets/sneakers-dev/manifest.csv \
 *     --hype hyped --size 32 --iterations 3000 --max-minutes 75 --seed 7 \
 *     --out assets/models/generator --checkpoint tmp/gan/checkpoint.sgan
 *
 * `--engine pytorch` trains the same networks with the same loss in scripts/train-gan-torch.py (Debian's
 * python3-torch; several times faster per step than tfjs-wasm on this CPU), then loads the exported
 * generator here and checks that TF.js reproduces PyTorch's pixels for the same latents before saving it.
 *
 * A deterministic 10 % of the matching images is held back (never trained on) and listed in
 * `<out>/held-out.json`, so scripts/gan-quality.ts can compare generated, training and held-back images.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { getTf } from '../engine/ml/runtime.ts';
import { generatorForward, WGAN_GP_DEFAULTS, type GanArchitecture, type Weights } from '../plugins/generative/lib/gan.ts';
import { lossCurvesPng, PREVIEW_SEED, sampleRgb, trainGan } from '../plugins/generative/lib/gan-train.ts';
import { loadGenerator, type HistoryPoint } from '../plugins/generative/lib/gan-io.ts';
import { grid, resizeRgb, rgbToPng } from '../plugins/generative/lib/raster.ts';

/** What either trainer produced. */
interface Outcome {
  readonly generator: Buffer;
  readonly iterations: number;
  readonly elapsedMs: number;
  readonly history: readonly HistoryPoint[];
  readonly curvesPng: Buffer;
  readonly samplesPng: Buffer;
  readonly stoppedBy: string;
  readonly engine: string;
  readonly parityMaxDiff?: number;
}
import { buildImageSet, readManifest, splitHeldOut } from '../plugins/generative/lib/dataset.ts';

const { values: args } = parseArgs({
  options: {
    data: { type: 'string' },
    hype: { type: 'string', default: 'hyped' },
    size: { type: 'string', default: '32' },
    'z-dim': { type: 'string', default: '64' },
    ngf: { type: 'string', default: '32' },
    ndf: { type: 'string', default: '32' },
    batch: { type: 'string', default: '32' },
    iterations: { type: 'string', default: '3000' },
    'max-minutes': { type: 'string' },
    seed: { type: 'string', default: '7' },
    'held-out': { type: 'string', default: '0.1' },
    'sample-every': { type: 'string', default: '50' },
    'checkpoint-every': { type: 'string', default: '25' },
    out: { type: 'string', default: 'assets/models/generator' },
    checkpoint: { type: 'string', default: 'tmp/gan/checkpoint.sgan' },
    engine: { type: 'string', default: 'tfjs' },
  },
});

if (!args.data) {
  console.error('usage: train-gan.ts --data <manifest.csv> [--hype hyped] [--size 32|64] [--iterations N] [--max-minutes M] [--out DIR]');
  process.exit(2);
}
const size = Number(args.size);
if (size !== 32 && size !== 64) throw new Error('--size must be 32 or 64');
const arch: GanArchitecture = { size, zDim: Number(args['z-dim']), ngf: Number(args.ngf), ndf: Number(args.ndf) };
const seed = Number(args.seed);
const outDir = path.resolve(args.out);
const ckptPath = path.resolve(args.checkpoint);
await mkdir(outDir, { recursive: true });
await mkdir(path.dirname(ckptPath), { recursive: true });

const tf = await getTf();
console.log(`backend ${tf.getBackend()}; arch ${JSON.stringify(arch)}`);

const rows = (await readManifest(path.resolve(args.data))).filter((r) => r.hype === args.hype);
const { train, held } = splitHeldOut(rows, Number(args['held-out']), seed);
await writeFile(
  path.join(outDir, 'held-out.json'),
  JSON.stringify({ seed, hype: args.hype, files: held.map((r) => path.basename(r.file)) }, null, 1),
);
const t0 = Date.now();
const { set, skipped } = await buildImageSet(
  (async function* () {
    for (const r of train) yield await readFile(r.file);
  })(),
  size,
);
console.log(`${set.count} training images (${held.length} held back, ${skipped} unreadable) loaded in ${Date.now() - t0} ms`);

const atomicWrite = async (file: string, bytes: Buffer) => {
  await writeFile(`${file}.tmp`, bytes);
  await rename(`${file}.tmp`, file);
};

const result = args.engine === 'pytorch' ? await trainWithPytorch() : await trainWithTfjs();

async function trainWithTfjs(): Promise<Outcome> {
  const resume = existsSync(ckptPath) ? await readFile(ckptPath) : undefined;
  if (resume) console.log(`resuming from ${ckptPath}`);
  const r = await trainGan(tf, {
    arch,
    hyper: WGAN_GP_DEFAULTS,
    data: set,
    seed,
    batchSize: Number(args.batch),
    iterations: Number(args.iterations),
    ...(args['max-minutes'] ? { maxMinutes: Number(args['max-minutes']) } : {}),
    sampleEvery: Number(args['sample-every']),
    checkpointEvery: Number(args['checkpoint-every']),
    ...(resume ? { resume } : {}),
    onIteration(i) {
      if (i.iteration % 5 === 0 || i.iteration <= 3) {
        console.log(
          `it ${i.iteration}/${i.target} W ${i.wasserstein.toFixed(3)} GP ${i.gradientPenalty.toFixed(3)} G ${i.generatorLoss.toFixed(3)} ` +
            `elapsed ${(i.elapsedMs / 60000).toFixed(1)} min eta ${(i.etaSeconds / 60).toFixed(0)} min`,
        );
      }
    },
    async onSample(iteration, png) {
      await mkdir(path.join(path.dirname(ckptPath), 'samples'), { recursive: true });
      await writeFile(path.join(path.dirname(ckptPath), 'samples', `it-${String(iteration).padStart(5, '0')}.png`), png);
    },
    async onCheckpoint(iteration, bytes) {
      await atomicWrite(ckptPath, bytes);
      console.log(`checkpoint at ${iteration}`);
    },
  });
  return { ...r, engine: `tfjs-${tf.getBackend()}` };
}

async function trainWithPytorch(): Promise<Outcome> {
  const work = path.join(path.dirname(ckptPath), 'pytorch');
  await mkdir(work, { recursive: true });
  const dataFile = path.join(work, 'train-data.f32');
  await writeFile(dataFile, Buffer.from(set.pixels.buffer, set.pixels.byteOffset, set.pixels.byteLength));
  const pyArgs = [
    fileURLToPath(new URL('./train-gan-torch.py', import.meta.url)),
    '--data', dataFile, '--count', String(set.count), '--size', String(size),
    '--z-dim', String(arch.zDim), '--ngf', String(arch.ngf), '--ndf', String(arch.ndf),
    '--batch', String(args.batch), '--iterations', String(args.iterations), '--seed', String(seed),
    '--checkpoint', path.join(work, 'checkpoint.pt'), '--checkpoint-every', String(args['checkpoint-every']),
    '--out', work,
    ...(args['max-minutes'] ? ['--max-minutes', String(args['max-minutes'])] : []),
  ];
  const python = process.env.PYTHON ?? '/usr/bin/python3';
  const code = await new Promise<number>((resolve, reject) => {
    const child = spawn(python, pyArgs, { stdio: 'inherit' });
    child.on('error', reject);
    child.on('exit', (c) => resolve(c ?? 1));
  });
  if (code !== 0) throw new Error(`${python} train-gan-torch.py exited with ${code}`);
  const generator = await readFile(path.join(work, 'generator.sgan'));
  const parity = JSON.parse(await readFile(path.join(work, 'parity.json'), 'utf8')) as { z: number[]; out: number[] };
  const loaded = loadGenerator(tf, generator);
  const maxDiff = tf.tidy(() => {
    const z = tf.tensor2d(parity.z, [parity.z.length / arch.zDim, arch.zDim]);
    const out = generatorForward(tf, loaded.weights, loaded.arch, z);
    return tf.max(tf.abs(tf.sub(out, tf.tensor(parity.out, out.shape)))).dataSync()[0]!;
  });
  console.log(`parity: TF.js vs PyTorch max |Δpixel| = ${maxDiff.toExponential(2)} (pixels in [-1, 1])`);
  if (!(maxDiff < 1e-3)) throw new Error(`the exported generator does not reproduce PyTorch (max diff ${maxDiff})`);
  const hist = JSON.parse(await readFile(path.join(work, 'history.json'), 'utf8')) as {
    history: HistoryPoint[];
    iterations: number;
    elapsedMs: number;
    stoppedBy: 'iterations' | 'time';
  };
  const grid16 = await sampleGrid(loaded.weights);
  loaded.dispose();
  return {
    generator,
    iterations: hist.iterations,
    elapsedMs: hist.elapsedMs,
    history: hist.history,
    curvesPng: await lossCurvesPng(hist.history),
    samplesPng: grid16,
    stoppedBy: hist.stoppedBy,
    engine: 'pytorch',
    parityMaxDiff: maxDiff,
  };
}

async function sampleGrid(weights: Weights): Promise<Buffer> {
  const imgs = await Promise.all(sampleRgb(tf, weights, arch, PREVIEW_SEED, 16).map((im) => resizeRgb(im, im.width * 3, im.height * 3, 'nearest')));
  return rgbToPng(grid(imgs, 4));
}

await atomicWrite(path.join(outDir, 'generator.sgan'), result.generator);
await writeFile(path.join(outDir, 'samples.png'), result.samplesPng);
await writeFile(path.join(outDir, 'loss-curves.png'), result.curvesPng);
await writeFile(
  path.join(outDir, 'training.json'),
  JSON.stringify(
    {
      command: `npx tsx scripts/train-gan.ts ${process.argv.slice(2).join(' ')}`,
      arch,
      hyper: WGAN_GP_DEFAULTS,
      seed,
      batchSize: Number(args.batch),
      trainingImages: set.count,
      heldOutImages: held.length,
      iterations: result.iterations,
      trainingMinutes: +(result.elapsedMs / 60000).toFixed(1),
      stoppedBy: result.stoppedBy,
      engine: result.engine,
      ...(result.parityMaxDiff !== undefined ? { parityMaxDiff: result.parityMaxDiff } : {}),
      finalLosses: result.history.slice(-20).reduce(
        (a, h, _, all) => ({
          wasserstein: a.wasserstein + h.wasserstein / all.length,
          gradientPenalty: a.gradientPenalty + h.gradientPenalty / all.length,
          generatorLoss: a.generatorLoss + h.generatorLoss / all.length,
        }),
        { wasserstein: 0, gradientPenalty: 0, generatorLoss: 0 },
      ),
    },
    null,
    2,
  ),
);
console.log(`done: ${result.iterations} iterations in ${(result.elapsedMs / 60000).toFixed(1)} min (${result.stoppedBy}); wrote ${outDir}`);
