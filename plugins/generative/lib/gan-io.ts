/**
 * Binary format of generator files and training checkpoints:
 * `SGAN` magic, u32 header length, UTF-8 JSON header, then float32 tensors back to back (little-endian).
 * One self-describing file is easy to commit, to store as a model artifact (`store.models.create`) and to
 * hand to `ctx.checkpoint` as bytes.
 */
import type * as tfjs from '@tensorflow/tfjs';
import type { GanArchitecture, GanTrainer, Weights } from './gan.ts';
import { EngineError } from '../../../engine/index.ts';

type Tf = typeof tfjs;

const MAGIC = 'SGAN';

/** What a generator file says about itself. */
export interface GeneratorMeta {
  /** Generator iterations trained. */
  readonly iterations: number;
  /** Training seed. */
  readonly seed: number;
  /** Free-form provenance: data, command, time, quality figures. */
  readonly [key: string]: unknown;
}

interface TensorEntry {
  readonly name: string;
  readonly shape: number[];
  readonly offset: number;
}

interface Header {
  readonly format: 'solescope-gan';
  readonly version: 1;
  readonly kind: 'generator' | 'checkpoint';
  readonly arch: GanArchitecture;
  readonly meta: Record<string, unknown>;
  readonly tensors: TensorEntry[];
}

function encode(header: Omit<Header, 'tensors'>, tensors: { name: string; shape: number[]; data: Float32Array }[]): Buffer {
  const entries: TensorEntry[] = [];
  let offset = 0;
  for (const t of tensors) {
    entries.push({ name: t.name, shape: t.shape, offset });
    offset += t.data.length * 4;
  }
  const json = Buffer.from(JSON.stringify({ ...header, tensors: entries }), 'utf8');
  const out = Buffer.alloc(8 + json.length + offset);
  out.write(MAGIC, 0, 'latin1');
  out.writeUInt32LE(json.length, 4);
  json.copy(out, 8);
  let pos = 8 + json.length;
  for (const t of tensors) {
    Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).copy(out, pos);
    pos += t.data.byteLength;
  }
  return out;
}

interface Decoded {
  readonly header: Header;
  readonly tensors: Map<string, { shape: number[]; data: Float32Array }>;
}

function decode(bytes: Uint8Array): Decoded {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < 8 || buf.toString('latin1', 0, 4) !== MAGIC) {
    throw new EngineError('MODEL_MISSING', 'The generator file is not a solescope GAN file (bad magic).');
  }
  const len = buf.readUInt32LE(4);
  let header: Header;
  try {
    header = JSON.parse(buf.toString('utf8', 8, 8 + len)) as Header;
  } catch {
    throw new EngineError('MODEL_MISSING', 'The generator file is corrupt (unreadable header).');
  }
  if (header.format !== 'solescope-gan' || header.version !== 1) {
    throw new EngineError('MODEL_MISSING', `Unsupported generator format ${String(header.format)} v${String(header.version)}.`);
  }
  const base = 8 + len;
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const e of header.tensors) {
    const size = e.shape.reduce((a, b) => a * b, 1);
    const start = base + e.offset;
    if (start + size * 4 > buf.length) throw new EngineError('MODEL_MISSING', 'The generator file is truncated.');
    // Copy: the source offset need not be 4-byte aligned.
    const data = new Float32Array(size);
    Buffer.from(data.buffer).set(buf.subarray(start, start + size * 4));
    tensors.set(e.name, { shape: e.shape, data });
  }
  return { header, tensors };
}

function weightsToList(w: Weights): { name: string; shape: number[]; data: Float32Array }[] {
  return [...w.entries()].map(([name, v]) => ({ name, shape: v.shape, data: v.dataSync() as Float32Array }));
}

/** Serialises a generator's weights with its architecture and provenance. */
export function saveGenerator(arch: GanArchitecture, g: Weights, meta: GeneratorMeta): Buffer {
  return encode({ format: 'solescope-gan', version: 1, kind: 'generator', arch, meta: { ...meta } }, weightsToList(g));
}

