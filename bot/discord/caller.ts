/**
 * Who is asking: the engine's `Caller` built from a Discord interaction or message. Moderator rights are
 * the Manage Guild permission or the configured moderator role (`DISCORD_MODERATOR_ROLE`, a role id or
 * name); admin rights are the Administrator permission. The engine's guards decide; this only reports.
 */
import { PermissionFlagsBits, PermissionsBitField, type Guild, type GuildMember, type Interaction, type Message } from 'discord.js';
import type { Caller } from '../../engine/index.ts';

/** Role ids of a member whether discord.js cached a full GuildMember or only the raw API member. */
function roleIds(member: GuildMember | { roles: readonly string[] } | null | undefined): string[] {
  if (!member) return [];
  const roles = member.roles as unknown;
  if (Array.isArray(roles)) return roles.map(String);
  const cache = (roles as { cache?: Map<string, unknown> }).cache;
  return cache ? [...cache.keys()] : [];
}

function hasModeratorRole(roles: readonly string[], guild: Guild | null, moderatorRole: string | undefined): boolean {
  if (!moderatorRole) return false;
  if (roles.includes(moderatorRole)) return true;
  const wanted = moderatorRole.toLowerCase();
  return roles.some((id) => guild?.roles.cache.get(id)?.name.toLowerCase() === wanted);
}

/** Caller of an interaction. */
export function callerFromInteraction(interaction: Interaction, moderatorRole: string | undefined): Caller {
  const roles = roleIds(interaction.member as GuildMember | { roles: string[] } | null);
  const perms = interaction.memberPermissions ?? new PermissionsBitField();
  const inGuild = interaction.guildId !== null;
  const isAdmin = inGuild && perms.has(PermissionFlagsBits.Administrator);
  const isModerator = inGuild && (isAdmin || perms.has(PermissionFlagsBits.ManageGuild) || hasModeratorRole(roles, interaction.guild, moderatorRole));
  return {
    id: interaction.user.id,
    name: interaction.user.username,
    roles,
    isModerator,
    isAdmin,
  };
}

/** Caller of a message (mention flow). Permissions come from the cached member when there is one. */
export function callerFromMessage(message: Message, moderatorRole: string | undefined): Caller {
  const member = message.member;
  const roles = member ? [...member.roles.cache.keys()].filter((id) => id !== message.guildId) : [];
  let perms: Readonly<PermissionsBitField> | undefined;
  try {
    perms = member?.permissions;
  } catch {
    perms = undefined; // partial member without guild roles cached
  }
  const isAdmin = perms?.has(PermissionFlagsBits.Administrator) ?? false;
  const isModerator = isAdmin || (perms?.has(PermissionFlagsBits.ManageGuild) ?? false) || hasModeratorRole(roles, message.guild, moderatorRole);
  return { id: message.author.id, name: message.author.username, roles, isModerator, isAdmin };
}
