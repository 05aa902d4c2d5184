/**
 * The `solescope-head` v1 file format and its inference: embedding → (optional L2 normalisation) →
 * standardisation → dense layers → softmax, plus the calibrations that keep answers honest (`openSet` moves
 * probability to `other` for a photo far from every known brand; `ood` marks inputs unlike the training data).
 *
 * Both the vision plugin (which serves heads) and the training plugin (which trains them and whose gate judges
 * the champion) read this format. The arithmetic lives here, once, so the gate scores a champion exactly as
 * serving answers with it — open-set share and test-time views included. Plain arithmetic, no tensors.
 */
import { z } from 'zod';
import { EngineError } from '../errors.ts';
import { LABEL_VALUES } from '../store/labels.ts';

/** How an embedding is computed from an image before the head (part of the model's cache key). */
export const featureSpecSchema = z.object({
  /** Trim the near-white border around the shoe before resizing (crop to the object). */
  trim: z.boolean(),
  /** Average the embeddings of the image and its mirror: orientation (left/right) no longer matters. */
  flipAverage: z.boolean(),
  /** L2-normalise the embedding before standardising. */
  l2: z.boolean(),
  /**
   * Normalise the photo first with the study's pipeline (engine/ml/preprocess): whiten a uniform or
   * segmentable background, crop a square around the shoe. Users' photos are not studio shots on white; this
   * makes them look like the training photos (measured by scripts/eval-shift.ts). Absent in older heads.
   */
  normalise: z.boolean().optional(),
  /** With `normalise`: also mirror the photo so the toe points right (Canny + Hough). */
  orient: z.boolean().optional(),
  /**
   * With `normalise`: off a studio backdrop, find the shoe with the backbone's shoe localiser first
   * (plugins/vision/lib/localise.ts) and start the segmentation from its box. Absent in older heads.
   */
  locate: z.boolean().optional(),
  /**
   * With `normalise`: turn a steeply tilted shoe upright first (long axis horizontal, sole down: engine/ml/preprocess
   * `upright`), as users photograph shoes lying diagonally or toe-up. Absent in older heads.
   */
  upright: z.boolean().optional(),
  /**
   * With `normalise`, at serving: off a studio backdrop (on the background kinds the backbone's angle model names,
   * plugins/vision/lib/angle.ts), read from the backbone's embedding how far the shoe is still turned and, at 30° or
   * more, turn it that much further when a second look reads the turned view as level: for tilted shoes the upright
   * step could not level, as on a busy shelf. Absent in older heads.
   */
  learntTurn: z.boolean().optional(),
});
/** Feature pipeline options stored with a head. */
export type FeatureSpec = z.infer<typeof featureSpecSchema>;

const layerSchema = z.object({
  inputs: z.number().int().positive(),
  units: z.number().int().positive(),
  /** Row-major `[inputs][units]`. */
  kernel: z.array(z.number()),
  bias: z.array(z.number()),
  activation: z.enum(['linear', 'relu']),
});
/** One dense layer. */
export type DenseLayer = z.infer<typeof layerSchema>;

