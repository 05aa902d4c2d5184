/**
 * The engine: registries (commands, jobs, guards, plugins), plugin dependency checks, lifecycle hooks,
 * services, and `invoke` — the in-process caller every transport and test uses.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { z } from 'zod';
import {
  pluginShapeSchema,
  type AnyCommand,
  type AnyJob,
  type GuardDefinition,
  type PluginDefinition,
} from './define.ts';
import type { Caller, CommandContext, Services, TransportName } from './context.ts';
import { EngineError, toEngineError } from './errors.ts';
import { builtInGuards, MemoryRateLimiter, type RateLimiter } from './guards.ts';
import { InlineJobRunner, type JobRunner } from './jobs.ts';
import { silentLogger, type Logger } from './logger.ts';
import { createMetrics, type EngineMetrics } from './metrics.ts';
import type { ProgressEvent, Reply } from './reply.ts';
import { describeOptions, formatZodError, toJsonSchema, type OptionSpec } from './schema.ts';
import type { Config } from './config.ts';
import { loadConfig } from './config.ts';
import type { Store } from './store/index.ts';

/** Result of {@link Engine.invoke}: a value, never a throw, so every transport handles both shapes. */
export type InvokeResult =
  | { readonly ok: true; readonly command: string; readonly reply: Reply; readonly durationMs: number }
  | { readonly ok: false; readonly command: string; readonly error: EngineError; readonly durationMs: number };

/** Typed events of the command pipeline (logging and metrics subscribe in one place). */
export interface EngineEvents {
  'command:run': [name: string, ctx: CommandContext];
  'command:success': [name: string, reply: Reply, ctx: CommandContext, durationMs: number];
  'command:denied': [name: string, error: EngineError, ctx: CommandContext];
  'command:error': [name: string, error: EngineError, ctx: CommandContext | undefined];
  'plugin:registered': [name: string];
}

/** What a transport supplies to build a context. Everything is optional except the transport name. */
export interface ContextInit {
  readonly transport: TransportName;
  readonly caller?: Caller;
  readonly guildId?: string | undefined;
  readonly channelId?: string | undefined;
  readonly requestId?: string;
  readonly allowLocalPaths?: boolean;
  readonly signal?: AbortSignal;
  readonly onProgress?: (event: ProgressEvent) => void;
}

/** Options of the engine. Missing services get in-process defaults. */
export interface EngineOptions {
  readonly config?: Config;
  readonly logger?: Logger;
  readonly store?: Store;
  readonly jobs?: JobRunner;
  readonly rateLimiter?: RateLimiter;
  readonly metrics?: EngineMetrics;
}

/** A command with its derived option specs (cached once at registration). */
export interface RegisteredCommand {
  readonly plugin: string;
  readonly definition: AnyCommand;
  readonly options: readonly OptionSpec[];
}

/** The engine. Create one per process with {@link createEngine}. */
export class Engine {
  readonly commands = new Map<string, RegisteredCommand>();
  readonly jobs = new Map<string, AnyJob>();
  readonly guards = new Map<string, GuardDefinition>();
  readonly plugins = new Map<string, PluginDefinition>();
  readonly events = new EventEmitter<EngineEvents>();
  readonly metrics: EngineMetrics;
  readonly startedAt = Date.now();
  private readonly provided = new Map<string, unknown>();
  private readonly providedBy = new Map<string, string>();
  private store: Store | undefined;
  private jobRunner: JobRunner;
  private rateLimiter: RateLimiter;
  private ready = false;
  private closed = false;
  readonly config: Config;
  readonly logger: Logger;
  private readonly shutdown = new AbortController();

  constructor(options: EngineOptions = {}) {
    this.config = options.config ?? loadConfig({});
    this.logger = options.logger ?? silentLogger();
    this.metrics = options.metrics ?? createMetrics(false);
    this.store = options.store;
    this.rateLimiter = options.rateLimiter ?? new MemoryRateLimiter();
    this.jobRunner = options.jobs ?? new InlineJobRunner(this, () => this.services);
    this.events.setMaxListeners(0);
    for (const guard of builtInGuards) this.guards.set(guard.name, guard);
  }

  /** The shared services (plus everything plugins provided). */
  get services(): Services {
    const services: Record<string, unknown> = {
      config: this.config,
      logger: this.logger,
      jobs: this.jobRunner,
      rateLimiter: this.rateLimiter,
    };
    const store = this.store;
    Object.defineProperty(services, 'store', {
      enumerable: true,
      get: (): Store => {
        if (!store) throw new EngineError('UNAVAILABLE', 'No store is configured for this engine.');
        return store;
      },
    });
    for (const [k, v] of this.provided) services[k] = v;
    return services as unknown as Services;
  }

