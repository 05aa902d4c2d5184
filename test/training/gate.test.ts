import { describe, expect, it } from 'vitest';
import { decide, gateFromEnv } from '../../plugins/training/lib/gate.ts';
import { evaluate, formatEvaluation } from '../../plugins/training/lib/metrics.ts';

const labels = ['jordan', 'nike', 'adidas', 'other'];
const truth = ['jordan', 'jordan', 'jordan', 'jordan', 'nike', 'nike', 'nike', 'nike', 'adidas', 'adidas', 'adidas', 'adidas', 'other', 'other', 'other', 'other'];

function withErrors(errors: Record<number, string>): string[] {
  return truth.map((t, i) => errors[i] ?? t);
}

describe('evaluation gate', () => {
  const champion = { id: 1, evaluation: evaluate(truth, withErrors({ 0: 'nike', 4: 'jordan', 8: 'other' }), labels) };

  it('GIVEN no champion THEN the candidate is promoted', () => {
    const d = decide(evaluate(truth, truth, labels), undefined);
    expect(d).toMatchObject({ promote: true, outcome: 'no-champion' });
  });

  it('GIVEN a better macro-F1 and no recall collapse THEN promoted', () => {
    const d = decide(evaluate(truth, withErrors({ 0: 'nike' }), labels), champion);
    expect(d.promote).toBe(true);
    expect(d.outcome).toBe('promoted');
    expect(d.macroF1Delta).toBeGreaterThan(0.01);
  });

  it('GIVEN an improvement smaller than the margin THEN it stays a candidate, with the reason', () => {
    const d = decide(champion.evaluation, champion);
    expect(d).toMatchObject({ promote: false, outcome: 'kept-candidate' });
    expect(d.reason).toMatch(/does not beat it by the required 0\.010/);
  });

  it('GIVEN a better macro-F1 but one class recall dropping more than allowed THEN it stays a candidate', () => {
    // Perfect on three classes, but "other" recall falls from 1.0 to 0.5.
    const candidate = evaluate(truth, withErrors({ 12: 'nike', 13: 'nike' }), labels);
    expect(candidate.macroF1).toBeGreaterThan(champion.evaluation.macroF1 + 0.01);
    const d = decide(candidate, champion, { margin: 0.01, maxRecallDrop: 0.05 });
    expect(d).toMatchObject({ promote: false, outcome: 'kept-candidate' });
    expect(d.reason).toMatch(/Recall of "other" drops by 0\.500/);
    expect(d.recallDeltas?.other).toBeCloseTo(-0.5);
    // A looser recall rule lets it through.
    expect(decide(candidate, champion, { margin: 0.01, maxRecallDrop: 0.6 }).promote).toBe(true);
  });

  it('GIVEN a champion that cannot be evaluated on the split THEN not comparable, not promoted', () => {
    expect(decide(champion.evaluation, null, undefined, 7)).toMatchObject({ promote: false, outcome: 'not-comparable', championId: 7 });
  });

  it('GIVEN env thresholds THEN they are used, bad values fall back to defaults', () => {
    expect(gateFromEnv({ SOLESCOPE_GATE_MARGIN: '0.03', SOLESCOPE_GATE_MAX_RECALL_DROP: '0.1' })).toEqual({ margin: 0.03, maxRecallDrop: 0.1 });
    expect(gateFromEnv({ SOLESCOPE_GATE_MARGIN: 'lots', SOLESCOPE_GATE_MAX_RECALL_DROP: '-1' })).toEqual({ margin: 0.01, maxRecallDrop: 0.05 });
  });

  it('GIVEN predictions THEN the metrics match hand-computed values', () => {
    const e = evaluate(['a', 'a', 'b', 'b'], ['a', 'b', 'b', 'b'], ['a', 'b']);
    expect(e.accuracy).toBe(0.75);
    expect(e.perClass.a).toEqual({ precision: 1, recall: 0.5, f1: 2 / 3, support: 2 });
    expect(e.perClass.b?.precision).toBeCloseTo(2 / 3);
    expect(e.macroF1).toBeCloseTo((2 / 3 + 0.8) / 2);
    expect(e.confusion.matrix).toEqual([[1, 1], [0, 2]]);
    expect(formatEvaluation(e)).toContain('macro avg');
  });
});
