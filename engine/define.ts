/**
 * The plugin contract: `defineCommand`, `defineJob`, `defineGuard` and `definePlugin`.
 * A plugin file is plain data plus functions; the engine checks its shape again when it is registered.
 */
import { z } from 'zod';
import type { ProgressEvent, Reply } from './reply.ts';
import type { CommandContext, JobContext } from './context.ts';
import type { Engine } from './engine.ts';

/** Who may run a command. `moderator` maps to Discord's Manage Guild permission or a configured role. */
export type Permission = 'everyone' | 'moderator' | 'admin';

/** Per-command rate limits, enforced in one place (the engine's guard pipeline). */
export interface CooldownSpec {
  /** Minimum time between two runs by the same user, in ms. */
  readonly perUserMs?: number;
  /** Maximum runs per guild per UTC day. */
  readonly perGuildDaily?: number;
}

/** Autocomplete provider: returns up to 25 suggestions for a partial value. */
export type Autocomplete = (partial: string, ctx: CommandContext) => Promise<readonly string[]> | readonly string[];

/** A command definition with its zod options schema. */
export interface CommandDefinition<S extends z.ZodObject = z.ZodObject> {
  /** `hype`, or a space-separated group: `dataset import`, `models info`. Lowercase, `[a-z0-9-]`. */
  readonly name: string;
  /** One line shown in help, slash-command lists and tool descriptions. */
  readonly description: string;
  /** The one schema from which every transport's options are derived. Use `.strict()` objects. */
  readonly options: S;
  /** CLI positional options in order (default: image options in declaration order). */
  readonly positional?: readonly (keyof z.input<S> & string)[];
  readonly permissions?: Permission;
  readonly cooldown?: CooldownSpec;
  /** Refuse outside a guild (Discord DMs). */
  readonly guildOnly?: boolean;
  /** Long-running: transports show progress and Discord defers. */
  readonly long?: boolean;
  /** Names of guards (registered by plugins) run before the handler. */
  readonly guards?: readonly string[];
  /** Autocomplete providers per option name. */
  readonly autocomplete?: Partial<Record<keyof z.input<S> & string, Autocomplete>>;
  /** Hidden from the LLM router's tools (e.g. destructive moderator commands). */
  readonly hiddenFromTools?: boolean;
  /** The handler. Throw `EngineError` (see `fail`) for expected failures. */
  run(input: z.output<S>, ctx: CommandContext): Promise<Reply> | Reply;
}

/** A registered command (schema type erased). */
export type AnyCommand = CommandDefinition<z.ZodObject>;

/** Define a command; the identity function that gives `run` its parsed input type. */
export function defineCommand<S extends z.ZodObject>(definition: CommandDefinition<S>): CommandDefinition<S> {
  return definition;
}

/** A job definition: validated data, a handler, and how to run it. */
export interface JobDefinition<D extends z.ZodType = z.ZodType, R = unknown> {
  /** Unique job name, e.g. `vision.train`. */
  readonly name: string;
  /** Data schema, checked when enqueued and again in the processor. */
  readonly data: D;
  /**
   * Absolute path (or file URL) of a module whose default export is this same `JobDefinition`, to run it
   * sandboxed (a separate process) so heavy tfjs work cannot starve the queue's lock renewal.
   */
  readonly processorFile?: string;
  /** Attempts for transient failures (default 3), with exponential backoff. */
  readonly attempts?: number;
  /** Jobs of this name one worker runs at once (default 1). */
  readonly concurrency?: number;
  /** Runs the job. Report progress with `ctx.progress`; checkpoint with `ctx.checkpoint`. */
  run(data: z.output<D>, ctx: JobContext): Promise<R>;
}

/** A registered job (types erased). */
export type AnyJob = JobDefinition<z.ZodType, unknown>;

/** Define a job. */
export function defineJob<D extends z.ZodType, R>(definition: JobDefinition<D, R>): JobDefinition<D, R> {
  return definition;
}

/** A named, reusable precondition. Throw an `EngineError` (FORBIDDEN, RATE_LIMITED, …) to deny. */
export interface GuardDefinition {
  readonly name: string;
  check(command: AnyCommand, input: unknown, ctx: CommandContext): Promise<void> | void;
}

/** Define a guard. */
export function defineGuard(definition: GuardDefinition): GuardDefinition {
  return definition;
}

/** Lifecycle hooks a plugin may add. */
export interface PluginHooks {
  /** After every plugin is registered and set up. */
  onReady?(engine: Engine): Promise<void> | void;
  /** Before each command (after guards and validation). Throw to deny. */
  beforeCommand?(command: AnyCommand, input: unknown, ctx: CommandContext): Promise<void> | void;
  /** After each successful command. */
  afterCommand?(command: AnyCommand, reply: Reply, ctx: CommandContext): Promise<void> | void;
  /** After each failed command (the error is already normalised). */
  onError?(command: AnyCommand | undefined, error: Error, ctx: CommandContext | undefined): Promise<void> | void;
  /** On shutdown: drain, dispose models, close connections. Runs in reverse registration order. */
  onClose?(engine: Engine): Promise<void> | void;
}

/** A plugin: a named bundle of commands, jobs, guards, hooks and services. */
export interface PluginDefinition {
  /** Unique name, kebab-case. */
  readonly name: string;
  readonly description?: string;
  /** Plugins (by name) that must be registered before this one. */
  readonly requires?: readonly string[];
  /** Service names this plugin adds with `engine.provide()` in `setup`. */
  readonly provides?: readonly string[];
  readonly commands?: readonly AnyCommand[];
  readonly jobs?: readonly AnyJob[];
  readonly guards?: readonly GuardDefinition[];
  readonly hooks?: PluginHooks;
  /** Runs once at registration, in dependency order: provide services, read config. */
  setup?(engine: Engine): Promise<void> | void;
  /** Contributes a section to the `status` command (ML backend, queue health, model versions…). */
  status?(engine: Engine): Promise<Record<string, unknown>> | Record<string, unknown>;
  /** Handles button presses whose id starts with `<plugin name>:`. */
  onAction?(actionId: string, ctx: CommandContext): Promise<Reply> | Reply;
}

/** Define a plugin. */
export function definePlugin(definition: PluginDefinition): PluginDefinition {
  return definition;
}

const nameRe = /^[a-z0-9][a-z0-9-]*( [a-z0-9][a-z0-9-]*){0,2}$/;

/** Runtime shape check for loaded plugin modules (a wrong default export fails loudly, not later). */
export const pluginShapeSchema = z.object({
  name: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'plugin names are kebab-case'),
  description: z.string().optional(),
  requires: z.array(z.string()).optional(),
  provides: z.array(z.string()).optional(),
  commands: z
    .array(
      z.object({
        name: z.string().regex(nameRe, 'command names are kebab-case words, at most 3'),
        description: z.string().min(1).max(100),
        options: z.custom<z.ZodObject>((v) => v instanceof z.ZodObject, 'options must be a z.object schema'),
        run: z.custom<(...args: unknown[]) => unknown>((v) => typeof v === 'function', 'run must be a function'),
      }),
    )
    .optional(),
  jobs: z
    .array(
      z.object({
        name: z.string().min(1),
        data: z.custom<z.ZodType>((v) => v instanceof z.ZodType, 'data must be a zod schema'),
        run: z.custom<(...args: unknown[]) => unknown>((v) => typeof v === 'function', 'run must be a function'),
      }),
    )
    .optional(),
});

/** Progress callback type. */
export type ProgressFn = (event: ProgressEvent) => void;
