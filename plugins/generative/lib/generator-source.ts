/**
 * Where `generate` finds its generator: an explicit registry id, else the `gan` champion in the model
 * registry, else the default generator shipped in assets/models/generator/. Loaded generators are cached
 * per source (they are small: ~1 MB of weights).
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type * as tfjs from '@tensorflow/tfjs';
import { EngineError, type Store } from '../../../engine/index.ts';
import { loadGenerator, type LoadedGenerator } from './gan-io.ts';

type Tf = typeof tfjs;

/** The shipped default generator. */
export const DEFAULT_GENERATOR_FILE = fileURLToPath(new URL('../../../assets/models/generator/generator.sgan', import.meta.url));

/** How to get a generator when there is none (part of the MODEL_MISSING message). */
export const TRAIN_HINT =
  'Train one with `npx solescope train --task gan --wait` (a queued job on the imported hyped images), or rebuild the default with ' +
  '`npx tsx scripts/train-gan.ts --data <manifest.csv> --out assets/models/generator`.';

/** A resolved generator. */
export interface GeneratorSource {
  /** `default`, or the registry id as a string. */
  readonly id: string;
  readonly generator: LoadedGenerator;
}

const cache = new Map<string, LoadedGenerator>();

/** Drops cached generators (tests, shutdown). */
export function clearGeneratorCache(): void {
  for (const g of cache.values()) g.dispose();
  cache.clear();
}

/**
 * Resolves `model` (`default`, a registry id, or undefined = champion then default).
 * @throws EngineError NOT_FOUND (unknown id), BAD_INPUT (not a gan model), MODEL_MISSING (nothing to load).
 */
export async function resolveGenerator(
  tf: Tf,
  store: Store | undefined,
  model: string | undefined,
  defaultFile = DEFAULT_GENERATOR_FILE,
): Promise<GeneratorSource> {
  if (model !== undefined && model !== 'default') {
    const id = Number(model);
    if (!Number.isInteger(id) || id <= 0) throw new EngineError('BAD_INPUT', `--model must be a model id (a number) or "default", not "${model}".`);
    if (!store) throw new EngineError('UNAVAILABLE', 'No model registry is configured.');
    return fromRegistry(tf, store, id);
  }
  if (model === undefined && store) {
    const champion = await store.models.getAlias('gan', 'champion').catch(() => undefined);
    if (champion !== undefined) return fromRegistry(tf, store, champion);
  }
  const key = `file:${defaultFile}`;
  const cached = cache.get(key);
  if (cached) return { id: 'default', generator: cached };
  if (!existsSync(defaultFile)) throw new EngineError('MODEL_MISSING', `No generator is available. ${TRAIN_HINT}`);
  const generator = loadGenerator(tf, await readFile(defaultFile));
  cache.set(key, generator);
  return { id: 'default', generator };
}

async function fromRegistry(tf: Tf, store: Store, id: number): Promise<GeneratorSource> {
  const key = `model:${id}`;
  const cached = cache.get(key);
  if (cached) return { id: String(id), generator: cached };
  const record = await store.models.get(id);
  if (!record) throw new EngineError('NOT_FOUND', `There is no model ${id}.`);
  if (record.task !== 'gan') throw new EngineError('BAD_INPUT', `Model ${id} is a ${record.task} model, not a generator.`);
  const generator = loadGenerator(tf, record.artifact);
  cache.set(key, generator);
  return { id: String(id), generator };
}