/** The JSON schema of a head file; anything else is a corrupt model (MODEL_MISSING). */
export const headModelSchema = z
  .object({
    format: z.literal('solescope-head'),
    version: z.literal(1),
    id: z.string().min(1),
    task: z.enum(['hype', 'brand']),
    /** Labels the softmax covers, in output order. */
    labels: z.array(z.string()).min(2),
    backbone: z.string().min(1),
    prepVersion: z.string().min(1),
    features: featureSpecSchema,
    standardise: z.object({ mean: z.array(z.number()), std: z.array(z.number()) }),
    layers: z.array(layerSchema).min(1),
    openSet: z
      .object({
        /** Per trained label: L2-normalised centroid of its training embeddings. */
        centroids: z.array(z.array(z.number())),
        /** Per trained label: the 99th percentile of its training items' cosine distance to the centroid. */
        radius: z.array(z.number()),
        /** Per trained label: spread (std) of those distances; the softness of the boundary. */
        spread: z.array(z.number()),
      })
      .optional(),
    ood: z.object({
      /** L2-normalised centroids (k-means) of all training embeddings. */
      centroids: z.array(z.array(z.number())),
      /** Cosine distance to the nearest centroid above which an input is unlike the training data. */
      threshold: z.number(),
    }),
    /** Softmax temperature fitted on held-out data (1 = none). */
    temperature: z.number().positive().default(1),
    /** Below this top probability the answer is reported as low confidence. */
    minConfidence: z.number().min(0).max(1).default(0.6),
    /**
     * Test-time view: `mirror` = serving also runs the head on the photo's mirror image (same pipeline, the view
     * flip augmentation trained on) and averages the two views' probabilities. Written by `train:defaults
     * --brand-tta mirror --hype-tta mirror` where it was measured to help (assets/models/README.md) and by community runs whose
     * `--tta` chose it (plugins/training/lib/pipeline.ts); absent = the photo alone.
     */
    tta: z.enum(['mirror']).optional(),
    seed: z.number().int(),
    createdAt: z.string(),
    /** Free-form provenance: data, command, metrics. */
    meta: z.record(z.string(), z.unknown()).default({}),
  })
  .superRefine((m, ctx) => {
    const dim = m.standardise.mean.length;
    if (m.standardise.std.length !== dim) ctx.addIssue({ code: 'custom', message: 'standardise mean/std lengths differ' });
    let inputs = dim;
    m.layers.forEach((l, i) => {
      if (l.inputs !== inputs) ctx.addIssue({ code: 'custom', message: `layer ${i} takes ${l.inputs} inputs, expected ${inputs}` });
      if (l.kernel.length !== l.inputs * l.units) ctx.addIssue({ code: 'custom', message: `layer ${i} kernel has the wrong size` });
      if (l.bias.length !== l.units) ctx.addIssue({ code: 'custom', message: `layer ${i} bias has the wrong size` });
      inputs = l.units;
    });
    if (inputs !== m.labels.length) ctx.addIssue({ code: 'custom', message: `the last layer has ${inputs} outputs for ${m.labels.length} labels` });
  });

/** A loaded head. */
export type HeadModel = z.output<typeof headModelSchema>;

/** L2-normalise (returns a new array; a zero vector stays zero). */
export function l2normalise(v: ArrayLike<number>): Float32Array {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!;
  const n = Math.sqrt(s) || 1;
  const out = new Float32Array(v.length);
  for (let i = 0; i < v.length; i++) out[i] = v[i]! / n;
  return out;
}

/** Cosine distance between an L2-normalised vector and an L2-normalised centroid. */
export function cosineDistance(unit: ArrayLike<number>, centroid: readonly number[] | Float32Array): number {
  let dot = 0;
  for (let i = 0; i < unit.length; i++) dot += unit[i]! * centroid[i]!;
  return 1 - dot;
}

/** The standardised input of the head's first layer. */
export function headInput(head: HeadModel, embedding: ArrayLike<number>): Float32Array {
  const e = head.features.l2 ? l2normalise(embedding) : embedding;
  const { mean, std } = head.standardise;
  if (e.length !== mean.length) {
    throw new EngineError('MODEL_MISSING', `The model ${head.id} expects ${mean.length}-d embeddings but got ${e.length}-d (wrong backbone?). Rebuild it with \`npm run train:defaults\`.`);
  }
  const out = new Float32Array(e.length);
  for (let i = 0; i < e.length; i++) out[i] = (e[i]! - mean[i]!) / std[i]!;
  return out;
}

/** Raw logits of the dense layers for one standardised input. */
export function denseForward(layers: readonly DenseLayer[], input: Float32Array): Float32Array {
  let x = input;
  for (const layer of layers) {
    const out = new Float32Array(layer.units);
    for (let j = 0; j < layer.units; j++) out[j] = layer.bias[j]!;
    for (let i = 0; i < layer.inputs; i++) {
      const xi = x[i]!;
      if (xi === 0) continue;
      const row = i * layer.units;
      for (let j = 0; j < layer.units; j++) out[j] = out[j]! + xi * layer.kernel[row + j]!;
    }
    if (layer.activation === 'relu') for (let j = 0; j < out.length; j++) out[j] = Math.max(0, out[j]!);
    x = out;
  }
  return x;
}

