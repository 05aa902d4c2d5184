/**
 * OpenCV (the `@techstark/opencv-js` 4.12 wasm build), loaded once per process.
 *
 * The module object is a self-resolving "thenable": `await`-ing it (or returning it from an async function)
 * hangs at 100 % CPU. So it is never awaited or returned from a promise directly; readiness is detected by
 * `cv.Mat` existing or `onRuntimeInitialized` firing, and the module is wrapped in a plain object.
 */
import { createRequire } from 'node:module';
import type * as CvTypes from '@techstark/opencv-js';
import { EngineError } from '../errors.ts';

/** The OpenCV namespace type. */
export type Cv = typeof CvTypes;

/** A holder for the cv module: a plain object, so promises resolving to it do not try to await cv itself. */
export interface CvHandle {
  readonly cv: Cv;
  /** Milliseconds the wasm runtime took to initialise. */
  readonly loadMs: number;
}

const require = createRequire(import.meta.url);
let loading: Promise<CvHandle> | undefined;

/** The initialised OpenCV module (loads ~1–2 s the first time, then shared). */
export function getCv(): Promise<CvHandle> {
  loading ??= new Promise<CvHandle>((resolve, reject) => {
    const started = performance.now();
    let cv: Cv & { onRuntimeInitialized?: () => void };
    try {
      cv = require('@techstark/opencv-js') as Cv & { onRuntimeInitialized?: () => void };
    } catch (error) {
      reject(new EngineError('UNAVAILABLE', 'OpenCV (@techstark/opencv-js) is not installed (run `npm ci`)', { cause: error }));
      return;
    }
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearInterval(poll);
      clearTimeout(timeout);
      resolve({ cv, loadMs: Math.round(performance.now() - started) });
    };
    // Either signal may come first (or may already have come); poll as well as hook.
    const poll = setInterval(() => {
      if (typeof cv.Mat === 'function') finish();
    }, 10);
    const timeout = setTimeout(() => {
      if (done) return;
      done = true;
      clearInterval(poll);
      loading = undefined;
      reject(new EngineError('UNAVAILABLE', 'OpenCV did not initialise within 60 s'));
    }, 60_000);
    poll.unref();
    timeout.unref();
    const previous = cv.onRuntimeInitialized;
    cv.onRuntimeInitialized = () => {
      previous?.();
      finish();
    };
    if (typeof cv.Mat === 'function') finish();
  });
  return loading;
}

/**
 * Runs `fn` and deletes every Mat it registered with `track`, whatever happens (OpenCV.js memory lives in
 * the wasm heap and is not garbage-collected).
 */
export function withMats<T>(fn: (track: <M extends { delete(): void }>(mat: M) => M) => T): T {
  const mats: { delete(): void }[] = [];
  try {
    return fn((mat) => {
      mats.push(mat);
      return mat;
    });
  } finally {
    for (const mat of mats.reverse()) mat.delete();
  }
}
