import { describe, it, expect } from 'vitest';
import { parseHead, predictHead } from '../../plugins/vision/lib/head.ts';
import { DUMP_TEMPERATURES, dumpAnswer, type DumpedAnswer } from '../../scripts/lib/probs-dump.ts';
import { handHead } from '../training/hand-heads.ts';

// hyped logit = 2·e0, not_hyped logit = −2·e0 (+ e1 for both): the logit gap is 4·e0.
const file = handHead({ id: 'hand-built', task: 'hype', labels: ['hyped', 'not_hyped'], kernel: [2, -2, 1, 1, 0, 0], ood: { centroids: [[1, 0, 0]], threshold: 2 } });
const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

describe('a head file’s softmax temperature', () => {
  it('GIVEN temperature 2 THEN serving divides the logits by 2 before the softmax, and the softer answer can fall under minConfidence', () => {
    const sharp = parseHead(file, 'test');
    const soft = parseHead({ ...file, temperature: 2 }, 'test');
    expect(sharp.temperature).toBe(1);
    const e = [0.25, 0.3, 0];
    // Gap 1: P(hyped) = σ(1) at temperature 1, σ(0.5) at 2.
    expect(predictHead(sharp, e).probabilities.hyped).toBeCloseTo(sigmoid(1), 12);
    expect(predictHead(soft, e).probabilities.hyped).toBeCloseTo(sigmoid(0.5), 12);
    expect(predictHead(sharp, e).label).toBe(predictHead(soft, e).label);
    // σ(1) = 0.73 clears minConfidence 0.6; σ(0.5) = 0.62 does too; a gap of 0.6 does only at temperature 1.
    const near = [0.15, 0, 0];
    expect(predictHead(sharp, near).lowConfidence).toBe(false);
    expect(predictHead(soft, near).lowConfidence).toBe(true);
  });

  it('GIVEN the calibration dump THEN each temperature’s answer is what a head file with that temperature serves, mirror view included', () => {
    const head = parseHead({ ...file, tta: 'mirror' }, 'test');
    const e = [0.4, 0, 0];
    const mirror = [0.1, 0, 0];
    const row = JSON.parse(dumpAnswer(head, e, [mirror], { task: 'hype', fold: 'held-out', source: 's', truth: 'hyped' })) as DumpedAnswer;
    expect(Object.keys(row.probs)).toEqual(DUMP_TEMPERATURES.map((t) => t.toFixed(1)));
    expect(DUMP_TEMPERATURES[0]).toBe(0.5);
    expect(DUMP_TEMPERATURES.at(-1)).toBe(4);
    for (const t of [0.5, 1, 2.7]) {
      const served = predictHead(parseHead({ ...file, tta: 'mirror', temperature: t }, 'test'), e, [mirror]).probabilities;
      expect(row.probs[t.toFixed(1)]!.hyped).toBeCloseTo(served.hyped!, 12);
    }
    expect(row).toMatchObject({ task: 'hype', fold: 'held-out', truth: 'hyped', minConfidence: 0.6, outside: false });
    // A photo the localiser found no shoe in is "no sneaker" at every temperature.
    expect((JSON.parse(dumpAnswer(head, e, [mirror], { task: 'hype', fold: 'busy', source: 's', truth: 'hyped', noShoe: true })) as DumpedAnswer).outside).toBe(true);
  });
});
