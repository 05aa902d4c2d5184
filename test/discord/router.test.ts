/**
 * Free-text routing: LangChain's fake chat models prove that a tool call built from the engine's tool
 * descriptions reaches engine.invoke (through the real bot), that a failing model falls back to the
 * keyword router, and that the keyword router is deterministic.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AIMessage, AIMessageChunk } from '@langchain/core/messages';
import { FakeStreamingChatModel } from '@langchain/core/utils/testing';
import { createEngine, loadConfig, silentLogger, type CommandContext } from '../../engine/index.ts';
import { chatModelFromConfig, createRouter, KeywordRouter, LlmRouter } from '../../bot/discord/router.ts';
import { fakeVisionPlugin, startHarness, testkitPlugin, type Harness } from './testkit.ts';

/** A fake tool-calling model that also records the tools it was bound with. */
class RecordingModel extends FakeStreamingChatModel {
  static bound: { name: string; description?: string; schema: unknown }[][] = [];
  override bindTools(tools: Parameters<FakeStreamingChatModel['bindTools']>[0]) {
    RecordingModel.bound.push(tools as { name: string; schema: unknown }[]);
    return super.bindTools(tools);
  }
}

function toolCallModel(name: string, args: Record<string, unknown>): RecordingModel {
  return new RecordingModel({ chunks: [new AIMessageChunk({ content: '', tool_calls: [{ name, args, id: 'call_1', type: 'tool_call' }] })] });
}

async function engine() {
  const e = createEngine();
  await e.registerAll([testkitPlugin(), fakeVisionPlugin()]);
  return e;
}

describe('GIVEN the keyword router', () => {
  it('THEN it picks the command named in the text and fills enum and number options', async () => {
    const router = new KeywordRouter(await engine());
    expect(await router.route('<@123> testkit guild please')).toMatchObject({ kind: 'command', command: 'testkit guild', input: {} });
    expect(await router.route('scan this deep with steps 4')).toMatchObject({ kind: 'command', command: 'scan', input: { mode: 'deep', steps: 4 } });
    expect(await router.route('can you pick something')).toMatchObject({ command: 'testkit pick' });
  });

  it('THEN unknown requests get the list of commands, and moderator commands are never routed', async () => {
    const router = new KeywordRouter(await engine());
    const answer = await router.route('what is the weather');
    expect(answer.kind).toBe('answer');
    expect(answer.kind === 'answer' && answer.text).toContain('`scan`');
    expect(answer.kind === 'answer' && answer.text).not.toContain('testkit wipe');
    expect((await router.route('testkit wipe everything')).kind).toBe('answer');
  });
});

describe('GIVEN a LangChain tool-calling model', () => {
  it('THEN it is offered the engine tool descriptions and its tool call becomes a command', async () => {
    RecordingModel.bound = [];
    const e = await engine();
    const router = new LlmRouter(toolCallModel('scan', { mode: 'deep' }), e, new KeywordRouter(e), silentLogger());
    expect(await router.route('look closely at my shoe')).toEqual({ kind: 'command', via: 'llm', command: 'scan', input: { mode: 'deep' } });
    const tools = RecordingModel.bound[0] ?? [];
    expect(tools.map((t) => t.name).sort()).toEqual(['brand', 'hype', 'scan', 'testkit_cool', 'testkit_crash', 'testkit_guild', 'testkit_pick', 'testkit_secret', 'testkit_slow']);
    const scan = tools.find((t) => t.name === 'scan');
    expect(scan?.schema).toMatchObject({ type: 'object', properties: { mode: { enum: ['quick', 'deep'] }, image: { type: 'string' } } });
  });

  it('THEN a plain-text answer is passed through, and a failing model falls back to keywords', async () => {
    const e = await engine();
    const talk = new LlmRouter(new FakeStreamingChatModel({ responses: [new AIMessage('Sneakers are great.')] }), e, new KeywordRouter(e), silentLogger());
    expect(await talk.route('hello')).toEqual({ kind: 'answer', via: 'llm', text: 'Sneakers are great.' });
    const broken = new LlmRouter(new FakeStreamingChatModel({ thrownErrorString: 'provider down' }), e, new KeywordRouter(e), silentLogger());
    expect(await broken.route('testkit guild')).toMatchObject({ kind: 'command', via: 'keywords', command: 'testkit guild' });
    const wrongTool = new LlmRouter(toolCallModel('rm_rf', {}), e, new KeywordRouter(e), silentLogger());
    expect(await wrongTool.route('testkit guild')).toMatchObject({ via: 'keywords' });
  });

  it('THEN with LLM_PROVIDER unset, or set to a provider whose package is not installed, keywords answer', async () => {
    const e = await engine();
    expect((await createRouter(e, loadConfig({}), silentLogger())).kind).toBe('keywords');
    const missing = await chatModelFromConfig(loadConfig({ LLM_PROVIDER: 'ollama', LLM_BASE_URL: 'http://127.0.0.1:1' }), silentLogger()).catch(() => 'threw');
    // Either the package is absent (undefined) or present and constructed lazily; it must never throw.
    expect(missing === 'threw').toBe(false);
  });
});

