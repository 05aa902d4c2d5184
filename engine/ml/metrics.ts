/**
 * Classification metrics as the study reported them (scikit-learn's `classification_report` layout):
 * per-class precision, recall, F1 and support, accuracy, macro and weighted F1, and the confusion matrix.
 * The one implementation every evaluation uses (vision's `evaluate`, the training gate, train:defaults);
 * plain numbers, no tfjs.
 */
import { seededRandom } from '../random.ts';

/** Metrics of one class. */
export interface ClassMetrics {
  readonly precision: number;
  readonly recall: number;
  readonly f1: number;
  readonly support: number;
}

/** The evaluation result (the `data` of the `evaluate` command). */
export interface ClassificationReport {
  readonly n: number;
  readonly accuracy: number;
  readonly macroF1: number;
  readonly weightedF1: number;
  readonly perClass: Readonly<Record<string, ClassMetrics>>;
  /** `matrix[i][j]` = number of items of true class `labels[i]` predicted as `labels[j]`. */
  readonly confusion: { readonly labels: readonly string[]; readonly matrix: readonly (readonly number[])[] };
}

/**
 * Compute the report. `labels` fixes the class order; classes with neither support nor predictions are
 * left out of the macro average (scikit-learn's behaviour with `labels=unique(y_true ∪ y_pred)`), so a
 * 4-way brand model tested on data without "other" is not punished for a class nobody asked about.
 */
export function classificationReport(
  yTrue: readonly string[],
  yPred: readonly string[],
  labels: readonly string[],
): ClassificationReport {
  if (yTrue.length !== yPred.length) throw new Error(`yTrue has ${yTrue.length} items, yPred ${yPred.length}`);
  const all = [...labels];
  for (const l of [...yTrue, ...yPred]) if (!all.includes(l)) all.push(l);
  const index = new Map(all.map((l, i) => [l, i]));
  const matrix = all.map(() => all.map(() => 0));
  yTrue.forEach((t, k) => {
    matrix[index.get(t)!]![index.get(yPred[k]!)!]!++;
  });
  return reportFromConfusion(all, matrix);
}

/**
 * The report of a confusion matrix (`matrix[i][j]` = items of true class `labels[i]` predicted as
 * `labels[j]`): what {@link classificationReport} computes once it has counted, and what a resample needs.
 */
export function reportFromConfusion(labels: readonly string[], matrix: readonly (readonly number[])[]): ClassificationReport {
  const perClass: Record<string, ClassMetrics> = {};
  let correct = 0;
  let macroSum = 0;
  let macroCount = 0;
  let weighted = 0;
  let n = 0;
  labels.forEach((label, i) => {
    const tp = matrix[i]![i]!;
    correct += tp;
    const support = matrix[i]!.reduce((a, b) => a + b, 0);
    const predicted = matrix.reduce((a, row) => a + row[i]!, 0);
    const precision = predicted > 0 ? tp / predicted : 0;
    const recall = support > 0 ? tp / support : 0;
    const f1 = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
    perClass[label] = { precision, recall, f1, support };
    if (support > 0 || predicted > 0) {
      macroSum += f1;
      macroCount++;
    }
    weighted += f1 * support;
    n += support;
  });
  return {
    n,
    accuracy: n > 0 ? correct / n : 0,
    macroF1: macroCount > 0 ? macroSum / macroCount : 0,
    weightedF1: n > 0 ? weighted / n : 0,
    perClass,
    confusion: { labels: [...labels], matrix: matrix.map((r) => [...r]) },
  };
}

/** A percentile bootstrap interval of a report's accuracy and macro-F1. */
export interface BootstrapInterval {
  /** Coverage, e.g. 0.95. */
  readonly level: number;
  readonly resamples: number;
  readonly accuracy: readonly [number, number];
  readonly macroF1: readonly [number, number];
}

/**
 * An interval as text, "0.801–0.896" (`format`: each end's formatting, three decimals by default). One helper so
 * evaluate's text, the train / tune replies and train:defaults' RESULTS.md write intervals alike.
 */
export function formatRange(range: readonly [number, number], format: (v: number) => string = (v) => v.toFixed(3)): string {
  return `${format(range[0])}–${format(range[1])}`;
}

