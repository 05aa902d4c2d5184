import { describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import {
  ERROR_CATALOGUE,
  ERROR_CODES,
  EngineError,
  createEngine,
  defineCommand,
  defineJob,
  definePlugin,
  fail,
  reply,
  toEngineError,
} from '../../engine/index.ts';

const echo = defineCommand({
  name: 'echo',
  description: 'Echo text',
  options: z.object({ text: z.string().min(1), times: z.number().int().min(1).max(3).default(1) }).strict(),
  run: ({ text, times }) => reply(text.repeat(times), { data: { text, times } }),
});

describe('error catalogue', () => {
  it('GIVEN every code THEN it has an HTTP status, a CLI exit code and user wording', () => {
    for (const code of ERROR_CODES) {
      const spec = ERROR_CATALOGUE[code];
      expect(spec.status).toBeGreaterThanOrEqual(400);
      expect(spec.exitCode).toBeGreaterThan(0);
      expect(spec.userMessage.length).toBeGreaterThan(3);
    }
  });
  it('GIVEN an unknown thrown value THEN it becomes INTERNAL without leaking its message', () => {
    const e = toEngineError(new Error('db password is hunter2 at /srv/secret.js:12'));
    expect(e.code).toBe('INTERNAL');
    expect(e.message).not.toMatch(/hunter2|secret/);
    expect(e.cause).toBeInstanceOf(Error);
  });
  it('GIVEN an AbortError THEN TIMEOUT', () => {
    expect(toEngineError(Object.assign(new Error('x'), { name: 'AbortError' })).code).toBe('TIMEOUT');
  });
});

describe('Engine.invoke', () => {
  it('GIVEN valid input THEN runs and returns the reply', async () => {
    const engine = createEngine();
    await engine.register(definePlugin({ name: 't', commands: [echo] }));
    const r = await engine.invoke('echo', { text: 'ab', times: 2 }, { transport: 'test' });
    expect(r.ok && r.reply.text).toBe('abab');
  });
  it('GIVEN an unknown command THEN UNKNOWN_COMMAND', async () => {
    const engine = createEngine();
    const r = await engine.invoke('nope', {}, { transport: 'test' });
    expect(!r.ok && r.error.code).toBe('UNKNOWN_COMMAND');
  });
  it('GIVEN invalid input THEN BAD_INPUT and the handler never runs', async () => {
    const run = vi.fn(() => reply('x'));
    const engine = createEngine();
    await engine.register(definePlugin({ name: 't', commands: [{ ...echo, run }] }));
    const r = await engine.invoke('echo', { text: '', times: 9 }, { transport: 'test' });
    expect(!r.ok && r.error.code).toBe('BAD_INPUT');
    expect(run).not.toHaveBeenCalled();
  });
  it('GIVEN a handler that throws a bug THEN INTERNAL and metrics count it', async () => {
    const engine = createEngine();
    await engine.register(definePlugin({ name: 't', commands: [{ ...echo, run: () => { throw new TypeError('boom'); } }] }));
    const r = await engine.invoke('echo', { text: 'a' }, { transport: 'test' });
    expect(!r.ok && r.error.code).toBe('INTERNAL');
    const metrics = await engine.metrics.registry.metrics();
    expect(metrics).toMatch(/solescope_command_errors_total\{command="echo",code="INTERNAL"\} 1/);
  });
  it('GIVEN an expected failure THEN its code and message pass through', async () => {
    const engine = createEngine();
    await engine.register(definePlugin({ name: 't', commands: [{ ...echo, run: () => fail('NOT_FOUND', 'No such shoe.') }] }));
    const r = await engine.invoke('echo', { text: 'a' }, { transport: 'test' });
    expect(!r.ok && r.error.toJSON()).toEqual({ code: 'NOT_FOUND', message: 'No such shoe.' });
  });
});

describe('guards', () => {
  it('GIVEN a moderator command THEN members get FORBIDDEN and moderators pass', async () => {
    const engine = createEngine();
    await engine.register(definePlugin({ name: 't', commands: [{ ...echo, permissions: 'moderator' }] }));
    const member = await engine.invoke('echo', { text: 'a' }, { transport: 'discord', caller: { id: 'u1' }, guildId: 'g' });
    const mod = await engine.invoke('echo', { text: 'a' }, { transport: 'discord', caller: { id: 'u2', isModerator: true }, guildId: 'g' });
    expect(!member.ok && member.error.code).toBe('FORBIDDEN');
    expect(mod.ok).toBe(true);
  });
  it('GIVEN a per-user cooldown THEN the second call is RATE_LIMITED with retryAfterMs', async () => {
    const engine = createEngine();
    await engine.register(definePlugin({ name: 't', commands: [{ ...echo, cooldown: { perUserMs: 60_000 } }] }));
    const a = await engine.invoke('echo', { text: 'a' }, { transport: 'discord', caller: { id: 'u1' } });
    const b = await engine.invoke('echo', { text: 'a' }, { transport: 'discord', caller: { id: 'u1' } });
    const other = await engine.invoke('echo', { text: 'a' }, { transport: 'discord', caller: { id: 'u2' } });
    expect(a.ok).toBe(true);
    expect(!b.ok && b.error.code).toBe('RATE_LIMITED');
    expect(!b.ok && (b.error.details.retryAfterMs as number)).toBeGreaterThan(0);
    expect(other.ok).toBe(true);
  });
  it('GIVEN a per-guild daily quota THEN the guild is refused past it', async () => {
    const engine = createEngine();
    await engine.register(definePlugin({ name: 't', commands: [{ ...echo, cooldown: { perGuildDaily: 2 } }] }));
    const results = [];
    for (let i = 0; i < 3; i++) results.push(await engine.invoke('echo', { text: 'a' }, { transport: 'discord', caller: { id: `u${i}` }, guildId: 'g1' }));
    expect(results.map((r) => r.ok)).toEqual([true, true, false]);
  });
  it('GIVEN a guild-only command in a DM THEN FORBIDDEN', async () => {
    const engine = createEngine();
    await engine.register(definePlugin({ name: 't', commands: [{ ...echo, guildOnly: true }] }));
    const r = await engine.invoke('echo', { text: 'a' }, { transport: 'discord', caller: { id: 'u' } });
    expect(!r.ok && r.error.code).toBe('FORBIDDEN');
  });
  it('GIVEN a named plugin guard THEN it runs and can deny', async () => {
    const engine = createEngine();
    await engine.register(
      definePlugin({
        name: 't',
        guards: [{ name: 'no-bob', check: (_c, _i, ctx) => { if (ctx.caller.id === 'bob') fail('FORBIDDEN', 'Not you, Bob.'); } }],
        commands: [{ ...echo, guards: ['no-bob'] }],
      }),
    );
    const r = await engine.invoke('echo', { text: 'a' }, { transport: 'test', caller: { id: 'bob' } });
    expect(!r.ok && r.error.message).toBe('Not you, Bob.');
  });
});

describe('plugins', () => {
  it('GIVEN a missing dependency THEN a coded error names it', async () => {
    const engine = createEngine();
    await expect(engine.register(definePlugin({ name: 'b', requires: ['a'] }))).rejects.toMatchObject({
      code: 'UNAVAILABLE',
      details: { code: 'ENGINE_ERR_PLUGIN_DEPENDENCY', missing: ['a'] },
    });
  });
  it('GIVEN plugins out of order THEN registerAll orders them by requires; cycles are refused', async () => {
    const engine = createEngine();
    const order: string[] = [];
    await engine.registerAll([
      definePlugin({ name: 'b', requires: ['a'], setup: () => void order.push('b') }),
      definePlugin({ name: 'a', setup: () => void order.push('a') }),
    ]);
    expect(order).toEqual(['a', 'b']);
    await expect(
      createEngine().registerAll([definePlugin({ name: 'x', requires: ['y'] }), definePlugin({ name: 'y', requires: ['x'] })]),
    ).rejects.toMatchObject({ details: { code: 'ENGINE_ERR_PLUGIN_CYCLE' } });
  });
  it('GIVEN provides not provided THEN registration fails and nothing stays registered', async () => {
    const engine = createEngine();
    await expect(engine.register(definePlugin({ name: 'p', provides: ['thing'], commands: [echo] }))).rejects.toMatchObject({
      details: { code: 'ENGINE_ERR_PLUGIN_PROVIDES' },
    });
    expect(engine.commands.has('echo')).toBe(false);
  });
  it('GIVEN a service provided THEN ctx.services exposes it', async () => {
    const engine = createEngine();
    await engine.register(
      definePlugin({
        name: 'p',
        provides: ['greeter'],
        setup: (e) => e.provide('greeter', { hi: () => 'hi' }, 'p'),
        commands: [
          defineCommand({
            name: 'greet',
            description: 'greet',
            options: z.object({}),
            run: (_i, ctx) => reply((ctx.services as unknown as { greeter: { hi(): string } }).greeter.hi()),
          }),
        ],
      }),
    );
    const r = await engine.invoke('greet', {}, { transport: 'test' });
    expect(r.ok && r.reply.text).toBe('hi');
  });
  it('GIVEN duplicate command names THEN CONFLICT', async () => {
    const engine = createEngine();
    await engine.register(definePlugin({ name: 'a', commands: [echo] }));
    await expect(engine.register(definePlugin({ name: 'b', commands: [echo] }))).rejects.toMatchObject({ code: 'CONFLICT' });
  });
  it('GIVEN a malformed plugin THEN a shape error, not a later crash', async () => {
    const engine = createEngine();
    await expect(engine.register({ name: 'Bad Name', commands: [{ name: 'x' }] } as never)).rejects.toMatchObject({
      details: { code: 'ENGINE_ERR_PLUGIN_SHAPE' },
    });
  });
  it('GIVEN lifecycle hooks THEN they run in order: ready, before, after, error, close (reverse)', async () => {
    const calls: string[] = [];
    const engine = createEngine();
    const hooks = (n: string) => ({
      onReady: () => void calls.push(`${n}:ready`),
      beforeCommand: () => void calls.push(`${n}:before`),
      afterCommand: () => void calls.push(`${n}:after`),
      onError: () => void calls.push(`${n}:error`),
      onClose: () => void calls.push(`${n}:close`),
    });
    await engine.registerAll([definePlugin({ name: 'a', hooks: hooks('a'), commands: [echo] }), definePlugin({ name: 'b', hooks: hooks('b') })]);
    await engine.start();
    await engine.invoke('echo', { text: 'x' }, { transport: 'test' });
    await engine.invoke('echo', { text: '' }, { transport: 'test' });
    await engine.close();
    expect(calls).toEqual(['a:ready', 'b:ready', 'a:before', 'b:before', 'a:after', 'b:after', 'a:error', 'b:error', 'b:close', 'a:close']);
  });
  it('GIVEN a closed engine THEN invoke answers UNAVAILABLE', async () => {
    const engine = createEngine();
    await engine.register(definePlugin({ name: 'a', commands: [echo] }));
    await engine.close();
    const r = await engine.invoke('echo', { text: 'x' }, { transport: 'test' });
    expect(!r.ok && r.error.code).toBe('UNAVAILABLE');
  });
  it('GIVEN tool descriptions THEN moderator commands are excluded and names are tool-safe', async () => {
    const engine = createEngine();
    await engine.register(
      definePlugin({ name: 'a', commands: [echo, { ...echo, name: 'models promote', permissions: 'moderator' }, { ...echo, name: 'dataset stats' }] }),
    );
    const tools = engine.toolDescriptions();
    expect(tools.map((t) => t.name).sort()).toEqual(['dataset_stats', 'echo']);
    expect(tools[0]?.parameters).toMatchObject({ type: 'object' });
  });
});

describe('InlineJobRunner', () => {
  const add = defineJob({
    name: 'add',
    data: z.object({ a: z.number(), b: z.number() }),
    async run({ a, b }, ctx) {
      await ctx.progress({ fraction: 0.5, stage: 'adding' });
      return a + b;
    },
  });
  it('GIVEN a job THEN data is validated, progress reported and the result awaited', async () => {
    const engine = createEngine();
    await engine.register(definePlugin({ name: 'j', jobs: [add] }));
    await expect(engine.services.jobs.enqueue('add', { a: 'x' })).rejects.toMatchObject({ code: 'BAD_INPUT' });
    const info = await engine.services.jobs.enqueue('add', { a: 1, b: 2 });
    const seen: string[] = [];
    const result = await engine.services.jobs.waitFor(info.id, (e) => seen.push(e.stage ?? ''));
    expect(result).toBe(3);
    expect((await engine.services.jobs.get(info.id))?.state).toBe('completed');
  });
  it('GIVEN a transient failure THEN retried; a permanent one fails at once', async () => {
    let calls = 0;
    const flaky = defineJob({
      name: 'flaky',
      data: z.object({ permanent: z.boolean() }),
      attempts: 3,
      async run({ permanent }) {
        calls++;
        if (permanent) throw new EngineError('BAD_INPUT', 'never works');
        if (calls < 3) throw new EngineError('UNAVAILABLE', 'try again');
        return 'ok';
      },
    });
    const engine = createEngine();
    await engine.register(definePlugin({ name: 'j', jobs: [flaky] }));
    const a = await engine.services.jobs.enqueue('flaky', { permanent: false });
    await expect(engine.services.jobs.waitFor(a.id)).resolves.toBe('ok');
    expect(calls).toBe(3);
    calls = 0;
    const b = await engine.services.jobs.enqueue('flaky', { permanent: true });
    await expect(engine.services.jobs.waitFor(b.id)).rejects.toMatchObject({ code: 'BAD_INPUT' });
    expect(calls).toBe(1);
  });
});

