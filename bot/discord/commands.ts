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

const NAME_RE = /^[-_\p{Ll}\p{Lo}\p{N}\p{sc=Deva}\p{sc=Thai}]{1,32}$/u;

function optionProblems(where: string, options: readonly SlashOptionJson[], depth: number, problems: string[]): number {
  let chars = 0;
  if (options.length > 25) problems.push(`${where}: ${options.length} options (Discord allows 25)`);
  const kinds = new Set(options.map((o) => (o.type === 1 || o.type === 2 ? 'sub' : 'value')));
  if (kinds.size > 1) problems.push(`${where}: subcommands mixed with plain options`);
  let seenOptional = false;
  const names = new Set<string>();
  for (const o of options) {
    const at = `${where} ${o.name}`;
    chars += o.name.length + o.description.length;
    if (!NAME_RE.test(o.name)) problems.push(`${at}: invalid option name`);
    if (names.has(o.name)) problems.push(`${at}: duplicate option name`);
    names.add(o.name);
    if (o.description.length < 1 || o.description.length > 100) problems.push(`${at}: description must be 1-100 characters`);
    if (o.type === 2 && depth > 0) problems.push(`${at}: subcommand groups cannot be nested`);
    if (o.type === 1 && depth > 1) problems.push(`${at}: subcommand too deep`);
    if (o.type !== 1 && o.type !== 2) {
      if (o.required) {
        if (seenOptional) problems.push(`${at}: required option after an optional one`);
      } else seenOptional = true;
    }
    if (o.choices) {
      if (o.choices.length > 25) problems.push(`${at}: ${o.choices.length} choices (Discord allows 25)`);
      if (o.autocomplete) problems.push(`${at}: autocomplete together with choices`);
      for (const c of o.choices) {
        chars += c.name.length + String(c.value).length;
        if (c.name.length < 1 || c.name.length > 100 || String(c.value).length > 100) problems.push(`${at}: choice "${c.name}" must be 1-100 characters`);
      }
    }
    if (o.min_value !== undefined && o.max_value !== undefined && o.min_value > o.max_value) problems.push(`${at}: min_value > max_value`);
    if (o.max_length !== undefined && (o.max_length < 1 || o.max_length > 6000)) problems.push(`${at}: max_length must be 1-6000`);
    if (o.min_length !== undefined && (o.min_length < 0 || o.min_length > 6000)) problems.push(`${at}: min_length must be 0-6000`);
    if (o.options) chars += optionProblems(at, o.options, depth + (o.type === 2 ? 1 : o.type === 1 ? 2 : 0), problems);
  }
  return chars;
}

/**
 * Discord's documented limits for one chat-input command: names, description lengths, 25 options and
 * choices, required-before-optional, nesting, and at most 4,000 characters of names, descriptions and
 * choice values in total. Returns the problems found (empty when Discord will accept it), so deploy
 * fails with a readable list instead of a 50035 "Invalid Form Body" from the API.
 */
export function slashCommandProblems(command: SlashCommandJson): string[] {
  const problems: string[] = [];
  const where = `/${command.name}`;
  if (!NAME_RE.test(command.name)) problems.push(`${where}: invalid command name`);
  if (command.description.length < 1 || command.description.length > 100) problems.push(`${where}: description must be 1-100 characters`);
  const chars = command.name.length + command.description.length + optionProblems(where, command.options ?? [], 0, problems);
  if (chars > 4000) problems.push(`${where}: ${chars} characters in names, descriptions and choices (Discord allows 4000)`);
  return problems;
}
