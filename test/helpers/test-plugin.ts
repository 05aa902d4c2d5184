/**
 * A throwaway plugin used by transport tests: it exercises every option kind and returns an image, so
 * tests prove the transports without depending on ML models.
 */
import sharp from 'sharp';
import { z } from 'zod';
import { defineCommand, definePlugin, fail, imageInput, reply } from '../../engine/index.ts';

/** Make a small solid PNG. */
export async function solidPng(width = 8, height = 8, rgb: [number, number, number] = [200, 30, 30]): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } }).png().toBuffer();
}

export const probe = defineCommand({
  name: 'probe',
  description: 'Echo what the transport passed in, plus a PNG',
  options: z
    .object({
      image: imageInput('A photo'),
      mode: z.enum(['fast', 'slow']).default('fast').describe('Mode'),
      k: z.number().int().min(1).max(10).default(3).describe('Count'),
      flag: z.boolean().optional().describe('A switch'),
      label: z.string().max(40).optional().describe('Free text'),
    })
    .strict(),
  run(input, ctx) {
    const image =
      typeof input.image === 'string' ? { kind: 'string', value: input.image } : { kind: 'buffer', bytes: input.image.data.byteLength, name: input.image.name ?? null };
    ctx.progress({ fraction: 0.5, stage: 'probing' });
    return solidPng().then((png) =>
      reply(`probed ${input.mode} k=${input.k}`, {
        title: 'Probe',
        fields: [{ name: 'Mode', value: input.mode, inline: true }],
        images: [{ name: 'probe.png', png }],
        data: { image, mode: input.mode, k: input.k, flag: input.flag ?? null, label: input.label ?? null, transport: ctx.transport },
        actions: [{ id: 'test:agree', label: 'Agree' }],
      }),
    );
  },
});

export const mod = defineCommand({
  name: 'admin wipe',
  description: 'A moderator-only command',
  options: z.object({ id: z.string().min(1).describe('What to wipe') }).strict(),
  positional: ['id'],
  permissions: 'moderator',
  run: ({ id }) => (id === 'missing' ? fail('NOT_FOUND', `Nothing called ${id}.`) : reply(`wiped ${id}`, { data: { id } })),
});

export const boom = defineCommand({
  name: 'boom',
  description: 'Throws a bug',
  options: z.object({}).strict(),
  run: () => {
    throw new Error('secret internals at /srv/app.js');
  },
});

export default definePlugin({
  name: 'test',
  commands: [probe, mod, boom],
  onAction: (id) => reply(`action ${id}`),
});
