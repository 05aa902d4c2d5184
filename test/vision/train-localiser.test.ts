import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, it, expect } from 'vitest';
import { loadLocaliser, localiserFileName } from '../../plugins/vision/lib/localise.ts';
import { drawShoe, PALETTE } from './fixtures.ts';

const run = promisify(execFile);

describe('npm run train:localiser', () => {
  it('GIVEN a small generated manifest THEN it fits, picks a threshold, reports per background and writes a loadable model', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'train-localiser-'));
    // Distinct model names, so the fuzzy-name split has groups to hold out.
    const data = path.join(dir, 'data');
    mkdirSync(path.join(data, 'images'), { recursive: true });
    const words = ['zephyr', 'quasar', 'mango', 'tundra', 'velvet', 'comet', 'basalt', 'orchid', 'falcon', 'lagoon', 'pepper', 'cinder'];
    const lines = ['file,brand,hype,name'];
    for (const [brand, colours] of Object.entries(PALETTE)) {
      for (let i = 0; i < words.length; i++) {
        const file = `images/${brand}-${i}.png`;
        writeFileSync(path.join(data, file), await drawShoe({ upper: colours[i % colours.length]!, pointsRight: i % 2 === 0, jitter: i }));
        lines.push(`${file},${brand},${brand === 'adidas' ? 'not_hyped' : 'hyped'},${words[i]} ${brand}${i}`);
      }
    }
    const manifest = path.join(data, 'manifest.csv');
    writeFileSync(manifest, lines.join('\n') + '\n');
    const out = path.join(dir, 'models');
    const { stdout } = await run(
      process.execPath,
      ['--import', 'tsx', 'scripts/train-localiser.ts', '--data', manifest, '--backbone', 'mobilenet_v2', '--n', '8', '--val', '3', '--test', '2', '--epochs', '20', '--out', out, '--json'],
      { cwd: path.resolve(import.meta.dirname, '../..'), maxBuffer: 1 << 24 },
    );
    const report = JSON.parse(stdout) as { file: string; layer: string; threshold: number; rows: { background: string; worn: boolean; localiser: number; grabcut: number; hinted: number }[] };
    expect(report.layer).toBe('block_13_expand_relu');
    // Every background bare, then the shift test's backgrounds again with the shoe worn.
    expect(report.rows.map((r) => `${r.background}${r.worn ? ' worn' : ''}`)).toEqual([
      'grey', 'floor', 'busy', 'carpet', 'tiles', 'fabric', 'room', 'clutter', 'grey worn', 'floor worn', 'busy worn',
    ]);
    for (const r of report.rows) for (const v of [r.localiser, r.grabcut, r.hinted]) expect(v >= 0 && v <= 1).toBe(true);
    const model = loadLocaliser(path.join(out, localiserFileName('mobilenet_v2')));
    expect(model.threshold).toBe(report.threshold);
    expect(model.weights).toHaveLength(576);
    expect(model.weights.some((w) => w !== 0)).toBe(true);
    expect(model.meta).toMatchObject({ seed: 42, fitPhotos: 8 });
  }, 180_000);
});
