/**
 * End to end: the REAL discord.js client (through startDiscordBot) against the fake Discord server.
 * Slash commands, progress, buttons, autocomplete, mentions, guards and bad input.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MODERATOR_PERMS, snowflake, type RecordedRequest } from './fake-discord.ts';
import { createEngine, loadConfig, silentLogger } from '../../engine/index.ts';
import { startDiscordBot } from '../../bot/discord/index.ts';
import { makePng, startHarness, type Harness } from './testkit.ts';

let h: Harness;

beforeAll(async () => {
  h = await startHarness({ env: { DISCORD_MODERATOR_ROLE: 'Sneaker Mods' } });
});

afterAll(async () => {
  await h?.close();
});

type Opt = { name: string; type: number; value?: unknown; options?: Opt[]; focused?: boolean };

/** A slash interaction payload's `data` for a command path like `testkit cool`. */
function slashData(path: string, options: Opt[] = [], attachments: Record<string, unknown>[] = []): Record<string, unknown> {
  const [top, ...rest] = path.split(' ');
  let opts: Opt[] = options;
  if (rest.length === 2) opts = [{ name: rest[0] ?? '', type: 2, options: [{ name: rest[1] ?? '', type: 1, options }] }];
  else if (rest.length === 1) opts = [{ name: rest[0] ?? '', type: 1, options }];
  return {
    id: snowflake(),
    name: top,
    type: 1,
    options: opts,
    ...(attachments.length > 0 ? { resolved: { attachments: Object.fromEntries(attachments.map((a) => [a.id, a])) } } : {}),
  };
}

function attachment(url: string, filename: string, size: number, contentType = 'image/png'): Record<string, unknown> {
  return { id: snowflake(), filename, size, url, proxy_url: url, content_type: contentType, width: 32, height: 32, ephemeral: false };
}

/** The ephemeral follow-up sent for an interaction (error path), once it arrives. */
async function ephemeralFollowUp(token: string): Promise<RecordedRequest> {
  return h.fake.waitFor(
    () => h.fake.requests.find((r) => r.method === 'POST' && r.path === `/webhooks/${h.fake.applicationId}/${token}`),
    10_000,
    'ephemeral follow-up',
  );
}

/** The ephemeral answer of an interaction: an immediate ephemeral reply (type 4) or a follow-up. */
async function ephemeralAnswer(id: string, token: string): Promise<string> {
  const r = await h.fake.waitFor(
    () =>
      h.fake.requests.find((q) => q.method === 'POST' && q.path === `/webhooks/${h.fake.applicationId}/${token}`) ??
      h.fake.requests.find((q) => q.path === `/interactions/${id}/${token}/callback` && (q.body as { type?: number }).type === 4),
    10_000,
    'ephemeral answer',
  );
  const body = (r.path.endsWith('/callback') ? (r.body as { data: unknown }).data : r.body) as { content: string; flags: number };
  expect(body.flags & 64).toBe(64);
  return body.content;
}

function bodyOf(r: RecordedRequest): { content?: string; flags?: number; embeds?: { title?: string; fields?: { name: string; value: string }[]; image?: { url: string } }[]; components?: { components: { custom_id: string; label: string }[] }[] } {
  return (r.body ?? {}) as ReturnType<typeof bodyOf>;
}

