import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createEngine, describeOptions, loadPlugins, toSlashOptions } from '../../engine/index.ts';
import { runCli, type CliIo } from '../../bot/cli.ts';
import { createHttpApp } from '../../bot/http.ts';
import { listen } from '../helpers/http.ts';

const engineUrl = pathToFileURL(path.resolve('engine/index.ts')).href;

describe('a new plugin is one file', () => {
  it('GIVEN a plugin file dropped in a plugins folder THEN it appears in CLI help, HTTP routes and slash JSON', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'solescope-plugins-'));
    mkdirSync(path.join(dir, 'sole-count'));
    writeFileSync(
      path.join(dir, 'sole-count', 'index.ts'),
      `import { z } from 'zod';
import { defineCommand, definePlugin, reply, imageInput } from '${engineUrl}';
export default definePlugin({
  name: 'sole-count',
  commands: [defineCommand({
    name: 'sole count',
    description: 'Counts soles',
    options: z.object({ photo: imageInput('A photo'), max: z.number().int().min(1).max(9).default(2) }).strict(),
    run: ({ max }) => reply('counted ' + max, { data: { max } }),
  })],
});
`,
    );
    writeFileSync(path.join(dir, '_ignored.ts'), 'throw new Error("must not load")');
    const plugins = await loadPlugins(dir);
    expect(plugins.map((p) => p.name)).toEqual(['sole-count']);
    const engine = createEngine();
    await engine.registerAll(plugins);

    const out = { s: '' };
    const io: CliIo = { stdout: (t) => void (out.s += t), stderr: () => undefined, isTTY: false, cwd: dir };
    expect(await runCli(engine, ['sole', 'count', 'x.jpg', '--max', '4', '--json'], io)).toBe(0);
    expect(JSON.parse(out.s)).toMatchObject({ ok: true, command: 'sole count', data: { max: 4 } });

    const { url, close } = await listen(createHttpApp(engine));
    try {
      const list = await (await fetch(`${url}/api/commands`)).json();
      expect(list.commands.map((c: { path: string }) => c.path)).toContain('/api/commands/sole/count');
      const res = await fetch(`${url}/api/commands/sole/count`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"photo":"https://x.test/a.jpg"}' });
      expect((await res.json()).text).toBe('counted 2');
    } finally {
      await close();
    }

    const slash = toSlashOptions(describeOptions(engine.command('sole count').definition.options));
    expect(slash).toEqual([
      { type: 11, name: 'photo', description: 'A photo', required: true },
      { type: 4, name: 'max', description: 'max', min_value: 1, max_value: 9 },
    ]);
  });

  it('GIVEN a file whose default export is not a plugin THEN loading fails loudly', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'solescope-plugins-'));
    writeFileSync(path.join(dir, 'bad.ts'), 'export default { name: "Bad!" };');
    await expect(loadPlugins(dir)).rejects.toMatchObject({ details: { code: 'ENGINE_ERR_PLUGIN_SHAPE' } });
  });
});
