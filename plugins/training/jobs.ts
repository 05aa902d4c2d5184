/**
 * The training plugin's queued jobs: `training.train` (one run, gated), `training.trial` (one tuning
 * trial, a child of a flow) and `training.tune` (the parent that ranks trials, plots them and registers
 * the best as a candidate). The heavy ones name a processor file so BullMQ runs them sandboxed.
 */
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { defineJob, EngineError, type JobContext } from '../../engine/index.ts';
import { tunePlotPng, type TrialCurve } from './lib/charts.ts';
import { conflictRuleSchema } from './lib/data.ts';
import { Rng, type HeadParams } from './lib/head.ts';
import {
  featureSpecSchema,
  headParams,
  headParamsSchema,
  nuisanceSchema,
  temperatureSchema,
  ttaSchema,
  defaultTta,
  prepareRun,
  runTrainingJob,
  trainJobSchema,
  trainWithCheckpoints,
  validationAsServed,
  viewsSchema,
  type TrainResult,
} from './lib/pipeline.ts';
import type { ModelRegistry } from './lib/registry.ts';

declare module '../../engine/context.ts' {
  interface Services {
    /** The model registry of the training plugin (versions, aliases, change notifications). */
    modelRegistry: ModelRegistry;
  }
}

const processorFile = fileURLToPath(new URL('./train.processor.ts', import.meta.url));

function registryOf(ctx: JobContext): ModelRegistry {
  const registry = ctx.engine.service<ModelRegistry>('modelRegistry');
  if (!registry) throw new EngineError('UNAVAILABLE', 'The model registry is not loaded in this worker.');
  return registry;
}

/** `training.train`: train, evaluate, register, gate. */
export const trainJob = defineJob({
  name: 'training.train',
  data: trainJobSchema,
  processorFile,
  attempts: 3,
  concurrency: 1,
  run: (data, ctx): Promise<TrainResult> => runTrainingJob(data, ctx, registryOf(ctx)),
});

/** Data of one tuning trial. */
export const trialJobSchema = z
  .object({
    tuneId: z.string().min(1).max(100),
    trial: z.number().int().min(0).max(999),
    task: z.enum(['hype', 'brand']),
    datasets: z.array(z.string().min(1).max(100)).max(20).default([]),
    epochs: z.number().int().min(1).max(500),
    params: headParamsSchema,
    seed: z.number().int().min(0).max(2 ** 31 - 1),
    testSize: z.number().min(0.05).max(0.5).default(0.1),
    conflictRule: conflictRuleSchema.default('import-wins'),
    minVotes: z.number().int().min(1).max(100).default(1),
    features: featureSpecSchema.optional(),
    nuisance: nuisanceSchema,
    views: viewsSchema,
    tta: ttaSchema,
  })
  .strict();

/** What a trial reports (also kept in the store so the parent reads it whichever runner ran it). */
export interface TrialResult {
  readonly trial: number;
  readonly params: HeadParams;
  /**
   * The trial's objective: validation macro-F1 of its best epoch as the version would answer, with the test-time
   * view `train` would choose for it (`tune --tta`; the test split is never used).
   */
  readonly value: number;
  /** The view {@link value} was scored with (`mirror`: photo + mirror averaged; `none`: the photo alone). */
  readonly tta: 'mirror' | 'none';
  /** Per-epoch validation macro-F1 during the fit (the photo alone: the curve the plot draws). */
  readonly curve: readonly (readonly [number, number])[];
}

/** Key of a trial's result in the store's kv. */
export function trialKey(tuneId: string, trial: number): string {
  return `tune:${tuneId}:trial:${trial}`;
}

/** `training.trial`: one configuration of the search, scored on the validation split. */
export const trialJob = defineJob({
  name: 'training.trial',
  data: trialJobSchema,
  processorFile,
  attempts: 2,
  concurrency: 1,
  async run(data, ctx): Promise<TrialResult> {
    const store = ctx.services.store;
    const run = await prepareRun(store, { ...data, guildId: undefined }, ctx);
    // Filled with the defaults: a trial queued before a parameter existed trains with today's default for it.
    const params = headParams(data.params, data.task);
    const trained = await trainWithCheckpoints(run, { task: data.task, epochs: data.epochs, params, seed: data.seed, nuisance: data.nuisance }, ctx, { from: 0.1, to: 1 });
    const curve = trained.curves.map((c) => [c.epoch, c.valMacroF1] as const);
    // Scored as served, not by the fit's photo-only curve: for brand (mirror by default) the mirror changes which
    // configuration wins. Without validation photos the curve's best is all there is.
    const served = await validationAsServed(trained.artifact, run, data.tta ?? defaultTta(data.task, run.views), ctx);
    const value = served?.macroF1 ?? Math.max(0, ...trained.curves.map((c) => c.valMacroF1));
    const result: TrialResult = { trial: data.trial, params, value, tta: served?.tta.used ?? 'none', curve };
    await store.kv.set(trialKey(data.tuneId, data.trial), JSON.parse(JSON.stringify(result)) as never, 30 * 86_400_000);
    return result;
  },
});