describe('GIVEN the bot logged in to the fake Discord', () => {
  it('THEN it is ready with the guild cached and its application id from READY', () => {
    expect(h.bot.client.isReady()).toBe(true);
    expect(h.bot.client.guilds.cache.has(h.guild.id)).toBe(true);
    expect(h.bot.client.application?.id).toBe(h.fake.applicationId);
    expect(h.fake.gateway.identifies).toBe(1);
  });

  it('WHEN /scan is used with an image THEN the reply is deferred, shows progress, and is edited with the PNG, fields and buttons', async () => {
    const png = await makePng([10, 200, 10], 40);
    const url = h.fake.addCdnFile('shoe.png', png);
    const att = attachment(url, 'shoe.png', png.length);
    const { id, token } = h.fake.interact({
      type: 2,
      user: h.member,
      guild: h.guild,
      data: slashData('scan', [{ name: 'image', type: 11, value: att.id }, { name: 'mode', type: 3, value: 'deep' }, { name: 'steps', type: 4, value: 2 }], [att]),
    });
    const final = await h.fake.waitFor(() => {
      const o = h.fake.original(token);
      return o && (o.attachments as unknown[]).length > 0 && String(o.content ?? '').includes('Scanned') ? o : undefined;
    }, 15_000, 'final edit');
    const reqs = h.fake.interactionRequests(id, token);
    // Deferred first (type 5), then edits of @original.
    expect(reqs[0]?.path).toBe(`/interactions/${id}/${token}/callback`);
    expect((reqs[0]?.body as { type: number }).type).toBe(5);
    const edits = reqs.filter((r) => r.method === 'PATCH');
    expect(edits.some((r) => /\[█+░*\] \d+%/.test(bodyOf(r).content ?? '') && /step 1\/2/.test(bodyOf(r).content ?? ''))).toBe(true);
    // An intermediate preview travels with its progress edit.
    expect(edits.some((r) => /step 1\/2/.test(bodyOf(r).content ?? '') && r.files.some((f) => f.name === 'preview.png'))).toBe(true);
    const last = edits.at(-1);
    expect(last?.files).toHaveLength(1);
    expect(last?.files[0]?.name).toBe('scan-thumb.png');
    expect(last?.files[0]?.data.subarray(1, 4).toString('latin1')).toBe('PNG');
    const embed = bodyOf(last as RecordedRequest).embeds?.[0];
    expect(embed?.title).toBe('Scan result');
    expect(embed?.fields).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: 'Mode', value: 'deep' }),
        expect.objectContaining({ name: 'Size', value: '40x40' }),
        expect.objectContaining({ name: 'Bytes', value: String(png.length) }),
      ]),
    );
    expect(embed?.image?.url).toBe('attachment://scan-thumb.png');
    expect(final.content).toContain('Scanned 40x40 (deep)');
    const buttons = bodyOf(last as RecordedRequest).components?.[0]?.components ?? [];
    expect(buttons.map((b) => b.label)).toEqual(['Agree', 'Disagree']);
    expect(buttons[0]?.custom_id).toMatch(/^testkit:vote:agree:[0-9a-f]{16}$/);
    // The CDN file was fetched by the bot (the engine saw the bytes: size field).
  });

  it('WHEN two members press Agree, one of them twice THEN each vote is stored once and the repeat is told so, ephemerally', async () => {
    const sha = 'abcdef0123456789';
    const press = (user: typeof h.member) =>
      h.fake.interact({
        type: 3,
        user,
        guild: h.guild,
        data: { custom_id: `testkit:vote:agree:${sha}`, component_type: 2 },
        message: { id: snowflake(), channel_id: h.guild.channels[0]?.id ?? '', content: 'x', author: h.fake.userJson(h.fake.botUser), timestamp: new Date().toISOString(), edited_timestamp: null, tts: false, mention_everyone: false, mentions: [], mention_roles: [], attachments: [], embeds: [], pinned: false, type: 0, flags: 0, components: [] },
      });
    const a = press(h.member);
    const edited = (token: string) => () => {
      const o = h.fake.original(token);
      return o?.edited_timestamp ? o : undefined;
    };
    const doneA = await h.fake.waitFor(edited(a.token), 10_000, 'vote reply');
    const b = press(h.member);
    const doneB = await h.fake.waitFor(edited(b.token), 10_000, 'second vote reply');
    const c = press(h.moderator);
    await h.fake.waitFor(() => h.fake.original(c.token)?.edited_timestamp, 10_000, 'third vote reply');
    expect(String(doneA.content)).toContain('vote is recorded');
    expect(String(doneB.content)).toContain('already voted');
    // Deferred ephemerally: flag 64 on the callback.
    const cb = h.fake.requests.find((r) => r.path === `/interactions/${a.id}/${a.token}/callback`);
    expect(((cb?.body as { data?: { flags?: number } }).data?.flags ?? 0) & 64).toBe(64);
    expect([...h.votes.keys()].filter((k) => k.startsWith(sha)).sort()).toEqual([`${sha}:${h.member.id}`, `${sha}:${h.moderator.id}`].sort());
    expect(h.votes.get(`${sha}:${h.member.id}`)).toEqual({ value: 'agree', guildId: h.guild.id });
  });

  it('WHEN a member runs a cooldown command twice THEN the second run is an ephemeral RATE_LIMITED with the retry time', async () => {
    const first = h.fake.interact({ type: 2, user: h.member, guild: h.guild, data: slashData('testkit cool') });
    await h.fake.waitFor(() => String(h.fake.original(first.token)?.content ?? '').includes('cool for'), 10_000, 'first cool');
    const second = h.fake.interact({ type: 2, user: h.member, guild: h.guild, data: slashData('testkit cool') });
    const follow = await ephemeralFollowUp(second.token);
    expect(bodyOf(follow).flags).toBe(64);
    expect(bodyOf(follow).content).toMatch(/Slow down a little\. .*cooling down: try again in \d+s/);
    expect(h.fake.original(second.token)?.deleted).toBe(true);
  });

  it('WHEN a member runs a moderator-only command THEN it is refused ephemerally; a Manage Guild moderator may run it', async () => {
    const refused = h.fake.interact({ type: 2, user: h.member, guild: h.guild, data: slashData('testkit wipe', [{ name: 'target', type: 3, value: 'x' }]) });
    const follow = await ephemeralFollowUp(refused.token);
    expect(bodyOf(follow).content).toContain('You are not allowed to do that.');
    expect(bodyOf(follow).content).toContain('moderators only');
    const allowed = h.fake.interact({ type: 2, user: h.moderator, guild: h.guild, permissions: MODERATOR_PERMS, data: slashData('testkit wipe', [{ name: 'target', type: 3, value: 'x' }]) });
    await h.fake.waitFor(() => String(h.fake.original(allowed.token)?.content ?? '').includes('wiped x'), 10_000, 'moderator run');
  });

  it('WHEN a member holds the configured moderator role (DISCORD_MODERATOR_ROLE) THEN the moderator command runs', async () => {
    const modsRole = h.guild.roles.find((r) => r.name === 'Sneaker Mods')?.id ?? '';
    const { token } = h.fake.interact({ type: 2, user: h.member, guild: h.guild, roles: [modsRole], data: slashData('testkit wipe', [{ name: 'target', type: 3, value: 'y' }]) });
    await h.fake.waitFor(() => String(h.fake.original(token)?.content ?? '').includes('wiped y'), 10_000, 'role moderator run');
  });

  it('WHEN autocomplete is asked for THEN the engine provider answers with matching choices', async () => {
    const { id, token } = h.fake.interact({ type: 4, user: h.member, guild: h.guild, data: slashData('testkit pick', [{ name: 'model', type: 3, value: 'brand', focused: true }]) });
    const cb = await h.fake.waitFor(() => h.fake.requests.find((r) => r.path === `/interactions/${id}/${token}/callback`), 10_000, 'autocomplete');
    expect(cb.body).toEqual({ type: 8, data: { choices: [{ name: 'brand-v1', value: 'brand-v1' }, { name: 'brand-v2', value: 'brand-v2' }] } });
  });

  it('WHEN a command replies ephemerally THEN the public deferral is removed and the answer is an ephemeral follow-up', async () => {
    const { token } = h.fake.interact({ type: 2, user: h.member, guild: h.guild, data: slashData('testkit secret') });
    const follow = await ephemeralFollowUp(token);
    expect(bodyOf(follow)).toMatchObject({ content: 'only you can see this', flags: 64 });
  });

  it('WHEN a handler throws a bug THEN the user gets the catalogue sentence and no internals', async () => {
    const { token } = h.fake.interact({ type: 2, user: h.member, guild: h.guild, data: slashData('testkit crash') });
    const follow = await ephemeralFollowUp(token);
    expect(bodyOf(follow).content).toContain('Something went wrong on our side.');
    expect(bodyOf(follow).content).not.toMatch(/secret|srv|TypeError/);
  });
});

