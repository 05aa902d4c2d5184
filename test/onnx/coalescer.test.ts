/**
 * The request coalescer: concurrent single calls share batches, results map back to their callers, batches
 * never exceed the cap, failures stay inside their batch, and the queue is bounded. No timings are asserted:
 * every scenario submits synchronously, so batch composition is deterministic.
 */
import { describe, expect, it } from 'vitest';
import { Coalescer } from '../../engine/ml/onnx/index.ts';

/** A batch runner that records batch sizes and answers item × 10 after a macrotask. */
function recorder(): { sizes: number[]; run: (items: number[]) => Promise<number[]> } {
  const sizes: number[] = [];
  return {
    sizes,
    run: async (items) => {
      sizes.push(items.length);
      await new Promise((resolve) => setImmediate(resolve));
      return items.map((i) => i * 10);
    },
  };
}

describe('Coalescer', () => {
  it('GIVEN 5 concurrent calls THEN they run as one batch and each gets its own result', async () => {
    const r = recorder();
    const c = new Coalescer(r.run, { maxBatch: 16, maxWaitMs: 20 });
    const results = await Promise.all([1, 2, 3, 4, 5].map((i) => c.submit(i)));
    expect(results).toEqual([10, 20, 30, 40, 50]);
    expect(r.sizes).toEqual([5]);
    expect(c.stats()).toMatchObject({ batches: 1, items: 5, largestBatch: 5, pending: 0, inFlight: 0 });
  });

  it('GIVEN more calls than maxBatch THEN a full batch starts at once and the rest follow when it ends', async () => {
    const r = recorder();
    const c = new Coalescer(r.run, { maxBatch: 4, maxWaitMs: 1000 });
    const inputs = Array.from({ length: 10 }, (_, i) => i);
    // maxWaitMs is long: finishing at all proves full batches do not wait for the timer.
    const results = await Promise.all(inputs.map((i) => c.submit(i)));
    expect(results).toEqual(inputs.map((i) => i * 10));
    expect(r.sizes).toEqual([4, 4, 2]);
    expect(Math.max(...r.sizes)).toBeLessThanOrEqual(4);
  });

  it('GIVEN calls arriving while a batch runs THEN they form the next batch together', async () => {
    const sizes: number[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const c = new Coalescer<number, number>(
      async (items) => {
        sizes.push(items.length);
        if (sizes.length === 1) await gate;
        return items.map((i) => -i);
      },
      { maxBatch: 8, maxWaitMs: 0 },
    );
    const first = c.submit(1);
    const later = [2, 3, 4].map((i) => c.submit(i));
    expect(c.stats()).toMatchObject({ inFlight: 1, pending: 3 });
    release();
    expect(await first).toBe(-1);
    expect(await Promise.all(later)).toEqual([-2, -3, -4]);
    expect(sizes).toEqual([1, 3]);
  });

  it('GIVEN a failing batch THEN only its callers reject and the next batch still runs', async () => {
    let calls = 0;
    const c = new Coalescer<number, number>(
      async (items) => {
        calls++;
        if (calls === 1) throw new Error('boom');
        return items.map((i) => i + 1);
      },
      { maxBatch: 2, maxWaitMs: 5 },
    );
    const settled = await Promise.allSettled([1, 2, 3].map((i) => c.submit(i)));
    expect(settled[0]).toMatchObject({ status: 'rejected', reason: new Error('boom') });
    expect(settled[1]).toMatchObject({ status: 'rejected' });
    expect(settled[2]).toEqual({ status: 'fulfilled', value: 4 });
  });

  it('GIVEN a batch runner returning the wrong count THEN callers get INTERNAL, not a wrong answer', async () => {
    const c = new Coalescer<number, number>(async (items) => items.slice(1), { maxWaitMs: 1 });
    const settled = await Promise.allSettled([1, 2].map((i) => c.submit(i)));
    for (const s of settled) expect(s).toMatchObject({ status: 'rejected', reason: { code: 'INTERNAL' } });
  });

  it('GIVEN a full queue THEN submit rejects at once with UNAVAILABLE; close rejects the waiting', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const c = new Coalescer<number, number>(
      async (items) => {
        await gate;
        return items;
      },
      { maxBatch: 1, maxWaitMs: 0, maxPending: 2 },
    );
    const running = c.submit(0); // in flight
    const waiting = [c.submit(1), c.submit(2)]; // the 2 allowed to wait
    await expect(c.submit(3)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    expect(c.stats()).toMatchObject({ rejected: 1, pending: 2, inFlight: 1 });
    c.close();
    for (const w of waiting) await expect(w).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    await expect(c.submit(4)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    release();
    expect(await running).toBe(0);
  });
});
