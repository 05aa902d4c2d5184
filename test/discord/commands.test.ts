/**
 * Slash commands derived from engine command specs, and `deploy:commands` against the fake Discord:
 * first deploy creates, a redeploy changes nothing, a changed schema PATCHes only that command, a
 * removed plugin's command is deleted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createEngine, defineCommand, definePlugin, imageInput, loadConfig, loadPlugins, reply, silentLogger, type PluginDefinition } from '../../engine/index.ts';
import { PLUGINS_DIR } from '../../bot/runtime.ts';
import { buildSlashCommands, slashCommandProblems, type SlashCommandJson } from '../../bot/discord/commands.ts';
import { deployCommands } from '../../bot/discord/deploy-commands.ts';
import { normaliseCommand } from '../../bot/discord/deploy.ts';
import { startFakeDiscord, type FakeDiscord } from './fake-discord.ts';
import { testkitPlugin } from './testkit.ts';

const noop = () => reply('ok');

function groupedPlugin(describeInfo = 'Show one model'): PluginDefinition {
  return definePlugin({
    name: 'registry',
    commands: [
      defineCommand({ name: 'models', description: 'List models', options: z.object({ task: z.enum(['hype', 'brand']).optional().describe('Task') }).strict(), run: noop }),
      defineCommand({
        name: 'models info',
        description: describeInfo,
        options: z.object({ modelId: z.string().min(1).describe('Model id') }).strict(),
        autocomplete: { modelId: () => ['m1'] },
        run: noop,
      }),
      defineCommand({ name: 'models promote', description: 'Promote', permissions: 'moderator', guildOnly: true, options: z.object({ id: z.string() }).strict(), run: noop }),
      defineCommand({ name: 'dataset label queue', description: 'Queue', options: z.object({ k: z.number().int().min(1).max(20).default(5).describe('How many') }).strict(), run: noop }),
      defineCommand({ name: 'dataset import', description: 'Import', permissions: 'moderator', options: z.object({ photo: imageInput('A photo') }).strict(), run: noop }),
      defineCommand({ name: 'train', description: 'Train', permissions: 'moderator', guildOnly: true, options: z.object({ epochs: z.number().int().min(1).max(50).optional() }).strict(), run: noop }),
    ],
  });
}

async function engineWith(...plugins: PluginDefinition[]) {
  const engine = createEngine();
  await engine.registerAll(plugins);
  return engine;
}

function byName(commands: SlashCommandJson[], name: string): SlashCommandJson {
  const found = commands.find((c) => c.name === name);
  if (!found) throw new Error(`no /${name}`);
  return found;
}

describe('GIVEN engine commands THEN slash commands are derived from their schemas', () => {
  it('a one-word command is a top-level command with typed options, choices, attachment and defaults', async () => {
    const { commands, routes } = buildSlashCommands(await engineWith(testkitPlugin()));
    const scan = byName(commands, 'scan');
    expect(scan.default_member_permissions).toBeNull();
    expect(scan.options).toEqual([
      { name: 'image', description: 'The photo to scan', required: true, type: 11 },
      { name: 'mode', description: 'How hard to look', type: 3, choices: [{ name: 'quick', value: 'quick' }, { name: 'deep', value: 'deep' }] },
      { name: 'steps', description: 'Progress steps', type: 4, min_value: 1, max_value: 5 },
      { name: 'note', description: 'A note', type: 3, max_length: 50 },
    ]);
    expect(routes.get('scan')?.command).toBe('scan');
  });

  it('names with spaces become subcommands and groups; a bare sibling becomes `show`; camelCase options map back', async () => {
    const { commands, routes } = buildSlashCommands(await engineWith(groupedPlugin()));
    const models = byName(commands, 'models');
    expect(models.options?.map((o) => [o.type, o.name])).toEqual([
      [1, 'show'],
      [1, 'info'],
      [1, 'promote'],
    ]);
    const info = models.options?.find((o) => o.name === 'info');
    expect(info?.options).toEqual([{ name: 'model_id', description: 'Model id', required: true, type: 3, min_length: 1, autocomplete: true }]);
    expect(routes.get('models info')).toEqual({ command: 'models info', optionNames: new Map([['model_id', 'modelId']]) });
    expect(routes.get('models show')?.command).toBe('models');
    // Mixed permissions: the top level stays open, the engine guard refuses members.
    expect(models.default_member_permissions).toBeNull();
    const dataset = byName(commands, 'dataset');
    const group = dataset.options?.find((o) => o.type === 2);
    expect(group).toMatchObject({ name: 'label', options: [{ type: 1, name: 'queue', options: [{ name: 'k', type: 4, min_value: 1, max_value: 20 }] }] });
    expect(dataset.options?.find((o) => o.name === 'import')?.options).toEqual([{ name: 'photo', description: 'A photo', required: true, type: 11 }]);
    expect(routes.get('dataset label queue')?.command).toBe('dataset label queue');
  });

  it('moderator commands get Manage Guild as default_member_permissions and guild-only commands the guild context', async () => {
    const { commands } = buildSlashCommands(await engineWith(groupedPlugin(), testkitPlugin()));
    expect(byName(commands, 'train')).toMatchObject({ default_member_permissions: String(1n << 5n), contexts: [0] });
    expect(byName(commands, 'scan').contexts).toEqual([0, 1, 2]);
    for (const c of commands) {
      expect(c.name).toMatch(/^[-_a-z0-9]{1,32}$/);
      expect(c.description.length).toBeLessThanOrEqual(100);
      expect(c.description.length).toBeGreaterThan(0);
    }
  });

  it('the derivation is deterministic and Discord-side defaults do not count as a difference', async () => {
    const engine = await engineWith(groupedPlugin(), testkitPlugin());
    const a = buildSlashCommands(engine).commands;
    const b = buildSlashCommands(engine).commands;
    expect(a).toEqual(b);
    const scan = byName(a, 'scan');
    const asDiscordReturnsIt = { ...scan, id: '1', version: '2', application_id: '3', name_localizations: null, nsfw: false, options: scan.options?.map((o) => ({ ...o, required: o.required ?? false })) };
    expect(normaliseCommand(asDiscordReturnsIt)).toEqual(normaliseCommand(scan as unknown as Record<string, unknown>));
  });
});

describe('GIVEN Discord limits', () => {
  it('THEN every command of the shipped plugins derives to a slash command Discord accepts', async () => {
    const engine = createEngine();
    await engine.registerAll(await loadPlugins(PLUGINS_DIR));
    const { commands, routes } = buildSlashCommands(engine);
    expect(commands.length).toBeGreaterThan(0);
    expect(commands.length).toBeLessThanOrEqual(100);
    expect(commands.flatMap(slashCommandProblems)).toEqual([]);
    // Every engine command is reachable through exactly one slash path.
    expect(new Set([...routes.values()].map((r) => r.command))).toEqual(new Set(engine.commands.keys()));
  });

  it('THEN too many options, long descriptions and bad names are reported before Discord sees them', async () => {
    const wide = z.object(Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`o${i}`, z.string().optional().describe('x'.repeat(100))]))).strict();
    const engine = await engineWith(definePlugin({ name: 'wide', commands: [defineCommand({ name: 'wide', description: 'Too wide', options: wide, run: noop })] }));
    const problems = buildSlashCommands(engine).commands.flatMap(slashCommandProblems);
    expect(problems).toEqual(expect.arrayContaining([expect.stringContaining('40 options'), expect.stringContaining('characters in names, descriptions and choices')]));
    expect(slashCommandProblems({ name: 'Bad Name', description: '', type: 1, default_member_permissions: null, contexts: [0] })).toHaveLength(2);
  });
});

describe('GIVEN the fake Discord WHEN deploy:commands runs', () => {
  let fake: FakeDiscord;
  beforeAll(async () => {
    fake = await startFakeDiscord();
  });
  afterAll(async () => {
    await fake.close();
  });

  it('THEN the first run creates all, a rerun changes nothing, a change PATCHes one command, a removal DELETEs', async () => {
    const guild = fake.addGuild();
    const config = loadConfig({ DISCORD_TOKEN: fake.token, DISCORD_API_URL: fake.apiUrl, DISCORD_GUILD_ID: guild.id });
    const first = await deployCommands(await engineWith(groupedPlugin(), testkitPlugin()), config, silentLogger());
    expect(first.scope).toBe('guild');
    expect(first.applicationId).toBe(fake.applicationId);
    expect(first.created.sort()).toEqual(['dataset', 'models', 'scan', 'testkit', 'train']);
    expect(fake.commands.get(guild.id)?.map((c) => c.name).sort()).toEqual(['dataset', 'models', 'scan', 'testkit', 'train']);

    const writesBefore = fake.requests.filter((r) => r.method !== 'GET').length;
    const second = await deployCommands(await engineWith(groupedPlugin(), testkitPlugin()), config, silentLogger());
    expect(second.unchanged.sort()).toEqual(['dataset', 'models', 'scan', 'testkit', 'train']);
    expect(fake.requests.filter((r) => r.method !== 'GET').length).toBe(writesBefore);

    const third = await deployCommands(await engineWith(groupedPlugin('Show one model card'), testkitPlugin()), config, silentLogger());
    expect(third.updated).toEqual(['models']);
    const patch = fake.requests.filter((r) => r.method === 'PATCH').at(-1);
    expect(patch?.path).toMatch(new RegExp(`^/applications/${fake.applicationId}/guilds/${guild.id}/commands/\\d+$`));
    expect(JSON.stringify(patch?.body)).toContain('Show one model card');

    const fourth = await deployCommands(await engineWith(groupedPlugin('Show one model card')), config, silentLogger());
    expect(fourth.deleted.sort()).toEqual(['scan', 'testkit']);
    expect(fake.commands.get(guild.id)?.map((c) => c.name).sort()).toEqual(['dataset', 'models', 'train']);
  });

  it('THEN without DISCORD_GUILD_ID the commands are registered globally', async () => {
    const config = loadConfig({ DISCORD_TOKEN: fake.token, DISCORD_API_URL: fake.apiUrl, DISCORD_APPLICATION_ID: fake.applicationId });
    const result = await deployCommands(await engineWith(testkitPlugin()), config, silentLogger());
    expect(result.scope).toBe('global');
    expect(fake.commands.get('global')?.map((c) => c.name).sort()).toEqual(['scan', 'testkit']);
  });

  it('THEN a missing token is a clear BAD_INPUT', async () => {
    await expect(deployCommands(await engineWith(testkitPlugin()), loadConfig({}), silentLogger())).rejects.toMatchObject({ code: 'BAD_INPUT' });
  });
});
