/**
 * `npm run deploy:commands`: register every plugin command as a Discord slash command.
 *
 * Needs `DISCORD_TOKEN`; the application id comes from `DISCORD_APPLICATION_ID` or is asked from Discord.
 * With `DISCORD_GUILD_ID` the commands go to that guild (instant; for development), else globally.
 * Only changed commands are re-registered (see deploy.ts). Prints one JSON line with what it did.
 */
import { pathToFileURL } from 'node:url';
import { EngineError, toEngineError, type Config, type Engine, type Logger } from '../../engine/index.ts';
import { buildSlashCommands, slashCommandProblems } from './commands.ts';
import { createRest, syncCommands, type SyncResult } from './deploy.ts';

/** Derive the slash commands from `engine` and sync them with Discord. */
export async function deployCommands(engine: Engine, config: Config, logger: Logger): Promise<SyncResult & { applicationId: string }> {
  if (!config.DISCORD_TOKEN) throw new EngineError('BAD_INPUT', 'DISCORD_TOKEN is not set: deploying slash commands needs the bot token.');
  const rest = createRest(config.DISCORD_TOKEN, config.DISCORD_API_URL);
  const applicationId = config.DISCORD_APPLICATION_ID ?? String(((await rest.get('/applications/@me')) as { id: string }).id);
  const { commands } = buildSlashCommands(engine);
  const problems = commands.flatMap(slashCommandProblems);
  if (problems.length > 0) {
    throw new EngineError('BAD_INPUT', `Discord would reject these slash commands:\n  ${problems.join('\n  ')}`, { details: { problems } });
  }
  if (commands.length > 100) throw new EngineError('BAD_INPUT', `${commands.length} top-level commands; Discord allows 100.`);
  const result = await syncCommands(rest, applicationId, commands, config.DISCORD_GUILD_ID);
  logger.info('slash commands deployed', { ...result, applicationId });
  return { ...result, applicationId };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { createRuntime } = await import('../runtime.ts');
  const { createLogger } = await import('../../engine/index.ts');
  try {
    const runtime = await createRuntime({ logger: createLogger({ level: process.env.LOG_LEVEL ?? 'warn' }) });
    try {
      const result = await deployCommands(runtime.engine, runtime.config, runtime.logger);
      process.stdout.write(`${JSON.stringify(result)}\n`);
    } finally {
      await runtime.close();
    }
  } catch (err) {
    const error = toEngineError(err);
    process.stderr.write(`deploy:commands failed: ${error.code === 'INTERNAL' ? String((error.cause as Error | undefined)?.message ?? error.message) : error.message}\n`);
    process.exitCode = error.spec.exitCode;
  }
}