/** Softmax with temperature. */
export function softmax(logits: ArrayLike<number>, temperature = 1): number[] {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]! / temperature);
  const exps = Array.from({ length: logits.length }, (_, i) => Math.exp(logits[i]! / temperature - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

/** Cosine distance from an L2-normalised embedding to the nearest training centroid (the `ood` check). */
export function oodDistance(head: HeadModel, unit: Float32Array): number {
  let best = Infinity;
  for (const c of head.ood.centroids) best = Math.min(best, cosineDistance(unit, c));
  return best;
}

/**
 * Probability that an embedding belongs to none of the trained brands: for each class, how far it lies
 * beyond that class's radius (in units of the class's spread), taken at the class the softmax prefers.
 */
function openSetOther(head: HeadModel, unit: Float32Array, probs: readonly number[]): number {
  const os = head.openSet;
  if (!os) return 0;
  // Weighted by the softmax: being inside the radius of the class the head prefers is what counts.
  let pOther = 0;
  probs.forEach((p, k) => {
    const c = os.centroids[k];
    if (!c) return;
    const d = cosineDistance(unit, c);
    const z = (d - os.radius[k]!) / Math.max(os.spread[k]!, 1e-3);
    // At the radius itself only ~27 % moves to `other`; one spread beyond it, ~73 %.
    pOther += p / (1 + Math.exp(-(2 * z - 1)));
  });
  return Math.min(1, Math.max(0, pOther));
}

/**
 * One view's probabilities from the head's logits for it (`embedding`: that view's raw embedding, for the brand
 * open-set share). The mean of several fits' logits through here is what a seed ensemble laid side by side answers
 * (`combineFits` in plugins/vision/lib/train.ts), which lets a study score many ensembles from each fit's logits.
 */
export function probabilitiesFromLogits(head: HeadModel, logits: ArrayLike<number>, embedding: ArrayLike<number>): Record<string, number> {
  const probs = softmax(logits, head.temperature);
  const full: Record<string, number> = {};
  if (head.task === 'brand') {
    for (const b of LABEL_VALUES.brand) full[b] = 0;
    const pOther = openSetOther(head, l2normalise(embedding), probs);
    // The open-set share moves to `other`; a trained `other` class keeps its own softmax share too.
    head.labels.forEach((l, k) => {
      full[l] = (full[l] ?? 0) + probs[k]! * (1 - pOther);
    });
    full.other = (full.other ?? 0) + pOther;
  } else {
    head.labels.forEach((l, k) => {
      full[l] = probs[k]!;
    });
  }
  return full;
}

/**
 * Probabilities over the task's full label set (brand: jordan, nike, adidas, other, with the open-set share in
 * `other`; hype: the head's labels). `views`: embeddings of test-time views of the same photo (its mirror for a
 * `tta: 'mirror'` head); the answer is the mean of all views' probabilities.
 */
export function headProbabilities(head: HeadModel, embedding: ArrayLike<number>, views: readonly ArrayLike<number>[] = []): Record<string, number> {
  return headProbabilitiesAt(head, embedding, views, [head.temperature])[0]!;
}

/**
 * {@link headProbabilities} at each of `temperatures` (the head's own is ignored), one answer per temperature. The
 * dense layers run once per view: only the softmax and the open-set share depend on the temperature, so choosing a
 * temperature over a grid costs one forward pass per photo, not one per grid point.
 */
export function headProbabilitiesAt(head: HeadModel, embedding: ArrayLike<number>, views: readonly ArrayLike<number>[], temperatures: readonly number[]): Record<string, number>[] {
  const all = [embedding, ...views];
  const logits = all.map((v) => denseForward(head.layers, headInput(head, v)));
  return temperatures.map((temperature) => {
    const at = { ...head, temperature };
    const [full, ...rest] = all.map((v, i) => probabilitiesFromLogits(at, logits[i]!, v));
    if (rest.length > 0) for (const l of Object.keys(full!)) full![l] = (full![l]! + rest.reduce((s, p) => s + (p[l] ?? 0), 0)) / all.length;
    return full!;
  });
}

/** The predicted label: the first label with the highest probability (insertion order breaks ties). */
export function topLabel(probabilities: Readonly<Record<string, number>>): { label: string; confidence: number } {
  let label = '';
  let confidence = -1;
  for (const [l, p] of Object.entries(probabilities)) {
    if (p > confidence) {
      confidence = p;
      label = l;
    }
  }
  return { label, confidence };
}
