/**
 * Quality figures of a generator: Fréchet distances on MobileNetV2 `flatten_1` embeddings (1280-d) between
 * a reference set of real training images and (a) generated samples, (b) the same generator untrained and
 * (c) uniform-noise images (floors to beat), (d) held-back real images the generator never saw (the ceiling: what "as real as real" scores).
 * Every set is seen at the generator's resolution (real images are fitted into the same white square and
 * downscaled the same way) and upsampled identically for the backbone, so only content differs. All test
 * sets have the same size, so the small-sample bias of the statistic is the same for each row.
 *
 *   nice -n 10 npx tsx scripts/gan-quality.ts --data ../shared/datasets/sneakers-dev/manifest.csv \
 *     --dir assets/models/generator
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { getTf, loadBackbone } from '../engine/ml/index.ts';
import type { RawImage } from '../engine/ml/types.ts';
import { imageToGanPixels, readManifest, splitHeldOut } from '../plugins/generative/lib/dataset.ts';
import { loadGenerator } from '../plugins/generative/lib/gan-io.ts';
import { sampleRgb } from '../plugins/generative/lib/gan-train.ts';
import { initGenerator, mulberry32 } from '../plugins/generative/lib/gan.ts';
import { frechetDistance } from '../plugins/generative/lib/frechet.ts';

const { values: args } = parseArgs({
  options: {
    data: { type: 'string' },
    hype: { type: 'string', default: 'hyped' },
    dir: { type: 'string', default: 'assets/models/generator' },
    reference: { type: 'string', default: '500' },
    seed: { type: 'string', default: '2024' },
    /** Cap the test-set size (a quick smoke run); default: all held-back images. */
    limit: { type: 'string' },
  },
});
if (!args.data) {
  console.error('usage: gan-quality.ts --data <manifest.csv> [--dir assets/models/generator]');
  process.exit(2);
}
const dir = path.resolve(args.dir);
const tf = await getTf();
const generator = loadGenerator(tf, await readFile(path.join(dir, 'generator.sgan')));
const size = generator.arch.size;
const training = JSON.parse(await readFile(path.join(dir, 'training.json'), 'utf8')) as { seed: number };

// The same deterministic split as scripts/train-gan.ts: held-back files were never trained on.
const rows = (await readManifest(path.resolve(args.data))).filter((r) => r.hype === args.hype);
const split = splitHeldOut(rows, 0.1, training.seed);
const train = split.train;
const held = args.limit ? split.held.slice(0, Number(args.limit)) : split.held;
const n = held.length;
const pick = <T,>(items: readonly T[], k: number, seed: number): T[] => {
  const rng = mulberry32(seed);
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy.slice(0, k);
};

async function asRaw(file: string): Promise<RawImage> {
  const px = await imageToGanPixels(await readFile(file), size);
  return { data: Uint8Array.from(px, (v) => Math.round((v + 1) * 127.5)), width: size, height: size, channels: 3 };
}

const seed = Number(args.seed);
const reference = await Promise.all(pick(train, Number(args.reference), seed).map((r) => asRaw(r.file)));
const heldOut = await Promise.all(held.map((r) => asRaw(r.file)));
const generated: RawImage[] = sampleRgb(tf, generator.weights, generator.arch, seed, n).map((im) => ({ ...im, channels: 3 as const }));
// Baseline: the same architecture before any training (what training bought).
const untrainedWeights = initGenerator(tf, generator.arch, training.seed);
const untrained: RawImage[] = sampleRgb(tf, untrainedWeights, generator.arch, seed, n).map((im) => ({ ...im, channels: 3 as const }));
for (const v of untrainedWeights.values()) v.dispose();
const noiseRng = mulberry32(seed + 1);
const noise: RawImage[] = Array.from({ length: n }, () => ({
  data: Uint8Array.from({ length: size * size * 3 }, () => Math.floor(noiseRng() * 256)),
  width: size,
  height: size,
  channels: 3 as const,
}));
console.log(`embedding ${reference.length} reference and ${n} each of held-out, generated, untrained, noise images at ${size} px…`);
const backbone = await loadBackbone('mobilenet_v2');
const started = Date.now();
const embed = (imgs: RawImage[]) => backbone.embedImages(imgs, { batchSize: 16 });
const [eRef, eHeld, eGen, eUntrained, eNoise] = [
  await embed(reference),
  await embed(heldOut),
  await embed(generated),
  await embed(untrained),
  await embed(noise),
];
console.log(`embedded in ${((Date.now() - started) / 1000).toFixed(0)} s`);

const figures = {
  backbone: 'mobilenet_v2 flatten_1 (1280-d)',
  resolution: size,
  referenceImages: reference.length,
  setSize: n,
  frechet: {
    generatedVsReference: +frechetDistance(eGen, eRef).toFixed(2),
    untrainedGeneratorVsReference: +frechetDistance(eUntrained, eRef).toFixed(2),
    noiseVsReference: +frechetDistance(eNoise, eRef).toFixed(2),
    heldOutRealVsReference: +frechetDistance(eHeld, eRef).toFixed(2),
    generatedVsHeldOut: +frechetDistance(eGen, eHeld).toFixed(2),
  },
  generatorIterations: generator.meta.iterations,
  seed,
};
console.log(JSON.stringify(figures, null, 2));
await writeFile(path.join(dir, 'quality.json'), `${JSON.stringify(figures, null, 2)}\n`);
generator.dispose();
