/**
 * Commands of the training plugin: `train`, `jobs`, `jobs cancel`, `models list|info|promote|rollback`
 * and `tune`. Long work goes to the job runner (BullMQ in production); `--wait` follows it through the
 * runner's events and reports progress through `ctx.progress`, which each transport renders.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import {
  defineCommand,
  EngineError,
  fail,
  reply,
  type CommandContext,
  type EnqueueOptions,
  type JobInfo,
  type JobRunner,
  type ReplyImage,
} from '../../engine/index.ts';
import { modelCardPng } from './lib/charts.ts';
import { conflictRuleSchema, type ConflictRule } from './lib/data.ts';
import type { GateDecision } from './lib/gate.ts';
import { bootstrapInterval, formatRange, type BootstrapInterval, type Evaluation } from './lib/metrics.ts';
import { nuisanceSchema, temperatureSchema, ttaSchema, type TrainingView, type TrainResult } from './lib/pipeline.ts';
import type { ModelRegistry } from './lib/registry.ts';
import { searchSpace, type TuneResult } from './jobs.ts';

/** A runner that can enqueue flows (the BullMQ runner); others get trials enqueued one by one. */
interface FlowCapable {
  enqueueFlow(flow: {
    name: string;
    data: unknown;
    options?: EnqueueOptions;
    children: readonly { name: string; data: unknown; jobId?: string }[];
  }): Promise<{ parent: JobInfo; children: JobInfo[] }>;
}

function conflictRule(): ConflictRule {
  const parsed = conflictRuleSchema.safeParse(process.env.SOLESCOPE_LABEL_CONFLICT_RULE ?? 'import-wins');
  return parsed.success ? parsed.data : 'import-wins';
}

function registry(ctx: CommandContext): ModelRegistry {
  const r = ctx.engine.service<ModelRegistry>('modelRegistry');
  if (!r) throw new EngineError('UNAVAILABLE', 'The model registry is not loaded.');
  return r;
}

function enqueueOptions(ctx: CommandContext): EnqueueOptions {
  return { requestedBy: ctx.caller.id, ...(ctx.guildId !== undefined ? { guildId: ctx.guildId } : {}) };
}

function pct(x: number | undefined): string {
  return x === undefined ? '—' : x.toFixed(3);
}

/** Follow a job to its end, forwarding progress (with queue position while it waits). */
async function follow(runner: JobRunner, info: JobInfo, ctx: CommandContext): Promise<unknown> {
  if (info.state === 'waiting' && info.queuePosition !== undefined) {
    ctx.progress({ stage: 'queued', queuePosition: info.queuePosition, message: `Queued (position ${info.queuePosition})` });
  }
  return runner.waitFor(info.id, (event) => ctx.progress(event), ctx.signal);
}

async function curvesImage(ctx: CommandContext, modelId: number, name: string): Promise<ReplyImage[]> {
  const record = await ctx.services.store.models.get(modelId);
  return record?.curvesPng ? [{ name, png: record.curvesPng, alt: `Training curves of model ${modelId}` }] : [];
}

/** The test-time view a version serves with, and what decided it, in words. */
function ttaLine(result: TrainResult): string {
  const t = result.tta;
  const used = t.used === 'mirror' ? 'photo + mirror' : 'photo alone';
  if (t.validation) return `${used} (validation macro-F1 ${pct(t.validation.mirror)} with the mirror, ${pct(t.validation.photo)} without)`;
  return t.note ? `${used} (${t.note})` : used;
}

/** `2.1 (fitted; test log-loss 0.52 → 0.41, ECE 0.09 → 0.04)`: the choice and what it did on the unseen test photos. */
function temperatureLine(result: TrainResult): string {
  const t = result.temperature;
  const how = t.mode === 'auto' ? (t.note ? 'kept' : 'fitted') : 'set';
  const test = t.test && t.used !== 1 ? `; test log-loss ${t.test.asTrained.nll.toFixed(2)} → ${t.test.used.nll.toFixed(2)}, ECE ${t.test.asTrained.ece.toFixed(2)} → ${t.test.used.ece.toFixed(2)}` : '';
  return `${t.used} (${how}${test}${t.note ? `: ${t.note}` : ''})`;
}

/** How many sources the run saw and what the source projection removed, in words. */
function sourcesLine(result: TrainResult): string {
  const n = result.data.sources;
  if (result.nuisance.mode === 'none') return `${n} (no projection)`;
  // No direction means no class had photos from two sources with enough rows each.
  return result.nuisance.directions > 0 ? `${n}; ${result.nuisance.directions} style direction${result.nuisance.directions === 1 ? '' : 's'} removed` : `${n}; nothing to project`;
}

