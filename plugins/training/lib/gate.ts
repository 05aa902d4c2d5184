/**
 * The evaluation gate: a candidate replaces the champion only if, on the same test split, its macro-F1
 * is better by at least `margin` and no class's recall drops by more than `maxRecallDrop`. Everything
 * else keeps it a candidate, with the reason written down (data, card, `models list`).
 */
import type { Evaluation } from './metrics.ts';

/** Gate thresholds (config: `SOLESCOPE_GATE_MARGIN`, `SOLESCOPE_GATE_MAX_RECALL_DROP`). */
export interface GateConfig {
  /** Required macro-F1 improvement (absolute, default 0.01). */
  readonly margin: number;
  /** Largest allowed drop of any class's recall (absolute, default 0.05). */
  readonly maxRecallDrop: number;
}

/** Defaults of the gate. */
export const DEFAULT_GATE: GateConfig = { margin: 0.01, maxRecallDrop: 0.05 };

/** Read the gate thresholds from the environment, falling back to defaults for absent or bad values. */
export function gateFromEnv(env: Record<string, string | undefined> = process.env): GateConfig {
  const num = (v: string | undefined, d: number): number => {
    const n = v === undefined || v.trim() === '' ? NaN : Number(v);
    return Number.isFinite(n) && n >= 0 && n <= 1 ? n : d;
  };
  return { margin: num(env.SOLESCOPE_GATE_MARGIN, DEFAULT_GATE.margin), maxRecallDrop: num(env.SOLESCOPE_GATE_MAX_RECALL_DROP, DEFAULT_GATE.maxRecallDrop) };
}

/** What the gate decided. */
export interface GateDecision {
  readonly promote: boolean;
  /** `promoted` | `no-champion` (promoted: nothing to beat) | `kept-candidate` | `not-comparable`. */
  readonly outcome: 'promoted' | 'no-champion' | 'kept-candidate' | 'not-comparable';
  /** One human sentence. */
  readonly reason: string;
  /** The champion compared against; 0 = the shipped default model (no registry champion yet). */
  readonly championId?: number | undefined;
  readonly candidateMacroF1: number;
  readonly championMacroF1?: number | undefined;
  readonly macroF1Delta?: number | undefined;
  /** Recall change per class (candidate − champion). */
  readonly recallDeltas?: Readonly<Record<string, number>> | undefined;
  readonly config: GateConfig;
}

/**
 * Decide. `champion` is the champion's evaluation on the SAME test split (undefined when there is no
 * champion; `null` when there is one but it could not be evaluated on this split).
 */
export function decide(
  candidate: Evaluation,
  champion: { id: number; evaluation: Evaluation } | null | undefined,
  config: GateConfig = DEFAULT_GATE,
  championId?: number,
): GateDecision {
  const base = { candidateMacroF1: candidate.macroF1, config };
  if (champion === undefined) {
    return { ...base, promote: true, outcome: 'no-champion', reason: 'There is no champion yet, so this model becomes the champion.' };
  }
  if (champion === null) {
    return {
      ...base,
      promote: false,
      outcome: 'not-comparable',
      championId,
      reason: 'The champion could not be evaluated on this test split (different features or format); promote by hand if you trust it.',
    };
  }
  const delta = candidate.macroF1 - champion.evaluation.macroF1;
  const recallDeltas: Record<string, number> = {};
  let worst: { label: string; drop: number } | undefined;
  for (const [label, m] of Object.entries(champion.evaluation.perClass)) {
    if (m.support === 0) continue;
    const c = candidate.perClass[label];
    const d = (c?.recall ?? 0) - m.recall;
    recallDeltas[label] = d;
    if (!worst || -d > worst.drop) worst = { label, drop: -d };
  }
  const common = { ...base, championId: champion.id, championMacroF1: champion.evaluation.macroF1, macroF1Delta: delta, recallDeltas };
  const f = (x: number): string => x.toFixed(3);
  if (delta < config.margin - 1e-12) {
    return {
      ...common,
      promote: false,
      outcome: 'kept-candidate',
      reason: `Macro-F1 ${f(candidate.macroF1)} vs champion ${f(champion.evaluation.macroF1)} (Δ ${delta >= 0 ? '+' : ''}${f(delta)}) does not beat it by the required ${f(config.margin)}.`,
    };
  }
  if (worst && worst.drop > config.maxRecallDrop + 1e-12) {
    return {
      ...common,
      promote: false,
      outcome: 'kept-candidate',
      reason: `Recall of "${worst.label}" drops by ${f(worst.drop)} (more than the allowed ${f(config.maxRecallDrop)}) although macro-F1 improves by ${f(delta)}.`,
    };
  }
  return {
    ...common,
    promote: true,
    outcome: 'promoted',
    reason: `Macro-F1 ${f(candidate.macroF1)} beats the champion's ${f(champion.evaluation.macroF1)} by ${f(delta)} and no class recall drops more than ${f(config.maxRecallDrop)}.`,
  };
}
