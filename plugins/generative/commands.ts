/**
 * The generative commands. `dream` and `style-transfer` load the user's pictures here (with the caller's
 * rights) and run the optimisation as a queued job, following its progress (with preview PNGs) until it
 * ends; `generate` samples the generator directly (milliseconds).
 */
import { z } from 'zod';
import { defineCommand, EngineError, imageInput, reply, type CommandContext, type ImageRef, type Store } from '../../engine/index.ts';
import { getTf } from '../../engine/ml/index.ts';
import { DREAM_LAYERS, type DreamJobResult, type StyleJobResult } from './jobs.ts';
import { loadPicture, normaliseProgress, type JobPicture } from './lib/pictures.ts';
import { readBundledStyle, STYLE_NAMES, type StyleName } from './lib/styles.ts';
import { resolveGenerator } from './lib/generator-source.ts';
import { sampleRgb } from './lib/gan-train.ts';
import { grid, resizeRgb, rgbToPng, watermark } from './lib/raster.ts';

/** Runs a job and follows it, forwarding progress (previews included) to the caller. */
async function runJob<R>(ctx: CommandContext, name: string, data: Record<string, unknown>): Promise<R> {
  const info = await ctx.services.jobs.enqueue(name, data, {
    requestedBy: ctx.caller.id,
    ...(ctx.guildId !== undefined ? { guildId: ctx.guildId } : {}),
  });
  if (info.queuePosition !== undefined && info.queuePosition > 1) {
    ctx.progress({ stage: 'queued', queuePosition: info.queuePosition, message: `Waiting in the queue (position ${info.queuePosition})` });
  }
  return (await ctx.services.jobs.waitFor(info.id, (e) => ctx.progress(normaliseProgress(e)), ctx.signal)) as R;
}

const numberIn = (min: number, max: number, what: string) =>
  z
    .number()
    .min(min, `${what} must be at least ${min}`)
    .max(max, `${what} must be at most ${max}`);
const intIn = (min: number, max: number, what: string) => numberIn(min, max, what).int(`${what} must be a whole number`);

/** `dream <image>`: deep dream on InceptionV3. */
export const dreamCommand = defineCommand({
  name: 'dream',
  description: 'Deep-dream a photo: amplify what an InceptionV3 layer sees in it, over several octaves.',
  options: z
    .object({
      image: imageInput('The photo to dream on'),
      layer: z.enum(DREAM_LAYERS).default('mixed3').describe('InceptionV3 layer to amplify (deeper = more object-like)'),
      octaves: intIn(1, 6, 'octaves').default(3).describe('Scales to dream at (1–6)'),
      steps: intIn(1, 50, 'steps').default(10).describe('Gradient-ascent steps per octave (1–50)'),
      strength: numberIn(0.1, 5, 'strength').default(1).describe('Step size multiplier (0.1–5)'),
      size: intIn(96, 1024, 'size').default(384).describe('Longest side to work at; larger photos are downscaled (96–1024)'),
    })
    .strict(),
  long: true,
  cooldown: { perUserMs: 20_000 },
  async run(input, ctx) {
    const picture = await loadPicture(input.image, ctx, input.size);
    const result = await runJob<DreamJobResult>(ctx, 'generative.dream', {
      image: picture.png,
      layer: input.layer,
      octaves: input.octaves,
      steps: input.steps,
      strength: input.strength,
    });
    const notes = picture.note ? [`Note: ${picture.note}.`] : [];
    return reply(
      [
        `Dreamed on **${input.layer}** for ${input.octaves} octave(s) × ${input.steps} steps at strength ${input.strength}: ` +
          `mean activation ${result.activationBefore.toFixed(3)} → ${result.activationAfter.toFixed(3)}.`,
        ...notes,
      ].join('\n'),
      {
        title: 'Deep dream',
        fields: [
          { name: 'Layer', value: input.layer, inline: true },
          { name: 'Octaves × steps', value: `${input.octaves} × ${input.steps}`, inline: true },
          { name: 'Size', value: `${result.width}×${result.height}`, inline: true },
        ],
        images: [{ name: 'dream.png', png: Buffer.from(result.png, 'base64'), alt: `Deep dream on ${input.layer}` }],
        data: {
          layer: input.layer,
          octaves: input.octaves,
          steps: input.steps,
          strength: input.strength,
          width: result.width,
          height: result.height,
          activationBefore: result.activationBefore,
          activationAfter: result.activationAfter,
          ...(picture.note ? { note: picture.note } : {}),
        },
      },
    );
  },
});

async function styleFromName(name: StyleName): Promise<JobPicture> {
  const png = await readBundledStyle(name);
  if (!png) throw new EngineError('MODEL_MISSING', `The bundled style "${name}" is missing; rebuild it with \`npx tsx scripts/make-styles.ts\`.`);
  return { png: png.toString('base64'), width: 256, height: 256, name };
}

function bundledName(ref: ImageRef | undefined): StyleName | undefined {
  return typeof ref === 'string' && (STYLE_NAMES as readonly string[]).includes(ref.trim().toLowerCase())
    ? (ref.trim().toLowerCase() as StyleName)
    : undefined;
}

