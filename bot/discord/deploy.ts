/**
 * Registering slash commands with Discord, re-registering only what changed.
 *
 * The registered commands are fetched and compared with the derived ones after normalising both sides
 * (Discord adds ids, versions and null localisations, and drops `required: false`): new commands are
 * POSTed, changed ones PATCHed, commands no plugin declares any more are DELETEd, the rest left alone —
 * so a redeploy does not reset per-command permission overrides moderators set in the server settings.
 */
import { REST, Routes } from 'discord.js';
import type { SlashCommandJson } from './commands.ts';

/** What {@link syncCommands} did, by command name. */
export interface SyncResult {
  readonly scope: 'global' | 'guild';
  readonly created: string[];
  readonly updated: string[];
  readonly deleted: string[];
  readonly unchanged: string[];
}

type Json = Record<string, unknown>;

function normaliseOption(option: Json): Json {
  const out: Json = {
    type: option.type,
    name: option.name,
    description: option.description ?? '',
    required: option.required === true,
    autocomplete: option.autocomplete === true,
  };
  if (Array.isArray(option.choices) && option.choices.length > 0) {
    out.choices = (option.choices as Json[]).map((c) => ({ name: c.name, value: c.value }));
  }
  for (const key of ['min_value', 'max_value', 'min_length', 'max_length'] as const) {
    if (option[key] !== undefined && option[key] !== null) out[key] = option[key];
  }
  if (Array.isArray(option.options) && option.options.length > 0) out.options = (option.options as Json[]).map(normaliseOption);
  return out;
}

/** A comparable form of a command: only the fields we set, with Discord's defaults filled in. */
export function normaliseCommand(command: Json): Json {
  const contexts = Array.isArray(command.contexts) ? [...(command.contexts as number[])].sort() : null;
  return {
    name: command.name,
    type: command.type ?? 1,
    description: command.description ?? '',
    default_member_permissions: command.default_member_permissions ?? null,
    nsfw: command.nsfw === true,
    // Discord reports null contexts for commands registered without them; treat null as "all".
    contexts: contexts ?? [0, 1, 2],
    options: Array.isArray(command.options) ? (command.options as Json[]).map(normaliseOption) : [],
  };
}

function same(a: Json, b: Json): boolean {
  return JSON.stringify(normaliseCommand(a)) === JSON.stringify(normaliseCommand(b));
}

/**
 * Make the registered commands equal the derived ones. `guildId` registers in one guild (instant, for
 * development); without it, globally (Discord may take a while to show changes everywhere).
 */
export async function syncCommands(rest: REST, applicationId: string, commands: readonly SlashCommandJson[], guildId?: string): Promise<SyncResult> {
  const listRoute = guildId ? Routes.applicationGuildCommands(applicationId, guildId) : Routes.applicationCommands(applicationId);
  const oneRoute = (id: string): `/${string}` =>
    guildId ? Routes.applicationGuildCommand(applicationId, guildId, id) : Routes.applicationCommand(applicationId, id);
  const registered = (await rest.get(listRoute)) as Json[];
  const result: SyncResult = { scope: guildId ? 'guild' : 'global', created: [], updated: [], deleted: [], unchanged: [] };
  const wanted = new Map(commands.map((c) => [c.name, c]));
  for (const existing of registered) {
    if ((existing.type ?? 1) !== 1) continue; // user/message context-menu commands are not ours to manage
    const name = String(existing.name);
    const local = wanted.get(name);
    if (!local) {
      await rest.delete(oneRoute(String(existing.id)));
      result.deleted.push(name);
    } else if (same(existing, local as unknown as Json)) {
      result.unchanged.push(name);
    } else {
      await rest.patch(oneRoute(String(existing.id)), { body: local });
      result.updated.push(name);
    }
    wanted.delete(name);
  }
  for (const local of wanted.values()) {
    await rest.post(listRoute, { body: local });
    result.created.push(local.name);
  }
  return result;
}

/** A REST client for Discord's API (or a compatible server at `apiUrl`). */
export function createRest(token: string, apiUrl?: string): REST {
  return new REST(apiUrl ? { api: apiUrl } : {}).setToken(token);
}
