/**
 * Posts messages to Discord channels over REST (no gateway needed), for webhook deliveries. Provided to
 * the engine as the `channelPoster` service when DISCORD_TOKEN is set.
 */
import { REST } from '@discordjs/rest';
import { Routes, type RESTPostAPIChannelMessageResult } from 'discord-api-types/v10';
import type { ChannelPoster, OutgoingMessage } from '../plugins/monitors/service.ts';

/** Create a poster for a bot token; `api` is DISCORD_API_URL (default Discord's). */
export function createChannelPoster(token: string, api?: string): ChannelPoster {
  const rest = new REST({ version: '10', ...(api ? { api } : {}) }).setToken(token);
  return {
    async post(channelId: string, message: OutgoingMessage) {
      const files = message.files ?? [];
      const body = {
        ...(message.content ? { content: message.content.slice(0, 2000) } : {}),
        embeds: message.embeds.slice(0, 10),
        // Never let a monitor's text ping @everyone; only the route's role may be mentioned.
        allowed_mentions: { parse: [], roles: [...(message.allowedRoles ?? [])] },
        ...(files.length > 0 ? { attachments: files.map((f, i) => ({ id: i, filename: f.name })) } : {}),
      };
      const res = (await rest.post(Routes.channelMessages(channelId), {
        body,
        ...(files.length > 0 ? { files: files.map((f) => ({ name: f.name, data: f.data, contentType: 'image/png' })) } : {}),
      })) as RESTPostAPIChannelMessageResult;
      return { id: res.id };
    },
  };
}