describe('GIVEN bad input', () => {
  it('WHEN the attachment is not an image THEN NOT_AN_IMAGE, ephemerally, without downloading it', async () => {
    const url = h.fake.addCdnFile('notes.txt', Buffer.from('hello'), 'text/plain');
    const att = attachment(url, 'notes.txt', 5, 'text/plain');
    const { token } = h.fake.interact({ type: 2, user: h.member, guild: h.guild, data: slashData('scan', [{ name: 'image', type: 11, value: att.id }], [att]) });
    const follow = await ephemeralFollowUp(token);
    expect(bodyOf(follow)).toMatchObject({ flags: 64 });
    expect(bodyOf(follow).content).toContain('That file is not an image I can read.');
  });

  it('WHEN the attachment is larger than the cap THEN TOO_LARGE', async () => {
    const url = h.fake.addCdnFile('huge.png', Buffer.alloc(10));
    const att = attachment(url, 'huge.png', 60 * 1024 * 1024);
    const { token } = h.fake.interact({ type: 2, user: h.member, guild: h.guild, data: slashData('scan', [{ name: 'image', type: 11, value: att.id }], [att]) });
    expect(bodyOf(await ephemeralFollowUp(token)).content).toMatch(/That is too large\. "huge\.png" is 60\.0 MB; the limit is 25\.0 MB/);
  });

  it('WHEN the attachment URL has expired (404 from the CDN) THEN NOT_FOUND asking to upload again', async () => {
    const att = attachment(`${h.fake.cdnUrl}/attachments/1/2/gone.png`, 'gone.png', 100);
    const { token } = h.fake.interact({ type: 2, user: h.member, guild: h.guild, data: slashData('scan', [{ name: 'image', type: 11, value: att.id }], [att]) });
    expect(bodyOf(await ephemeralFollowUp(token)).content).toContain('has expired or was deleted; upload the photo again');
  });

  it('WHEN an attachment points outside the Discord CDN THEN it is refused without being fetched', async () => {
    const att = attachment('http://169.254.169.254/latest/meta-data.png', 'meta.png', 100);
    const { token } = h.fake.interact({ type: 2, user: h.member, guild: h.guild, data: slashData('scan', [{ name: 'image', type: 11, value: att.id }], [att]) });
    expect(bodyOf(await ephemeralFollowUp(token)).content).toContain('only downloaded from the Discord CDN');
  });

  it('WHEN a guild-only command is used in a DM THEN it is refused ephemerally', async () => {
    const { token } = h.fake.interact({ type: 2, user: h.member, data: slashData('testkit guild') });
    const follow = await ephemeralFollowUp(token);
    expect(bodyOf(follow).content).toContain('only works inside a server');
  });

  it('WHEN an unknown option or an unknown command arrives THEN BAD_INPUT / UNKNOWN_COMMAND, ephemerally', async () => {
    const a = h.fake.interact({ type: 2, user: h.member, guild: h.guild, data: slashData('testkit guild', [{ name: 'bogus', type: 3, value: 'x' }]) });
    expect(bodyOf(await ephemeralFollowUp(a.token)).content).toContain('unknown option(s): bogus');
    const b = h.fake.interact({ type: 2, user: h.member, guild: h.guild, data: slashData('nope') });
    const cb = await h.fake.waitFor(() => h.fake.requests.find((r) => r.path === `/interactions/${b.id}/${b.token}/callback`), 10_000, 'unknown command');
    expect(cb.body).toMatchObject({ type: 4, data: { flags: 64 } });
    expect((cb.body as { data: { content: string } }).data.content).toContain('There is no such command.');
  });

  it('WHEN interaction payloads are malformed THEN nothing crashes and the bot keeps serving', async () => {
    // Attachment option whose file is missing from `resolved`.
    const a = h.fake.interact({ type: 2, user: h.member, guild: h.guild, data: slashData('scan', [{ name: 'image', type: 11, value: '999' }]) });
    expect(bodyOf(await ephemeralFollowUp(a.token)).content).toContain('arrived without its file');
    // Subcommand path without the subcommand, and a wrong value type.
    const b = h.fake.interact({ type: 2, user: h.member, guild: h.guild, data: { id: snowflake(), name: 'testkit', type: 1 } });
    expect(await ephemeralAnswer(b.id, b.token)).toContain('There is no such command.');
    const c = h.fake.interact({ type: 2, user: h.member, guild: h.guild, data: slashData('testkit wipe', [{ name: 'target', type: 4, value: 12 }]) });
    expect(await ephemeralAnswer(c.id, c.token)).toContain('You are not allowed');
    const c2 = h.fake.interact({ type: 2, user: h.moderator, guild: h.guild, permissions: MODERATOR_PERMS, data: slashData('testkit wipe', [{ name: 'target', type: 4, value: 12 }]) });
    expect(await ephemeralAnswer(c2.id, c2.token)).toContain('That input is not valid. testkit wipe: target:');
    // Unknown button id, and an interaction type the bot does not handle.
    const d = h.fake.interact({ type: 3, user: h.member, guild: h.guild, data: { custom_id: 'nobody:here', component_type: 2 }, message: { id: snowflake(), channel_id: h.guild.channels[0]?.id ?? '', content: '', author: h.fake.userJson(h.fake.botUser), timestamp: new Date().toISOString(), edited_timestamp: null, tts: false, mention_everyone: false, mentions: [], mention_roles: [], attachments: [], embeds: [], pinned: false, type: 0, flags: 0, components: [] } });
    await h.fake.waitFor(() => String(h.fake.original(d.token)?.content ?? '').includes('no longer does anything'), 10_000, 'unknown button');
    h.fake.dispatch('INTERACTION_CREATE', { id: snowflake(), type: 99, token: 'x', application_id: h.fake.applicationId, version: 1 });
    // Still alive: a normal command works.
    const e = h.fake.interact({ type: 2, user: h.member, guild: h.guild, data: slashData('testkit guild') });
    await h.fake.waitFor(() => String(h.fake.original(e.token)?.content ?? '').startsWith('guild '), 10_000, 'alive');
  });
});

