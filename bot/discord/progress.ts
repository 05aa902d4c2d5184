/**
 * Throttled progress edits. Discord allows about five message edits per 5 s per channel; a training job
 * reports progress far more often. Only the latest event matters, so events are coalesced and the
 * message is edited at most once per interval (the first event is shown at once).
 */
import type { Logger, ProgressEvent } from '../../engine/index.ts';

/** Default minimum time between two progress edits, in ms. */
export const PROGRESS_INTERVAL_MS = 1500;

/** Coalesces progress events into at most one edit per interval. */
export class ProgressThrottle {
  private latest: ProgressEvent | undefined;
  private lastEditAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> = Promise.resolve();
  private stopped = false;
  /** Edits actually sent (for logs and tests). */
  edits = 0;

  constructor(
    private readonly edit: (event: ProgressEvent) => Promise<unknown>,
    private readonly logger: Logger,
    private readonly intervalMs = PROGRESS_INTERVAL_MS,
  ) {}

  /** Record an event; edits now or schedules one edit for when the interval allows. */
  push(event: ProgressEvent): void {
    if (this.stopped) return;
    this.latest = event;
    if (this.timer) return;
    const wait = Math.max(0, this.lastEditAt + this.intervalMs - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, wait);
    this.timer.unref();
  }

  private flush(): void {
    const event = this.latest;
    if (this.stopped || !event) return;
    this.latest = undefined;
    this.lastEditAt = Date.now();
    this.inFlight = this.inFlight
      .then(async () => {
        if (this.stopped) return;
        this.edits += 1;
        await this.edit(event);
      })
      .catch((err: unknown) => this.logger.warn('progress edit failed', { err }));
  }

  /** Stop editing and wait for an edit in flight, so the final reply is never overwritten by progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.inFlight;
  }
}
