import { describe, it, expect } from 'vitest';
import { calibrationReport } from '../../engine/ml/calibration.ts';

const hype = (p: number) => ({ hyped: p, not_hyped: 1 - p });

describe('calibration report', () => {
  it('GIVEN answers 80 % sure that are right 8 times in 10 THEN the error is 0 and the 0.8 bin holds them', () => {
    const truth = [...Array(8).fill('hyped'), ...Array(2).fill('not_hyped')] as string[];
    const r = calibrationReport(truth, truth.map(() => hype(0.8)));
    expect(r.n).toBe(10);
    expect(r.ece).toBeCloseTo(0, 12);
    expect(r.accuracy).toBeCloseTo(0.8, 12);
    expect(r.meanConfidence).toBeCloseTo(0.8, 12);
    const bin = r.bins.find((b) => b.n > 0)!;
    expect([bin.lo, bin.hi, bin.n]).toEqual([0.8, 0.9, 10]);
    expect(r.bins.filter((b) => b.n === 0).every((b) => b.accuracy === null && b.confidence === null)).toBe(true);
    // NLL: 8 × −ln 0.8 + 2 × −ln 0.2, over 10. Brier: 8 × (0.04 + 0.04) + 2 × (0.64 + 0.64), over 10.
    expect(r.nll).toBeCloseTo((8 * -Math.log(0.8) + 2 * -Math.log(0.2)) / 10, 12);
    expect(r.brier).toBeCloseTo((8 * 0.08 + 2 * 1.28) / 10, 12);
  });

  it('GIVEN certain answers that are right half the time THEN the error is one half, in the last bin', () => {
    const r = calibrationReport(['hyped', 'not_hyped', 'hyped', 'not_hyped'], [hype(1), hype(1), hype(0), hype(0)]);
    expect(r.ece).toBeCloseTo(0.5, 12);
    expect(r.bins.at(-1)!.n).toBe(4);
    // A true label at probability 0 costs −ln 1e-12, not infinity.
    expect(r.nll).toBeCloseTo((2 * -Math.log(1e-12)) / 4, 9);
    expect(r.brier).toBeCloseTo(1, 12);
  });

  it('GIVEN bins that disagree in opposite directions THEN their gaps add, weighted by their shares', () => {
    // 3 answers at 0.95 with 1 right (gap 0.95 − 1/3), 1 answer at 0.55, right (gap 0.45).
    const truth = ['hyped', 'not_hyped', 'not_hyped', 'hyped'];
    const r = calibrationReport(truth, [hype(0.95), hype(0.95), hype(0.95), hype(0.55)]);
    expect(r.ece).toBeCloseTo((3 / 4) * (0.95 - 1 / 3) + (1 / 4) * 0.45, 12);
  });

  it('GIVEN a true label the answer does not name THEN it counts as probability 0', () => {
    const r = calibrationReport(['other'], [{ jordan: 0.7, nike: 0.3 }]);
    expect(r.accuracy).toBe(0);
    expect(r.brier).toBeCloseTo(0.49 + 0.09 + 1, 12);
  });

  it('GIVEN mismatched lengths or a bad bin count THEN it refuses', () => {
    expect(() => calibrationReport(['hyped'], [])).toThrow(/1 items/);
    expect(() => calibrationReport(['hyped'], [hype(0.5)], 0)).toThrow(/binCount/);
  });
});
