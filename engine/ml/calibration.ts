/**
 * How far a classifier's stated probabilities can be taken at their word: the reliability of its top answer
 * (expected calibration error over confidence bins), the log-loss and the Brier score. `evaluate` reports them
 * beside the classification report, and scripts/calibrate.ts uses them to choose a head's softmax temperature.
 * `fitTemperature` chooses a softmax temperature on a validation set (the moderators' `train` command).
 * Plain numbers, no tfjs.
 */
import { topLabel } from './head.ts';

/** One confidence bin of a reliability diagram. */
export interface ReliabilityBin {
  /** The bin's confidence range, `[lo, hi)` (the last bin includes 1). */
  readonly lo: number;
  readonly hi: number;
  /** Answers whose top probability falls in the bin. */
  readonly n: number;
  /** Their mean top probability (null when the bin is empty, so that JSON carries it). */
  readonly confidence: number | null;
  /** The share of them that were right (null when the bin is empty). */
  readonly accuracy: number | null;
}

/** The calibration of a set of answers. */
export interface CalibrationReport {
  readonly n: number;
  /** Expected calibration error: Σ over bins of |accuracy − confidence| weighted by the bin's share of answers. */
  readonly ece: number;
  /** Mean top probability: how sure the answers said they were. */
  readonly meanConfidence: number;
  /** Share of top answers that were right. */
  readonly accuracy: number;
  /** Mean negative log-probability of the true label (natural log; the true label's probability floored at 1e-12). */
  readonly nll: number;
  /** Mean over answers of Σ over labels of (p − [label is true])². */
  readonly brier: number;
  readonly bins: readonly ReliabilityBin[];
}

/**
 * Calibration of answers `probabilities[i]` (label → probability) against `truth[i]`, over `binCount` equal-width
 * confidence bins on [0, 1]. A true label missing from an answer has probability 0 there.
 */
export function calibrationReport(truth: readonly string[], probabilities: readonly Readonly<Record<string, number>>[], binCount = 10): CalibrationReport {
  if (truth.length !== probabilities.length) throw new Error(`truth has ${truth.length} items, probabilities ${probabilities.length}`);
  if (!Number.isInteger(binCount) || binCount < 1) throw new Error(`binCount must be a whole number ≥ 1, not ${binCount}`);
  const n = truth.length;
  const sums = Array.from({ length: binCount }, () => ({ n: 0, conf: 0, right: 0 }));
  let nll = 0;
  let brier = 0;
  let conf = 0;
  let right = 0;
  truth.forEach((t, i) => {
    const probs = probabilities[i]!;
    // The answer serving gives: the first label with the highest probability.
    const { label, confidence: p } = topLabel(probs);
    const ok = label === t ? 1 : 0;
    const b = Math.min(binCount - 1, Math.max(0, Math.floor(p * binCount)));
    sums[b]!.n++;
    sums[b]!.conf += p;
    sums[b]!.right += ok;
    conf += p;
    right += ok;
    nll -= Math.log(Math.max(probs[t] ?? 0, 1e-12));
    let sq = 0;
    for (const [l, q] of Object.entries(probs)) sq += (q - (l === t ? 1 : 0)) ** 2;
    if (!(t in probs)) sq += 1;
    brier += sq;
  });
  const bins = sums.map((s, b) => ({ lo: b / binCount, hi: (b + 1) / binCount, n: s.n, confidence: s.n > 0 ? s.conf / s.n : null, accuracy: s.n > 0 ? s.right / s.n : null }));
  const ece = n === 0 ? NaN : sums.reduce((e, s) => (s.n > 0 ? e + (s.n / n) * Math.abs(s.right / s.n - s.conf / s.n) : e), 0);
  return { n, ece, meanConfidence: n > 0 ? conf / n : NaN, accuracy: n > 0 ? right / n : NaN, nll: n > 0 ? nll / n : NaN, brier: n > 0 ? brier / n : NaN, bins };
}

/** Softmax temperatures 0.5–4.0 in steps of 0.1: the grid a head's temperature is chosen on (1 = as trained). */
export const TEMPERATURE_GRID: readonly number[] = Array.from({ length: 36 }, (_, k) => Math.round((0.5 + k * 0.1) * 10) / 10);

/** A temperature chosen on a set of answers. */
export interface TemperatureFit {
  readonly temperature: number;
  /** Mean log-loss of the answers at that temperature. */
  readonly nll: number;
}

/**
 * The temperature of `temperatures` whose answers have the lowest mean log-loss against `truth` (the first of equals,
 * so an ascending grid prefers the gentler change). `answers[i][k]` is item i's answer at `temperatures[k]`
 * (as engine/ml/head.ts `headProbabilitiesAt` gives them). Log-loss, not ECE, because it is what a temperature fits exactly
 * (one parameter, a smooth loss) and it does not depend on a choice of bins.
 */
export function fitTemperature(truth: readonly string[], answers: readonly (readonly Readonly<Record<string, number>>[])[], temperatures: readonly number[]): TemperatureFit {
  if (truth.length === 0 || truth.length !== answers.length) throw new Error(`fitTemperature needs one answer list per item (${truth.length} items, ${answers.length} answer lists)`);
  let best: TemperatureFit | undefined;
  temperatures.forEach((temperature, k) => {
    let nll = 0;
    truth.forEach((t, i) => {
      const p = answers[i]![k];
      if (!p) throw new Error(`item ${i} has no answer at temperature ${temperature}`);
      nll -= Math.log(Math.max(p[t] ?? 0, 1e-12));
    });
    nll /= truth.length;
    if (!best || nll < best.nll) best = { temperature, nll };
  });
  if (!best) throw new Error('fitTemperature needs at least one temperature');
  return best;
}
