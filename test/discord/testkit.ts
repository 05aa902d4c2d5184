/**
 * Test support for the Discord suite: a throwaway plugin that covers every path the bot renders (image
 * option, enum, progress, fields, PNG, buttons, cooldown, moderator-only, guild-only, autocomplete), a
 * stand-in for the vision plugin's `hype`/`brand` (so the mention flow is tested without ML models),
 * and a harness that starts the fake Discord plus the real bot.
 */
import { createHash } from 'node:crypto';
import sharp from 'sharp';
import { z } from 'zod';
import {
  createEngine,
  defineCommand,
  definePlugin,
  fail,
  imageInput,
  loadConfig,
  reply,
  silentLogger,
  type Engine,
  type ImageRef,
  type PluginDefinition,
} from '../../engine/index.ts';
import { startDiscordBot, type RunningDiscordBot, type StartDiscordBotOptions } from '../../bot/discord/index.ts';
import { startFakeDiscord, type FakeDiscord, type FakeGuild, type FakeUser, snowflake } from './fake-discord.ts';

/** A small generated PNG (solid colour). */
export async function makePng(rgb: [number, number, number] = [220, 40, 40], size = 32): Promise<Buffer> {
  return sharp({ create: { width: size, height: size, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } }).png().toBuffer();
}

function bytesOf(image: ImageRef): Uint8Array {
  if (typeof image === 'string') fail('BAD_INPUT', 'testkit only takes uploads');
  return image.data;
}

/** Votes the testkit plugin stored: `${sha}:${userId}` → value. */
export type VoteStore = Map<string, { value: string; guildId: string | undefined }>;

/** The throwaway plugin. Each call returns a fresh plugin with its own vote store. */
export function testkitPlugin(votes: VoteStore = new Map()): PluginDefinition {
  const scan = defineCommand({
    name: 'scan',
    description: 'Scan a photo (testkit)',
    long: true,
    options: z
      .object({
        image: imageInput('The photo to scan'),
        mode: z.enum(['quick', 'deep']).default('quick').describe('How hard to look'),
        steps: z.number().int().min(1).max(5).default(2).describe('Progress steps'),
        note: z.string().max(50).optional().describe('A note'),
      })
      .strict(),
    async run(input, ctx) {
      const data = bytesOf(input.image);
      // The first step carries an intermediate preview, as dream and style-transfer do.
      const preview = await sharp(data).resize(8, 8).png().toBuffer();
      for (let i = 1; i <= input.steps; i += 1) {
        ctx.progress({ fraction: i / (input.steps + 1), stage: `step ${i}/${input.steps}`, queuePosition: input.steps - i, ...(i === 1 ? { preview: { name: 'preview.png', png: preview } } : {}) });
        await new Promise((r) => setTimeout(r, 20));
      }
      const meta = await sharp(data).metadata().catch(() => fail('NOT_AN_IMAGE', 'testkit could not read that image.'));
      const sha = createHash('sha256').update(data).digest('hex').slice(0, 16);
      const thumb = await sharp(data).resize(16, 16).png().toBuffer();
      return reply(`Scanned ${meta.width}x${meta.height} (${input.mode})${input.note ? ` — ${input.note}` : ''}`, {
        title: 'Scan result',
        fields: [
          { name: 'Mode', value: input.mode },
          { name: 'Size', value: `${meta.width}x${meta.height}` },
          { name: 'Bytes', value: String(data.byteLength) },
        ],
        images: [{ name: 'scan-thumb.png', png: thumb }],
        data: { sha, width: meta.width, height: meta.height, caller: ctx.caller.id, guildId: ctx.guildId ?? null },
        color: 0x2ecc71,
        actions: [
          { id: `testkit:vote:agree:${sha}`, label: 'Agree', style: 'success' },
          { id: `testkit:vote:disagree:${sha}`, label: 'Disagree', style: 'danger' },
        ],
      });
    },
  });
  const cool = defineCommand({
    name: 'testkit cool',
    description: 'A command with a one-minute cooldown',
    cooldown: { perUserMs: 60_000 },
    options: z.object({}).strict(),
    run: (_input, ctx) => reply(`cool for ${ctx.caller.id}`),
  });
  const wipe = defineCommand({
    name: 'testkit wipe',
    description: 'A moderator-only command',
    permissions: 'moderator',
    options: z.object({ target: z.string().min(1).describe('What to wipe') }).strict(),
    run: ({ target }) => reply(`wiped ${target}`, { data: { target } }),
  });
  const guildOnly = defineCommand({
    name: 'testkit guild',
    description: 'Only inside a server',
    guildOnly: true,
    options: z.object({}).strict(),
    run: (_input, ctx) => reply(`guild ${ctx.guildId}`),
  });
  const pick = defineCommand({
    name: 'testkit pick',
    description: 'Pick a model (autocomplete)',
    options: z.object({ model: z.string().min(1).describe('Model id') }).strict(),
    autocomplete: { model: (partial: string) => ['brand-v1', 'brand-v2', 'hype-v1'].filter((m) => m.startsWith(partial)) },
    run: ({ model }) => reply(`picked ${model}`),
  });
  const secret = defineCommand({
    name: 'testkit secret',
    description: 'Answers only to the caller',
    options: z.object({}).strict(),
    run: () => reply('only you can see this', { ephemeral: true }),
  });
  const slow = defineCommand({
    name: 'testkit slow',
    description: 'Takes a moment (graceful shutdown)',
    options: z.object({ ms: z.number().int().min(0).max(5000).default(600).describe('How long') }).strict(),
    async run({ ms }) {
      await new Promise((r) => setTimeout(r, ms));
      return reply(`done after ${ms} ms`);
    },
  });
  const crash = defineCommand({
    name: 'testkit crash',
    description: 'Throws a bug',
    options: z.object({}).strict(),
    run: () => {
      throw new Error('TypeError: secret internals at /srv/app.js:12');
    },
  });
  return definePlugin({
    name: 'testkit',
    commands: [scan, cool, wipe, guildOnly, pick, secret, slow, crash],
    onAction(actionId, ctx) {
      const [, kind, value, sha] = actionId.split(':');
      if (kind !== 'vote' || !value || !sha) fail('NOT_FOUND', 'Unknown button.');
      const key = `${sha}:${ctx.caller.id}`;
      if (votes.has(key)) return reply('You already voted on this photo.', { ephemeral: true });
      votes.set(key, { value, guildId: ctx.guildId });
      return reply(`Thanks — your "${value}" vote is recorded.`, { ephemeral: true });
    },
  });
}

