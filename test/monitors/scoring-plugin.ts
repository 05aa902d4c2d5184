/**
 * A tiny, real "model" for webhook tests, so they do not need the vision models: hype probability is
 * the image's mean red share and brand the dominant channel. It reads the image through the engine's
 * loader like the real commands, and returns a heatmap PNG.
 */
import sharp from 'sharp';
import { z } from 'zod';
import { defineCommand, definePlugin, imageInput, reply } from '../../engine/index.ts';
import { loadInputImage } from '../../engine/input.ts';

async function stats(ref: Parameters<typeof loadInputImage>[0], ctx: Parameters<typeof loadInputImage>[1]) {
  const img = await loadInputImage(ref, ctx);
  let r = 0, g = 0, b = 0;
  for (let i = 0; i < img.data.length; i += 3) {
    r += img.data[i] ?? 0;
    g += img.data[i + 1] ?? 0;
    b += img.data[i + 2] ?? 0;
  }
  const total = r + g + b || 1;
  const heat = await sharp({ create: { width: 16, height: 16, channels: 3, background: { r: 255, g: 0, b: 0 } } }).png().toBuffer();
  return { r: r / total, g: g / total, b: b / total, heat };
}

export default definePlugin({
  name: 'test-scoring',
  commands: [
    defineCommand({
      name: 'hype',
      description: 'test hype',
      options: z.object({ image: imageInput() }).strict(),
      async run({ image }, ctx) {
        const s = await stats(image, ctx);
        return reply('hype', { data: { label: s.r >= 0.5 ? 'hyped' : 'not_hyped', probability: s.r, model: 'test' }, images: [{ name: 'hype-heatmap.png', png: s.heat }] });
      },
    }),
    defineCommand({
      name: 'brand',
      description: 'test brand',
      options: z.object({ image: imageInput() }).strict(),
      async run({ image }, ctx) {
        const s = await stats(image, ctx);
        const probabilities = { jordan: s.r, nike: s.g, adidas: s.b, other: 0 };
        const label = Object.entries(probabilities).sort((a, b) => b[1] - a[1])[0]?.[0];
        return reply('brand', { data: { label, probabilities, model: 'test' } });
      },
    }),
  ],
});
