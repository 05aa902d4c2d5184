/**
 * The vision plugin: `hype`, `brand`, `explain`, `similar`, `evaluate`, `dataset import`, `dataset stats`,
 * and the community votes on hype/brand answers. Provides the `vision` service (and `embedder`, the
 * contract the training plugin embeds stored images with).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { defineCommand, definePlugin, EngineError, fail, imageInput, reply, type CommandContext, type Engine, type ReplyAction } from '../../engine/index.ts';
import { createVisionService, type Classification, type Embedder, type VisionService, type VisionServiceOptions } from './service.ts';
import { BRANDS, type Task } from './lib/labels.ts';
import type { Picture } from './lib/input.ts';
import type { Framing } from './lib/features.ts';
import { BACKBONE_NAMES, pretrainedOf, getTf, inferenceStatus, loadOrt, mlStatus } from '../../engine/ml/index.ts';
import { DEFAULT_LOCALISER_DIR, shippedLocaliser } from './lib/localise.ts';
import { angleFileName, shippedAngleModel } from './lib/angle.ts';
import { describeOverlayReport, type NamedOverlayReport } from './lib/dataset.ts';
import { formatRange } from './lib/metrics.ts';

declare module '../../engine/context.ts' {
  interface Services {
    /** Hype/brand classification, embeddings, explanations, datasets and head training. */
    readonly vision: VisionService;
    /** Embeds stored images by content id in the vision plugin's feature space (used by training jobs). */
    readonly embedder: Embedder;
  }
}

const modelOption = z.string().regex(/^(default|(store:)?\d+)$/, 'a model id from `models list`, or "default"').optional().describe('Model id (default: the champion, else the shipped model)');

function pct(p: number): string {
  return `${Math.round(p * 100)}%`;
}

/** Store the photo (so votes can label it) and the prediction; a missing store only loses the buttons. */
async function remember(ctx: CommandContext, pic: Picture, cls: Classification): Promise<boolean> {
  if (!ctx.engine.hasStore) return false;
  const store = ctx.services.store;
  try {
    await store.images.put({
      bytes: pic.bytes,
      sha256: pic.sha256,
      width: pic.width,
      height: pic.height,
      format: 'png',
      source: ctx.transport,
      ...(pic.name !== undefined ? { name: pic.name } : {}),
      ...(ctx.guildId !== undefined ? { guildId: ctx.guildId } : {}),
      userId: ctx.caller.id,
    });
    await store.predictions.add({
      imageSha: pic.sha256,
      task: cls.task,
      label: cls.label,
      probability: cls.confidence,
      modelId: cls.model,
      ...(ctx.guildId !== undefined ? { guildId: ctx.guildId } : {}),
      userId: ctx.caller.id,
    } as Parameters<typeof store.predictions.add>[0]);
    return true;
  } catch (error) {
    ctx.logger.warn('vision: could not store the photo or prediction', { err: error });
    return false;
  }
}

function voteActions(task: Task, sha: string, label: string): ReplyAction[] {
  const id = (value: string): string => `vision:vote:${task}:${sha}:${value}`;
  if (task === 'hype') {
    const other = label === 'hyped' ? 'not_hyped' : 'hyped';
    return [
      { id: id(label), label: 'Agree', style: 'success' },
      { id: id(other), label: `Disagree (${other.replace('_', ' ')})`, style: 'danger' },
    ];
  }
  return [
    { id: id(label), label: `Agree (${label})`, style: 'success' },
    ...BRANDS.filter((b) => b !== label).map((b) => ({ id: id(b), label: `It's ${b}`, style: 'secondary' as const })),
  ];
}

/** Says so when the upright step turned the photo: the answer is about the turned view, and the turn can be wrong. */
function turnLine(framing: Framing | undefined): string {
  if (!framing || framing.rotation === 0) return '';
  const deg = Math.round(Math.abs(framing.rotation));
  return `\nThe shoe looked tilted, so I turned the photo ${deg}° ${framing.rotation > 0 ? 'anticlockwise' : 'clockwise'} to read it with the sole level.`;
}

function lowConfidenceLine(cls: Classification): string {
  return cls.lowConfidenceReason ? `\n⚠️ Low confidence: ${cls.lowConfidenceReason}. Treat this answer as a guess.` : '';
}

