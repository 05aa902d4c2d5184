/**
 * Community labelling (active learning): `label` serves the stored photos the current model is least
 * sure about, as a numbered grid with one vote button per photo and label, so a community spends its
 * votes where they teach the model most. Votes go through the vision plugin's vote action
 * (`vision:vote:<task>:<sha>:<value>`) and become labels that the training jobs use.
 */
import { createCanvas, loadImage } from '@napi-rs/canvas';
import { z } from 'zod';
import { defineCommand, definePlugin, fail, reply, type ReplyAction } from '../../engine/index.ts';

const FONT = 'DejaVu Sans, sans-serif';
const VALUES = { brand: ['jordan', 'nike', 'adidas', 'other'], hype: ['hyped', 'not_hyped'] } as const;

/** Shannon entropy (nats) of a probability table: the model's uncertainty about one photo. */
export function entropy(probabilities: Readonly<Record<string, number>>): number {
  let h = 0;
  for (const p of Object.values(probabilities)) if (p > 0) h -= p * Math.log(p);
  return h;
}

/** A numbered grid of thumbnails with the model's current guess under each. */
async function grid(items: readonly { png: Buffer; caption: string }[]): Promise<Buffer> {
  const cell = 200;
  const captionH = 40;
  const canvas = createCanvas(cell * items.length, cell + captionH);
  const g = canvas.getContext('2d');
  g.fillStyle = '#ffffff';
  g.fillRect(0, 0, canvas.width, canvas.height);
  for (const [i, item] of items.entries()) {
    const img = await loadImage(item.png);
    const scale = Math.min((cell - 12) / img.width, (cell - 12) / img.height);
    const w = img.width * scale;
    const h = img.height * scale;
    g.drawImage(img, i * cell + (cell - w) / 2, (cell - h) / 2, w, h);
    g.fillStyle = '#111111';
    g.font = `bold 22px ${FONT}`;
    g.fillText(String(i + 1), i * cell + 8, 26);
    g.font = `13px ${FONT}`;
    g.fillText(item.caption, i * cell + 8, cell + 26, cell - 16);
  }
  return canvas.encode('png');
}

const label = defineCommand({
  name: 'label',
  description: 'Help the model learn: label the stored photos it is least sure about.',
  options: z
    .object({
      task: z.enum(['brand', 'hype']).default('brand').describe('Which label to collect'),
      count: z.number().int().min(1).max(5).default(4).describe('How many photos'),
      dataset: z.string().min(1).max(100).optional().describe('Only photos of this dataset'),
      pool: z.number().int().min(4).max(500).default(48).describe('How many unlabelled photos to score'),
    })
    .strict(),
  cooldown: { perUserMs: 10_000 },
  long: true,
  async run({ task, count, dataset, pool }, ctx) {
    const store = ctx.services.store;
    const candidates = await store.images.find({ [task]: null, generated: false, limit: pool, ...(dataset ? { dataset } : {}) });
    if (candidates.length === 0) {
      fail('NOT_FOUND', `No stored photos without a ${task} label${dataset ? ` in "${dataset}"` : ''}: import some with \`dataset import\`, or post photos to the bot.`);
    }
    const scored: { sha: string; name: string | null; png: Buffer; h: number; guess: string; confidence: number }[] = [];
    for (const [i, row] of candidates.entries()) {
      if (ctx.signal.aborted) break;
      const bytes = await store.images.bytes(row.sha256);
      if (!bytes) continue;
      const cls = await ctx.services.vision.classify(bytes, task, { signal: ctx.signal });
      scored.push({ sha: row.sha256, name: row.name, png: bytes, h: entropy(cls.probabilities), guess: cls.label, confidence: cls.confidence });
      ctx.progress({ fraction: (i + 1) / candidates.length, stage: `scoring ${i + 1}/${candidates.length}` });
    }
    const picked = scored.sort((a, b) => b.h - a.h).slice(0, count);
    const png = await grid(picked.map((p) => ({ png: p.png, caption: `guess: ${p.guess} (${Math.round(p.confidence * 100)}%)` })));
    // Discord allows 5 rows of 5 buttons; one row per photo keeps each photo's choices together.
    const actions: ReplyAction[] = picked.flatMap((p, i) =>
      VALUES[task].map((value) => ({ id: `vision:vote:${task}:${p.sha}:${value}`, label: `${i + 1}: ${value.replace('_', ' ')}`, style: 'secondary' as const })),
    );
    return reply(`These ${picked.length} photos are the ones the ${task} model is least sure about. Vote with the buttons: each vote becomes a training label.`, {
      title: `label: ${task}`,
      images: [{ name: `label-${task}.png`, png, alt: 'photos to label' }],
      actions,
      data: {
        task,
        scored: scored.length,
        photos: picked.map((p, i) => ({ index: i + 1, imageSha: p.sha, name: p.name, guess: p.guess, confidence: p.confidence, entropy: p.h })),
      },
    });
  },
});

export default definePlugin({
  name: 'community',
  description: 'Active learning: the community labels what the model is least sure about.',
  requires: ['vision'],
  commands: [label],
});