/** `style-transfer <content> [<style>]`: Gatys optimisation on InceptionV3 features. */
export const styleTransferCommand = defineCommand({
  name: 'style-transfer',
  description: 'Repaint a photo in the style of another image or a bundled pattern (Gatys optimisation).',
  options: z
    .object({
      content: imageInput('The photo to repaint'),
      style: imageInput(`The style image, or a bundled style name: ${STYLE_NAMES.join(', ')}`).optional(),
      preset: z.enum(STYLE_NAMES).optional().describe('A bundled procedural style (used when no style image is given)'),
      contentWeight: numberIn(0, 1e4, 'content-weight').default(1).describe('Weight of keeping the content (0–10000)'),
      styleWeight: numberIn(0, 1e6, 'style-weight').default(30).describe('Weight of matching the style (0–1000000)'),
      steps: intIn(1, 300, 'steps').default(40).describe('Optimisation steps (1–300)'),
      size: intIn(96, 768, 'size').default(256).describe('Longest side of the result in pixels (96–768)'),
    })
    .strict(),
  positional: ['content', 'style'],
  long: true,
  cooldown: { perUserMs: 20_000 },
  async run(input, ctx) {
    const content = await loadPicture(input.content, ctx, Math.max(input.size, 1024));
    const named = bundledName(input.style) ?? (input.style === undefined ? (input.preset ?? 'mosaic') : undefined);
    const style = named ? await styleFromName(named) : await loadPicture(input.style!, ctx, 1024);
    const styleLabel = named ?? style.name;
    const result = await runJob<StyleJobResult>(ctx, 'generative.style-transfer', {
      content: content.png,
      style: style.png,
      styleName: styleLabel,
      contentWeight: input.contentWeight,
      styleWeight: input.styleWeight,
      steps: input.steps,
      size: input.size,
    });
    const notes = [content.note ? `Note: content ${content.note}.` : '', style.note ? `Note: style ${style.note}.` : ''].filter(Boolean);
    const { first, last } = result.losses;
    return reply(
      [
        `Repainted in the style of **${styleLabel}** in ${result.steps} steps: style loss ${first.style.toPrecision(3)} → ${last.style.toPrecision(3)}, ` +
          `content loss ${last.content.toPrecision(3)}. Left to right: content, style, result.`,
        ...notes,
      ].join('\n'),
      {
        title: 'Style transfer',
        fields: [
          { name: 'Style', value: styleLabel, inline: true },
          { name: 'Steps', value: String(result.steps), inline: true },
          { name: 'Size', value: `${result.width}×${result.height}`, inline: true },
        ],
        images: [
          { name: 'style-transfer.png', png: Buffer.from(result.png, 'base64'), alt: 'Content, style and result side by side' },
          { name: 'style-result.png', png: Buffer.from(result.resultPng, 'base64'), alt: 'The stylised image' },
        ],
        data: {
          style: styleLabel,
          bundledStyle: named ?? null,
          steps: result.steps,
          width: result.width,
          height: result.height,
          contentWeight: input.contentWeight,
          styleWeight: input.styleWeight,
          losses: result.losses,
          ...(notes.length ? { notes } : {}),
        },
      },
    );
  },
});

/** The store when one is configured (an engine without one throws UNAVAILABLE on access). */
function optionalStore(ctx: CommandContext): Store | undefined {
  try {
    return ctx.services.store;
  } catch {
    return undefined;
  }
}

/** `generate`: sample new sneakers from the WGAN-GP generator. */
export const generateCommand = defineCommand({
  name: 'generate',
  description: 'Generate new sneakers with the WGAN-GP generator; same seed, same images; marked "generated".',
  options: z
    .object({
      count: intIn(1, 64, 'count').default(16).describe('How many images (1–64)'),
      seed: intIn(0, 2 ** 31 - 1, 'seed').optional().describe('Random seed; the same seed gives the same images'),
      model: z.string().trim().min(1).max(40).optional().describe('Generator model id from the registry, or "default"'),
    })
    .strict(),
  cooldown: { perUserMs: 3_000 },
  async run(input, ctx) {
    const tf = await getTf();
    const store = optionalStore(ctx);
    const { id, generator } = await resolveGenerator(tf, store, input.model);
    const seed = input.seed ?? Math.floor(Math.random() * 2 ** 31);
    const size = generator.arch.size;
    // Tiny GAN outputs are upscaled so the watermark is legible; each sample is marked before tiling.
    const side = size < 128 ? 128 : size;
    const samples = await Promise.all(
      sampleRgb(tf, generator.weights, generator.arch, seed, input.count).map(async (img) => watermark(await resizeRgb(img, side, side))),
    );
    const columns = Math.ceil(Math.sqrt(input.count));
    const png = await rgbToPng(grid(samples, columns, 4));
    let stored = 0;
    if (store) {
      for (const [i, sample] of samples.entries()) {
        // Flagged so no classifier ever trains on them (dataset and training queries filter generated = false).
        await store.images.put({
          bytes: await rgbToPng(sample),
          width: sample.width,
          height: sample.height,
          format: 'png',
          source: 'generated',
          generated: true,
          name: `generated-${id}-${seed}-${i}.png`,
          meta: { model: id, seed, index: i, iterations: generator.meta.iterations },
          ...(ctx.guildId !== undefined ? { guildId: ctx.guildId } : {}),
          userId: ctx.caller.id,
        });
        stored++;
      }
    }
    return reply(
      `${input.count} generated sneaker${input.count === 1 ? '' : 's'} from generator \`${id}\` (${generator.meta.iterations} training iterations, ${size}×${size}), seed ${seed}. ` +
        'These are machine-made images, marked "generated".',
      {
        title: 'Generated sneakers',
        fields: [
          { name: 'Seed', value: String(seed), inline: true },
          { name: 'Generator', value: id, inline: true },
          { name: 'Count', value: String(input.count), inline: true },
        ],
        images: [{ name: 'generated.png', png, alt: `${input.count} generated sneakers, seed ${seed}` }],
        data: { seed, count: input.count, model: id, size, iterations: generator.meta.iterations, stored, generated: true },
      },
    );
  },
});
