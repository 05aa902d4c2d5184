/**
 * Progress edits are throttled: the first event shows at once, a burst is coalesced into one edit of the
 * latest event per interval, and nothing is edited after stop() (so progress never overwrites a result).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { silentLogger, type ProgressEvent } from '../../engine/index.ts';
import { ProgressThrottle } from '../../bot/discord/progress.ts';
import { renderProgress } from '../../bot/discord/render.ts';

afterEach(() => {
  vi.useRealTimers();
});

describe('GIVEN a progress throttle of 1.5 s', () => {
  it('THEN a burst of events becomes one edit per interval, with the latest event', async () => {
    vi.useFakeTimers();
    const edits: ProgressEvent[] = [];
    const t = new ProgressThrottle(async (e) => void edits.push(e), silentLogger(), 1500);
    t.push({ fraction: 0.1 });
    await vi.advanceTimersByTimeAsync(0);
    expect(edits.map((e) => e.fraction)).toEqual([0.1]);
    for (let i = 2; i <= 9; i += 1) t.push({ fraction: i / 10 });
    await vi.advanceTimersByTimeAsync(1000);
    expect(edits).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(600);
    expect(edits.map((e) => e.fraction)).toEqual([0.1, 0.9]);
    t.push({ fraction: 0.95 });
    await t.stop();
    await vi.advanceTimersByTimeAsync(5000);
    expect(edits.map((e) => e.fraction)).toEqual([0.1, 0.9]);
    expect(t.edits).toBe(2);
  });

  it('THEN stop() waits for an edit in flight and a failing edit is only logged', async () => {
    let release: () => void = () => undefined;
    const order: string[] = [];
    const t = new ProgressThrottle(
      (e) =>
        e.fraction === 0.5
          ? new Promise<void>((r) => {
              release = () => {
                order.push('edit done');
                r();
              };
            })
          : Promise.reject(new Error('429')),
      silentLogger(),
      0,
    );
    t.push({ fraction: 0.5 });
    await new Promise((r) => setTimeout(r, 10));
    const stopped = t.stop().then(() => order.push('stopped'));
    release();
    await stopped;
    expect(order).toEqual(['edit done', 'stopped']);
    const failing = new ProgressThrottle(() => Promise.reject(new Error('429')), silentLogger(), 0);
    failing.push({ fraction: 0.2 });
    await new Promise((r) => setTimeout(r, 10));
    await expect(failing.stop()).resolves.toBeUndefined();
  });

  it('THEN the rendered progress has the stage, the bar and the queue position', () => {
    const text = renderProgress('train', { fraction: 0.5, stage: 'epoch 3/10', queuePosition: 2, metrics: { loss: 0.12345, epoch: 3 } });
    expect(text).toContain('`train` — epoch 3/10');
    expect(text).toContain('Waiting in the queue: position 2');
    expect(text).toContain('[██████████░░░░░░░░░░] 50%');
    expect(text).toContain('loss 0.1235 · epoch 3');
  });
});
