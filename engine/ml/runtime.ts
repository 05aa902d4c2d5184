/**
 * The TF.js runtime of solescope: one tfjs namespace per process, with the best backend chosen once.
 *
 * Order for `auto`: `@tensorflow/tfjs-node-gpu` → `@tensorflow/tfjs-node` → `@tensorflow/tfjs-backend-wasm`
 * → `cpu`. The two native packages are optional (their install script downloads libtensorflow, which fails
 * offline), so they are imported dynamically and their absence is normal. The wasm binaries are read from the
 * installed package folder, never fetched, so the runtime works without a network.
 *
 * Only plugins, jobs and scripts import this module (through `engine/ml/index.ts`); transports never do,
 * so starting the CLI or the HTTP server does not pay for tfjs.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { configSchema } from '../config.ts';
import { EngineError } from '../errors.ts';
import { applyPatches } from './patches.ts';

/** The tfjs namespace type every ML module works with. */
export type Tf = typeof tf;

/** What `SOLESCOPE_ML_BACKEND` may ask for. */
export type MlBackendChoice = 'auto' | 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';

/** The backend actually running. `tensorflow-gpu` and `tensorflow` are both tfjs's `tensorflow` backend. */
export type MlBackendName = 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';

/** What `status` reports about the ML runtime. */
export interface MlStatus {
  /** The chosen backend, or `null` before {@link getTf} was first called. */
  readonly backend: MlBackendName | null;
  /** Whether the wasm backend runs its SIMD build (false for other backends). */
  readonly simd: boolean;
  /** Threads the backend computes with (wasm in Node: always 1). */
  readonly threads: number;
  /** Live tensors right now (a leak shows as a number that only grows). */
  readonly numTensors: number;
  /** Why better backends were skipped, e.g. `tensorflow: Cannot find package '@tensorflow/tfjs-node'`. */
  readonly skipped: readonly string[];
  /** Milliseconds the backend took to initialise. */
  readonly initMs: number | null;
  /** Kernels/gradients registered by engine/ml/patches.ts (`wasm/Conv2DBackpropFilter`, `grad:Greater`, …). */
  readonly patched: readonly string[];
}

/** Options of {@link getTf}. Only the first call of a process decides; later calls share its result. */
export interface GetTfOptions {
  /** Overrides `SOLESCOPE_ML_BACKEND` (default `auto`). */
  readonly backend?: MlBackendChoice;
}

interface RuntimeState {
  backend: MlBackendName | null;
  simd: boolean;
  threads: number;
  skipped: string[];
  initMs: number | null;
  patched: string[];
}

const state: RuntimeState = { backend: null, simd: false, threads: 1, skipped: [], initMs: null, patched: [] };
let ready: Promise<Tf> | undefined;

const require = createRequire(import.meta.url);

/**
 * The initialised tfjs namespace. The first call picks the backend (from `options.backend`, else
 * `SOLESCOPE_ML_BACKEND`, else `auto`) and applies the kernel/gradient patches; every later call returns
 * the same promise. An explicitly requested backend that cannot start is an `UNAVAILABLE` error rather
 * than a silent fallback, so a deployment that asked for the GPU knows it did not get it.
 */
export function getTf(options: GetTfOptions = {}): Promise<Tf> {
  ready ??= Promise.resolve()
    .then(() => init(options.backend ?? backendFromEnv()))
    .catch((error: unknown) => {
      ready = undefined; // let a later call retry (e.g. after fixing the environment)
      throw error;
    });
  return ready;
}

/** A snapshot of the runtime for the `status` command. Cheap; does not initialise anything. */
export function mlStatus(): MlStatus {
  return {
    backend: state.backend,
    simd: state.simd,
    threads: state.threads,
    // engine().state does not initialise a backend (tf.memory() would, picking one behind our back).
    numTensors: tf.engine().state.numTensors,
    skipped: [...state.skipped],
    initMs: state.initMs,
    patched: [...state.patched],
  };
}

/** Whether {@link getTf} has finished choosing a backend in this process. */
export function isTfReady(): boolean {
  return state.backend !== null;
}

/** The folder holding the wasm binaries of the installed `@tensorflow/tfjs-backend-wasm` (with a trailing slash). */
export function wasmBinaryFolder(): string {
  // The package's main entry lives in dist/, next to the .wasm files.
  return path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm')) + path.sep;
}

function backendFromEnv(): MlBackendChoice {
  const parsed = configSchema.shape.SOLESCOPE_ML_BACKEND.safeParse(process.env.SOLESCOPE_ML_BACKEND || undefined);
  if (!parsed.success) {
    throw new EngineError(
      'BAD_INPUT',
      `SOLESCOPE_ML_BACKEND must be one of auto, tensorflow-gpu, tensorflow, wasm, cpu (got "${process.env.SOLESCOPE_ML_BACKEND}")`,
    );
  }
  return parsed.data;
}

async function init(choice: MlBackendChoice): Promise<Tf> {
  const started = performance.now();
  const order: MlBackendName[] = choice === 'auto' ? ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] : [choice];
  const skipped: string[] = [];
  for (const candidate of order) {
    try {
      await startBackend(candidate);
    } catch (error) {
      skipped.push(`${candidate}: ${firstLine(error)}`);
      continue;
    }
    state.backend = candidate;
    state.skipped = skipped;
    await describeBackend(candidate);
    // Missing wasm kernels and gradients (engine/ml/patches.ts), registered once the backend is known.
    const report = applyPatches(tf);
    state.patched = [...report.kernels, ...report.gradients.map((g) => `grad:${g}`)];
    state.initMs = Math.round(performance.now() - started);
    return tf;
  }
  throw new EngineError('UNAVAILABLE', `No ML backend could start (${skipped.join('; ')})`, {
    details: { requested: choice, skipped },
  });
}

async function startBackend(name: MlBackendName): Promise<void> {
  switch (name) {
    case 'tensorflow-gpu':
    case 'tensorflow': {
      // Both packages register the `tensorflow` backend on the shared tfjs-core when imported.
      await importOptional(name === 'tensorflow-gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node');
      await setBackendOrThrow('tensorflow');
      return;
    }
    case 'wasm': {
      const wasm = await import('@tensorflow/tfjs-backend-wasm');
      // Read the binaries from the installed package: the default would resolve relative to a script URL.
      wasm.setWasmPaths(wasmBinaryFolder());
      await setBackendOrThrow('wasm');
      return;
    }
    case 'cpu':
      await setBackendOrThrow('cpu');
      return;
  }
}

async function setBackendOrThrow(name: string): Promise<void> {
  if (tf.findBackendFactory(name) === null && tf.findBackend(name) === null) {
    throw new Error(`backend "${name}" is not registered`);
  }
  const ok = await tf.setBackend(name);
  await tf.ready();
  if (!ok || tf.getBackend() !== name) throw new Error(`backend "${name}" failed to initialise`);
}

async function describeBackend(name: MlBackendName): Promise<void> {
  if (name === 'wasm') {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    state.simd = Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
    state.threads = wasm.getThreadsCount();
  } else if (name === 'cpu') {
    state.simd = false;
    state.threads = 1;
  } else {
    state.simd = false;
    state.threads = (await import('node:os')).availableParallelism();
  }
}

/**
 * Imports a package that may not be installed. The specifier is a variable so TypeScript does not require
 * its types (optional dependencies are absent on most machines).
 */
async function importOptional(specifier: string): Promise<unknown> {
  return import(specifier);
}

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0] ?? message;
}
