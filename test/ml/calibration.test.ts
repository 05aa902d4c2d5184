import { describe, it, expect } from 'vitest';
import { calibrationReport, fitTemperature, TEMPERATURE_GRID } from '../../engine/ml/calibration.ts';
import { headModelSchema, headProbabilities, headProbabilitiesAt } from '../../engine/ml/head.ts';

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

describe('choosing a temperature', () => {
  // A hype head whose logits are ±ln 3 on every photo, right 3 times in 4: at temperature T it says
  // sigmoid(2 ln 3 / T), and the log-loss is lowest where that equals 3/4, at T = 2.
  const m = 2 * Math.log(3);
  const truth = [...Array(18).fill('hyped'), ...Array(6).fill('not_hyped')] as string[];
  const answers = truth.map(() => TEMPERATURE_GRID.map((t) => hype(1 / (1 + Math.exp(-m / t)))));

  it('GIVEN an overconfident head THEN the grid point with the lowest log-loss is chosen: T = 2', () => {
    const fit = fitTemperature(truth, answers, TEMPERATURE_GRID);
    expect(fit.temperature).toBe(2);
    expect(fit.nll).toBeCloseTo(-(0.75 * Math.log(0.75) + 0.25 * Math.log(0.25)), 9);
    // Only the grid it is given: from 2.5 up, the nearest to 2 is chosen.
    const upper = TEMPERATURE_GRID.filter((t) => t >= 2.5);
    expect(fitTemperature(truth, answers.map((a) => a.slice(TEMPERATURE_GRID.indexOf(2.5))), upper).temperature).toBe(2.5);
    expect(() => fitTemperature([], [], TEMPERATURE_GRID)).toThrow(/one answer list per item/);
  });

  it('GIVEN a head with an open-set brand share and a mirror view THEN the answers at each temperature are what serving answers at it', () => {
    const head = headModelSchema.parse({
      format: 'solescope-head',
      version: 1,
      id: 'open-set',
      task: 'brand',
      labels: ['jordan', 'nike', 'adidas'],
      backbone: 'synthetic',
      prepVersion: 'test',
      features: { trim: false, flipAverage: false, l2: true },
      standardise: { mean: [0, 0, 0], std: [1, 1, 1] },
      layers: [{ inputs: 3, units: 3, kernel: [3, 0, 0, 0, 3, 0, 0, 0, 3], bias: [0, 0, 0], activation: 'linear' }],
      openSet: { centroids: [[1, 0, 0], [0, 1, 0], [0, 0, 1]], radius: [0.1, 0.1, 0.1], spread: [0.05, 0.05, 0.05] },
      ood: { centroids: [[1, 0, 0]], threshold: 2 },
      seed: 1,
      createdAt: '2026-12-07T00:00:00.000Z',
    });
    const photo = [0.9, 0.4, 0.1];
    const mirror = [0.5, 0.8, 0.2];
    const temps = [0.5, 1, 2.1, 4];
    const at = headProbabilitiesAt(head, photo, [mirror], temps);
    temps.forEach((t, k) => expect(at[k]).toEqual(headProbabilities({ ...head, temperature: t }, photo, [mirror])));
    // The temperature moves the open-set share too (it weighs each class's distance by the softmax).
    expect(at[0]!.other).not.toBeCloseTo(at[3]!.other!, 3);
  });
});