/** 95 % bootstrap interval of a test evaluation (none for a record without its confusion matrix). */
function testInterval(metrics: Evaluation): BootstrapInterval | undefined {
  return Array.isArray(metrics.confusion?.matrix) ? bootstrapInterval(metrics.confusion) : undefined;
}

function trainedReply(result: TrainResult, images: ReplyImage[], extra: Record<string, unknown> = {}): ReturnType<typeof reply> {
  const d = result.decision;
  // A test split of a few dozen photos moves macro-F1 by several points: the moderator sees how far.
  const interval = testInterval(result.metrics);
  const macroF1 = interval && interval.resamples > 0 ? `${pct(result.metrics.macroF1)} (95 %: ${formatRange(interval.macroF1)})` : pct(result.metrics.macroF1);
  const verdict = d.outcome === 'promoted' || d.outcome === 'no-champion' ? (d.promote ? 'promoted to champion' : 'kept as candidate') : 'kept as candidate';
  return reply(`Trained ${result.task} model **#${result.model}** (macro-F1 ${pct(result.metrics.macroF1)} on ${result.metrics.n} test images): ${verdict}. ${d.reason}`, {
    title: `${result.task} training finished`,
    fields: [
      { name: 'Model', value: `#${result.model}`, inline: true },
      { name: 'Macro-F1', value: macroF1, inline: true },
      { name: 'Accuracy', value: pct(result.metrics.accuracy), inline: true },
      { name: 'Champion macro-F1', value: pct(d.championMacroF1), inline: true },
      { name: 'Decision', value: d.outcome, inline: true },
      { name: 'Data', value: `${result.data.train} train / ${result.data.test} test`, inline: true },
      { name: 'Sources', value: sourcesLine(result), inline: true },
      { name: 'Views', value: result.views.length > 0 ? `photo + ${result.views.join(' + ')}` : 'photos only', inline: true },
      { name: 'Answers with', value: ttaLine(result), inline: true },
      { name: 'Temperature', value: temperatureLine(result), inline: true },
    ],
    images,
    data: { job: result.job, model: result.model, decision: d, metrics: result.metrics, ...(interval ? { interval } : {}), resumedFromEpoch: result.resumedFromEpoch, nuisance: result.nuisance, views: result.views, tta: result.tta, temperature: result.temperature, ...extra },
    color: d.promote ? 0x16a34a : 0xca8a04,
  });
}

// Dataset names are letters, digits, dot, dash and underscore, so a comma can only separate names.
const datasetsOption = z
  .string()
  .min(1)
  .max(400)
  .regex(/^[A-Za-z0-9._-]+(,[A-Za-z0-9._-]+)*$/, 'dataset names separated by commas')
  .optional();

// Slash options and CLI flags take one word, so the view sets are named; 'mirror+turned' is the job schema's default.
const VIEW_SETS = {
  photos: [],
  mirror: ['mirror'],
  scene: ['scene'],
  turned: ['turned'],
  'mirror+scene': ['mirror', 'scene'],
  'mirror+turned': ['mirror', 'turned'],
  'mirror+scene+turned': ['mirror', 'scene', 'turned'],
} as const satisfies Record<string, readonly TrainingView[]>;
const viewsOption = z
  .enum(['photos', 'mirror', 'scene', 'turned', 'mirror+scene', 'mirror+turned', 'mirror+scene+turned'])
  .default('mirror+turned')
  .describe('Extra rows per photo: mirror+turned (default; turned: tilted as phone photos), scene, mixes, photos');

const ttaOption = ttaSchema.describe('mirror: answer from photo + mirror (brand default); none: photo alone; auto: validation picks');

const temperatureOption = temperatureSchema.describe('Softmax temperature: auto fits it on validation photos (default, never below 1), or a number');

const nuisanceOption = nuisanceSchema.describe('source: remove what tells sources apart within a class (default); none: fit the embeddings as they are');

/** `a,b` → `['a', 'b']`; none → every dataset (`[]`). */
function datasetList(value: string | undefined): string[] {
  return value ? [...new Set(value.split(','))] : [];
}

