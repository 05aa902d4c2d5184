/**
 * The generative plugin: `dream` (deep dream on InceptionV3), `style-transfer` (Gatys, with bundled
 * procedural styles) and `generate` (samples of the WGAN-GP generator), plus their jobs
 * (`generative.dream`, `generative.style-transfer`, `generative.train-gan`; `train --task gan` enqueues
 * the last one).
 */
import { existsSync } from 'node:fs';
import { definePlugin } from '../../engine/index.ts';
import { dreamCommand, generateCommand, styleTransferCommand } from './commands.ts';
import { dreamJob, styleTransferJob, trainGanJob } from './jobs.ts';
import { clearGeneratorCache, DEFAULT_GENERATOR_FILE } from './lib/generator-source.ts';

export default definePlugin({
  name: 'generative',
  description: 'Deep dream, style transfer and WGAN-GP sneaker generation',
  commands: [dreamCommand, styleTransferCommand, generateCommand],
  jobs: [dreamJob, styleTransferJob, trainGanJob],
  hooks: {
    onClose() {
      clearGeneratorCache();
    },
  },
  async status(engine) {
    let champion: number | undefined;
    try {
      champion = await engine.services.store.models.getAlias('gan', 'champion');
    } catch {
      champion = undefined; // no store configured, or it is down: report the shipped default
    }
    return { generator: champion !== undefined ? `model ${champion}` : existsSync(DEFAULT_GENERATOR_FILE) ? 'default' : 'none' };
  },
});
