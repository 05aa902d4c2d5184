/**
 * Evaluation metrics in the shape every solescope evaluation reports (the `evaluate` command's data):
 * accuracy, macro/weighted F1, per-class precision/recall/F1/support and the confusion matrix.
 */

/** Metrics of one class. */
export interface ClassMetrics {
  readonly precision: number;
  readonly recall: number;
  readonly f1: number;
  readonly support: number;
}

/** An evaluation. */
export interface Evaluation {
  readonly n: number;
  readonly accuracy: number;
  readonly macroF1: number;
  readonly weightedF1: number;
  readonly perClass: Readonly<Record<string, ClassMetrics>>;
  /** `matrix[i][j]` = items of true class `labels[i]` predicted as `labels[j]`. */
  readonly confusion: { readonly labels: readonly string[]; readonly matrix: readonly (readonly number[])[] };
}

/**
 * Evaluate predictions. Classes with neither support nor predictions are left out of the macro average
 * (scikit-learn's behaviour), so a class absent from the test split does not drag the score down.
 */
export function evaluate(yTrue: readonly string[], yPred: readonly string[], labels: readonly string[]): Evaluation {
  if (yTrue.length !== yPred.length) throw new Error(`yTrue has ${yTrue.length} items, yPred ${yPred.length}`);
  const all = [...labels];
  for (const l of [...yTrue, ...yPred]) if (!all.includes(l)) all.push(l);
  const index = new Map(all.map((l, i) => [l, i]));
  const matrix = all.map(() => all.map(() => 0));
  yTrue.forEach((t, i) => {
    const row = matrix[index.get(t) ?? 0];
    const col = index.get(yPred[i] ?? '') ?? 0;
    if (row) row[col] = (row[col] ?? 0) + 1;
  });
  const perClass: Record<string, ClassMetrics> = {};
  let correct = 0;
  let macro = 0;
  let macroN = 0;
  let weighted = 0;
  all.forEach((label, i) => {
    const tp = matrix[i]?.[i] ?? 0;
    correct += tp;
    const support = (matrix[i] ?? []).reduce((a, b) => a + b, 0);
    const predicted = matrix.reduce((a, row) => a + (row[i] ?? 0), 0);
    const precision = predicted > 0 ? tp / predicted : 0;
    const recall = support > 0 ? tp / support : 0;
    const f1 = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
    perClass[label] = { precision, recall, f1, support };
    if (support > 0 || predicted > 0) {
      macro += f1;
      macroN++;
    }
    weighted += f1 * support;
  });
  const n = yTrue.length;
  return {
    n,
    accuracy: n > 0 ? correct / n : 0,
    macroF1: macroN > 0 ? macro / macroN : 0,
    weightedF1: n > 0 ? weighted / n : 0,
    perClass,
    confusion: { labels: all, matrix },
  };
}

/** The study-style text report (scikit-learn's `classification_report` layout). */
export function formatEvaluation(e: Evaluation): string {
  const width = Math.max(12, ...Object.keys(e.perClass).map((l) => l.length));
  const f = (x: number): string => x.toFixed(2).padStart(9);
  const lines = [`${''.padStart(width)} precision    recall  f1-score   support`];
  for (const [label, m] of Object.entries(e.perClass)) {
    lines.push(`${label.padStart(width)}${f(m.precision)}${f(m.recall)}${f(m.f1)}${String(m.support).padStart(10)}`);
  }
  lines.push('', `${'accuracy'.padStart(width)}${''.padStart(18)}${f(e.accuracy)}${String(e.n).padStart(10)}`);
  lines.push(`${'macro F1'.padStart(width)}${''.padStart(18)}${f(e.macroF1)}${String(e.n).padStart(10)}`);
  lines.push(`${'weighted F1'.padStart(width)}${''.padStart(18)}${f(e.weightedF1)}${String(e.n).padStart(10)}`);
  return lines.join('\n');
}
