import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { EngineError, silentLogger } from '../../engine/index.ts';
import { openStore, type Store } from '../../engine/store/index.ts';
import { ModelRegistry, type ModelChange } from '../../plugins/training/lib/registry.ts';
import { tempStore } from '../jobs/fixtures/synthetic.ts';

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

async function sqliteStore(): Promise<Store> {
  const t = await tempStore();
  cleanups.push(t.cleanup);
  return t.store;
}

async function postgresStore(): Promise<Store> {
  const schema = `sst_reg_${randomBytes(4).toString('hex')}`;
  const store = await openStore({ url: 'postgres://postgres@127.0.0.1:5432/test', schema });
  cleanups.push(async () => {
    await sql.raw(`drop schema if exists ${schema} cascade`).execute(store.db);
    await store.close();
  });
  return store;
}

async function model(store: Store, task = 'brand'): Promise<number> {
  return (await store.models.create({ task, artifact: Buffer.from(randomBytes(8)), metrics: {}, params: {}, dataSnapshot: {}, createdBy: 'test' })).id;
}

for (const [dialect, open] of [['sqlite', sqliteStore], ['postgres', postgresStore]] as const) {
  describe(`model registry on ${dialect}`, () => {
    it('GIVEN two promotions racing from the same champion THEN exactly one wins and the registry stays consistent', async () => {
      const store = await open();
      const registry = new ModelRegistry({ store, logger: silentLogger() });
      const champion = await model(store);
      await registry.promote('brand', champion, 'mod');
      const [a, b] = [await model(store), await model(store)];
      const results = await Promise.allSettled([registry.promote('brand', a, 'mod-a', champion), registry.promote('brand', b, 'mod-b', champion)]);
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      expect(won).toHaveLength(1);
      expect(lost).toHaveLength(1);
      expect(lost[0]!.reason).toBeInstanceOf(EngineError);
      expect((lost[0]!.reason as EngineError).code).toBe('CONFLICT');
      const winner = (won[0] as PromiseFulfilledResult<ModelChange>).value.modelId;
      expect(await store.models.getAlias('brand', 'champion')).toBe(winner);
      // History has one entry per successful change; the winner's previous is the old champion.
      const history = await store.models.aliasHistory('brand', 'champion');
      expect(history.map((h) => [h.modelId, h.previousModelId])).toEqual([
        [winner, champion],
        [champion, null],
      ]);
      expect((await store.models.summary(winner))?.status).toBe('promoted');
      expect((await store.models.summary(champion))?.status).toBe('archived');
      const loser = winner === a ? b : a;
      expect((await store.models.summary(loser))?.status).toBe('candidate');
      // Rollback restores the previous champion atomically.
      const rb = await registry.rollback('brand', 'mod');
      expect(rb).toMatchObject({ modelId: champion, previousModelId: winner, action: 'rollback' });
      expect(await store.models.getAlias('brand', 'champion')).toBe(champion);
      await expect(registry.rollback('brand', 'mod')).rejects.toMatchObject({ code: 'NOT_FOUND' });
      await registry.close();
    });

    it('GIVEN two first promotions racing with no champion THEN one wins', async () => {
      const store = await open();
      const registry = new ModelRegistry({ store, logger: silentLogger() });
      const [a, b] = [await model(store, 'hype'), await model(store, 'hype')];
      const results = await Promise.allSettled([registry.promote('hype', a, 'x', null), registry.promote('hype', b, 'y', null)]);
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      expect([a, b]).toContain(await store.models.getAlias('hype', 'champion'));
      expect(await store.models.aliasHistory('hype', 'champion')).toHaveLength(1);
      await registry.close();
    });
  });
}

describe('serving processes pick up promotions without restart', () => {
  it('GIVEN a subscriber in another registry THEN a promotion reaches it over Redis pub/sub', async () => {
    const store = await sqliteStore();
    const writer = new ModelRegistry({ store, logger: silentLogger(), redisUrl: 'redis://127.0.0.1:6379' });
    const reader = new ModelRegistry({ store, logger: silentLogger(), redisUrl: 'redis://127.0.0.1:6379', pollMs: 60_000 });
    const id = await model(store, 'brand');
    const seen = new Promise<ModelChange>((resolve) => {
      reader.onChange((c) => {
        if (c.modelId === id && c.alias === 'champion') resolve(c);
      });
    });
    await new Promise((r) => setTimeout(r, 300)); // the subscription is set up
    await writer.promote('brand', id, 'mod');
    await expect(seen).resolves.toMatchObject({ task: 'brand', alias: 'champion', modelId: id, action: 'promote' });
    await writer.close();
    await reader.close();
  });

  it('GIVEN no Redis THEN polling the alias notices a change made elsewhere', async () => {
    const store = await sqliteStore();
    const reader = new ModelRegistry({ store, logger: silentLogger(), pollMs: 100 });
    const id = await model(store, 'hype');
    const seen = new Promise<ModelChange>((resolve) => reader.onChange((c) => c.alias === 'champion' && resolve(c)));
    await new Promise((r) => setTimeout(r, 200));
    await store.models.setAlias('hype', 'champion', id, 'someone-else');
    await expect(seen).resolves.toMatchObject({ task: 'hype', modelId: id });
    await reader.close();
  });
});