/** A generator loaded for sampling. Dispose when done. */
export interface LoadedGenerator {
  readonly arch: GanArchitecture;
  readonly meta: GeneratorMeta;
  readonly weights: Weights;
  dispose(): void;
}

/** Loads a generator file (or the generator inside a checkpoint). Bad bytes → MODEL_MISSING. */
export function loadGenerator(tf: Tf, bytes: Uint8Array): LoadedGenerator {
  const { header, tensors } = decode(bytes);
  const weights: Weights = new Map();
  tf.tidy(() => {
    for (const [name, t] of tensors) {
      if (!name.startsWith('g.')) continue;
      weights.set(name, tf.variable(tf.tensor(t.data, t.shape), false));
    }
  });
  if (!weights.has('g.fc.w')) throw new EngineError('MODEL_MISSING', 'The generator file holds no generator weights.');
  const meta = { iterations: 0, seed: 0, ...header.meta } as GeneratorMeta;
  return {
    arch: header.arch,
    meta,
    weights,
    dispose() {
      for (const v of weights.values()) v.dispose();
    },
  };
}

/** Extra state a checkpoint carries besides weights. */
export interface CheckpointState {
  readonly iteration: number;
  readonly seed: number;
  readonly elapsedMs: number;
  readonly history: readonly HistoryPoint[];
  readonly [key: string]: unknown;
}

/** One logged point of the loss curves. */
export interface HistoryPoint {
  readonly iteration: number;
  readonly wasserstein: number;
  readonly gradientPenalty: number;
  readonly generatorLoss: number;
}

/** Serialises the whole trainer: both networks, both Adam states, and the loop state. */
export async function saveCheckpoint(t: GanTrainer, state: CheckpointState): Promise<Buffer> {
  const opt = async (o: tfjs.AdamOptimizer, prefix: string) => {
    const weights = await o.getWeights();
    const list = weights.map((nt, i) => ({
      name: `${prefix}.${String(i).padStart(4, '0')}`,
      shape: nt.tensor.shape,
      // The first entry is the iteration count, an int32 scalar made fresh by getWeights (so ours to dispose).
      data: Float32Array.from(nt.tensor.dataSync()),
    }));
    weights[0]?.tensor.dispose();
    return list;
  };
  const list = [...weightsToList(t.g), ...weightsToList(t.d), ...(await opt(t.gOpt, 'og')), ...(await opt(t.dOpt, 'od'))];
  return encode({ format: 'solescope-gan', version: 1, kind: 'checkpoint', arch: t.arch, meta: { ...state } }, list);
}

/**
 * Restores a checkpoint into a trainer of the same architecture. Returns the loop state. Adam's state is a
 * list ordered like the variable list the optimiser was first used with (tfjs matches it by position).
 */
export async function restoreCheckpoint(tf: Tf, t: GanTrainer, bytes: Uint8Array): Promise<CheckpointState> {
  const { header, tensors } = decode(bytes);
  if (header.kind !== 'checkpoint') throw new EngineError('BAD_INPUT', 'Not a training checkpoint.');
  if (JSON.stringify(header.arch) !== JSON.stringify(t.arch)) {
    throw new EngineError('BAD_INPUT', 'The checkpoint was made for another GAN architecture.');
  }
  for (const w of [t.g, t.d]) {
    for (const [name, v] of w) {
      const saved = tensors.get(name);
      if (!saved) throw new EngineError('BAD_INPUT', `The checkpoint lacks ${name}.`);
      tf.tidy(() => v.assign(tf.tensor(saved.data, saved.shape)));
    }
  }
  const optWeights = (prefix: string) =>
    [...tensors.entries()]
      .filter(([name]) => name.startsWith(`${prefix}.`))
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, v]) => ({ name, tensor: tf.tensor(v.data, v.shape) }));
  const og = optWeights('og');
  const od = optWeights('od');
  if (og.length > 0) await t.gOpt.setWeights(og);
  if (od.length > 0) await t.dOpt.setWeights(od);
  tf.dispose([...og.map((x) => x.tensor), ...od.map((x) => x.tensor)]);
  return header.meta as unknown as CheckpointState;
}
