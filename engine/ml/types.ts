/**
 * Plain data types shared by the ML modules (no tfjs import, so callers can use them in type positions only).
 */

/**
 * A decoded image as raw interleaved pixels, row-major, 8 bits per channel. `channels` defaults to 3 (RGB);
 * 4 (RGBA, e.g. from a canvas) is accepted and the alpha is composited on white; 1 is grayscale.
 */
export interface RawImage {
  readonly data: Uint8Array | Uint8ClampedArray;
  readonly width: number;
  readonly height: number;
  readonly channels?: 1 | 3 | 4;
}

/**
 * A square model input: `size*size*3` floats in [0,1], row-major HWC. The output of `preprocess()` and the
 * input of `Backbone.embedImages()`.
 */
export interface ModelInput {
  readonly tensorData: Float32Array;
  readonly size: number;
}

/** An axis-aligned box in the pixel coordinates of the original image. */
export interface Box {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}

/** A progress callback: `done` of `total` units finished. */
export type ProgressFn = (done: number, total: number) => void;
