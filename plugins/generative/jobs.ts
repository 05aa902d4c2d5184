/**
 * The generative plugin's jobs. Dream and style transfer take seconds per step on a CPU, GAN training
 * takes an hour: all three run as queued jobs (sandboxed processes under BullMQ) so the bot and the API
 * stay responsive, report progress with preview PNGs, and the GAN checkpoints so a retry resumes.
 */
import { fileURLToPath } from 'node:url';
import type { Tensor, Tensor3D, Tensor4D } from '@tensorflow/tfjs';
import { z } from 'zod';
import { defineJob, EngineError, type JobContext } from '../../engine/index.ts';
import { getTf, loadBackbone } from '../../engine/ml/index.ts';
import { deepDream } from './lib/dream.ts';
import { decodeRgb, rgbToTensor, tensorToPng, tensorToRgb } from './lib/pictures.ts';
import { captionedRow, resizeRgb, rgbToPng } from './lib/raster.ts';
import { startStyleTransfer, styleTargets } from './lib/style.ts';
import { WGAN_GP_DEFAULTS } from './lib/gan.ts';
import { trainGan } from './lib/gan-train.ts';
import { buildImageSet } from './lib/dataset.ts';

/** Layers of InceptionV3 a dream may target (the deeper, the more object-like the patterns). */
export const DREAM_LAYERS = ['mixed0', 'mixed1', 'mixed2', 'mixed3', 'mixed4', 'mixed5', 'mixed6', 'mixed7'] as const;

/** Style layers (Gram matrices), per NOTES: mixed0–mixed3; the last, mixed3, is also the content layer. */
export const STYLE_LAYERS = ['mixed0', 'mixed1', 'mixed2', 'mixed3'] as const;

/** Smallest side InceptionV3's mixed layers accept. */
const MIN_SIDE = 75;

const base64Png = z.string().min(1).max(40_000_000);

/** Data of `generative.dream`. */
export const dreamJobData = z.object({
  image: base64Png.describe('PNG bytes, base64'),
  layer: z.enum(DREAM_LAYERS).default('mixed3'),
  octaves: z.number().int().min(1).max(6).default(3),
  steps: z.number().int().min(1).max(50).default(10),
  strength: z.number().min(0.1).max(5).default(1),
  seed: z.number().int().min(0).max(2 ** 31).default(1),
  previewEvery: z.number().int().min(0).max(50).default(1),
});

/** What `generative.dream` returns. */
export interface DreamJobResult {
  readonly png: string;
  readonly width: number;
  readonly height: number;
  readonly layer: string;
  readonly octaves: number;
  readonly steps: number;
  readonly strength: number;
  readonly activationBefore: number;
  readonly activationAfter: number;
}

const processor = (name: string) => fileURLToPath(new URL(`./${name}.processor.ts`, import.meta.url));

/** Deep dream as a job. */
export const dreamJob = defineJob({
  name: 'generative.dream',
  data: dreamJobData,
  processorFile: processor('dream'),
  attempts: 1,
  async run(data, ctx): Promise<DreamJobResult> {
    const tf = await getTf();
    const backbone = await loadBackbone('inception_v3');
    const layerModel = backbone.featureModel([data.layer]);
    const model = { apply: (x: Tensor4D) => layerModel.apply(x) as Tensor };
    const decoded = await decodeRgb(Buffer.from(data.image, 'base64'));
    // InceptionV3's mixed layers need 75 px: tiny (or very flat) pictures are upscaled to that first.
    const k = Math.max(1, MIN_SIDE / Math.min(decoded.width, decoded.height));
    const rgb = k > 1 ? await resizeRgb(decoded, Math.round(decoded.width * k), Math.round(decoded.height * k)) : decoded;
    const input = rgbToTensor(tf, rgb);
    const mean = (t: Tensor3D) => tf.tidy(() => tf.mean(model.apply(tf.expandDims(t, 0))).dataSync()[0]!);
    try {
      const before = mean(input);
      const dreamed = await deepDream(tf, model, input, {
        octaves: data.octaves,
        steps: data.steps,
        strength: data.strength,
        seed: data.seed,
        signal: ctx.signal,
        async onStep(s) {
          const preview = data.previewEvery > 0 && (s.done % data.previewEvery === 0 || s.done === s.total);
          await ctx.progress({
            fraction: s.done / s.total,
            stage: `octave ${s.octave}/${data.octaves} · step ${s.step}/${data.steps}`,
            ...(preview ? { preview: { name: 'dream-preview.png', png: await tensorToPng(tf, s.image) } } : {}),
          });
        },
      });
      try {
        return {
          png: (await tensorToPng(tf, dreamed)).toString('base64'),
          width: rgb.width,
          height: rgb.height,
          layer: data.layer,
          octaves: data.octaves,
          steps: data.steps,
          strength: data.strength,
          activationBefore: before,
          activationAfter: mean(dreamed),
        };
      } finally {
        dreamed.dispose();
      }
    } finally {
      input.dispose();
    }
  },
});