  /** Replace the job runner (the BullMQ runner from `jobs/` is set by the composition root). */
  useJobRunner(runner: JobRunner): void {
    this.jobRunner = runner;
  }

  /** Replace the rate limiter (Redis-backed in multi-process deployments). */
  useRateLimiter(limiter: RateLimiter): void {
    this.rateLimiter = limiter;
  }

  /** Attach the store. */
  useStore(store: Store): void {
    this.store = store;
  }

  /** The store, if one is attached. */
  get hasStore(): boolean {
    return this.store !== undefined;
  }

  /** Add a named service visible to every plugin as `ctx.services.<name>`. */
  provide(name: string, value: unknown, plugin = 'engine'): void {
    if (this.provided.has(name) || ['config', 'logger', 'store', 'jobs', 'rateLimiter'].includes(name)) {
      throw new EngineError('CONFLICT', `Service "${name}" is already provided (by ${this.providedBy.get(name) ?? 'the engine'}).`, {
        details: { code: 'ENGINE_ERR_SERVICE_EXISTS' },
      });
    }
    this.provided.set(name, value);
    this.providedBy.set(name, plugin);
  }

  /** A provided service, or undefined. */
  service<T>(name: string): T | undefined {
    return this.provided.get(name) as T | undefined;
  }

  /**
   * Register a plugin: shape check, dependency check (`requires` must be registered first), name
   * uniqueness for the plugin, its commands and jobs; then `setup` runs and its `provides` are checked.
   */
  async register(plugin: PluginDefinition): Promise<void> {
    const shape = pluginShapeSchema.safeParse(plugin);
    if (!shape.success) {
      throw new EngineError('BAD_INPUT', `Plugin "${String((plugin as { name?: unknown }).name)}" is malformed: ${formatZodError(shape.error)}`, {
        details: { code: 'ENGINE_ERR_PLUGIN_SHAPE' },
      });
    }
    if (this.plugins.has(plugin.name)) {
      throw new EngineError('CONFLICT', `Plugin "${plugin.name}" is already registered.`, { details: { code: 'ENGINE_ERR_PLUGIN_DUPLICATE' } });
    }
    const missing = (plugin.requires ?? []).filter((dep) => !this.plugins.has(dep));
    if (missing.length > 0) {
      throw new EngineError('UNAVAILABLE', `Plugin "${plugin.name}" requires ${missing.map((m) => `"${m}"`).join(', ')}, which is not registered.`, {
        details: { code: 'ENGINE_ERR_PLUGIN_DEPENDENCY', missing },
      });
    }
    for (const command of plugin.commands ?? []) {
      if (this.commands.has(command.name)) {
        throw new EngineError('CONFLICT', `Command "${command.name}" of plugin "${plugin.name}" is already registered by "${this.commands.get(command.name)?.plugin}".`, {
          details: { code: 'ENGINE_ERR_COMMAND_DUPLICATE' },
        });
      }
    }
    for (const job of plugin.jobs ?? []) {
      if (this.jobs.has(job.name)) {
        throw new EngineError('CONFLICT', `Job "${job.name}" is already registered.`, { details: { code: 'ENGINE_ERR_JOB_DUPLICATE' } });
      }
    }
    for (const command of plugin.commands ?? []) {
      this.commands.set(command.name, {
        plugin: plugin.name,
        definition: command,
        options: describeOptions(command.options, command.positional),
      });
    }
    for (const job of plugin.jobs ?? []) this.jobs.set(job.name, job);
    for (const guard of plugin.guards ?? []) this.guards.set(guard.name, guard);
    this.plugins.set(plugin.name, plugin);
    try {
      await plugin.setup?.(this);
    } catch (err) {
      this.unregister(plugin.name);
      throw err;
    }
    const notProvided = (plugin.provides ?? []).filter((p) => !this.provided.has(p));
    if (notProvided.length > 0) {
      this.unregister(plugin.name);
      throw new EngineError('INTERNAL', `Plugin "${plugin.name}" declares provides ${notProvided.join(', ')} but its setup did not provide them.`, {
        details: { code: 'ENGINE_ERR_PLUGIN_PROVIDES' },
      });
    }
    this.events.emit('plugin:registered', plugin.name);
    this.logger.debug('plugin registered', { plugin: plugin.name, commands: (plugin.commands ?? []).map((c) => c.name) });
  }