/** `train`: queue a training run (moderators), optionally waiting for it. */
export const trainCommand = defineCommand({
  name: 'train',
  description: 'Retrain a model as a queued job; the evaluation gate decides if it replaces the champion.',
  options: z
    .object({
      task: z.enum(['hype', 'brand', 'gan']).describe('What to train'),
      dataset: datasetsOption.describe('Dataset name, or several comma-separated (default: every imported dataset)'),
      epochs: z.number().int().min(1).max(2000).optional().describe('Training epochs (default 40)'),
      wait: z.boolean().default(false).describe('Follow the job until it finishes'),
      nuisance: nuisanceOption,
      views: viewsOption,
      tta: ttaOption,
      temperature: temperatureOption,
      seed: z.number().int().min(0).max(2 ** 31 - 1).optional().describe('Seed of the split and the weights (default 42): same data and seed, same model'),
    })
    .strict(),
  permissions: 'moderator',
  long: true,
  hiddenFromTools: true,
  async run(input, ctx) {
    const runner = ctx.services.jobs;
    if (input.task === 'gan') return trainGan(input, ctx);
    const info = await runner.enqueue(
      'training.train',
      {
        task: input.task,
        datasets: datasetList(input.dataset),
        ...(input.epochs !== undefined ? { epochs: input.epochs } : {}),
        nuisance: input.nuisance,
        views: [...VIEW_SETS[input.views]],
        ...(input.tta !== undefined ? { tta: input.tta } : {}),
        temperature: input.temperature,
        ...(input.seed !== undefined ? { seed: input.seed } : {}),
        conflictRule: conflictRule(),
        requestedBy: ctx.caller.id,
        ...(ctx.guildId !== undefined ? { guildId: ctx.guildId } : {}),
      },
      enqueueOptions(ctx),
    );
    if (!input.wait) {
      const where = info.queuePosition !== undefined ? ` (position ${info.queuePosition} in the queue)` : '';
      return reply(`Queued ${input.task} training as job \`${info.id}\`${where}. Follow it with \`jobs list\`.`, {
        data: { job: info.id, state: info.state, queuePosition: info.queuePosition ?? null },
      });
    }
    const result = (await follow(runner, info, ctx)) as TrainResult;
    return trainedReply(result, await curvesImage(ctx, result.model, `curves-${result.task}-${result.model}.png`));
  },
});

/** What the generative plugin's GAN job returns. */
interface GanResult {
  readonly task: 'gan';
  readonly model: number;
  readonly decision: string;
  readonly metrics: Record<string, number | string>;
}

/**
 * `train --task gan`: the WGAN-GP lives in the generative plugin (its `generative.train-gan` job, which
 * registers the generator itself); this command queues it through the same runner and follows it.
 */
async function trainGan(input: { dataset?: string | undefined; epochs?: number | undefined; wait: boolean }, ctx: CommandContext): Promise<ReturnType<typeof reply>> {
  if (!ctx.engine.jobs.has('generative.train-gan')) fail('MODEL_MISSING', 'GAN training needs the generative plugin, which is not loaded.');
  const runner = ctx.services.jobs;
  const info = await runner.enqueue(
    'generative.train-gan',
    { datasets: datasetList(input.dataset), ...(input.epochs !== undefined ? { epochs: input.epochs } : {}), requestedBy: ctx.caller.id },
    enqueueOptions(ctx),
  );
  if (!input.wait) {
    return reply(`Queued GAN training as job \`${info.id}\`${info.queuePosition !== undefined ? ` (position ${info.queuePosition} in the queue)` : ''}. Follow it with \`jobs list\`.`, {
      data: { job: info.id, state: info.state, queuePosition: info.queuePosition ?? null },
    });
  }
  const result = (await follow(runner, info, ctx)) as GanResult;
  return reply(`Trained GAN generator **#${result.model}** (${result.decision}).`, {
    images: await curvesImage(ctx, result.model, `curves-gan-${result.model}.png`),
    data: { job: info.id, model: result.model, decision: { outcome: result.decision }, metrics: result.metrics },
  });
}

const STATES = ['waiting', 'active', 'delayed', 'completed', 'failed', 'cancelled'] as const;

function jobLine(j: JobInfo): string {
  const p = j.progress;
  const bits = [`\`${j.id}\``, j.name, j.state];
  if (j.queuePosition !== undefined) bits.push(`#${j.queuePosition} in queue`);
  if (p?.fraction !== undefined && j.state === 'active') bits.push(`${Math.round(p.fraction * 100)}%`);
  if (p?.stage && j.state === 'active') bits.push(p.stage);
  if (j.error) bits.push(`${j.error.code}: ${j.error.message}`);
  return bits.join(' · ');
}

