import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { createEngine, type Engine } from '../../engine/index.ts';
import core from '../../plugins/core/index.ts';
import { runCli, extractGlobalFlags, type CliIo } from '../../bot/cli.ts';
import testPlugin from '../helpers/test-plugin.ts';

function io(cwd: string): CliIo & { out: string; err: string } {
  const sink = { out: '', err: '' };
  return Object.assign(sink, {
    stdout: (t: string) => void (sink.out += t),
    stderr: (t: string) => void (sink.err += t),
    isTTY: false,
    cwd,
  });
}

let engine: Engine;
let dir: string;
beforeAll(async () => {
  engine = createEngine();
  await engine.registerAll([core, testPlugin]);
  dir = mkdtempSync(path.join(os.tmpdir(), 'solescope-cli-'));
});

describe('CLI transport', () => {
  it('GIVEN help --json THEN one envelope listing every command with options', async () => {
    const o = io(dir);
    const code = await runCli(engine, ['help', '--json'], o);
    expect(code).toBe(0);
    const env = JSON.parse(o.out);
    expect(env.ok).toBe(true);
    const names = env.data.commands.map((c: { name: string }) => c.name);
    expect(names).toEqual(expect.arrayContaining(['help', 'status', 'probe', 'admin wipe']));
    const probe = env.data.commands.find((c: { name: string }) => c.name === 'probe');
    expect(probe.options.map((x: { name: string }) => x.name)).toEqual(['image', 'mode', 'k', 'flag', 'label']);
  });

  it('GIVEN positionals and kebab flags THEN coerced input reaches the command; images land in --out', async () => {
    const o = io(dir);
    const code = await runCli(engine, ['probe', 'shoe.jpg', '--mode', 'slow', '--k', '7', '--flag', '--json', '--out', 'results'], o);
    expect(code).toBe(0);
    const env = JSON.parse(o.out);
    expect(env).toMatchObject({ ok: true, command: 'probe', text: 'probed slow k=7' });
    expect(env.data).toMatchObject({ image: { kind: 'string', value: 'shoe.jpg' }, mode: 'slow', k: 7, flag: true, transport: 'cli' });
    expect(env.images[0].name).toBe('probe.png');
    expect(env.images[0].path).toBe(path.join(dir, 'results', 'probe.png'));
    const meta = await sharp(readFileSync(env.images[0].path)).metadata();
    expect(meta.format).toBe('png');
    expect(o.out.trim().split('\n')).toHaveLength(1);
  });

  it('GIVEN a nested command name THEN it is a subcommand; CLI callers are operators', async () => {
    const o = io(dir);
    expect(await runCli(engine, ['admin', 'wipe', 'x1', '--json'], o)).toBe(0);
    expect(JSON.parse(o.out).data).toEqual({ id: 'x1' });
  });

  it.each([
    [['nope', '--json'], 'UNKNOWN_COMMAND', 2],
    [['admin', '--json'], 'UNKNOWN_COMMAND', 2],
    [['probe', '--json'], 'BAD_INPUT', 2],
    [['probe', 'a.jpg', '--k', '99', '--json'], 'BAD_INPUT', 2],
    [['probe', 'a.jpg', '--k', 'lots', '--json'], 'BAD_INPUT', 2],
    [['probe', 'a.jpg', '--mode', 'warp', '--json'], 'BAD_INPUT', 2],
    [['probe', 'a.jpg', '--bogus', '--json'], 'BAD_INPUT', 2],
    [['admin', 'wipe', 'missing', '--json'], 'NOT_FOUND', 5],
    [['boom', '--json'], 'INTERNAL', 1],
  ])('GIVEN %j THEN error envelope %s with exit %i', async (argv, code, exit) => {
    const o = io(dir);
    expect(await runCli(engine, argv, o)).toBe(exit);
    const env = JSON.parse(o.out);
    expect(env.ok).toBe(false);
    expect(env.error.code).toBe(code);
    expect(env.error.message).not.toMatch(/secret internals|at \//);
  });

  it('GIVEN no --json THEN human text on stdout, error lines on stderr', async () => {
    const o = io(dir);
    expect(await runCli(engine, ['probe', 'a.jpg', '--out', 'h'], o)).toBe(0);
    expect(o.out).toContain('probed fast k=3');
    expect(o.out).toContain('Mode: fast');
    const e = io(dir);
    expect(await runCli(engine, ['probe', 'a.jpg', '--k', '0'], e)).toBe(2);
    expect(e.err).toMatch(/^error BAD_INPUT: /);
  });

  it('GIVEN global flags anywhere THEN they are extracted', () => {
    expect(extractGlobalFlags(['--json', 'hype', 'x', '--out=o'])).toEqual({ flags: { json: true, out: 'o' }, rest: ['hype', 'x'] });
  });
});

describe('CLI command groups', () => {
  it('GIVEN a command that is also a group THEN the bare word runs it and subcommands still work', async () => {
    const { createEngine: make, definePlugin: plugin, defineCommand: command, reply: r } = await import('../../engine/index.ts');
    const { z } = await import('zod');
    const e = make();
    await e.register(
      plugin({
        name: 'grp',
        commands: [
          command({ name: 'models', description: 'List', options: z.object({ task: z.enum(['hype', 'brand']).optional() }).strict(), run: ({ task }) => r('list', { data: { task: task ?? null } }) }),
          command({ name: 'models info', description: 'Info', options: z.object({ id: z.string() }).strict(), positional: ['id'], run: ({ id }) => r('info', { data: { id } }) }),
        ],
      }),
    );
    const a = io(dir);
    expect(await runCli(e, ['models', '--task', 'brand', '--json'], a)).toBe(0);
    expect(JSON.parse(a.out)).toMatchObject({ command: 'models', data: { task: 'brand' } });
    const b = io(dir);
    expect(await runCli(e, ['models', 'info', '7', '--json'], b)).toBe(0);
    expect(JSON.parse(b.out)).toMatchObject({ command: 'models info', data: { id: '7' } });
  });
});