async function classifyCommand(task: Task, input: { image: Parameters<VisionService['picture']>[0]; model?: string | undefined }, ctx: CommandContext) {
  const vision = ctx.services.vision;
  ctx.progress({ stage: 'decoding', fraction: 0.05 });
  const pic = await vision.picture(input.image, { allowLocalPaths: ctx.allowLocalPaths, signal: ctx.signal });
  ctx.progress({ stage: 'classifying', fraction: 0.3 });
  const { classification: cls, images, framing } = await vision.explain(pic, {
    method: 'gradcam',
    task,
    ...(input.model !== undefined ? { modelId: input.model } : {}),
  });
  const stored = await remember(ctx, pic, cls);
  // Unlike every training photo, or the shoe localiser found no shoe: say so rather than answer confidently.
  const noShoe = cls.ood.outside || cls.shoeFound === false;
  let text: string;
  if (task === 'hype') {
    text = noShoe
      ? `I don't see a sneaker like the ones I know in this photo, so I won't rate its hype (P(hyped) would be ${pct(cls.probability)}, but that number means little here).`
      : `**${cls.label === 'hyped' ? 'Hyped' : 'Not hyped'}** — P(hyped) = ${pct(cls.probability)}.`;
    text += `\nThis is a design-hype opinion (does the design look like shoes that trade on resale sites?), not a legit check: it says nothing about authenticity or price.`;
  } else {
    const ranked = Object.entries(cls.probabilities).sort((a, b) => b[1] - a[1]);
    text = noShoe
      ? `I don't see a sneaker like the ones I know in this photo, so I can't name a brand honestly.`
      : cls.label === 'other'
        ? `**Another brand** (${pct(cls.confidence)}) — not Jordan, Nike or adidas, as far as I can tell.`
        : `**${cls.label[0]!.toUpperCase()}${cls.label.slice(1)}** (${pct(cls.confidence)}).`;
    text += `\n${ranked.map(([b, p]) => `${b} ${pct(p)}`).join(' · ')}`;
  }
  text += turnLine(framing);
  text += lowConfidenceLine(cls);
  const data = {
    label: cls.label,
    ...(task === 'hype' ? { probability: cls.probability } : { probabilities: cls.probabilities, probability: cls.confidence }),
    model: cls.model,
    backbone: cls.backbone,
    lowConfidence: cls.lowConfidence,
    ...(cls.lowConfidenceReason ? { lowConfidenceReason: cls.lowConfidenceReason } : {}),
    ...(cls.shoeFound !== undefined ? { shoeFound: cls.shoeFound } : {}),
    ood: cls.ood,
    imageSha: cls.imageSha,
    ...(framing ? { framing } : {}),
  };
  return reply(text, {
    title: task === 'hype' ? 'Hype check (design opinion)' : 'Brand guess',
    images,
    data,
    fields: [
      { name: 'Model', value: `${cls.model} (${cls.backbone})`, inline: true },
      { name: 'Confidence', value: cls.lowConfidence ? 'low' : 'ok', inline: true },
    ],
    ...(stored ? { actions: voteActions(task, cls.imageSha, cls.label) } : {}),
    color: cls.lowConfidence ? 0x999999 : task === 'hype' ? (cls.label === 'hyped' ? 0xe8590c : 0x1c7ed6) : 0x2b8a3e,
  });
}

const hype = defineCommand({
  name: 'hype',
  description: 'Hyped or not? A design-hype opinion on a sneaker photo (not a legit check), with a heatmap.',
  options: z.object({ image: imageInput('The sneaker photo'), model: modelOption }).strict(),
  cooldown: { perUserMs: 2000 },
  run: (input, ctx) => classifyCommand('hype', input, ctx),
});

const brand = defineCommand({
  name: 'brand',
  description: 'Guess the brand of a sneaker (jordan, nike, adidas or other), with a heatmap.',
  options: z.object({ image: imageInput('The sneaker photo'), model: modelOption }).strict(),
  cooldown: { perUserMs: 2000 },
  run: (input, ctx) => classifyCommand('brand', input, ctx),
});