/**
 * How far a report's accuracy and macro-F1 could move with another sample of the same size: the n (true,
 * predicted) pairs of the confusion matrix are drawn again with replacement `resamples` times, and the
 * central `level` of the resampled figures is returned (percentile bootstrap; seeded, so the same matrix gives
 * the same interval). On 100 photos a model's accuracy is worth about ±0.09; the interval says so where a bare
 * figure would not. It covers the sampling of the test photos only, not the training's own noise.
 */
export function bootstrapInterval(
  confusion: ClassificationReport['confusion'],
  opts: { readonly resamples?: number; readonly level?: number; readonly seed?: number } = {},
): BootstrapInterval {
  const resamples = opts.resamples ?? 1000;
  const level = opts.level ?? 0.95;
  const k = confusion.labels.length;
  // Cumulative cell counts, row-major: one uniform draw picks a (true, predicted) pair by binary search.
  const cumulative: number[] = [];
  let n = 0;
  for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) cumulative.push((n += confusion.matrix[i]![j]!));
  if (n === 0) return { level, resamples: 0, accuracy: [0, 0], macroF1: [0, 0] };
  const random = seededRandom(opts.seed ?? 1);
  const accuracy: number[] = [];
  const macroF1: number[] = [];
  const counts = new Array<number>(k * k);
  for (let r = 0; r < resamples; r++) {
    counts.fill(0);
    for (let d = 0; d < n; d++) {
      const u = random() * n;
      let lo = 0;
      let hi = cumulative.length - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (cumulative[mid]! > u) hi = mid;
        else lo = mid + 1;
      }
      counts[lo]!++;
    }
    const matrix = Array.from({ length: k }, (_, i) => counts.slice(i * k, i * k + k));
    const rep = reportFromConfusion(confusion.labels, matrix);
    accuracy.push(rep.accuracy);
    macroF1.push(rep.macroF1);
  }
  const tail = (1 - level) / 2;
  const range = (values: number[]): readonly [number, number] => {
    values.sort((a, b) => a - b);
    const at = (q: number): number => values[Math.min(values.length - 1, Math.max(0, Math.round(q * (values.length - 1))))]!;
    return [at(tail), at(1 - tail)];
  };
  return { level, resamples, accuracy: range(accuracy), macroF1: range(macroF1) };
}

/** The text report in scikit-learn's layout (what the study printed). */
export function formatReport(report: ClassificationReport): string {
  const labels = report.confusion.labels;
  const width = Math.max(12, ...labels.map((l) => l.length)) + 2;
  const num = (v: number): string => v.toFixed(2).padStart(10);
  const lines = [`${''.padStart(width)}${'precision'.padStart(10)}${'recall'.padStart(10)}${'f1-score'.padStart(10)}${'support'.padStart(10)}`, ''];
  for (const l of labels) {
    const m = report.perClass[l]!;
    lines.push(`${l.padStart(width)}${num(m.precision)}${num(m.recall)}${num(m.f1)}${String(m.support).padStart(10)}`);
  }
  const active = labels.filter((l) => (report.perClass[l]?.support ?? 0) > 0 || report.confusion.matrix.some((r, _i) => (r[labels.indexOf(l)] ?? 0) > 0));
  const avg = (key: 'precision' | 'recall'): number =>
    active.length > 0 ? active.reduce((a, l) => a + report.perClass[l]![key], 0) / active.length : 0;
  const wavg = (key: 'precision' | 'recall'): number =>
    report.n > 0 ? labels.reduce((a, l) => a + report.perClass[l]![key] * report.perClass[l]!.support, 0) / report.n : 0;
  lines.push('');
  lines.push(`${'accuracy'.padStart(width)}${''.padStart(20)}${num(report.accuracy)}${String(report.n).padStart(10)}`);
  lines.push(`${'macro avg'.padStart(width)}${num(avg('precision'))}${num(avg('recall'))}${num(report.macroF1)}${String(report.n).padStart(10)}`);
  lines.push(`${'weighted avg'.padStart(width)}${num(wavg('precision'))}${num(wavg('recall'))}${num(report.weightedF1)}${String(report.n).padStart(10)}`);
  return lines.join('\n');
}
