/**
 * Scale-out: the ShardingManager spawns two shard processes; each identifies as its own shard of two,
 * receives only its guilds, and serves commands for them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ShardingManager } from 'discord.js';
import { loadConfig, silentLogger } from '../../engine/index.ts';
import { startShardManager, stopShardManager } from '../../bot/discord/shard.ts';
import { snowflake, startFakeDiscord, type FakeDiscord, type FakeGuild } from './fake-discord.ts';

let fake: FakeDiscord;
let manager: ShardingManager | undefined;
let guilds: FakeGuild[];

beforeAll(async () => {
  fake = await startFakeDiscord();
  // Enough guilds that both shards get at least one ((id >> 22) % 2 decides).
  guilds = [];
  while (new Set(guilds.map((g) => fake.shardOf(g, 2))).size < 2) {
    guilds.push(fake.addGuild(`guild ${guilds.length}`));
    await new Promise((r) => setTimeout(r, 2));
  }
});

afterAll(async () => {
  if (manager) await stopShardManager(manager);
  await fake.close();
});

describe('GIVEN SHARDS=2', () => {
  it('THEN two shard processes log in as shards 0 and 1 and each serves its own guilds', async () => {
    const config = loadConfig({ DISCORD_TOKEN: fake.token, SHARDS: '2' });
    manager = await startShardManager(config, silentLogger(), {
      file: new URL('./fixtures/shard-child.ts', import.meta.url).pathname,
      respawn: false,
      timeoutMs: 60_000,
      env: { DISCORD_API_URL: fake.apiUrl, DISCORD_CDN_URL: fake.cdnUrl, LOG_LEVEL: 'error' },
    });
    expect(manager.shards.size).toBe(2);
    expect(fake.gateway.shards.map((s) => s.join('/')).sort()).toEqual(['0/2', '1/2']);
    const counts = (await manager.fetchClientValues('guilds.cache.size')) as number[];
    expect(counts.reduce((a, b) => a + b, 0)).toBe(guilds.length);
    for (const shard of [0, 1]) {
      const guild = guilds.find((g) => fake.shardOf(g, 2) === shard) as FakeGuild;
      const { token } = fake.interact({ type: 2, user: { id: snowflake(), username: 'u' }, guild, data: { id: snowflake(), name: 'testkit', type: 1, options: [{ name: 'guild', type: 1, options: [] }] } });
      await fake.waitFor(() => String(fake.original(token)?.content ?? '') === `guild ${guild.id}`, 20_000, `shard ${shard} answer`);
    }
  }, 120_000);
});
