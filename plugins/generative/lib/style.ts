/**
 * Neural style transfer after Gatys et al. (2016): optimise an image (initialised from the content photo) so
 * that its deep features match the content image's at one layer and its Gram matrices (feature
 * correlations, i.e. texture) match the style image's at several layers, with a total-variation term
 * against high-frequency noise. Features come from one backbone sub-model returning all layers at once.
 */
import type * as tfjs from '@tensorflow/tfjs';

type Tf = typeof tfjs;
type Tensor = tfjs.Tensor;
type Tensor3D = tfjs.Tensor3D;
type Tensor4D = tfjs.Tensor4D;
type Scalar = tfjs.Scalar;

/**
 * A model returning the activations of several layers for a batch in [0, 1]: every output is a style layer,
 * and the last one is also the content layer (Gatys used a mid-level layer for content; mixed3 here).
 */
export interface MultiLayerModel {
  apply(x: Tensor4D): Tensor | Tensor[];
}

/** Loss weights. */
export interface StyleWeights {
  readonly content: number;
  readonly style: number;
  readonly tv: number;
}

/**
 * Gram matrix of a [1, h, w, c] activation: FᵀF / (h·w·c). Dividing by c as well keeps layers of different
 * widths on one scale, so the per-layer style terms can simply be averaged.
 */
export function gram(tf: Tf, features: Tensor): Tensor {
  return tf.tidy(() => {
    const [, h, w, c] = features.shape as [number, number, number, number];
    const f = tf.reshape(features, [h * w, c]);
    return tf.div(tf.matMul(f, f, true, false), h * w * c);
  });
}

/** Targets computed once: the content features and the style Grams. Dispose when done. */
export interface StyleTargets {
  readonly content: Tensor;
  readonly grams: Tensor[];
  dispose(): void;
}

function layersOf(out: Tensor | Tensor[]): Tensor[] {
  return Array.isArray(out) ? out : [out];
}

/**
 * Features of the content image (the model's last output) and Grams of the style image (every output).
 */
export function styleTargets(tf: Tf, model: MultiLayerModel, content: Tensor3D, style: Tensor3D): StyleTargets {
  const [contentFeatures, grams] = tf.tidy(() => {
    const c = layersOf(model.apply(tf.expandDims(content, 0) as Tensor4D));
    const s = layersOf(model.apply(tf.expandDims(style, 0) as Tensor4D));
    return [c[c.length - 1]!, s.map((f) => gram(tf, f))] as const;
  });
  return {
    content: contentFeatures,
    grams: [...grams],
    dispose() {
      tf.dispose([contentFeatures, ...grams]);
    },
  };
}

/** The three loss terms (unweighted) and their weighted total. */
export interface StyleLosses {
  readonly content: Scalar;
  readonly style: Scalar;
  readonly tv: Scalar;
  readonly total: Scalar;
}

/** Loss terms of an image against the targets. */
export function styleLosses(tf: Tf, model: MultiLayerModel, image: Tensor3D, t: StyleTargets, w: StyleWeights): StyleLosses {
  return tf.tidy(() => {
    const feats = layersOf(model.apply(tf.expandDims(image, 0) as Tensor4D));
    // Relative squared errors (‖a − b‖² / ‖b‖²): each term starts near 1 whatever the layer's scale, so
    // default weights mean the same thing for every layer, image size and style.
    const content = relativeError(tf, feats[feats.length - 1]!, t.content);
    const styleTerms = t.grams.map((g, i) => relativeError(tf, gram(tf, feats[i]!), g));
    const style = tf.div(tf.addN(styleTerms), styleTerms.length) as Scalar;
    const tv = totalVariation(tf, image);
    const total = tf.addN([tf.mul(content, w.content), tf.mul(style, w.style), tf.mul(tv, w.tv)]) as Scalar;
    return { content, style, tv, total };
  });
}

function relativeError(tf: Tf, a: Tensor, b: Tensor): Scalar {
  return tf.div(tf.sum(tf.square(tf.sub(a, b))), tf.add(tf.sum(tf.square(b)), 1e-12)) as Scalar;
}

/** Mean squared difference between neighbouring pixels (smoothness prior). */
export function totalVariation(tf: Tf, image: Tensor3D): Scalar {
  return tf.tidy(() => {
    const [h, w] = image.shape;
    const dy = tf.sub(tf.slice(image, [1, 0, 0], [h - 1, w, 3]), tf.slice(image, [0, 0, 0], [h - 1, w, 3]));
    const dx = tf.sub(tf.slice(image, [0, 1, 0], [h, w - 1, 3]), tf.slice(image, [0, 0, 0], [h, w - 1, 3]));
    return tf.add(tf.mean(tf.square(dy)), tf.mean(tf.square(dx))) as Scalar;
  });
}

/** An optimisation in progress: the image variable and its optimiser. Dispose when done. */
export interface StyleOptimisation {
  readonly image: tfjs.Variable<tfjs.Rank.R3>;
  /** One Adam step on the total loss, then clip to [0, 1]. Returns the unweighted terms before the step. */
  step(): { content: number; style: number; tv: number; total: number };
  dispose(): void;
}

/** Starts an optimisation from the content image (a copy: the caller keeps its tensor). */
export function startStyleTransfer(
  tf: Tf,
  model: MultiLayerModel,
  content: Tensor3D,
  targets: StyleTargets,
  weights: StyleWeights,
  learningRate = 0.02,
): StyleOptimisation {
  let image!: tfjs.Variable<tfjs.Rank.R3>;
  tf.tidy(() => {
    image = tf.variable(tf.clone(content), true); // tidy frees the clone; the variable keeps its data
  });
  const opt = tf.train.adam(learningRate);
  return {
    image,
    step() {
      const seen = { content: 0, style: 0, tv: 0, total: 0 };
      const cost = opt.minimize(
        () => {
          const l = styleLosses(tf, model, image, targets, weights);
          seen.content = l.content.dataSync()[0]!;
          seen.style = l.style.dataSync()[0]!;
          seen.tv = l.tv.dataSync()[0]!;
          return l.total;
        },
        true,
        [image],
      );
      seen.total = cost?.dataSync()[0] ?? Number.NaN;
      cost?.dispose();
      tf.tidy(() => {
        image.assign(tf.clipByValue(image, 0, 1));
      });
      return seen;
    },
    dispose() {
      image.dispose();
      opt.dispose();
    },
  };
}