describe('GIVEN LLM_PROVIDER=openai pointing at an OpenAI-compatible server', () => {
  it('THEN @langchain/openai sends the engine tools and the returned tool call becomes a command', async () => {
    const seen: { path: string; body: { model?: string; tools?: { function: { name: string; parameters: unknown } }[] } }[] = [];
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen.push({ path: req.url ?? '', body: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') });
        res.setHeader('content-type', 'application/json');
        res.end(
          JSON.stringify({
            id: 'chatcmpl-1',
            object: 'chat.completion',
            created: 1,
            model: 'local-model',
            choices: [{ index: 0, finish_reason: 'tool_calls', message: { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'scan', arguments: '{"mode":"deep","steps":3}' } }] } }],
            usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
          }),
        );
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
      const config = loadConfig({ LLM_PROVIDER: 'openai', LLM_BASE_URL: url, LLM_MODEL: 'local-model' });
      const router = await createRouter(await engine(), config, silentLogger());
      expect(router.kind).toBe('llm');
      expect(await router.route('<@1> look closely at my shoe, 3 steps')).toEqual({ kind: 'command', via: 'llm', command: 'scan', input: { mode: 'deep', steps: 3 } });
      expect(seen[0]?.path).toBe('/v1/chat/completions');
      expect(seen[0]?.body.model).toBe('local-model');
      expect(seen[0]?.body.tools?.map((t) => t.function.name)).toContain('testkit_guild');
    } finally {
      server.close();
    }
  });
});

describe('GIVEN the bot with a fake LLM WHEN free text mentions it', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ bot: { chatModel: toolCallModel('testkit_guild', {}) } });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('THEN the tool call reaches engine.invoke with the Discord caller and the answer is posted', async () => {
    const runs: { name: string; ctx: CommandContext }[] = [];
    h.engine.events.on('command:run', (name, ctx) => runs.push({ name, ctx }));
    const channel = h.guild.channels[0]?.id ?? '';
    const msg = h.fake.postMessage({ user: h.member, guild: h.guild, content: `<@${h.fake.botUser.id}> which server is this?`, mentionBot: true });
    const answer = await h.fake.waitFor(() => h.fake.botMessages(channel).find((m) => (m.message_reference as { message_id?: string } | undefined)?.message_id === msg.id), 10_000, 'llm answer');
    expect(answer.content).toBe(`guild ${h.guild.id}`);
    expect(runs).toHaveLength(1);
    expect(runs[0]?.name).toBe('testkit guild');
    expect(runs[0]?.ctx).toMatchObject({ transport: 'discord', guildId: h.guild.id, channelId: channel, caller: { id: h.member.id, name: 'member', isModerator: false } });
  });
});

describe('GIVEN the bot with a fake LLM that routes to a photo command WHEN no photo is attached', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ bot: { chatModel: toolCallModel('scan', { image: 'http://169.254.169.254/x.png', mode: 'deep' }) } });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('THEN the invented image URL is never used and the user is asked for a photo', async () => {
    const runs: string[] = [];
    h.engine.events.on('command:run', (name) => runs.push(name));
    const channel = h.guild.channels[0]?.id ?? '';
    const msg = h.fake.postMessage({ user: h.member, guild: h.guild, content: `<@${h.fake.botUser.id}> scan the shoe at 169.254.169.254`, mentionBot: true });
    const answer = await h.fake.waitFor(() => h.fake.botMessages(channel).find((m) => (m.message_reference as { message_id?: string } | undefined)?.message_id === msg.id), 10_000, 'photo request');
    expect(answer.content).toContain('Attach a sneaker photo');
    expect(runs).toEqual([]);
  });
});
