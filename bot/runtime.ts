/**
 * Composition root shared by the CLI, the server (`npm start`) and the worker (`npm run worker`):
 * config → logger → store → engine → plugins. Transports stay thin: they only build contexts and render.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  createEngine,
  createLogger,
  createMetrics,
  loadConfig,
  loadPlugins,
  type Config,
  type Engine,
  type Logger,
  type PluginDefinition,
} from '../engine/index.ts';
import { openStore } from '../engine/store/index.ts';

/** The folder plugins are loaded from. */
export const PLUGINS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'plugins');

/** Options of {@link createRuntime}. */
export interface RuntimeOptions {
  /** Environment to read config from (default process.env). */
  readonly env?: Record<string, string | undefined>;
  /** Extra plugins (tests, embedders) registered next to the plugin folder's. */
  readonly plugins?: readonly PluginDefinition[];
  /** Load plugins from this folder (default plugins/); `false` loads none. */
  readonly pluginsDir?: string | false;
  /** Only these plugin names (default: env SOLESCOPE_PLUGINS, comma-separated, else all). */
  readonly only?: readonly string[];
  readonly logger?: Logger;
  /** Collect default process metrics (server only). */
  readonly processMetrics?: boolean;
  /**
   * Runs after plugins are registered and before their `onReady` hooks: the place to swap in the BullMQ
   * runner, the Redis rate limiter or transport services so `onReady` work already uses them.
   */
  readonly configure?: (engine: Engine, config: Config) => Promise<void> | void;
}

/** A wired engine plus what it was built from. */
export interface Runtime {
  readonly engine: Engine;
  readonly config: Config;
  readonly logger: Logger;
  close(): Promise<void>;
}

/** Build config, logger, store and engine, then register and start every plugin. */
export async function createRuntime(options: RuntimeOptions = {}): Promise<Runtime> {
  const env = options.env ?? process.env;
  const config = loadConfig(env);
  const logger = options.logger ?? createLogger({ level: config.LOG_LEVEL });
  mkdirSync(config.dataDir, { recursive: true });
  const store = await openStore({ ...(config.DATABASE_URL ? { url: config.DATABASE_URL } : {}), dataDir: config.dataDir });
  const engine = createEngine({ config, logger, store, metrics: createMetrics(options.processMetrics ?? false) });
  const onlyList = options.only ?? (env.SOLESCOPE_PLUGINS ? env.SOLESCOPE_PLUGINS.split(',').map((s) => s.trim()).filter(Boolean) : undefined);
  const only = onlyList ? (name: string) => name === 'core' || onlyList.includes(name) : undefined;
  const fromDir = options.pluginsDir === false ? [] : await loadPlugins(options.pluginsDir ?? PLUGINS_DIR, only);
  try {
    await engine.registerAll([...fromDir, ...(options.plugins ?? [])]);
    await options.configure?.(engine, config);
    await engine.start();
  } catch (err) {
    await engine.close();
    throw err;
  }
  return { engine, config, logger, close: () => engine.close() };
}
