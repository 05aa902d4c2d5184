/**
 * Resale-monitor webhooks: a Discord-compatible ingest endpoint (served by bot/webhooks.ts) that scores,
 * enriches and routes drops. This plugin owns the commands to manage webhooks, the processing job and
 * the `monitors` service the HTTP adapter calls.
 */
import { z } from 'zod';
import { defineCommand, defineJob, definePlugin, fail, reply } from '../../engine/index.ts';
import { parseRoutes } from './lib/routes.ts';
import { MonitorService, PROCESS_JOB } from './service.ts';

declare module '../../engine/context.ts' {
  interface Services {
    /** Resale-monitor webhooks (ingest, processing, stats). */
    readonly monitors: MonitorService;
  }
}

const create = defineCommand({
  name: 'webhooks create',
  description: 'Create a webhook URL for a resale monitor, posting into a channel (moderators).',
  permissions: 'moderator',
  hiddenFromTools: true,
  options: z
    .object({
      channel: z.string().regex(/^\d{5,25}$/, 'must be a Discord channel id').describe('Channel the enriched drops go to'),
      route: z.string().max(2000).optional().describe('Routing rules: channel=ID,keyword=dunk+jordan,brand=nike,min-hype=0.8,role=ID; …'),
      name: z.string().min(1).max(60).optional().describe('A name for the monitor'),
      ratePerMinute: z.number().int().min(1).max(100_000).optional().describe('Requests per minute before 429'),
      baseUrl: z.string().url().optional().describe('Public base URL of this server, for the printed webhook URL'),
    })
    .strict(),
  async run(input, ctx) {
    const routes = parseRoutes(input.route);
    const created = await ctx.services.monitors.create({
      channelId: input.channel,
      routes,
      createdBy: ctx.caller.id,
      ...(ctx.guildId ? { guildId: ctx.guildId } : {}),
      ...(input.name ? { name: input.name } : {}),
      ...(input.ratePerMinute ? { rateLimit: { count: input.ratePerMinute, windowMs: 60_000 } } : {}),
    });
    const base = (input.baseUrl ?? `http://localhost:${ctx.services.config.PORT}`).replace(/\/$/, '');
    const url = `${base}/api/webhooks/${created.id}/${created.token}`;
    return reply(`Webhook created. Give your monitor this URL (it is shown once):\n${url}`, {
      title: 'webhooks create',
      ephemeral: true,
      data: { id: created.id, token: created.token, url, signingSecret: created.signingSecret, routes },
    });
  },
});

const revoke = defineCommand({
  name: 'webhooks revoke',
  description: 'Revoke a webhook so its URL stops working (moderators).',
  permissions: 'moderator',
  hiddenFromTools: true,
  options: z.object({ id: z.string().min(1).max(100).describe('Webhook id') }).strict(),
  positional: ['id'],
  async run({ id }, ctx) {
    const changed = await ctx.services.store.webhooks.revoke(id);
    await ctx.services.store.audit.add({ actor: ctx.caller.id, action: 'webhook.revoke', target: id, details: {} });
    return reply(changed ? `Webhook ${id} revoked.` : `Webhook ${id} was already revoked.`, { data: { id, revoked: true, changed } });
  },
});

const list = defineCommand({
  name: 'webhooks list',
  description: 'List active webhooks (moderators).',
  permissions: 'moderator',
  options: z.object({}).strict(),
  async run(_input, ctx) {
    const hooks = await ctx.services.store.webhooks.list(ctx.guildId ? { guildId: ctx.guildId } : {});
    const data = hooks.map((h) => ({ id: h.id, name: h.name, channelId: h.channelId, createdAt: h.createdAt.toISOString(), routes: h.routes }));
    return reply(data.length === 0 ? 'No webhooks yet: `webhooks create --channel <id>`.' : data.map((h) => `• ${h.id} → #${h.channelId}${h.name ? ` (${h.name})` : ''}`).join('\n'), {
      data: { webhooks: data },
    });
  },
});

const stats = defineCommand({
  name: 'webhooks stats',
  description: 'Received, duplicate, rejected and processed counts per webhook.',
  options: z.object({ id: z.string().max(100).optional().describe('Only this webhook') }).strict(),
  positional: ['id'],
  async run({ id }, ctx) {
    const s = await ctx.services.monitors.stats(id);
    if (id && s.webhooks.length === 0) fail('NOT_FOUND', `No active webhook ${id}.`);
    const fields = s.webhooks.slice(0, 25).map((h) => ({
      name: h.name ?? h.id,
      value: Object.entries(h.counts)
        .map(([k, v]) => `${k}: ${v}`)
        .join(' · '),
    }));
    return reply(`${s.webhooks.length} webhook(s).`, { title: 'webhooks stats', fields, data: s });
  },
});

const processJob = defineJob({
  name: PROCESS_JOB,
  data: z.object({ eventId: z.number().int().positive() }).strict(),
  attempts: 5,
  concurrency: 2,
  run: ({ eventId }, ctx) => ctx.services.monitors.process(eventId, ctx.signal),
});

export default definePlugin({
  name: 'monitors',
  description: 'Resale-monitor webhooks: score, enrich, de-duplicate and route drops.',
  provides: ['monitors'],
  commands: [create, revoke, list, stats],
  jobs: [processJob],
  setup(engine) {
    engine.provide('monitors', new MonitorService(engine), 'monitors');
  },
  hooks: {
    async onReady(engine) {
      if (!engine.hasStore) return;
      await engine.services.monitors.recover().catch((err: unknown) => engine.logger.warn('webhook recovery failed', { err }));
    },
  },
});
