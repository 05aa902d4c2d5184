/**
 * Exported models cached on disk: `<SOLESCOPE_DATA_DIR>/onnx/<key>-<hash>.onnx`, where the hash covers the
 * model's topology and weights, the requested outputs and the exporter version. A retrained or replaced model
 * gets a new file; an unchanged one is exported once per data dir, ever.
 */
import { mkdir, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type * as tfTypes from '@tensorflow/tfjs';
import { exportLayersModel, modelFingerprint, type ExportOptions, type ExportedModel } from './export.ts';

/** Options of {@link exportCached}. */
export interface ExportCachedOptions extends ExportOptions {
  /** File-name prefix, e.g. `mobilenet_v2-embed` (sanitised). */
  readonly key: string;
  /** The data dir; null or an unwritable dir exports in memory only. */
  readonly dataDir: string | null;
}

/** Where an export came from. */
export interface CachedExport {
  /** The `.onnx` file, or null when it lives only in memory. */
  readonly path: string | null;
  /** The bytes when freshly exported (null when the file was already cached: load it by path). */
  readonly exported: ExportedModel | null;
  /** The fingerprint (sha256 hex). */
  readonly fingerprint: string;
  /** Whether the file was already there. */
  readonly hit: boolean;
}

/** The data dir from `SOLESCOPE_DATA_DIR` (default `./data`), absolute. */
export function dataDirFromEnv(env: Record<string, string | undefined> = process.env, cwd = process.cwd()): string {
  return path.resolve(cwd, env.SOLESCOPE_DATA_DIR?.trim() || './data');
}

/** The cache file of a model, whether or not it exists yet. */
export function cachePath(dataDir: string, key: string, fingerprint: string): string {
  return path.join(dataDir, 'onnx', `${key.replace(/[^A-Za-z0-9_.-]+/g, '_')}-${fingerprint.slice(0, 16)}.onnx`);
}

/**
 * Returns the cached export of `model` or exports and caches it. Writing is atomic (temp file + rename), so
 * concurrent processes never read half a file; a failed write keeps the export in memory.
 */
export async function exportCached(model: tfTypes.LayersModel, opts: ExportCachedOptions): Promise<CachedExport> {
  const fingerprint = modelFingerprint(model, { ...(opts.outputs ? { outputs: opts.outputs } : {}) });
  const file = opts.dataDir === null ? null : cachePath(opts.dataDir, opts.key, fingerprint);
  if (file !== null && (await isFile(file))) return { path: file, exported: null, fingerprint, hit: true };
  const exported = exportLayersModel(model, {
    ...opts,
    metadata: { ...opts.metadata, source: opts.key, fingerprint },
  });
  if (file === null) return { path: null, exported, fingerprint, hit: false };
  try {
    await mkdir(path.dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
    await writeFile(tmp, exported.bytes);
    await rename(tmp, file);
    return { path: file, exported, fingerprint, hit: false };
  } catch {
    // A read-only data dir must not stop inference: the session is created from memory instead.
    return { path: null, exported, fingerprint, hit: false };
  }
}

async function isFile(file: string): Promise<boolean> {
  try {
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}