describe('GIVEN messages that mention the bot', () => {
  it('WHEN a photo is attached THEN hype and brand answer together in ONE message', async () => {
    const png = await makePng([240, 240, 240]);
    const url = h.fake.addCdnFile('kicks.png', png);
    const channel = h.guild.channels[0]?.id ?? '';
    const before = h.fake.botMessages(channel).length;
    const msg = h.fake.postMessage({ user: h.member, guild: h.guild, content: `<@${h.fake.botUser.id}> rate these`, mentionBot: true, attachments: [{ name: 'kicks.png', url, contentType: 'image/png', size: png.length }] });
    const answer = await h.fake.waitFor(() => h.fake.botMessages(channel).slice(before).find((m) => (m.message_reference as { message_id?: string } | undefined)?.message_id === msg.id), 10_000, 'photo answer');
    expect(h.fake.botMessages(channel).length).toBe(before + 1);
    expect(answer.content).toContain('Hype: hyped');
    expect(answer.content).toContain('Brand: jordan');
    expect((answer.embeds as { title: string }[]).map((e) => e.title)).toEqual(['Hype', 'Brand']);
    expect((answer.attachments as { filename: string }[]).map((a) => a.filename).sort()).toEqual(['brand.png', 'hype.png']);
  });

  it('WHEN the mention replies to a message with a photo THEN that photo is analysed', async () => {
    const png = await makePng([10, 10, 10]);
    const url = h.fake.addCdnFile('dark.png', png);
    const channel = h.guild.channels[0]?.id ?? '';
    const photo = h.fake.postMessage({ user: h.moderator, guild: h.guild, content: 'my pair', attachments: [{ name: 'dark.png', url, contentType: 'image/png', size: png.length }] });
    const ask = h.fake.postMessage({ user: h.member, guild: h.guild, content: `<@${h.fake.botUser.id}> what brand?`, mentionBot: true, replyTo: photo });
    const answer = await h.fake.waitFor(() => h.fake.botMessages(channel).find((m) => (m.message_reference as { message_id?: string } | undefined)?.message_id === ask.id), 10_000, 'reply answer');
    expect(answer.content).toContain('Brand: adidas');
    expect(answer.content).toContain('Hype: not hyped');
  });

  it('WHEN a non-image file is attached THEN the answer says it is not an image', async () => {
    const url = h.fake.addCdnFile('a.pdf', Buffer.from('%PDF'), 'application/pdf');
    const channel = h.guild.channels[0]?.id ?? '';
    const msg = h.fake.postMessage({ user: h.member, guild: h.guild, content: `<@${h.fake.botUser.id}>`, mentionBot: true, attachments: [{ name: 'a.pdf', url, contentType: 'application/pdf', size: 4 }] });
    const answer = await h.fake.waitFor(() => h.fake.botMessages(channel).find((m) => (m.message_reference as { message_id?: string } | undefined)?.message_id === msg.id), 10_000, 'pdf answer');
    expect(answer.content).toContain('That file is not an image I can read.');
  });

  it('WHEN free text mentions the bot and no LLM is configured THEN the keyword router runs the command', async () => {
    const channel = h.guild.channels[0]?.id ?? '';
    const msg = h.fake.postMessage({ user: h.member, guild: h.guild, content: `<@${h.fake.botUser.id}> testkit guild please`, mentionBot: true });
    const answer = await h.fake.waitFor(() => h.fake.botMessages(channel).find((m) => (m.message_reference as { message_id?: string } | undefined)?.message_id === msg.id), 10_000, 'text answer');
    expect(answer.content).toBe(`guild ${h.guild.id}`);
  });

  it('WHEN a message does not mention the bot THEN it is ignored', async () => {
    const channel = h.guild.channels[0]?.id ?? '';
    const before = h.fake.botMessages(channel).length;
    h.fake.postMessage({ user: h.member, guild: h.guild, content: 'testkit guild' });
    const marker = h.fake.postMessage({ user: h.member, guild: h.guild, content: `<@${h.fake.botUser.id}> testkit guild`, mentionBot: true });
    await h.fake.waitFor(() => h.fake.botMessages(channel).find((m) => (m.message_reference as { message_id?: string } | undefined)?.message_id === marker.id), 10_000, 'marker');
    expect(h.fake.botMessages(channel).length).toBe(before + 1);
  });
});

