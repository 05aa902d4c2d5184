/**
 * Built-in commands that prove the plugin contract end to end without ML: `help` lists every registered
 * command with its options (derived from the schemas), `status` reports version, uptime, plugins, the
 * store dialect and whatever each plugin contributes (ML backend, queue health, model versions).
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { defineCommand, definePlugin, fail, reply, type Engine } from '../../engine/index.ts';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

/** The running version (package.json). */
export const VERSION = pkg.version;

function describeCommand(engine: Engine, name: string): Record<string, unknown> {
  const c = engine.command(name);
  return {
    name: c.definition.name,
    description: c.definition.description,
    plugin: c.plugin,
    permissions: c.definition.permissions ?? 'everyone',
    options: c.options.map((o) => ({
      name: o.name,
      kind: o.kind,
      description: o.description,
      required: o.required,
      ...(o.choices ? { choices: o.choices } : {}),
      ...(o.min !== undefined ? { min: o.min } : {}),
      ...(o.max !== undefined ? { max: o.max } : {}),
      ...(o.defaultValue !== undefined ? { default: o.defaultValue } : {}),
      ...(o.position !== undefined ? { positional: true } : {}),
    })),
  };
}

const help = defineCommand({
  name: 'help',
  description: 'List commands and their options, or show one command in detail.',
  options: z
    .object({ command: z.string().max(100).optional().describe('A command name, e.g. "hype" or "dataset import"') })
    .strict(),
  positional: ['command'],
  run({ command }, ctx) {
    const engine = ctx.engine;
    if (command) {
      const info = describeCommand(engine, command.trim());
      const opts = (info.options as { name: string; kind: string; description: string; required: boolean }[])
        .map((o) => `• \`${o.name}\` (${o.kind}${o.required ? ', required' : ''}) — ${o.description}`)
        .join('\n');
      return reply(`**${command}** — ${String(info.description)}\n${opts || 'No options.'}`, {
        title: `help: ${command}`,
        data: { commands: [info] },
      });
    }
    const names = [...engine.commands.keys()].sort();
    const commands = names.map((n) => describeCommand(engine, n));
    const lines = commands.map((c) => `• \`${String(c.name)}\` — ${String(c.description)}`);
    return reply(`solescope ${VERSION} — ${names.length} commands:\n${lines.join('\n')}`, {
      title: 'solescope commands',
      data: { version: VERSION, commands },
    });
  },
});

const status = defineCommand({
  name: 'status',
  description: 'Version, uptime, loaded plugins, store, ML backend and queue health.',
  options: z.object({}).strict(),
  async run(_input, ctx) {
    const engine = ctx.engine;
    const sections: Record<string, unknown> = {};
    for (const plugin of engine.plugins.values()) {
      if (!plugin.status) continue;
      try {
        sections[plugin.name] = await plugin.status(engine);
      } catch (err) {
        sections[plugin.name] = { error: err instanceof Error ? err.message : String(err) };
      }
    }
    const jobs = await ctx.services.jobs.health().catch((err: unknown) => ({ ok: false, detail: String(err) }));
    const store = engine.hasStore ? ctx.services.store.dialect : 'none';
    const uptimeS = Math.round((Date.now() - engine.startedAt) / 1000);
    const data = {
      version: VERSION,
      uptimeS,
      node: process.version,
      plugins: [...engine.plugins.keys()],
      commands: engine.commands.size,
      store,
      queue: { runner: ctx.services.jobs.kind, ...jobs },
      ...sections,
    };
    const fields = [
      { name: 'Version', value: VERSION, inline: true },
      { name: 'Uptime', value: `${uptimeS}s`, inline: true },
      { name: 'Store', value: store, inline: true },
      { name: 'Queue', value: `${ctx.services.jobs.kind}: ${jobs.ok ? 'ok' : 'down'} (${jobs.detail})`, inline: false },
      { name: 'Plugins', value: [...engine.plugins.keys()].join(', ') || 'none', inline: false },
      ...Object.entries(sections).map(([name, value]) => ({
        name,
        value: Object.entries(value as Record<string, unknown>)
          .map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
          .join('\n')
          .slice(0, 1000) || '—',
        inline: false,
      })),
    ];
    return reply(`solescope ${VERSION} is up (${uptimeS}s).`, { title: 'status', fields, data });
  },
});

const ping = defineCommand({
  name: 'ping',
  description: 'Check that solescope answers; optionally echo a message.',
  options: z.object({ echo: z.string().max(200).optional().describe('Text to echo back') }).strict(),
  positional: ['echo'],
  run({ echo }) {
    if (echo !== undefined && echo.trim() === '') fail('BAD_INPUT', 'echo must not be blank.');
    return reply(echo ?? 'pong', { data: { pong: true, ...(echo !== undefined ? { echo } : {}) } });
  },
});

export default definePlugin({
  name: 'core',
  description: 'help, status and ping',
  commands: [help, status, ping],
});