/**
 * `jobs list`: queued, running and recent jobs (this server's only, inside a server). A group word
 * cannot also be a command in the CLI or in Discord (`/jobs list`, `/jobs cancel`), hence `jobs list`.
 */
export const jobsCommand = defineCommand({
  name: 'jobs list',
  description: 'List queued, running and recent jobs with their state, queue position and progress.',
  options: z
    .object({
      state: z.enum(STATES).optional().describe('Only jobs in this state'),
      limit: z.number().int().min(1).max(100).default(20).describe('How many jobs'),
    })
    .strict(),
  async run(input, ctx) {
    const jobs = await ctx.services.jobs.list({
      ...(input.state ? { states: [input.state] } : {}),
      ...(ctx.guildId !== undefined ? { guildId: ctx.guildId } : {}),
      limit: input.limit,
    });
    const rows = jobs.map((j) => ({
      id: j.id,
      name: j.name,
      state: j.state,
      position: j.queuePosition ?? null,
      progress: j.progress ?? null,
      attemptsMade: j.attemptsMade ?? 0,
      createdAt: j.createdAt ? new Date(j.createdAt).toISOString() : null,
      requestedBy: j.requestedBy ?? null,
      error: j.error ?? null,
    }));
    return reply(jobs.length === 0 ? 'No jobs.' : jobs.map(jobLine).join('\n'), { data: { jobs: rows } });
  },
});

/** `jobs cancel <id>`: cancel a waiting or running job (moderators, or whoever asked for it). */
export const jobsCancelCommand = defineCommand({
  name: 'jobs cancel',
  description: 'Cancel a queued or running job.',
  options: z.object({ id: z.string().min(1).max(100).describe('Job id (from `jobs list`)') }).strict(),
  positional: ['id'],
  async run(input, ctx) {
    const info = await ctx.services.jobs.get(input.id);
    if (!info) fail('NOT_FOUND', `There is no job ${input.id}.`);
    const allowed = ctx.caller.isModerator === true || ctx.caller.isAdmin === true || info.requestedBy === ctx.caller.id;
    if (!allowed) fail('FORBIDDEN', 'Only moderators or the person who queued a job may cancel it.');
    if (ctx.guildId !== undefined && info.guildId !== undefined && info.guildId !== ctx.guildId) fail('NOT_FOUND', `There is no job ${input.id}.`);
    const done = await ctx.services.jobs.cancel(input.id);
    if (!done) fail('CONFLICT', `Job ${input.id} already ${info.state}; nothing to cancel.`);
    return reply(`Cancelled job \`${input.id}\` (${info.name}, was ${info.state}).`, { data: { job: input.id, previousState: info.state, cancelled: true } });
  },
});

async function decisionOf(ctx: CommandContext, modelId: number): Promise<GateDecision | undefined> {
  const d = await ctx.services.store.kv.get(`model-decision:${modelId}`);
  return d && typeof d === 'object' && !(d instanceof Uint8Array) ? (d as unknown as GateDecision) : undefined;
}

/** `models list`: versions with aliases, metrics and the gate's decision. */
export const modelsListCommand = defineCommand({
  name: 'models list',
  description: 'List model versions with their aliases, test metrics and gate decision.',
  options: z
    .object({
      task: z.enum(['hype', 'brand', 'gan']).optional().describe('Only this task'),
      limit: z.number().int().min(1).max(100).default(20).describe('How many versions'),
    })
    .strict(),
  async run(input, ctx) {
    const list = await ctx.services.store.models.list(input.task, { limit: input.limit });
    const models = await Promise.all(
      list.map(async (m) => {
        const d = await decisionOf(ctx, m.id);
        return {
          id: m.id,
          task: m.task,
          aliases: m.aliases,
          status: m.status,
          macroF1: typeof m.metrics.macroF1 === 'number' ? m.metrics.macroF1 : null,
          accuracy: typeof m.metrics.accuracy === 'number' ? m.metrics.accuracy : null,
          decision: d ? { outcome: d.outcome, reason: d.reason } : null,
          createdAt: m.createdAt.toISOString(),
          createdBy: m.createdBy,
          job: typeof m.params.jobId === 'string' ? m.params.jobId : null,
        };
      }),
    );
    const text =
      models.length === 0
        ? 'No model versions yet. Train one with `train --task brand`.'
        : models
            .map((m) => `#${m.id} ${m.task} ${m.aliases.length > 0 ? `[${m.aliases.join(', ')}]` : `(${m.status})`} macro-F1 ${pct(m.macroF1 ?? undefined)}${m.decision ? ` — ${m.decision.outcome}: ${m.decision.reason}` : ''}`)
            .join('\n');
    return reply(text, { data: { models } });
  },
});