  /** Remove a plugin and everything it registered (used for reloads and failed setups). */
  unregister(name: string): void {
    const plugin = this.plugins.get(name);
    if (!plugin) return;
    for (const c of plugin.commands ?? []) this.commands.delete(c.name);
    for (const j of plugin.jobs ?? []) this.jobs.delete(j.name);
    for (const g of plugin.guards ?? []) this.guards.delete(g.name);
    for (const [service, by] of this.providedBy) {
      if (by === name) {
        this.provided.delete(service);
        this.providedBy.delete(service);
      }
    }
    this.plugins.delete(name);
  }

  /** Register several plugins, ordering them so each one's `requires` come first. */
  async registerAll(plugins: readonly PluginDefinition[]): Promise<void> {
    const pending = new Map(plugins.map((p) => [p.name, p]));
    const visiting = new Set<string>();
    const ordered: PluginDefinition[] = [];
    const visit = (p: PluginDefinition): void => {
      if (ordered.includes(p)) return;
      if (visiting.has(p.name)) {
        throw new EngineError('BAD_INPUT', `Plugins have a dependency cycle through "${p.name}".`, { details: { code: 'ENGINE_ERR_PLUGIN_CYCLE' } });
      }
      visiting.add(p.name);
      for (const dep of p.requires ?? []) {
        const d = pending.get(dep);
        if (d) visit(d);
      }
      visiting.delete(p.name);
      ordered.push(p);
    };
    for (const p of plugins) visit(p);
    for (const p of ordered) await this.register(p);
  }

  /** Run every plugin's `onReady` hook once. */
  async start(): Promise<void> {
    if (this.ready) return;
    for (const plugin of this.plugins.values()) await plugin.hooks?.onReady?.(this);
    this.ready = true;
  }

  /** Build a command context for a transport. */
  createContext(init: ContextInit): CommandContext {
    const requestId = init.requestId ?? randomUUID();
    const logger = this.logger.child({ requestId, transport: init.transport });
    const signals = [this.shutdown.signal, ...(init.signal ? [init.signal] : [])];
    return {
      engine: this,
      transport: init.transport,
      caller: init.caller ?? { id: `${init.transport}:anonymous` },
      ...(init.guildId !== undefined ? { guildId: init.guildId } : {}),
      ...(init.channelId !== undefined ? { channelId: init.channelId } : {}),
      requestId,
      logger,
      services: this.services,
      allowLocalPaths: init.allowLocalPaths ?? false,
      signal: AbortSignal.any(signals),
      progress: (event) => {
        try {
          init.onProgress?.(event);
        } catch (err) {
          logger.warn('progress listener failed', { err });
        }
      },
    };
  }

  /** Look up a command or throw UNKNOWN_COMMAND with suggestions. */
  command(name: string): RegisteredCommand {
    const found = this.commands.get(name);
    if (found) return found;
    const near = [...this.commands.keys()].filter((c) => c.startsWith(name.split(' ')[0] ?? name) || name.startsWith(c)).slice(0, 5);
    throw new EngineError('UNKNOWN_COMMAND', `Unknown command "${name}".${near.length > 0 ? ` Did you mean: ${near.join(', ')}?` : ' Run `help` for the list.'}`);
  }

