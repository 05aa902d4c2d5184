import { describe, it, expect, afterAll } from 'vitest';
import { getTf, mlStatus } from '../../engine/ml/index.ts';

// A separate file (vitest forks one process per file): the first successful getTf() of a process decides.
async function installed(pkg: string): Promise<boolean> {
  try {
    await import(pkg);
    return true;
  } catch {
    return false;
  }
}

const saved = process.env.SOLESCOPE_ML_BACKEND;
afterAll(() => {
  if (saved === undefined) delete process.env.SOLESCOPE_ML_BACKEND;
  else process.env.SOLESCOPE_ML_BACKEND = saved;
});

describe('ML backend choice', () => {
  it('GIVEN SOLESCOPE_ML_BACKEND=bogus THEN BAD_INPUT names the allowed values', async () => {
    process.env.SOLESCOPE_ML_BACKEND = 'bogus';
    await expect(getTf()).rejects.toMatchObject({ code: 'BAD_INPUT', message: expect.stringMatching(/auto, tensorflow-gpu/) });
    expect(mlStatus().backend).toBeNull();
  });

  it('GIVEN an explicit native backend that is not installed THEN UNAVAILABLE, not a silent fallback', async () => {
    if (await installed('@tensorflow/tfjs-node')) return; // the native backend exists on this machine
    process.env.SOLESCOPE_ML_BACKEND = 'tensorflow';
    await expect(getTf()).rejects.toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/tfjs-node/) });
    expect(mlStatus().backend).toBeNull();
  });

  it('GIVEN SOLESCOPE_ML_BACKEND=cpu THEN the cpu backend runs after earlier failures', async () => {
    process.env.SOLESCOPE_ML_BACKEND = 'cpu';
    const tf = await getTf();
    expect(tf.getBackend()).toBe('cpu');
    expect(mlStatus()).toMatchObject({ backend: 'cpu', threads: 1, simd: false });
    const y = tf.tidy(() => tf.tensor([1, 2]).mul(3));
    expect(Array.from(await y.data())).toEqual([3, 6]);
    y.dispose();
  });
});