function modelIdSchema() {
  return z.coerce.number().int().positive().describe('Model version id (from `models list`)');
}

/** `models info <id>`: the model card PNG and the training curves. */
export const modelsInfoCommand = defineCommand({
  name: 'models info',
  description: 'Show a model version: model card (metrics, confusion matrix, data, labellers) and curves.',
  options: z.object({ id: modelIdSchema() }).strict(),
  positional: ['id'],
  async run(input, ctx) {
    const m = await ctx.services.store.models.get(input.id);
    if (!m) fail('NOT_FOUND', `There is no model ${input.id}.`);
    const evaluation = (m.metrics.test as Evaluation | undefined) ?? undefined;
    const snap = m.dataSnapshot as { split?: { train?: number; test?: number }; labellers?: number; datasets?: string[] };
    const decision = await decisionOf(ctx, m.id);
    const card = modelCardPng({
      id: m.id,
      task: m.task,
      aliases: m.aliases,
      status: m.status,
      createdAt: m.createdAt,
      createdBy: m.createdBy,
      evaluation,
      ...(snap.split ? { dataSize: { train: snap.split.train ?? 0, test: snap.split.test ?? 0 } } : {}),
      ...(snap.labellers !== undefined ? { labellers: snap.labellers } : {}),
      ...(snap.datasets ? { datasets: snap.datasets } : {}),
      ...(decision ? { decision: `${decision.outcome}: ${decision.reason}` } : {}),
      params: m.params,
    });
    const images: ReplyImage[] = [{ name: `model-${m.id}-card.png`, png: card, alt: `Model card of ${m.task} model ${m.id}` }];
    if (m.curvesPng) images.push({ name: `model-${m.id}-curves.png`, png: m.curvesPng, alt: `Training curves of model ${m.id}` });
    return reply(`${m.task} model #${m.id} ${m.aliases.length > 0 ? `[${m.aliases.join(', ')}]` : `(${m.status})`}, macro-F1 ${pct(evaluation?.macroF1)}.${decision ? ` Gate: ${decision.reason}` : ''}`, {
      images,
      data: {
        model: {
          id: m.id,
          task: m.task,
          aliases: m.aliases,
          status: m.status,
          metrics: m.metrics,
          params: m.params,
          dataSnapshot: m.dataSnapshot,
          createdAt: m.createdAt.toISOString(),
          createdBy: m.createdBy,
          artifactSize: m.artifactSize,
        },
        decision: decision ?? null,
      },
    });
  },
});

/** `models promote <id>`: make a version the champion (moderators). */
export const modelsPromoteCommand = defineCommand({
  name: 'models promote',
  description: 'Make a model version the champion of its task (serving switches without a restart).',
  options: z.object({ id: modelIdSchema() }).strict(),
  positional: ['id'],
  permissions: 'moderator',
  hiddenFromTools: true,
  async run(input, ctx) {
    const m = await ctx.services.store.models.summary(input.id);
    if (!m) fail('NOT_FOUND', `There is no model ${input.id}.`);
    const change = await registry(ctx).promote(m.task, m.id, ctx.caller.id);
    return reply(`Model #${m.id} is now the ${m.task} champion${change.previousModelId !== null ? ` (was #${change.previousModelId})` : ''}.`, {
      data: { task: m.task, champion: m.id, previous: change.previousModelId },
    });
  },
});

/** `models rollback --task T`: restore the previous champion (moderators). */
export const modelsRollbackCommand = defineCommand({
  name: 'models rollback',
  description: 'Restore the previous champion of a task, atomically.',
  options: z.object({ task: z.enum(['hype', 'brand', 'gan']).describe('Whose champion to roll back') }).strict(),
  permissions: 'moderator',
  hiddenFromTools: true,
  async run(input, ctx) {
    const change = await registry(ctx).rollback(input.task, ctx.caller.id);
    return reply(`Rolled the ${input.task} champion back to model #${change.modelId} (was #${change.previousModelId}).`, {
      data: { task: input.task, champion: change.modelId, previous: change.previousModelId },
    });
  },
});

