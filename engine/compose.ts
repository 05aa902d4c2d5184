/**
 * The composition root every process shares — the CLI, the server (`npm start`), the worker (`npm run
 * worker`) and sandboxed job children: config → logger → store → engine → plugins. It lives in the engine
 * because both bot/ and jobs/ need it and neither may import the other's way (bot → jobs → plugins → engine).
 * Plugins are loaded from their folder by path (dynamic import), so the engine still imports no plugin.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, type Config } from './config.ts';
import { createEngine, type Engine } from './engine.ts';
import type { PluginDefinition } from './define.ts';
import { loadPlugins } from './loader.ts';
import { createLogger, type Logger } from './logger.ts';
import { createMetrics } from './metrics.ts';
import { openStore } from './store/index.ts';

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
  const store = await openStore({ ...(config.DATABASE_URL ? { url: config.DATABASE_URL } : {}), dataDir: config.dataDir, logger });
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
