import { describe, expect, it } from 'vitest';
import { LABEL_SMOOTHINGS, sampleParams, searchSpace, trialJobSchema } from '../../plugins/training/jobs.ts';
import { Rng } from '../../plugins/training/lib/head.ts';

describe('tune search space', () => {
  it('GIVEN a seed THEN the trials are the same each time, and label smoothing takes each of its values', () => {
    const a = searchSpace(30, 7);
    expect(searchSpace(30, 7)).toEqual(a);
    expect(new Set(a.map((p) => p.labelSmoothing))).toEqual(new Set(LABEL_SMOOTHINGS));
    expect(searchSpace(30, 8)).not.toEqual(a);
  });

  it('GIVEN label smoothing in the search THEN every other parameter of a seed is what the seed gave before', () => {
    // What searchSpace drew before smoothing was searched: sampleParams on one stream of the seed.
    const rng = new Rng(7);
    const before = Array.from({ length: 12 }, () => sampleParams(rng));
    const now = searchSpace(12, 7);
    expect(now.map(({ labelSmoothing: _, ...rest }) => rest)).toEqual(before.map(({ labelSmoothing: _, ...rest }) => rest));
  });

  it('GIVEN a trial queued before label smoothing existed THEN its data still validates', () => {
    const { labelSmoothing: _, ...old } = searchSpace(1, 3)[0]!;
    const parsed = trialJobSchema.safeParse({ tuneId: 't', trial: 0, task: 'brand', epochs: 5, seed: 3, params: old });
    expect(parsed.success, JSON.stringify(parsed.error?.issues)).toBe(true);
    const bad = trialJobSchema.safeParse({ tuneId: 't', trial: 0, task: 'brand', epochs: 5, seed: 3, params: { ...old, labelSmoothing: 0.9 } });
    expect(bad.success).toBe(false);
  });
});