/** Stand-ins for the vision plugin's `hype` and `brand`: mean brightness decides, a PNG is returned. */
export function fakeVisionPlugin(): PluginDefinition {
  const stats = async (image: ImageRef): Promise<number> => {
    const s = await sharp(bytesOf(image)).stats().catch(() => fail('NOT_AN_IMAGE', 'not an image'));
    return s.channels.slice(0, 3).reduce((a, c) => a + c.mean, 0) / (3 * 255);
  };
  const hype = defineCommand({
    name: 'hype',
    description: 'Hype or not (fake)',
    options: z.object({ image: imageInput() }).strict(),
    async run({ image }) {
      const p = await stats(image);
      return reply(`Hype: ${p > 0.5 ? 'hyped' : 'not hyped'}`, {
        title: 'Hype',
        fields: [{ name: 'P(hyped)', value: p.toFixed(2) }],
        images: [{ name: 'hype.png', png: await makePng([255, 0, 0], 8) }],
        data: { label: p > 0.5 ? 'hyped' : 'not_hyped', probability: p },
        actions: [{ id: 'fake-vision:agree:hype', label: 'Agree' }],
      });
    },
  });
  const brand = defineCommand({
    name: 'brand',
    description: 'Brand (fake)',
    options: z.object({ image: imageInput() }).strict(),
    async run({ image }) {
      const p = await stats(image);
      const label = p > 0.5 ? 'jordan' : 'adidas';
      return reply(`Brand: ${label}`, {
        title: 'Brand',
        fields: [{ name: 'Brand', value: label }],
        images: [{ name: 'brand.png', png: await makePng([0, 0, 255], 8) }],
        data: { label },
      });
    },
  });
  return definePlugin({ name: 'fake-vision', commands: [hype, brand] });
}

/** A started fake Discord + engine + real bot. */
export interface Harness {
  readonly fake: FakeDiscord;
  readonly guild: FakeGuild;
  readonly engine: Engine;
  readonly bot: RunningDiscordBot;
  readonly votes: VoteStore;
  readonly member: FakeUser;
  readonly moderator: FakeUser;
  close(): Promise<void>;
}

/** Start everything; `env` adds config (e.g. DISCORD_MODERATOR_ROLE), `options` bot options. */
export async function startHarness(options: { env?: Record<string, string>; bot?: StartDiscordBotOptions; plugins?: PluginDefinition[] } = {}): Promise<Harness> {
  const fake = await startFakeDiscord();
  const guild = fake.addGuild();
  const config = loadConfig({
    DISCORD_TOKEN: fake.token,
    DISCORD_API_URL: fake.apiUrl,
    DISCORD_CDN_URL: fake.cdnUrl,
    DISCORD_MODLOG_CHANNEL: guild.channels[1]?.id ?? '',
    ...options.env,
  });
  const engine = createEngine({ config });
  const votes: VoteStore = new Map();
  await engine.registerAll(options.plugins ?? [testkitPlugin(votes), fakeVisionPlugin()]);
  await engine.start();
  const bot = await startDiscordBot(engine, config, silentLogger(), { safety: false, redisRateLimiter: false, progressIntervalMs: 0, ...options.bot });
  return {
    fake,
    guild,
    engine,
    bot,
    votes,
    member: { id: snowflake(), username: 'member' },
    moderator: { id: snowflake(), username: 'moderator' },
    async close() {
      await bot.close();
      await engine.close();
      await fake.close();
    },
  };
}
