/**
 * A bounded in-process request coalescer: concurrent single-item calls share one batched run.
 *
 * A batched forward pass costs far less per image than single ones (MobileNetV2 on onnxruntime: ~6 ms at
 * batch 1, ~5 ms/image at batch 16 on one core, and more so on several), so when several users ask at once
 * their images ride together. Policy:
 * - at most `maxInFlight` batches run at once (default 1: a second concurrent run only splits the same cores);
 * - when idle, the first item waits at most `maxWaitMs` for company, and a full batch starts at once;
 * - while a batch runs, new items queue and the next batch takes up to `maxBatch` of them when it ends, so
 *   under load batches grow by themselves and latency stays one batch deep;
 * - at most `maxPending` items wait; beyond that {@link Coalescer.submit} rejects with `UNAVAILABLE` at once
 *   rather than letting memory and latency grow without bound.
 */
import { EngineError } from '../../errors.ts';

/** Options of a {@link Coalescer}. */
export interface CoalescerOptions {
  /** Most items in one batch (default 16). */
  readonly maxBatch?: number;
  /** Longest an item waits for company when nothing is running, in ms (default 3). */
  readonly maxWaitMs?: number;
  /** Most items waiting (not yet in a running batch) before submit rejects (default 256). */
  readonly maxPending?: number;
  /** Batches allowed to run concurrently (default 1). */
  readonly maxInFlight?: number;
}

/** Counters for `status` and tests. */
export interface CoalescerStats {
  readonly batches: number;
  readonly items: number;
  readonly largestBatch: number;
  readonly rejected: number;
  readonly pending: number;
  readonly inFlight: number;
}

interface Waiting<I, O> {
  readonly item: I;
  readonly resolve: (value: O) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Batches concurrent {@link submit} calls into calls of `runBatch(items)`, which must return one result per
 * item, in order. A failing batch rejects each of its items with the error; other batches are unaffected.
 */
export class Coalescer<I, O> {
  private readonly runBatch: (items: I[]) => Promise<O[]>;
  private readonly maxBatch: number;
  private readonly maxWaitMs: number;
  private readonly maxPending: number;
  private readonly maxInFlight: number;
  private queue: Waiting<I, O>[] = [];
  private timer: NodeJS.Timeout | null = null;
  private inFlight = 0;
  private closed = false;
  private counters = { batches: 0, items: 0, largestBatch: 0, rejected: 0 };

  constructor(runBatch: (items: I[]) => Promise<O[]>, opts: CoalescerOptions = {}) {
    this.runBatch = runBatch;
    this.maxBatch = Math.max(1, Math.floor(opts.maxBatch ?? 16));
    this.maxWaitMs = Math.max(0, opts.maxWaitMs ?? 3);
    this.maxPending = Math.max(1, Math.floor(opts.maxPending ?? 256));
    this.maxInFlight = Math.max(1, Math.floor(opts.maxInFlight ?? 1));
  }

  /** Queues one item; resolves with its own result once its batch has run. */
  submit(item: I): Promise<O> {
    if (this.closed) return Promise.reject(new EngineError('UNAVAILABLE', 'The inference queue is closed'));
    if (this.queue.length >= this.maxPending) {
      this.counters.rejected++;
      return Promise.reject(
        new EngineError('UNAVAILABLE', `The inference queue is full (${this.maxPending} waiting); try again shortly`, {
          details: { pending: this.queue.length },
        }),
      );
    }
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.schedule();
    });
  }

  /** Current counters. */
  stats(): CoalescerStats {
    return { ...this.counters, pending: this.queue.length, inFlight: this.inFlight };
  }

  /** Rejects everything still waiting and refuses new items; running batches finish normally. */
  close(): void {
    this.closed = true;
    this.clearTimer();
    const waiting = this.queue;
    this.queue = [];
    for (const w of waiting) w.reject(new EngineError('UNAVAILABLE', 'The inference queue was closed'));
  }

  private schedule(): void {
    if (this.inFlight >= this.maxInFlight || this.queue.length === 0) return; // the running batch's end flushes
    if (this.queue.length >= this.maxBatch || this.maxWaitMs === 0) {
      this.flush();
      return;
    }
    this.timer ??= setTimeout(() => {
      this.timer = null;
      this.flush();
    }, this.maxWaitMs);
  }

  private flush(): void {
    this.clearTimer();
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      this.inFlight++;
      this.counters.batches++;
      this.counters.items += batch.length;
      this.counters.largestBatch = Math.max(this.counters.largestBatch, batch.length);
      void this.execute(batch);
    }
  }

  private async execute(batch: Waiting<I, O>[]): Promise<void> {
    try {
      const results = await this.runBatch(batch.map((w) => w.item));
      if (results.length !== batch.length) {
        throw new EngineError('INTERNAL', `A batch of ${batch.length} returned ${results.length} results`);
      }
      batch.forEach((w, i) => w.resolve(results[i]!));
    } catch (error) {
      for (const w of batch) w.reject(error);
    } finally {
      this.inFlight--;
      // Whatever queued while this batch ran goes now, without waiting for a timer.
      if (this.queue.length > 0) this.flush();
    }
  }

  private clearTimer(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }
}
