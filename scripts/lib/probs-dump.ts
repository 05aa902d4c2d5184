/**
 * The answer dump that scripts/calibrate.ts reads: one JSON line per test photo with the head's answer as served at
 * each softmax temperature of {@link DUMP_TEMPERATURES}. Written by `train:defaults --probs-dump` (held-out photos and
 * each left-out source) and by `eval-shift --heads … --probs-dump` (the held-out photos on shifted backgrounds).
 * The whole answer is dumped, not the logits, because brand's open-set share in `other` is computed from the softmax,
 * so a temperature cannot be applied afterwards.
 */
import { TEMPERATURE_GRID } from '../../engine/ml/calibration.ts';
import { headProbabilitiesAt } from '../../engine/ml/head.ts';
import { predictHead, type HeadModel } from '../../plugins/vision/lib/head.ts';

/** The softmax temperatures answered at (1 = the head as trained). */
export const DUMP_TEMPERATURES: readonly number[] = TEMPERATURE_GRID;

/** One dumped answer. `fold`: which set the photo belongs to (`held-out`, a left-out source, or a shift column). */
export interface DumpedAnswer {
  readonly task: string;
  readonly fold: string;
  readonly source: string;
  readonly truth: string;
  readonly minConfidence: number;
  /** Serving answers "no sneaker" whatever the temperature (outside the training data, or no shoe found). */
  readonly outside: boolean;
  /** Temperature (one decimal) → the answer's probabilities. */
  readonly probs: Readonly<Record<string, Readonly<Record<string, number>>>>;
}

/** The dump line of one photo: `views` as serving passes them (the mirror for a `tta: 'mirror'` head). */
export function dumpAnswer(head: HeadModel, embedding: ArrayLike<number>, views: readonly ArrayLike<number>[], meta: { task: string; fold: string; source: string; truth: string; noShoe?: boolean }): string {
  const outside = predictHead(head, embedding, views).ood.outside || meta.noShoe === true;
  // Only the probabilities depend on the temperature: the out-of-distribution check above and the dense layers are run once.
  const answers = headProbabilitiesAt(head, embedding, views, DUMP_TEMPERATURES);
  const probs = Object.fromEntries(DUMP_TEMPERATURES.map((t, k) => [t.toFixed(1), answers[k]!]));
  const answer: DumpedAnswer = { task: meta.task, fold: meta.fold, source: meta.source, truth: meta.truth, minConfidence: head.minConfidence, outside, probs };
  return JSON.stringify(answer);
}
