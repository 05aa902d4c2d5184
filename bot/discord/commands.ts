/**
 * Slash commands derived from the engine's command registry — no hand-written command JSON.
 *
 * Engine command names may have up to three words. One-word commands become top-level slash commands;
 * `models info` becomes subcommand `info` of `/models`; `a b c` becomes subcommand `c` of group `b` of
 * `/a`. A bare command that shares its first word with others (`jobs` next to `jobs cancel`) becomes the
 * subcommand `show` (`/jobs show`), because Discord forbids options next to subcommands.
 *
 * The same table routes an interaction back to the engine command name and maps slash option names
 * (snake_case) back to the schema's option names (camelCase).
 */
import { PermissionFlagsBits } from 'discord.js';
import { DiscordOptionType, toSlashName, toSlashOptions, type Engine, type RegisteredCommand, type SlashOptionJson } from '../../engine/index.ts';

/** Subcommand name given to a bare command that shares its first word with other commands. */
export const BARE_SUBCOMMAND = 'show';

/** A top-level slash command as Discord's API expects it (chat input). */
export interface SlashCommandJson {
  name: string;
  description: string;
  type: 1;
  options?: SlashOptionJson[];
  /** Permission bit string, or null for everyone. Moderator commands → Manage Guild. */
  default_member_permissions: string | null;
  /** Interaction contexts: 0 guild, 1 bot DM, 2 private channel. Guild-only commands list only 0. */
  contexts: number[];
  nsfw?: boolean;
}

/** Where a slash path leads: the engine command and the slash→schema option-name map. */
export interface SlashRoute {
  readonly command: string;
  readonly optionNames: ReadonlyMap<string, string>;
}

/** The derived commands plus the routing table. */
export interface SlashCatalogue {
  readonly commands: SlashCommandJson[];
  /** Key: slash path joined by spaces (`models info`, `jobs show`). */
  readonly routes: ReadonlyMap<string, SlashRoute>;
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function permissionBits(command: RegisteredCommand): string | null {
  const need = command.definition.permissions ?? 'everyone';
  if (need === 'admin') return PermissionFlagsBits.Administrator.toString();
  if (need === 'moderator') return PermissionFlagsBits.ManageGuild.toString();
  return null;
}

function optionsOf(command: RegisteredCommand): { options: SlashOptionJson[]; names: Map<string, string> } {
  const autocomplete = new Set(Object.keys(command.definition.autocomplete ?? {}));
  const options = toSlashOptions(command.options, autocomplete);
  const names = new Map(command.options.map((o) => [toSlashName(o.name), o.name]));
  return { options, names };
}

/**
 * Derive every slash command from the engine's registered commands. Deterministic (sorted), so the
 * deploy diff sees no change when nothing changed.
 */
export function buildSlashCommands(engine: Engine): SlashCatalogue {
  const byTop = new Map<string, RegisteredCommand[]>();
  for (const command of engine.commands.values()) {
    const top = command.definition.name.split(' ')[0] ?? command.definition.name;
    byTop.set(top, [...(byTop.get(top) ?? []), command]);
  }
  const routes = new Map<string, SlashRoute>();
  const commands: SlashCommandJson[] = [];
  for (const top of [...byTop.keys()].sort()) {
    const members = (byTop.get(top) ?? []).sort((a, b) => a.definition.name.localeCompare(b.definition.name));
    const only = members[0];
    if (members.length === 1 && only && only.definition.name === top) {
      const { options, names } = optionsOf(only);
      commands.push({
        name: top,
        description: clip(only.definition.description, 100),
        type: 1,
        ...(options.length > 0 ? { options } : {}),
        default_member_permissions: permissionBits(only),
        contexts: only.definition.guildOnly ? [0] : [0, 1, 2],
      });
      routes.set(top, { command: only.definition.name, optionNames: names });
      continue;
    }
    // Grouped: subcommands (2 words / bare) and subcommand groups (3 words).
    const subs: SlashOptionJson[] = [];
    const groups = new Map<string, SlashOptionJson[]>();
    const twoWordNames = new Set(members.map((m) => m.definition.name.split(' ')).filter((w) => w.length === 2).map((w) => w[1] ?? ''));
    for (const member of members) {
      const words = member.definition.name.split(' ');
      const { options, names } = optionsOf(member);
      const description = clip(member.definition.description, 100);
      if (words.length === 3 && !twoWordNames.has(words[1] ?? '')) {
        const group = words[1] ?? '';
        const sub = words[2] ?? '';
        groups.set(group, [...(groups.get(group) ?? []), { type: DiscordOptionType.SUB_COMMAND, name: sub, description, ...(options.length > 0 ? { options } : {}) }]);
        routes.set(`${top} ${group} ${sub}`, { command: member.definition.name, optionNames: names });
      } else {
        // One word (bare) → `show`; three words clashing with a two-word subcommand → `b-c`.
        const sub = words.length === 1 ? BARE_SUBCOMMAND : words.slice(1).join('-');
        subs.push({ type: DiscordOptionType.SUB_COMMAND, name: sub, description, ...(options.length > 0 ? { options } : {}) });
        routes.set(`${top} ${sub}`, { command: member.definition.name, optionNames: names });
      }
    }
    for (const [group, groupSubs] of [...groups].sort(([a], [b]) => a.localeCompare(b))) {
      subs.push({ type: DiscordOptionType.SUB_COMMAND_GROUP, name: group, description: clip(`${top} ${group}: ${groupSubs.map((s) => s.name).join(', ')}`, 100), options: groupSubs });
    }
    // Discord sets permissions per top-level command only: restrict it only when every member needs it.
    const perms = members.map(permissionBits);
    const shared = perms.every((p) => p === perms[0]) ? (perms[0] ?? null) : null;
    commands.push({
      name: top,
      description: clip(`${top}: ${members.map((m) => m.definition.name.split(' ').slice(1).join(' ') || BARE_SUBCOMMAND).join(', ')}`, 100),
      type: 1,
      options: subs.slice(0, 25),
      default_member_permissions: shared,
      contexts: members.every((m) => m.definition.guildOnly) ? [0] : [0, 1, 2],
    });
  }
  return { commands, routes };
}