const explain = defineCommand({
  name: 'explain',
  description: 'Why did the model answer that? Grad-CAM, Score-CAM or first-layer filters.',
  options: z
    .object({
      image: imageInput('The sneaker photo'),
      method: z.enum(['gradcam', 'scorecam', 'filters']).default('gradcam').describe('Explanation method'),
      task: z.enum(['hype', 'brand']).default('hype').describe('Which model to explain'),
      model: modelOption,
    })
    .strict(),
  cooldown: { perUserMs: 5000 },
  long: true,
  async run(input, ctx) {
    ctx.progress({ stage: input.method, fraction: 0.1 });
    const { images, classification: cls, layer, framing } = await ctx.services.vision.explain(input.image, {
      method: input.method,
      task: input.task,
      allowLocalPaths: ctx.allowLocalPaths,
      ...(input.model !== undefined ? { modelId: input.model } : {}),
    });
    const what =
      input.method === 'filters'
        ? "The first convolution layer's filters applied to your photo (edges, colours, textures the network starts from)."
        : `Red areas pushed the ${input.task} model towards "${cls.label}" the most (${input.method === 'gradcam' ? 'Grad-CAM: gradients of the class score' : 'Score-CAM: how much each activation map alone raises the score'}).`;
    return reply(`${what}${turnLine(framing)}${lowConfidenceLine(cls)}`, {
      title: `explain · ${input.method} · ${input.task}`,
      images,
      data: { method: input.method, task: input.task, label: cls.label, probability: cls.task === 'hype' ? cls.probability : cls.confidence, model: cls.model, imageSha: cls.imageSha, layer, ...(framing ? { framing } : {}) },
    });
  },
});

const similar = defineCommand({
  name: 'similar',
  description: 'Find the stored sneakers that look most like this photo (by CNN embedding).',
  options: z
    .object({
      image: imageInput('The sneaker photo'),
      k: z.number().int().min(1).max(20).default(5).describe('How many neighbours'),
    })
    .strict(),
  cooldown: { perUserMs: 3000 },
  async run(input, ctx) {
    const { neighbours, png, searched } = await ctx.services.vision.similar(input.image, { k: input.k, allowLocalPaths: ctx.allowLocalPaths });
    const text =
      neighbours.length === 0
        ? `No stored images have embeddings yet (searched ${searched}). Import a dataset with \`dataset import <folder> --embed\` or classify some photos first.`
        : neighbours.map((n, i) => `${i + 1}. ${n.name ?? n.id.slice(0, 12)} — ${n.brand ?? '?'} / ${n.hype ?? '?'} (distance ${n.distance.toFixed(3)})`).join('\n');
    return reply(text, { title: `similar (k=${input.k})`, images: [{ name: 'similar.png', png, alt: 'Nearest stored sneakers' }], data: { neighbours, searched } });
  },
});

/** `--labels a.csv,b.csv`: label overlays (assets/labels/) that add the labels a dataset lacks. */
const labelsOption = z
  .string()
  .min(1)
  .optional()
  .describe('Label overlay CSV(s), comma-separated (file plus brand and/or hype columns, e.g. assets/labels/*.csv): fill labels the data lacks');

function overlayPaths(labels: string | undefined): string[] {
  return labels?.split(',').map((p) => p.trim()).filter(Boolean) ?? [];
}

function overlayLines(reports: readonly NamedOverlayReport[]): string {
  return reports.map((r) => `${describeOverlayReport({ ...r, overlay: path.basename(r.overlay) })}\n`).join('');
}

function requireLocal(ctx: CommandContext, what: string): void {
  if (!ctx.allowLocalPaths) fail('FORBIDDEN', `${what} reads files on the server, so it is only available from the CLI.`);
}

const evaluate = defineCommand({
  name: 'evaluate',
  description: 'Evaluate the hype or brand model on a labelled folder or manifest.csv.',
  options: z
    .object({
      task: z.enum(['hype', 'brand']).describe('Which model'),
      data: z.string().min(1).describe('Labelled folder (class subfolders) or manifest.csv'),
      model: modelOption,
      labels: labelsOption,
    })
    .strict(),
  long: true,
  hiddenFromTools: true,
  async run(input, ctx) {
    requireLocal(ctx, 'evaluate');
    const r = await ctx.services.vision.evaluate(input.task, input.data, {
      ...(input.model !== undefined ? { modelId: input.model } : {}),
      labels: overlayPaths(input.labels),
      progress: (e) => ctx.progress(e),
      signal: ctx.signal,
    });
    const { png, reliabilityPng, text, ...data } = r;
    const answered = r.tta === 'mirror' ? ', answering from each photo and its mirror as it does for users' : '';
    const header = `${overlayLines(r.labelOverlays)}${input.task} model ${r.model}${answered} on ${r.n} images (${r.skipped} rows without a ${input.task} label skipped${r.unreadable ? `, ${r.unreadable} unreadable` : ''}):`;
    const interval = r.interval.resamples > 0 ? `\n95 % bootstrap interval over these photos: accuracy ${formatRange(r.interval.accuracy)}, macro-F1 ${formatRange(r.interval.macroF1)}.` : '';
    const notScored = r.notScored.length > 0 ? `\nNot scored: ${r.notScored.slice(0, 5).map((s) => `${s.item} (${s.reason})`).join('; ')}${r.notScored.length > 5 ? `; … (${r.notScored.length} listed in data.notScored)` : ''}` : '';
    const c = r.calibration;
    const calibration = `\nCalibration${r.temperature !== 1 ? ` (softmax temperature ${r.temperature})` : ''}: the answers said ${(c.meanConfidence * 100).toFixed(1)} % sure on average and were right ${(c.accuracy * 100).toFixed(1)} % (ECE ${c.ece.toFixed(3)}, log-loss ${c.nll.toFixed(3)}, Brier ${c.brier.toFixed(3)}).`;
    const warned =
      r.warnings.lowConfidence > 0 && r.warnings.accuracyWithoutWarning !== null
        ? ` ${r.warnings.lowConfidence} of ${r.n} answers carry a low-confidence warning; the others were right ${(r.warnings.accuracyWithoutWarning * 100).toFixed(1)} %.`
        : r.warnings.lowConfidence > 0
          ? ` All ${r.n} answers carry a low-confidence warning.`
          : '';
    return reply(`${header}\n\`\`\`\n${text}\n\`\`\`${interval}${calibration}${warned}${notScored}`, {
      title: `evaluate · ${input.task}`,
      images: [
        { name: `confusion-${input.task}.png`, png, alt: 'Confusion matrix' },
        { name: `reliability-${input.task}.png`, png: reliabilityPng, alt: 'Reliability diagram: how often answers were right against how sure they said they were' },
      ],
      data: { ...data },
    });
  },
});