describe('GIVEN an unreliable Discord', () => {
  it('WHEN REST answers 429 to the edit THEN discord.js waits and retries, and the reply still arrives', async () => {
    h.fake.failNext('PATCH', /\/messages\/@original$/, { status: 429, retryAfterS: 0.3 });
    const { token } = h.fake.interact({ type: 2, user: h.member, guild: h.guild, data: slashData('testkit guild') });
    await h.fake.waitFor(() => String(h.fake.original(token)?.content ?? '').startsWith('guild '), 15_000, 'edit after 429');
    const patches = h.fake.requests.filter((r) => r.method === 'PATCH' && r.path.includes(token));
    expect(patches.map((p) => p.status)).toEqual([429, 200]);
  });

  it('WHEN the gateway drops the connection THEN the bot RESUMEs the session and keeps serving', async () => {
    const identifies = h.fake.gateway.identifies;
    const resumes = h.fake.gateway.resumes;
    h.fake.dropConnections(4000);
    await h.fake.waitFor(() => h.fake.gateway.resumes > resumes && h.fake.connectedSessions === 1, 20_000, 'resume');
    expect(h.fake.gateway.identifies).toBe(identifies);
    const { token } = h.fake.interact({ type: 2, user: h.member, guild: h.guild, data: slashData('testkit guild') });
    await h.fake.waitFor(() => String(h.fake.original(token)?.content ?? '').startsWith('guild '), 10_000, 'serving after resume');
  });
});