/** Data of `generative.style-transfer`. */
export const styleJobData = z.object({
  content: base64Png,
  style: base64Png,
  styleName: z.string().max(100).default('style'),
  contentWeight: z.number().min(0).max(1e4).default(1),
  styleWeight: z.number().min(0).max(1e6).default(30),
  tvWeight: z.number().min(0).max(1e4).default(30),
  steps: z.number().int().min(1).max(300).default(40),
  size: z.number().int().min(96).max(768).default(256),
  learningRate: z.number().min(1e-4).max(0.5).default(0.05),
  previewEvery: z.number().int().min(0).max(100).default(5),
});

/** What `generative.style-transfer` returns. */
export interface StyleJobResult {
  /** The triptych: content | style | result. */
  readonly png: string;
  /** The result alone. */
  readonly resultPng: string;
  readonly width: number;
  readonly height: number;
  readonly steps: number;
  readonly losses: { readonly first: LossRow; readonly last: LossRow };
}

interface LossRow {
  content: number;
  style: number;
  tv: number;
  total: number;
}

/** Gatys style transfer as a job. */
export const styleTransferJob = defineJob({
  name: 'generative.style-transfer',
  data: styleJobData,
  processorFile: processor('style-transfer'),
  attempts: 1,
  async run(data, ctx): Promise<StyleJobResult> {
    const tf = await getTf();
    const backbone = await loadBackbone('inception_v3');
    const layersModel = backbone.featureModel([...STYLE_LAYERS]);
    const model = { apply: (x: Tensor4D) => layersModel.apply(x) as Tensor[] };
    const contentFull = await decodeRgb(Buffer.from(data.content, 'base64'));
    // Work at `size` on the longer side, keeping the content's aspect ratio.
    const k = data.size / Math.max(contentFull.width, contentFull.height);
    const width = Math.max(MIN_SIDE, Math.round(contentFull.width * k));
    const height = Math.max(MIN_SIDE, Math.round(contentFull.height * k));
    const contentRgb = await resizeRgb(contentFull, width, height);
    const styleRgb = await decodeRgb(Buffer.from(data.style, 'base64'), { width, height, fit: 'cover' });
    const content = rgbToTensor(tf, contentRgb);
    const style = rgbToTensor(tf, styleRgb);
    const targets = styleTargets(tf, model, content, style);
    const run = startStyleTransfer(
      tf,
      model,
      content,
      targets,
      { content: data.contentWeight, style: data.styleWeight, tv: data.tvWeight },
      data.learningRate,
    );
    try {
      let first: LossRow | undefined;
      let last: LossRow | undefined;
      for (let i = 0; i < data.steps; i++) {
        if (ctx.signal.aborted) throw new EngineError('UNAVAILABLE', 'Style transfer was cancelled.');
        last = run.step();
        first ??= last;
        const preview = data.previewEvery > 0 && ((i + 1) % data.previewEvery === 0 || i + 1 === data.steps);
        await ctx.progress({
          fraction: (i + 1) / data.steps,
          stage: `step ${i + 1}/${data.steps}`,
          metrics: { styleLoss: last.style, contentLoss: last.content, totalLoss: last.total },
          ...(preview ? { preview: { name: 'style-preview.png', png: await tensorToPng(tf, run.image) } } : {}),
        });
      }
      const result = tensorToRgb(run.image);
      const triptych = captionedRow([
        { img: contentRgb, caption: 'content' },
        { img: styleRgb, caption: `style: ${data.styleName}` },
        { img: result, caption: 'result' },
      ]);
      return {
        png: (await rgbToPng(triptych)).toString('base64'),
        resultPng: (await rgbToPng(result)).toString('base64'),
        width,
        height,
        steps: data.steps,
        losses: { first: first!, last: last! },
      };
    } finally {
      run.dispose();
      targets.dispose();
      tf.dispose([content, style]);
    }
  },
});

/**
 * Data of `generative.train-gan`. Lenient on purpose (unknown keys are dropped): `train --task gan`
 * (plugins/training) forwards its generic options — `datasets`, `epochs`, `requestedBy`, `guildId`.
 */
export const trainGanJobData = z.object({
  datasets: z.array(z.string().min(1).max(100)).max(20).default([]),
  hype: z.enum(['hyped', 'not_hyped', 'any']).default('hyped'),
  size: z.union([z.literal(32), z.literal(64)]).default(32),
  ngf: z.number().int().min(2).max(128).default(32),
  ndf: z.number().int().min(2).max(128).default(16),
  zDim: z.number().int().min(8).max(256).default(64),
  batchSize: z.number().int().min(2).max(128).default(16),
  /** Generator iterations. `epochs`, when given instead, means passes over the images. */
  iterations: z.number().int().min(1).max(100_000).optional(),
  epochs: z.number().int().min(1).max(2000).optional(),
  maxMinutes: z.number().min(0.05).max(24 * 60).default(120),
  maxImages: z.number().int().min(1).max(10_000).default(5000),
  seed: z.number().int().min(0).max(2 ** 31).default(7),
  sampleEvery: z.number().int().min(0).max(10_000).default(50),
  checkpointEvery: z.number().int().min(1).max(10_000).default(25),
  requestedBy: z.string().max(200).optional(),
});

