/**
 * What a command or job handler receives: who is asking, through which transport, the shared services,
 * and callbacks for progress. Built by transports through `engine.createContext()`.
 */
import type { ProgressEvent } from './reply.ts';
import type { Engine } from './engine.ts';
import type { Config } from './config.ts';
import type { Logger } from './logger.ts';
import type { Store } from './store/index.ts';
import type { JobRunner } from './jobs.ts';
import type { RateLimiter } from './guards.ts';

/** Where a request came from. */
export type TransportName = 'cli' | 'http' | 'discord' | 'job' | 'webhook' | 'test';

/** The caller. */
export interface Caller {
  /** Stable id: Discord user id, `cli:<os user>`, `http:<api key id or ip>`. */
  readonly id: string;
  readonly name?: string;
  /** Role ids (Discord) or names (HTTP keys). */
  readonly roles?: readonly string[];
  /** Holds moderator rights (Discord Manage Guild / configured role; CLI operator; HTTP admin token). */
  readonly isModerator?: boolean;
  /** Holds admin rights. */
  readonly isAdmin?: boolean;
}

/**
 * Services shared by every plugin. Plugins add their own with `engine.provide(name, value)` and extend
 * this interface by declaration merging so `ctx.services.<name>` is typed:
 * `declare module '../../engine/context.ts' { interface Services { vision: VisionService } }`.
 */
export interface Services {
  readonly config: Config;
  readonly logger: Logger;
  /** The SQL store (SQLite or Postgres). */
  readonly store: Store;
  /** The job runner: BullMQ when wired by `jobs/`, else the in-process runner. */
  readonly jobs: JobRunner;
  readonly rateLimiter: RateLimiter;
}

/** Context of one command invocation. */
export interface CommandContext {
  readonly engine: Engine;
  readonly transport: TransportName;
  readonly caller: Caller;
  readonly guildId?: string;
  readonly channelId?: string;
  /** Correlates logs across transport, engine and jobs. */
  readonly requestId: string;
  readonly logger: Logger;
  readonly services: Services;
  /** Local file paths are accepted as image inputs (CLI, trusted jobs) — never over HTTP or Discord. */
  readonly allowLocalPaths: boolean;
  /** Aborted when the caller goes away or the process shuts down. */
  readonly signal: AbortSignal;
  /** Report progress; transports throttle and render it. */
  progress(event: ProgressEvent): void;
}

/** Context of a job run (in a worker, possibly in another process or machine). */
export interface JobContext {
  readonly jobId: string;
  readonly attempt: number;
  readonly logger: Logger;
  readonly services: Services;
  readonly engine: Engine;
  readonly signal: AbortSignal;
  /** Report progress (stage, fraction, metrics such as epoch, loss, ETA). */
  progress(event: ProgressEvent): Promise<void> | void;
  /** Save a checkpoint so a retried attempt can resume (stored in the store, keyed by job id). */
  checkpoint(state: Uint8Array | Record<string, unknown>): Promise<void>;
  /** The last checkpoint saved by an earlier attempt of this job, if any. */
  lastCheckpoint(): Promise<Uint8Array | Record<string, unknown> | undefined>;
}