describe('GIVEN a command running WHEN the bot is closed (SIGTERM in production)', () => {
  it('THEN close() lets the command finish and deliver its reply before disconnecting', async () => {
    const h2 = await startHarness();
    try {
      const { id, token } = h2.fake.interact({ type: 2, user: h2.member, guild: h2.guild, data: slashData('testkit slow', [{ name: 'ms', type: 4, value: 800 }]) });
      await h2.fake.waitFor(() => h2.fake.requests.find((r) => r.path === `/interactions/${id}/${token}/callback`), 10_000, 'defer');
      await h2.bot.close();
      expect(h2.fake.original(token)?.content).toBe('done after 800 ms');
      expect(h2.bot.client.isReady()).toBe(false);
    } finally {
      await h2.engine.close();
      await h2.fake.close();
    }
  });
});

describe('GIVEN a wrong token', () => {
  it('THEN startDiscordBot rejects (the composition root reports it) instead of hanging', async () => {
    const config = loadConfig({ DISCORD_TOKEN: 'not-the-token', DISCORD_API_URL: h.fake.apiUrl });
    await expect(startDiscordBot(createEngine({ config }), config, silentLogger(), { safety: false, redisRateLimiter: false })).rejects.toThrow();
    await expect(startDiscordBot(createEngine(), loadConfig({}), silentLogger())).rejects.toMatchObject({ code: 'BAD_INPUT' });
  });
});