/** The search space of `tune` (head size, dropout, learning rate, optimiser, augmentation; label smoothing in {@link searchSpace}). */
export function sampleParams(rng: Rng): HeadParams {
  const hiddens = [0, 32, 64, 128, 256];
  const optimizers = ['adam', 'sgd', 'rmsprop'] as const;
  return headParams({
    hidden: hiddens[Math.floor(rng.next() * hiddens.length)]!,
    dropout: Math.round(rng.next() * 50) / 100,
    lr: Number((10 ** (-4 + rng.next() * 2.5)).toPrecision(3)),
    optimizer: optimizers[Math.floor(rng.next() * optimizers.length)]!,
    augment: Math.round(rng.next() * 30) / 100,
  });
}

/** Label smoothing values `tune` tries (0 = one-hot targets, the default). */
export const LABEL_SMOOTHINGS = [0, 0.05, 0.1] as const;

/**
 * Parameter sets of a seeded random search: the same seed gives the same trials. Label smoothing is drawn from a
 * stream of its own, so every other parameter of a seed's trials is what that seed gave before smoothing was searched.
 */
export function searchSpace(trials: number, seed: number): HeadParams[] {
  const rng = new Rng(seed >>> 0 || 1);
  const smoothing = new Rng((seed ^ 0x9e3779b9) >>> 0 || 1);
  return Array.from({ length: trials }, () => ({ ...sampleParams(rng), labelSmoothing: LABEL_SMOOTHINGS[Math.floor(smoothing.next() * LABEL_SMOOTHINGS.length)]! }));
}

/** Data of the tuning parent job. */
export const tuneJobSchema = z
  .object({
    tuneId: z.string().min(1).max(100),
    task: z.enum(['hype', 'brand']),
    trials: z.number().int().min(1).max(100),
    datasets: z.array(z.string().min(1).max(100)).max(20).default([]),
    epochs: z.number().int().min(1).max(500),
    seed: z.number().int().min(0).max(2 ** 31 - 1),
    conflictRule: conflictRuleSchema.default('import-wins'),
    features: featureSpecSchema.optional(),
    nuisance: nuisanceSchema,
    views: viewsSchema,
    tta: ttaSchema,
    temperature: temperatureSchema,
    requestedBy: z.string().min(1).max(200),
    guildId: z.string().max(100).optional(),
  })
  .strict();

/** Result of a search. */
export interface TuneResult extends TrainResult {
  readonly tuneId: string;
  readonly best: TrialResult;
  readonly trials: readonly { trial: number; value: number; tta: 'mirror' | 'none'; params: HeadParams }[];
  /** kv key of the intermediate-values plot PNG. */
  readonly plotKey: string;
}

/** `training.tune`: runs after its trial children; ranks, plots, trains the best and registers it as candidate. */
export const tuneJob = defineJob({
  name: 'training.tune',
  data: tuneJobSchema,
  processorFile,
  attempts: 2,
  concurrency: 1,
  async run(data, ctx): Promise<TuneResult> {
    const store = ctx.services.store;
    const results: TrialResult[] = [];
    for (let i = 0; i < data.trials; i++) {
      const r = await store.kv.get(trialKey(data.tuneId, i));
      if (r && typeof r === 'object' && !(r instanceof Uint8Array)) results.push(r as unknown as TrialResult);
    }
    if (results.length === 0) throw new EngineError('CONFLICT', 'No trial of this search finished; nothing to choose from.');
    const ranked = [...results].sort((a, b) => b.value - a.value);
    const best = ranked[0]!;
    const curves: TrialCurve[] = results.map((r) => ({ trial: r.trial, values: r.curve, final: r.value, finalWithMirror: r.tta === 'mirror' }));
    const plotKey = `tune:${data.tuneId}:plot`;
    await store.kv.set(plotKey, new Uint8Array(tunePlotPng(curves, `${data.task} search ${data.tuneId.slice(0, 8)}: validation macro-F1 per epoch`)), 30 * 86_400_000);
    await ctx.progress({ stage: 'training best trial', fraction: 0.05, message: `trial ${best.trial}: ${best.value.toFixed(3)}` });
    const trained = await runTrainingJob(
      trainJobSchema.parse({
        task: data.task,
        datasets: data.datasets,
        epochs: data.epochs,
        params: best.params,
        seed: data.seed,
        conflictRule: data.conflictRule,
        ...(data.features ? { features: data.features } : {}),
        nuisance: data.nuisance,
        views: data.views,
        ...(data.tta !== undefined ? { tta: data.tta } : {}),
        temperature: data.temperature,
        requestedBy: data.requestedBy,
        ...(data.guildId !== undefined ? { guildId: data.guildId } : {}),
        // A search proposes; a moderator (or the next regular run) promotes.
        autoPromote: false,
        tuneId: data.tuneId,
      }),
      ctx,
      registryOf(ctx),
    );
    return { ...trained, tuneId: data.tuneId, best, trials: ranked.map((r) => ({ trial: r.trial, value: r.value, tta: r.tta, params: r.params })), plotKey };
  },
});

/** Every job of the plugin. */
export const trainingJobs = [trainJob, trialJob, tuneJob];
