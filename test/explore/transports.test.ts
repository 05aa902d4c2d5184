/**
 * The exploration commands through the real transports: the CLI (`--json`, `--out`, kebab-case flags)
 * and the HTTP API (JSON and multipart), on generated fixtures in an in-memory store.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { DiscordOptionType, toSlashOptions, type Engine } from '../../engine/index.ts';
import type { Store } from '../../engine/store/index.ts';
import { runCli, type CliIo } from '../../bot/cli.ts';
import { createHttpApp } from '../../bot/http.ts';
import { listen } from '../helpers/http.ts';
import { exploreEngine, importFixtures, shoePng, type FixtureSpec } from './fixtures.ts';

let engine: Engine;
let store: Store;
let base: string;
let close: () => Promise<void>;
let dir: string;

const specs: FixtureSpec[] = [
  ...[0, 1, 2].map((i) => ({ color: '#b03a2e', brand: 'jordan' as const, hype: 'hyped' as const, name: `jordan ${i}`, shift: i * 2 })),
  ...[0, 1, 2].map((i) => ({ color: '#1a5276', brand: 'adidas' as const, hype: 'not_hyped' as const, name: `adidas ${i}`, shift: i * 2 })),
];

beforeAll(async () => {
  ({ engine, store } = await exploreEngine());
  await importFixtures(store, 'tx', await Promise.all(specs.map(async (spec) => ({ png: await shoePng(spec), spec }))));
  ({ url: base, close } = await listen(createHttpApp(engine)));
  dir = mkdtempSync(path.join(os.tmpdir(), 'solescope-explore-'));
});

afterAll(async () => {
  await close();
  await engine.close();
});

function io(cwd: string): CliIo & { out: string; err: string } {
  const sink = { out: '', err: '' };
  return Object.assign(sink, { stdout: (t: string) => void (sink.out += t), stderr: (t: string) => void (sink.err += t), isTTY: false, cwd });
}

describe('explore over the CLI', () => {
  it('GIVEN mean-shoe --dataset --eigen --json --out THEN one envelope and the PNGs written to the folder', async () => {
    const o = io(dir);
    const code = await runCli(engine, ['mean-shoe', '--dataset', 'tx', '--eigen', '2', '--json', '--out', dir], o);
    expect(code).toBe(0);
    const env = JSON.parse(o.out);
    expect(env).toMatchObject({ ok: true, command: 'mean-shoe', data: { n: 6, filters: { dataset: 'tx' } } });
    expect(env.data.explainedVariance).toHaveLength(2);
    expect(env.images.map((i: { name: string }) => i.name)).toEqual(['mean-shoe.png', 'eigen-shoes.png', 'explained-variance.png']);
    const meta = await sharp(readFileSync(env.images[1].path)).metadata();
    expect(meta.width).toBe(800);
  });

  it('GIVEN cluster-map --k larger than the selection THEN a BAD_INPUT envelope and a non-zero exit', async () => {
    const o = io(dir);
    const code = await runCli(engine, ['cluster-map', '--dataset', 'tx', '--features', 'rgb', '--k', '9', '--json'], o);
    expect(code).not.toBe(0);
    expect(JSON.parse(o.out)).toMatchObject({ ok: false, error: { code: 'BAD_INPUT' } });
  });

  it('GIVEN hype-dna with a local file THEN the MI numbers come back', async () => {
    const file = path.join(dir, 'shoe.png');
    await sharp(await shoePng({ color: '#b03a2e', shift: 3 })).toFile(file);
    const o = io(dir);
    const code = await runCli(engine, ['hype-dna', file, '--dataset', 'tx', '--json'], o);
    expect(code).toBe(0);
    const env = JSON.parse(o.out);
    expect(env.data.mi.imageVsHyped).toBeGreaterThan(env.data.mi.imageVsNotHyped);
  });
});

describe('explore over HTTP', () => {
  it('GIVEN eda as JSON THEN the envelope carries three base64 PNGs 800 px wide and the counts', async () => {
    const res = await fetch(`${base}/api/commands/eda`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ dataset: 'tx' }) });
    expect(res.status).toBe(200);
    const env = await res.json();
    expect(env.data.classBalance).toEqual({ hyped: 3, not_hyped: 3, unlabelled: 0 });
    expect(env.images).toHaveLength(3);
    for (const img of env.images) expect((await sharp(Buffer.from(img.base64, 'base64')).metadata()).width).toBe(800);
  });

  it('GIVEN hype-dna as a multipart upload THEN it answers; a filter that matches nothing is a 404', async () => {
    const form = new FormData();
    form.set('image', new Blob([await shoePng({ color: '#1a5276' })], { type: 'image/png' }), 'blue.png');
    form.set('dataset', 'tx');
    const res = await fetch(`${base}/api/commands/hype-dna`, { method: 'POST', body: form });
    expect(res.status).toBe(200);
    expect((await res.json()).data.closer).toBe('not_hyped');
    const none = await fetch(`${base}/api/commands/mean-shoe`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ brand: 'nike' }) });
    expect(none.status).toBe(404);
    expect((await none.json()).error.code).toBe('NOT_FOUND');
  });
});

describe('explore as Discord slash commands', () => {
  it('GIVEN the four commands THEN their derived slash options are valid Discord JSON', () => {
    for (const name of ['mean-shoe', 'cluster-map', 'eda', 'hype-dna']) {
      const options = toSlashOptions(engine.command(name).options);
      expect(options.length).toBeLessThanOrEqual(25);
      for (const o of options) {
        expect(o.name).toMatch(/^[-_a-z0-9]{1,32}$/);
        expect(o.description.length).toBeGreaterThan(0);
        expect(o.description.length).toBeLessThanOrEqual(100);
        expect(o.choices?.length ?? 0).toBeLessThanOrEqual(25);
      }
      // Required options first, as Discord demands.
      const firstOptional = options.findIndex((o) => !o.required);
      expect(options.slice(Math.max(firstOptional, 0)).some((o) => o.required && firstOptional >= 0)).toBe(false);
    }
    const dna = toSlashOptions(engine.command('hype-dna').options);
    expect(dna[0]).toMatchObject({ name: 'image', type: DiscordOptionType.ATTACHMENT, required: true });
    const map = toSlashOptions(engine.command('cluster-map').options);
    expect(map.find((o) => o.name === 'method')?.choices?.map((c) => c.value)).toEqual(['tsne', 'umap', 'pca']);
    expect(map.find((o) => o.name === 'name_includes')?.type).toBe(DiscordOptionType.STRING);
  });
});