  /**
   * Run a command: guards → validation → beforeCommand hooks → handler → afterCommand hooks. Never
   * throws: failures come back normalised as `{ ok: false, error }` and are logged with their cause.
   */
  async invoke(name: string, input: unknown, ctxOrInit: CommandContext | ContextInit): Promise<InvokeResult> {
    const started = performance.now();
    const ctx = 'engine' in ctxOrInit ? ctxOrInit : this.createContext(ctxOrInit);
    const elapsed = (): number => performance.now() - started;
    let registered: RegisteredCommand | undefined;
    let stage: 'lookup' | 'guard' | 'validate' | 'run' = 'lookup';
    try {
      if (this.closed) throw new EngineError('UNAVAILABLE', 'solescope is shutting down.');
      registered = this.command(name);
      const command = registered.definition;
      stage = 'guard';
      for (const guard of builtInGuards) await guard.check(command, input, ctx);
      for (const guardName of command.guards ?? []) {
        const guard = this.guards.get(guardName);
        if (!guard) throw new EngineError('INTERNAL', `Command "${name}" lists unknown guard "${guardName}".`);
        await guard.check(command, input, ctx);
      }
      stage = 'validate';
      const parsed = command.options.safeParse(input ?? {});
      if (!parsed.success) {
        throw new EngineError('BAD_INPUT', `${name}: ${formatZodError(parsed.error)}`, {
          details: { issues: parsed.error.issues.map((i) => ({ path: i.path.map(String), message: i.message })) },
        });
      }
      for (const plugin of this.plugins.values()) await plugin.hooks?.beforeCommand?.(command, parsed.data, ctx);
      stage = 'run';
      this.events.emit('command:run', name, ctx);
      const reply = await command.run(parsed.data, ctx);
      for (const plugin of this.plugins.values()) await plugin.hooks?.afterCommand?.(command, reply, ctx);
      const durationMs = elapsed();
      this.metrics.commandsTotal.inc({ command: name, transport: ctx.transport, outcome: 'ok' });
      this.metrics.commandDuration.observe({ command: name, transport: ctx.transport }, durationMs / 1000);
      this.events.emit('command:success', name, reply, ctx, durationMs);
      return { ok: true, command: name, reply, durationMs };
    } catch (err) {
      const error = toEngineError(err);
      const durationMs = elapsed();
      const commandLabel = registered ? name : 'unknown';
      const denied = stage === 'guard' || stage === 'lookup' || stage === 'validate';
      this.metrics.commandsTotal.inc({ command: commandLabel, transport: ctx.transport, outcome: denied ? 'denied' : 'error' });
      this.metrics.commandErrors.inc({ command: commandLabel, code: error.code });
      if (error.code === 'INTERNAL') ctx.logger.error('command failed', { command: name, err: error.cause ?? error });
      else ctx.logger.info('command refused', { command: name, code: error.code, message: error.message });
      if (denied) this.events.emit('command:denied', name, error, ctx);
      this.events.emit('command:error', name, error, ctx);
      for (const plugin of this.plugins.values()) {
        try {
          await plugin.hooks?.onError?.(registered?.definition, error, ctx);
        } catch (hookErr) {
          ctx.logger.warn('onError hook failed', { plugin: plugin.name, err: hookErr });
        }
      }
      return { ok: false, command: name, error, durationMs };
    }
  }

  /** Route a button press (`<plugin>:<action>:<payload>`) to its plugin. */
  async action(actionId: string, ctxOrInit: CommandContext | ContextInit): Promise<InvokeResult> {
    const started = performance.now();
    const ctx = 'engine' in ctxOrInit ? ctxOrInit : this.createContext(ctxOrInit);
    const pluginName = actionId.split(':')[0] ?? '';
    try {
      const plugin = this.plugins.get(pluginName);
      if (!plugin?.onAction) throw new EngineError('NOT_FOUND', 'That button no longer does anything.');
      const reply = await plugin.onAction(actionId, ctx);
      return { ok: true, command: actionId, reply, durationMs: performance.now() - started };
    } catch (err) {
      const error = toEngineError(err);
      if (error.code === 'INTERNAL') ctx.logger.error('action failed', { actionId, err: error.cause ?? error });
      return { ok: false, command: actionId, error, durationMs: performance.now() - started };
    }
  }

  /** Autocomplete suggestions for one option of a command (empty when the command offers none). */
  async autocomplete(name: string, option: string, partial: string, ctxOrInit: CommandContext | ContextInit): Promise<string[]> {
    const ctx = 'engine' in ctxOrInit ? ctxOrInit : this.createContext(ctxOrInit);
    const provider = this.commands.get(name)?.definition.autocomplete?.[option];
    if (!provider) return [];
    try {
      return [...(await provider(partial, ctx))].slice(0, 25);
    } catch (err) {
      ctx.logger.warn('autocomplete failed', { command: name, option, err });
      return [];
    }
  }

  /** Commands as LLM tool descriptions (name, description, JSON-Schema parameters). */
  toolDescriptions(): { name: string; description: string; parameters: Record<string, unknown> }[] {
    return [...this.commands.values()]
      .filter((c) => !c.definition.hiddenFromTools && (c.definition.permissions ?? 'everyone') === 'everyone')
      .map((c) => {
        const { $schema: _s, ...parameters } = toJsonSchema(c.definition.options);
        return { name: c.definition.name.replace(/ /g, '_'), description: c.definition.description, parameters };
      });
  }

  /** Signal shutdown, run `onClose` hooks in reverse order, close the job runner and the store. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.shutdown.abort();
    for (const plugin of [...this.plugins.values()].reverse()) {
      try {
        await plugin.hooks?.onClose?.(this);
      } catch (err) {
        this.logger.warn('onClose hook failed', { plugin: plugin.name, err });
      }
    }
    await this.jobRunner.close().catch((err: unknown) => this.logger.warn('job runner close failed', { err }));
    await this.store?.close().catch((err: unknown) => this.logger.warn('store close failed', { err }));
  }
}

/** Create an engine. */
export function createEngine(options: EngineOptions = {}): Engine {
  return new Engine(options);
}

/** Re-exported for plugin authors who build schemas. */
export { z };