/** What `generative.train-gan` returns (the shape `train --wait` renders: task, model, decision, metrics). */
export interface TrainGanJobResult {
  readonly task: 'gan';
  readonly model: number;
  readonly decision: 'champion' | 'candidate';
  readonly metrics: Record<string, number | string>;
  readonly iterations: number;
  readonly stoppedBy: string;
}

/** WGAN-GP training on the store's (non-generated) images as a job; registers the generator as a `gan` model. */
export const trainGanJob = defineJob({
  name: 'generative.train-gan',
  data: trainGanJobData,
  processorFile: processor('train-gan'),
  attempts: 3,
  async run(data, ctx): Promise<TrainGanJobResult> {
    return runTrainGanJob(data, ctx);
  },
});

async function runTrainGanJob(data: z.output<typeof trainGanJobData>, ctx: JobContext): Promise<TrainGanJobResult> {
  const tf = await getTf();
  const store = ctx.services.store;
  await ctx.progress({ stage: 'loading images', fraction: 0 });
  const filter = {
    generated: false, // never train on our own output
    ...(data.hype !== 'any' ? { hype: data.hype } : {}),
    ...(data.datasets.length > 0 ? { dataset: data.datasets } : {}),
  };
  const rows = await store.images.find({ ...filter, limit: data.maxImages });
  const { set, skipped } = await buildImageSet(
    (async function* () {
      for (const r of rows) {
        const bytes = await store.images.bytes(r.sha256);
        if (bytes) yield bytes;
      }
    })(),
    data.size,
  );
  if (set.count < 8) {
    throw new EngineError('BAD_INPUT', `GAN training needs at least 8 images (found ${set.count}${data.hype !== 'any' ? ` labelled ${data.hype}` : ''}). Import a dataset first.`);
  }
  const iterations = data.iterations ?? Math.ceil(((data.epochs ?? 20) * set.count) / data.batchSize);
  const previous = await ctx.lastCheckpoint();
  const resume = previous instanceof Uint8Array ? previous : undefined;
  const arch = { size: data.size, zDim: data.zDim, ngf: data.ngf, ndf: data.ndf };
  const result = await trainGan(tf, {
    arch,
    hyper: WGAN_GP_DEFAULTS,
    data: set,
    seed: data.seed,
    batchSize: data.batchSize,
    iterations,
    maxMinutes: data.maxMinutes,
    sampleEvery: data.sampleEvery,
    checkpointEvery: data.checkpointEvery,
    ...(resume ? { resume } : {}),
    signal: ctx.signal,
    async onIteration(i) {
      if (i.iteration % 5 === 0 || i.iteration === i.target) {
        await ctx.progress({
          fraction: 0.02 + 0.95 * (i.iteration / i.target),
          stage: `iteration ${i.iteration}/${i.target}`,
          metrics: { wasserstein: i.wasserstein, gradientPenalty: i.gradientPenalty, generatorLoss: i.generatorLoss, etaSeconds: i.etaSeconds },
        });
      }
    },
    async onSample(iteration, png) {
      await ctx.progress({ stage: `samples at iteration ${iteration}`, preview: { name: `gan-samples-${iteration}.png`, png } });
    },
    async onCheckpoint(_iteration, bytes) {
      await ctx.checkpoint(new Uint8Array(bytes));
    },
  });
  if (result.stoppedBy === 'signal') throw new EngineError('UNAVAILABLE', 'GAN training was cancelled (checkpoint kept).');
  const last = result.history.slice(-20);
  const avg = (f: (h: (typeof last)[number]) => number) => (last.length ? last.reduce((a, h) => a + f(h), 0) / last.length : Number.NaN);
  const metrics = {
    iterations: result.iterations,
    trainingMinutes: +(result.elapsedMs / 60_000).toFixed(2),
    wasserstein: avg((h) => h.wasserstein),
    gradientPenalty: avg((h) => h.gradientPenalty),
    generatorLoss: avg((h) => h.generatorLoss),
    stoppedBy: result.stoppedBy,
  };
  const version = await store.models.create({
    task: 'gan',
    artifact: result.generator,
    metrics,
    params: { ...arch, ...WGAN_GP_DEFAULTS, batchSize: data.batchSize, seed: data.seed, jobId: ctx.jobId },
    dataSnapshot: { images: set.count, skipped, hype: data.hype, datasets: data.datasets },
    curvesPng: result.curvesPng,
    createdBy: data.requestedBy ?? 'job',
  });
  // No evaluation gate can rank GANs here: the first one becomes champion, later ones wait as candidates
  // until a moderator promotes them (`models promote`).
  const champion = await store.models.getAlias('gan', 'champion');
  const decision = champion === undefined ? 'champion' : 'candidate';
  await store.models.setAlias('gan', decision, version.id, data.requestedBy ?? 'job');
  await ctx.progress({ stage: 'done', fraction: 1, preview: { name: 'gan-samples.png', png: result.samplesPng } });
  return { task: 'gan', model: version.id, decision, metrics, iterations: result.iterations, stoppedBy: result.stoppedBy };
}
