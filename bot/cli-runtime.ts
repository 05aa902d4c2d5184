/**
 * The CLI's runtime: the same composition as the server, with logs kept quiet unless LOG_LEVEL asks.
 */
import { createLogger } from '../engine/index.ts';
import { createRuntime, type Runtime } from './runtime.ts';

/** Build the runtime the CLI runs commands on. */
export async function createCliRuntime(env: Record<string, string | undefined> = process.env): Promise<Runtime> {
  // CLI output is for people and scripts: only warnings and errors reach stderr by default.
  const logger = createLogger({ level: env.LOG_LEVEL ?? 'warn' });
  return createRuntime({ env, logger });
}
