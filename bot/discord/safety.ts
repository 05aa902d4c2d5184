/**
 * Upload safety: photos that nsfwjs's own 5-way head (Drawing, Hentai, Neutral, Porn, Sexy) flags as
 * explicit are refused before any analysis, so they are neither analysed nor stored.
 *
 * The classifier is the complete `mobilenet_v2` model that ships inside the `nsfwjs` package: the same
 * process-wide backbone the vision commands use (`loadBackbone('mobilenet_v2')` keeps the nsfwjs head), so
 * the weights are loaded once per process, lazily on the first upload. A check is one forward pass.
 */
import sharp from 'sharp';
import type * as Backbones from '../../engine/ml/backbones.ts';
import type { Backbone } from '../../engine/ml/backbones.ts';
import { EngineError } from '../../engine/index.ts';

// tfjs is imported on the first upload, not when the bot module loads: a bot that never sees an image
// (or runs with the check off) never pays for it.
async function ml(): Promise<typeof Backbones> {
  return import('../../engine/ml/backbones.ts');
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
  private backbone: Promise<Backbone> | undefined;
  readonly threshold: number;

  constructor(options: NsfwSafetyOptions = {}) {
    this.threshold = options.threshold ?? 0.7;
  }

  /** Load the model now (otherwise the first check does). */
  load(): Promise<Backbone> {
    this.backbone ??= ml().then((m) => m.loadBackbone('mobilenet_v2'));
    this.backbone.catch(() => {
      this.backbone = undefined; // a failed load is retried by the next check
    });
    return this.backbone;
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
    const [backbone, { nsfwScores }] = await Promise.all([this.load(), ml()]);
    const input = new Float32Array(pixels.length);
    for (let i = 0; i < input.length; i++) input[i] = pixels[i]! / 255;
    const [row] = await nsfwScores(backbone, [input]);
    const scores = Object.fromEntries(NSFW_CLASSES.map((c) => [c, row?.[c] ?? 0])) as SafetyScores;
    return { explicit: scores.porn + scores.hentai >= this.threshold, scores };
  }

  /** Forget the model. The backbone is shared by the whole process (vision uses it too), so it stays loaded. */
  async dispose(): Promise<void> {
    this.backbone = undefined;
  }
}