const datasetImport = defineCommand({
  name: 'dataset import',
  description: 'Import a labelled folder or manifest.csv into the store (idempotent).',
  options: z
    .object({
      source: z.string().min(1).describe('Folder of class subfolders, or a manifest.csv (file,brand,hype,name)'),
      name: z.string().min(1).max(100).optional().describe('Dataset name (default: the folder name)'),
      embed: z.boolean().default(false).describe('Also embed the images so `similar` can find them (slow on CPU)'),
      labels: labelsOption,
    })
    .strict(),
  positional: ['source'],
  permissions: 'moderator',
  long: true,
  hiddenFromTools: true,
  async run(input, ctx) {
    requireLocal(ctx, 'dataset import');
    const r = await ctx.services.vision.importDataset(input.source, {
      ...(input.name !== undefined ? { name: input.name } : {}),
      by: `import:${input.name ?? 'dataset'}`,
      embed: input.embed,
      labels: overlayPaths(input.labels),
      progress: (e) => ctx.progress(e),
      signal: ctx.signal,
    });
    await ctx.services.store.audit.add({ actor: ctx.caller.id, action: 'dataset.import', target: r.dataset, details: { rows: r.rows, added: r.added, duplicates: r.duplicates } });
    const skippedText = r.skipped.length > 0 ? `\nSkipped ${r.skipped.length}: ${r.skipped.slice(0, 5).map((s) => `${s.item} (${s.reason})`).join('; ')}${r.skipped.length > 5 ? '; …' : ''}` : '';
    return reply(`${overlayLines(r.labelOverlays)}Dataset **${r.dataset}**: ${r.rows} rows, ${r.added} new images, ${r.duplicates} already stored, ${r.labels} labels.${skippedText}`, {
      title: 'dataset import',
      data: { ...r },
    });
  },
});

const datasetStats = defineCommand({
  name: 'dataset stats',
  description: 'Counts per brand, hype and source, and image sizes, of a dataset.',
  options: z.object({ name: z.string().min(1).max(100).optional().describe('Dataset name (default: all images)') }).strict(),
  positional: ['name'],
  async run(input, ctx) {
    const s = await ctx.services.vision.datasetStats(input.name);
    const fmt = (m: Record<string, number>): string => Object.entries(m).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(' · ') || '—';
    const text = [
      `**${s.dataset ?? 'all images'}**: ${s.images} images`,
      `brand: ${fmt(s.brand)}`,
      `hype: ${fmt(s.hype)}`,
      `sources: ${fmt(s.sources)}`,
      `width ${s.sizes.width.min}–${s.sizes.width.max} (median ${s.sizes.width.median}), height ${s.sizes.height.min}–${s.sizes.height.max} (median ${s.sizes.height.median})`,
    ].join('\n');
    return reply(text, { title: 'dataset stats', data: { ...s } });
  },
});

/** Parse `vision:vote:<task>:<sha>:<value>`. */
export function parseVoteAction(id: string): { task: Task; sha: string; value: string } | undefined {
  const m = /^vision:vote:(hype|brand):([0-9a-f]{64}):([a-z_]+)$/.exec(id);
  return m ? { task: m[1] as Task, sha: m[2]!, value: m[3]! } : undefined;
}

