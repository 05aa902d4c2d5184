import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../../engine/store/index.ts';
import { collectTrainingData, resolveLabel, sourceGroup } from '../../plugins/training/lib/data.ts';
import { fuzzyGroups, groupSplit } from '../../plugins/training/lib/split.ts';
import { tempStore } from '../jobs/fixtures/synthetic.ts';

let store: Store;
let cleanup: () => Promise<void>;

async function image(name: string, extra: { generated?: boolean } = {}): Promise<string> {
  const img = await store.images.put({ bytes: randomBytes(16), width: 1, height: 1, format: 'png', source: extra.generated ? 'generated' : 'import', name, sha256: randomBytes(32).toString('hex'), ...extra });
  return img.sha256;
}

beforeAll(async () => {
  const t = await tempStore();
  store = t.store;
  cleanup = t.cleanup;
});
afterAll(async () => cleanup());

describe('training data', () => {
  it('GIVEN conflicting labels THEN each rule resolves them as documented', () => {
    const l = (value: string, origin: string, at: number, by = `u${at}`) => ({ sha: 's', value, by, origin, at, id: at });
    const mixed = [l('nike', 'import', 1), l('jordan', 'vote', 2), l('jordan', 'vote', 3)];
    expect(resolveLabel(mixed, 'import-wins', 1)?.value).toBe('nike');
    expect(resolveLabel(mixed, 'majority', 1)?.value).toBe('jordan');
    expect(resolveLabel(mixed, 'latest', 1)?.value).toBe('jordan');
    expect(resolveLabel(mixed, 'unanimous', 1)).toBeUndefined();
    const tie = [l('nike', 'vote', 1), l('adidas', 'vote', 2)];
    expect(resolveLabel(tie, 'majority', 1)).toBeUndefined();
    expect(resolveLabel([l('nike', 'vote', 1)], 'majority', 2)).toBeUndefined();
    expect(resolveLabel([l('nike', 'vote', 1), l('nike', 'vote', 2)], 'majority', 2)?.value).toBe('nike');
  });

  it('GIVEN imports, votes and generated images THEN generated ones are never training data', async () => {
    await store.datasets.ensure({ name: 'dev' });
    const a = await image('air jordan 1 chicago');
    const b = await image('adidas samba og');
    const g = await image('dreamed jordan', { generated: true });
    const v = await image('uploaded nike dunk');
    await store.datasets.addImages('dev', [a, b, g]);
    await store.labels.add({ imageSha: a, task: 'brand', value: 'jordan', by: 'import:dev', origin: 'import' });
    await store.labels.add({ imageSha: b, task: 'brand', value: 'adidas', by: 'import:dev', origin: 'import' });
    await store.labels.add({ imageSha: b, task: 'brand', value: 'nike', by: 'user-1', origin: 'vote', guildId: 'g1' });
    await store.labels.add({ imageSha: g, task: 'brand', value: 'jordan', by: 'import:dev', origin: 'import' });
    await store.labels.add({ imageSha: v, task: 'brand', value: 'nike', by: 'user-2', origin: 'vote', guildId: 'g1' });
    await store.labels.add({ imageSha: v, task: 'brand', value: 'nike', by: 'user-3', origin: 'vote', guildId: 'g2' });

    const { items, snapshot } = await collectTrainingData(store, { task: 'brand', conflictRule: 'import-wins' });
    expect(new Map(items.map((i) => [i.sha, i.label]))).toEqual(new Map([[a, 'jordan'], [b, 'adidas'], [v, 'nike']]));
    expect(snapshot).toMatchObject({ n: 3, excludedGenerated: 1, fromVotes: 1, labellers: 2, datasets: ['dev'] });

    const majority = await collectTrainingData(store, { task: 'brand', conflictRule: 'majority' });
    expect(majority.items.find((i) => i.sha === b)).toBeUndefined(); // 1 import vs 1 vote: a tie
    expect(majority.snapshot.droppedConflicts).toBe(1);

    const guild = await collectTrainingData(store, { task: 'brand', conflictRule: 'import-wins', guildId: 'g2' });
    expect(guild.snapshot.labellers).toBe(1);
    await expect(collectTrainingData(store, { task: 'brand', conflictRule: 'latest', datasets: ['nope'] })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    // Same data, same digest.
    expect((await collectTrainingData(store, { task: 'brand', conflictRule: 'import-wins' })).snapshot.digest).toBe(snapshot.digest);
  });

  it('GIVEN images from several places THEN each item carries its source group (manifest source, dataset, or how it arrived)', async () => {
    expect(sourceGroup({ source: 'import', meta: { dataset: 'dev', origin: 'axelooc59/Detecting-type-of-sneakers-shoes' }, guildId: null })).toBe('axelooc59/Detecting-type-of-sneakers-shoes');
    expect(sourceGroup({ source: 'import', meta: { dataset: 'dev' }, guildId: null })).toBe('dataset:dev');
    expect(sourceGroup({ source: 'discord', meta: null, guildId: 'g1' })).toBe('discord:g1');
    expect(sourceGroup({ source: 'monitor', meta: {}, guildId: null })).toBe('monitor');
    await store.datasets.ensure({ name: 'sources' });
    const put = async (name: string, source: string, meta: Record<string, unknown>): Promise<string> =>
      (await store.images.put({ bytes: randomBytes(16), width: 1, height: 1, format: 'png', source, name, sha256: randomBytes(32).toString('hex'), meta })).sha256;
    const a = await put('nike air max 90', 'import', { dataset: 'sources', origin: 'shop-a' });
    const b = await put('nike air force 1', 'import', { dataset: 'sources' });
    const c = await put('nike dunk low', 'discord', {});
    await store.datasets.addImages('sources', [a, b]);
    for (const sha of [a, b]) await store.labels.add({ imageSha: sha, task: 'hype', value: 'hyped', by: 'import:sources', origin: 'import' });
    await store.labels.add({ imageSha: c, task: 'hype', value: 'not_hyped', by: 'user-9', origin: 'vote' });
    const { items } = await collectTrainingData(store, { task: 'hype', conflictRule: 'import-wins', datasets: ['sources'] });
    expect(new Map(items.map((i) => [i.sha, i.group]))).toEqual(new Map([[a, 'shop-a'], [b, 'dataset:sources'], [c, 'discord']]));
  });

  it('GIVEN fuzzy-similar shoe names THEN they share a group and never straddle the split', () => {
    const names = ['Air Jordan 1 Chicago', 'air-jordan-1 chicago 2015', 'Jordan 1 Retro High Chicago', 'Adidas Samba OG', 'adidas samba og white', 'Nike Dunk Low Panda', 'nike dunk panda'];
    const groups = fuzzyGroups(names.map((name, i) => ({ id: String(i), name })));
    expect(groups[0]).toBe(groups[1]);
    expect(groups[3]).toBe(groups[4]);
    expect(groups[5]).toBe(groups[6]);
    expect(groups[0]).not.toBe(groups[3]);
    const items = Array.from({ length: 200 }, (_, i) => ({ id: `x${i}`, name: `${['jordan', 'samba', 'dunk', 'yeezy', 'forum'][i % 5]} model${Math.floor(i / 5) % 17} edition` }));
    for (const seed of [1, 2, 3]) {
      const s = groupSplit(items, { testSize: 0.2, seed });
      expect(s.test.length).toBeGreaterThan(0);
      const testGroups = new Set(s.test.map((id) => s.groups.get(id)));
      expect(s.train.some((id) => testGroups.has(s.groups.get(id)))).toBe(false);
      expect(groupSplit(items, { testSize: 0.2, seed })).toEqual(s);
    }
  });
});
