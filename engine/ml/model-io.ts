/**
 * IOHandlers for TF.js models without a browser or tfjs-node: a folder on disk (`model.json` + binary shards,
 * the layout `tfjs.converters` and `model.save('file://…')` write) and the base64 UMD bundles that ship
 * inside the `nsfwjs` package.
 */
import { createRequire } from 'node:module';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { io } from '@tensorflow/tfjs';
import { EngineError } from '../errors.ts';

type IOHandler = io.IOHandler;
type ModelArtifacts = io.ModelArtifacts;
type ModelJSON = io.ModelJSON;
type WeightsManifestEntry = io.WeightsManifestEntry;

const require = createRequire(import.meta.url);

/** The file name of the model JSON inside a model folder. */
export const MODEL_JSON = 'model.json';
/** The file name {@link fileSystemHandler} gives the single weights shard it saves. */
export const WEIGHTS_BIN = 'weights.bin';

/**
 * A load + save IOHandler for a model folder (or a path to its `model.json`). Loading reads the JSON and
 * every shard listed in its weights manifest, in manifest order; saving writes `model.json` and one
 * `weights.bin`. Missing or malformed files are `MODEL_MISSING` errors naming the path.
 */
export function fileSystemHandler(dirOrJson: string): IOHandler {
  const jsonPath = dirOrJson.endsWith('.json') ? dirOrJson : path.join(dirOrJson, MODEL_JSON);
  const dir = path.dirname(jsonPath);
  return {
    async load(): Promise<ModelArtifacts> {
      let modelJson: ModelJSON;
      try {
        modelJson = JSON.parse(await readFile(jsonPath, 'utf8')) as ModelJSON;
      } catch (error) {
        throw new EngineError('MODEL_MISSING', `Cannot read a TF.js model at ${jsonPath}: ${messageOf(error)}`, {
          cause: error,
        });
      }
      if (typeof modelJson !== 'object' || modelJson === null || !('modelTopology' in modelJson)) {
        throw new EngineError('MODEL_MISSING', `${jsonPath} is not a TF.js model.json (no modelTopology)`);
      }
      const { getModelArtifactsForJSON } = await import('@tensorflow/tfjs').then((m) => m.io);
      return getModelArtifactsForJSON(modelJson, async (manifest) => {
        const specs: WeightsManifestEntry[] = [];
        const buffers: Buffer[] = [];
        for (const group of manifest) {
          specs.push(...group.weights);
          for (const shard of group.paths) {
            const shardPath = path.resolve(dir, shard);
            if (!shardPath.startsWith(path.resolve(dir) + path.sep)) {
              throw new EngineError('MODEL_MISSING', `Weights path ${shard} escapes the model folder ${dir}`);
            }
            try {
              buffers.push(await readFile(shardPath));
            } catch (error) {
              throw new EngineError('MODEL_MISSING', `Missing weights shard ${shardPath}: ${messageOf(error)}`, {
                cause: error,
              });
            }
          }
        }
        return [specs, toArrayBuffer(Buffer.concat(buffers))];
      });
    },
    async save(artifacts: ModelArtifacts) {
      await mkdir(dir, { recursive: true });
      const weights = artifacts.weightData === undefined ? new ArrayBuffer(0) : concatWeightData(artifacts.weightData);
      const modelJson: ModelJSON = {
        modelTopology: artifacts.modelTopology ?? {},
        format: artifacts.format ?? 'layers-model',
        generatedBy: artifacts.generatedBy ?? 'solescope',
        convertedBy: artifacts.convertedBy ?? null,
        weightsManifest: [{ paths: [`./${WEIGHTS_BIN}`], weights: artifacts.weightSpecs ?? [] }],
        ...(artifacts.trainingConfig === undefined ? {} : { trainingConfig: artifacts.trainingConfig }),
        ...(artifacts.userDefinedMetadata === undefined ? {} : { userDefinedMetadata: artifacts.userDefinedMetadata }),
        ...(artifacts.signature === undefined ? {} : { signature: artifacts.signature }),
        ...(artifacts.modelInitializer === undefined ? {} : { modelInitializer: artifacts.modelInitializer }),
        ...(artifacts.initializerSignature === undefined ? {} : { initializerSignature: artifacts.initializerSignature }),
      };
      await writeFile(path.join(dir, WEIGHTS_BIN), new Uint8Array(weights));
      await writeFile(jsonPath, JSON.stringify(modelJson));
      return {
        modelArtifactsInfo: {
          dateSaved: new Date(),
          modelTopologyType: 'JSON' as const,
          modelTopologyBytes: JSON.stringify(modelJson.modelTopology).length,
          weightSpecsBytes: JSON.stringify(modelJson.weightsManifest).length,
          weightDataBytes: weights.byteLength,
        },
      };
    },
  };
}