/** Build the plugin (tests pass their own models folder). */
export function createVisionPlugin(opts: Partial<Omit<VisionServiceOptions, 'store'>> = {}) {
  return definePlugin({
    name: 'vision',
    description: 'Hype and brand classification, explanations, similar images, datasets and evaluation.',
    provides: ['vision', 'embedder'],
    commands: [hype, brand, explain, similar, evaluate, datasetImport, datasetStats],
    // `status` shows which ML backend (tfjs-node-gpu / tfjs-node / wasm / cpu) and which inference engine
    // (onnxruntime / tfjs) serve forward passes; neither call starts anything.
    async status() {
      // Starting the backend and probing onnxruntime is cheap (well under a second) and makes `status`
      // answer what will actually run, not "not started".
      await getTf().catch(() => undefined);
      const ort = await loadOrt().catch(() => undefined);
      const ml = mlStatus();
      const inference = inferenceStatus();
      return {
        backend: ml.backend ?? 'unavailable',
        ...(ml.skipped.length > 0 ? { skippedBackends: ml.skipped.join('; ') } : {}),
        inference: inference.inference ?? (ort?.ort ? 'onnxruntime' : 'tfjs'),
        onnxruntime: ort?.version ?? inference.onnxruntime ?? `unavailable${ort?.reason ? ` (${ort.reason})` : ''}`,
        threads: inference.threads,
        tensors: ml.numTensors,
        // The shoe localisers the feature pipeline needs off studio backdrops (missing: how to rebuild).
        // (A multi-level variant shares its base model's localiser: listed once, under the base.)
        localisers: BACKBONE_NAMES.filter((b) => pretrainedOf(b) === b).map((b) => {
          try {
            const m = shippedLocaliser(b);
            return `${b} (${m.layer}, threshold ${m.threshold})`;
          } catch (err) {
            return `${b} missing (${err instanceof EngineError ? err.message : String(err)})`;
          }
        }).join('; '),
        // The learnt turns heads with `learntTurn` read (plugins/vision/lib/angle.ts): the backbones that ship one.
        angleModels: BACKBONE_NAMES.filter((b) => existsSync(path.join(DEFAULT_LOCALISER_DIR, angleFileName(b)))).map((b) => {
          try {
            const m = shippedAngleModel(b);
            const median = (m.meta?.validation as { medianError?: number } | undefined)?.medianError;
            // A file of several fits (train:angle --seeds) lays their hidden layers side by side: name the fits.
            const fits = typeof m.meta?.seeds === 'number' && m.meta.seeds > 1 && m.hidden % m.meta.seeds === 0 ? m.meta.seeds : 1;
            return `${b} (${fits > 1 ? `${fits} fits of ${m.hidden / fits}` : m.hidden} hidden${median !== undefined ? `, median error ${median}°` : ''})`;
          } catch (err) {
            return `${b} unreadable (${err instanceof EngineError ? err.message : String(err)})`;
          }
        }).join('; ') || 'none',
      };
    },
    setup(engine: Engine) {
      const service = createVisionService({
        ...opts,
        store: () => (engine.hasStore ? engine.services.store : undefined),
        allowPrivateUrls: opts.allowPrivateUrls ?? engine.config.SOLESCOPE_ALLOW_PRIVATE_URLS,
        limits: { maxBytes: engine.config.SOLESCOPE_MAX_IMAGE_BYTES, maxPixels: engine.config.SOLESCOPE_MAX_IMAGE_PIXELS, ...opts.limits },
        registry: () => engine.service<{ champion(task: string): Promise<number | undefined> }>('modelRegistry'),
      });
      const { embedder, ...vision } = service;
      engine.provide('vision', vision, 'vision');
      engine.provide('embedder', embedder, 'vision');
    },
    async onAction(actionId, ctx) {
      const vote = parseVoteAction(actionId);
      if (!vote) throw new EngineError('NOT_FOUND', 'That button no longer does anything.');
      await ctx.services.vision.vote({ imageSha: vote.sha, task: vote.task, value: vote.value, by: ctx.caller.id, ...(ctx.guildId !== undefined ? { guildId: ctx.guildId } : {}) });
      return reply(`Thanks — your ${vote.task} vote "${vote.value.replace('_', ' ')}" is recorded (one vote per person per photo; voting again replaces it).`, {
        ephemeral: true,
        data: { task: vote.task, imageSha: vote.sha, value: vote.value, by: ctx.caller.id },
      });
    },
  });
}

export default createVisionPlugin();