/** `tune`: seeded random search over the head's hyperparameters, as child jobs of a flow. */
export const tuneCommand = defineCommand({
  name: 'tune',
  description: 'Search head size, dropout, lr, optimiser, augmentation, label smoothing; best becomes a candidate.',
  options: z
    .object({
      task: z.enum(['hype', 'brand']).describe('Which classifier'),
      trials: z.number().int().min(1).max(50).default(8).describe('Configurations to try'),
      dataset: datasetsOption.describe('Dataset name, or several comma-separated (default: every dataset)'),
      epochs: z.number().int().min(1).max(500).default(30).describe('Epochs per trial'),
      seed: z.number().int().min(0).max(2 ** 31 - 1).default(7).describe('Search seed (same seed, same trials)'),
      wait: z.boolean().default(false).describe('Follow the search until it finishes'),
      nuisance: nuisanceOption,
      views: viewsOption,
      tta: ttaOption,
      temperature: temperatureOption,
    })
    .strict(),
  permissions: 'moderator',
  long: true,
  hiddenFromTools: true,
  async run(input, ctx) {
    const runner = ctx.services.jobs as JobRunner & Partial<FlowCapable>;
    const tuneId = randomUUID();
    const common = {
      task: input.task,
      datasets: datasetList(input.dataset),
      epochs: input.epochs,
      conflictRule: conflictRule(),
      nuisance: input.nuisance,
      views: [...VIEW_SETS[input.views]],
      ...(input.tta !== undefined ? { tta: input.tta } : {}),
    };
    const children = searchSpace(input.trials, input.seed).map((params, trial) => ({
      name: 'training.trial',
      jobId: `${tuneId}-t${trial}`,
      // Same seed for every trial: same split, same initialisation; only the hyperparameters differ.
      data: { ...common, tuneId, trial, params, seed: input.seed },
    }));
    // Each trial scores its validation photos with the view train would choose for it (the same --tta), so the
    // search ranks configurations as they would answer; the parent then trains the best one the same way.
    // The temperature is chosen once, for the trained best: trials rank by labels, which it moves only at the margin.
    const parentData = { ...common, tuneId, trials: input.trials, seed: input.seed, temperature: input.temperature, requestedBy: ctx.caller.id, ...(ctx.guildId !== undefined ? { guildId: ctx.guildId } : {}) };
    let parent: JobInfo;
    if (typeof runner.enqueueFlow === 'function') {
      parent = (await runner.enqueueFlow({ name: 'training.tune', data: parentData, options: { ...enqueueOptions(ctx), jobId: tuneId }, children })).parent;
    } else {
      // The in-process runner runs jobs in order: the trials first, then the parent that ranks them.
      for (const child of children) await runner.enqueue(child.name, child.data, { jobId: child.jobId, requestedBy: ctx.caller.id });
      parent = await runner.enqueue('training.tune', parentData, { ...enqueueOptions(ctx), jobId: tuneId });
    }
    if (!input.wait) {
      return reply(`Queued a ${input.trials}-trial search as job \`${parent.id}\` (trials run as its child jobs).`, {
        data: { job: parent.id, tuneId, trials: children.map((c) => c.jobId) },
      });
    }
    const result = (await follow(runner, parent, ctx)) as TuneResult;
    const plot = await ctx.services.store.kv.get(result.plotKey);
    const images: ReplyImage[] = plot instanceof Uint8Array ? [{ name: `tune-${input.task}-${tuneId.slice(0, 8)}.png`, png: Buffer.from(plot), alt: 'Intermediate values of every trial' }] : [];
    images.push(...(await curvesImage(ctx, result.model, `curves-${result.task}-${result.model}.png`)));
    const base = trainedReply(result, images, { tuneId, best: result.best, trials: result.trials });
    const view = result.best.tta === 'mirror' ? 'photo + mirror' : 'photo alone';
    return { ...base, text: `Best of ${result.trials.length} trials: trial ${result.best.trial} (validation macro-F1 ${pct(result.best.value)}, ${view}; ${describeParams(result.best.params)}). ${base.text}` };
  },
});

function describeParams(p: object): string {
  return Object.entries(p)
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(', ');
}

/** Every command of the plugin. */
export const trainingCommands = [
  trainCommand,
  jobsCommand,
  jobsCancelCommand,
  modelsListCommand,
  modelsInfoCommand,
  modelsPromoteCommand,
  modelsRollbackCommand,
  tuneCommand,
];