/** The models the `nsfwjs` package ships as UMD bundles. */
export type NsfwjsModelName = 'mobilenet_v2' | 'inception_v3' | 'mobilenet_v2_mid';

/**
 * The folder of the installed `nsfwjs` package. The package exports neither its model files nor
 * `./package.json`, so walk up from its main entry to the folder whose package.json names it.
 */
export function nsfwjsPackageDir(): string {
  let dir: string;
  try {
    dir = path.dirname(require.resolve('nsfwjs'));
  } catch (error) {
    throw new EngineError('MODEL_MISSING', 'The nsfwjs package is not installed (run `npm ci`)', { cause: error });
  }
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'nsfwjs') return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new EngineError('MODEL_MISSING', 'Cannot find the folder of the nsfwjs package');
    dir = up;
  }
}

/**
 * A load IOHandler for a model bundled inside `nsfwjs` (`dist/models/<name>/`): `model.min.js` exports the
 * model JSON, each `<shard>.min.js` a base64 string; shards are decoded and concatenated in manifest order.
 * The bundles are evicted from the require cache afterwards (inception's are ~30 MB of strings).
 */
export function nsfwjsModelHandler(name: NsfwjsModelName): IOHandler {
  return {
    async load(): Promise<ModelArtifacts> {
      const folder = path.join(nsfwjsPackageDir(), 'dist', 'models', name);
      const jsonFile = path.join(folder, 'model.min.js');
      if (!existsSync(jsonFile) || !statSync(jsonFile).isFile()) {
        throw new EngineError('MODEL_MISSING', `nsfwjs does not ship ${name} at ${folder} (reinstall with \`npm ci\`)`);
      }
      const modelJson = requireFresh(jsonFile) as ModelJSON;
      const specs: WeightsManifestEntry[] = [];
      const buffers: Buffer[] = [];
      for (const group of modelJson.weightsManifest) {
        specs.push(...group.weights);
        for (const shard of group.paths) {
          const encoded = requireFresh(path.join(folder, `${path.basename(shard)}.min.js`));
          if (typeof encoded !== 'string') throw new EngineError('MODEL_MISSING', `nsfwjs shard ${shard} is not base64`);
          buffers.push(Buffer.from(encoded, 'base64'));
        }
      }
      return {
        modelTopology: modelJson.modelTopology,
        format: modelJson.format ?? 'layers-model',
        weightSpecs: specs,
        weightData: toArrayBuffer(Buffer.concat(buffers)),
        ...(modelJson.signature === undefined ? {} : { signature: modelJson.signature }),
        ...(modelJson.userDefinedMetadata === undefined ? {} : { userDefinedMetadata: modelJson.userDefinedMetadata }),
      };
    },
  };
}

function requireFresh(file: string): unknown {
  try {
    return require(file);
  } finally {
    delete require.cache[file];
  }
}

function toArrayBuffer(buf: Buffer): ArrayBuffer {
  // A Buffer may view a larger pooled ArrayBuffer: copy exactly its bytes.
  const out = new ArrayBuffer(buf.byteLength);
  new Uint8Array(out).set(buf);
  return out;
}

function concatWeightData(data: ArrayBuffer | ArrayBuffer[]): ArrayBuffer {
  if (!Array.isArray(data)) return data;
  return toArrayBuffer(Buffer.concat(data.map((b) => new Uint8Array(b))));
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
