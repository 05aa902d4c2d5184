/**
 * Upload safety: photos that nsfwjs's own 5-way head (Drawing, Hentai, Neutral, Porn, Sexy) flags as
 * explicit are refused before any analysis, so they are neither analysed nor stored.
 *
 * The classifier is the complete `mobilenet_v2` model that ships inside the `nsfwjs` package, loaded
 * lazily on the first upload through the engine's IOHandler for the package's base64 bundles (no
 * network). Loading costs about a second once; a check is one MobileNetV2 forward pass.
 */
import sharp from 'sharp';
import type * as tfTypes from '@tensorflow/tfjs';
import { EngineError } from '../../engine/index.ts';

// tfjs is imported on the first upload, not when the bot module loads: a bot that never sees an image
// (or runs with the check off) never pays for it.
async function ml(): Promise<{ tf: typeof tfTypes; handler: tfTypes.io.IOHandler }> {
  const [{ getTf }, { nsfwjsModelHandler }] = await Promise.all([import('../../engine/ml/runtime.ts'), import('../../engine/ml/model-io.ts')]);
  return { tf: await getTf(), handler: nsfwjsModelHandler('mobilenet_v2') };
}

/** nsfwjs's classes, in the order of its head's outputs. */
export const NSFW_CLASSES = ['drawing', 'hentai', 'neutral', 'porn', 'sexy'] as const;

/** Scores per class, summing to 1. */
export type SafetyScores = Record<(typeof NSFW_CLASSES)[number], number>;

/** The verdict on one image. */
export interface SafetyVerdict {
  readonly explicit: boolean;
  readonly scores: SafetyScores;
}

/** Checks an uploaded image before analysis. */
export interface UploadSafety {
  check(image: Uint8Array): Promise<SafetyVerdict>;
}

/** Options of {@link NsfwSafety}. */
export interface NsfwSafetyOptions {
  /** P(porn) + P(hentai) at or above which an image is explicit (default 0.7). */
  readonly threshold?: number;
}

const SIZE = 224;

/** nsfwjs-based {@link UploadSafety}. */
export class NsfwSafety implements UploadSafety {
  private model: Promise<tfTypes.LayersModel> | undefined;
  readonly threshold: number;

  constructor(options: NsfwSafetyOptions = {}) {
    this.threshold = options.threshold ?? 0.7;
  }

  /** Load the head now (otherwise the first check does). */
  load(): Promise<tfTypes.LayersModel> {
    this.model ??= (async () => {
      const { tf, handler } = await ml();
      return tf.loadLayersModel(handler);
    })();
    this.model.catch(() => {
      this.model = undefined; // a failed load is retried by the next check
    });
    return this.model;
  }

  async check(image: Uint8Array): Promise<SafetyVerdict> {
    let pixels: Buffer;
    try {
      pixels = await sharp(image, { limitInputPixels: 100_000_000, animated: false })
        .rotate()
        .flatten({ background: '#ffffff' })
        .resize(SIZE, SIZE, { fit: 'fill' })
        .removeAlpha()
        .raw()
        .toBuffer();
    } catch (err) {
      throw new EngineError('NOT_AN_IMAGE', 'That file is not an image I can read.', { cause: err });
    }
    const [model, { tf }] = await Promise.all([this.load(), ml()]);
    const probs = tf.tidy(() => {
      const input = tf.tensor4d(new Float32Array(pixels), [1, SIZE, SIZE, 3]).div(255);
      return model.predict(input) as tfTypes.Tensor;
    });
    const values = await probs.data();
    probs.dispose();
    const scores = Object.fromEntries(NSFW_CLASSES.map((c, i) => [c, values[i] ?? 0])) as SafetyScores;
    return { explicit: scores.porn + scores.hentai >= this.threshold, scores };
  }

  /** Free the model (shutdown, tests). */
  async dispose(): Promise<void> {
    const model = this.model;
    this.model = undefined;
    if (model) (await model.catch(() => undefined))?.dispose();
  }
}
