import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { createEngine, type Engine } from '../../engine/index.ts';
import { openStore, type Store } from '../../engine/store/index.ts';
import vision from '../../plugins/vision/index.ts';
import community, { entropy } from '../../plugins/community/index.ts';

// Uses the shipped default brand head (assets/models) on generated shoe-ish pictures.
async function picture(seed: number): Promise<{ png: Buffer; width: number; height: number }> {
  const width = 96;
  const height = 64;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><rect width="100%" height="100%" fill="white"/>
    <path d="M8 44 Q20 ${20 + seed * 3} 48 30 L88 40 L88 52 L8 52 Z" fill="rgb(${(seed * 70) % 255},${(seed * 40) % 255},${(seed * 110) % 255})"/></svg>`;
  const png = await sharp(Buffer.from(svg)).png().toBuffer();
  return { png, width, height };
}

let store: Store;
let engine: Engine;
beforeAll(async () => {
  store = await openStore({ url: ':memory:' });
  engine = createEngine({ store });
  await engine.registerAll([vision, community]);
  for (let i = 0; i < 5; i++) {
    const p = await picture(i);
    await store.images.put({ bytes: p.png, width: p.width, height: p.height, format: 'png', source: 'import', name: `shoe ${i}` });
  }
  const labelled = await picture(9);
  const row = await store.images.put({ bytes: labelled.png, width: labelled.width, height: labelled.height, format: 'png', source: 'import', name: 'labelled' });
  await store.labels.add({ imageSha: row.sha256, task: 'brand', value: 'nike', by: 'import', origin: 'import' });
}, 120_000);
afterAll(() => engine.close());

describe('label (active learning)', () => {
  it('GIVEN probability tables THEN entropy is highest for the least certain', () => {
    expect(entropy({ a: 0.5, b: 0.5 })).toBeGreaterThan(entropy({ a: 0.9, b: 0.1 }));
    expect(entropy({ a: 1, b: 0 })).toBe(0);
  });

  it('GIVEN unlabelled stored photos THEN the least certain ones come back as a grid with vote buttons, sorted by entropy', async () => {
    const r = await engine.invoke('label', { task: 'brand', count: 3 }, { transport: 'test', caller: { id: 'u1' } });
    if (!r.ok) throw r.error;
    const data = r.reply.data as { scored: number; photos: { imageSha: string; entropy: number; name: string }[] };
    expect(data.scored).toBe(5);
    expect(data.photos).toHaveLength(3);
    expect(data.photos.map((p) => p.name)).not.toContain('labelled');
    const entropies = data.photos.map((p) => p.entropy);
    expect([...entropies].sort((a, b) => b - a)).toEqual(entropies);
    expect(r.reply.actions).toHaveLength(12);
    expect(r.reply.actions?.[0]?.id).toMatch(/^vision:vote:brand:[0-9a-f]{64}:jordan$/);
    const meta = await sharp(r.reply.images?.[0]?.png).metadata();
    expect(meta).toMatchObject({ format: 'png', width: 600 });
  });

  it('GIVEN a vote button from the grid THEN it is stored as a label through the vision plugin', async () => {
    const r = await engine.invoke('label', { task: 'brand', count: 1 }, { transport: 'test', caller: { id: 'u2' } });
    if (!r.ok) throw r.error;
    const action = r.reply.actions?.find((a) => a.id.endsWith(':adidas'));
    const voted = await engine.action(action!.id, { transport: 'discord', caller: { id: 'voter' }, guildId: 'g' });
    expect(voted.ok).toBe(true);
    const sha = (r.reply.data as { photos: { imageSha: string }[] }).photos[0]!.imageSha;
    expect((await store.labels.list(sha, 'brand')).map((l) => l.value)).toEqual(['adidas']);
  });

  it('GIVEN nothing left to label THEN NOT_FOUND with a hint', async () => {
    const r = await engine.invoke('label', { task: 'hype', dataset: 'nope' }, { transport: 'test', caller: { id: 'u3' } });
    expect(!r.ok && r.error.code).toMatch(/NOT_FOUND/);
  });
});
