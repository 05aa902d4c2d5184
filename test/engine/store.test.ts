/**
 * The store contract, run unchanged against SQLite and Postgres. The Postgres half uses a random schema
 * that is dropped afterwards; it FAILS (does not skip) when Postgres is unreachable, unless
 * SOLESCOPE_TEST_POSTGRES=0.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { openStore, parseDatabaseUrl, knownMigrations, type Store } from '../../engine/store/index.ts';
import { EngineError } from '../../engine/errors.ts';

const PG_CANDIDATES = process.env.SOLESCOPE_TEST_DATABASE_URL
  ? [process.env.SOLESCOPE_TEST_DATABASE_URL]
  : ['postgres://postgres@127.0.0.1:5432/test', 'postgres://root@127.0.0.1:5432/test'];
const PG_DISABLED = process.env.SOLESCOPE_TEST_POSTGRES === '0';

const uid = () => randomUUID().slice(0, 8);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function expectCode(promise: Promise<unknown>, code: string): Promise<EngineError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected ${code}`).toBeInstanceOf(EngineError);
  expect((err as EngineError).code).toBe(code);
  return err as EngineError;
}

/** A fake "encoded image": random bytes are enough for the store, which never decodes. */
function fakeImage(source: string, extra: Partial<Parameters<Store['images']['put']>[0]> = {}) {
  return { bytes: randomBytes(64), width: 32, height: 24, format: 'png', source, ...extra };
}

interface Target {
  open(): Promise<Store>;
  cleanup(): Promise<void>;
}

function sqliteTarget(): Target {
  let dir: string | undefined;
  return {
    async open() {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'solescope-store-'));
      return openStore({ dataDir: dir });
    },
    async cleanup() {
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

function postgresTarget(): Target {
  const schema = `solescope_test_${uid()}`;
  let url: string | undefined;
  return {
    async open() {
      const errors: string[] = [];
      for (const candidate of PG_CANDIDATES) {
        try {
          const store = await openStore({ url: candidate, schema, poolSize: 4 });
          url = candidate;
          return store;
        } catch (err) {
          errors.push(`${candidate}: ${(err as Error).message}`);
        }
      }
      throw new Error(
        `Postgres is unreachable, so the Postgres half of the store suite cannot run.\n  ${errors.join('\n  ')}\n` +
          'Start Postgres on 127.0.0.1:5432 (trust auth, database "test"; .ci/run does this), point ' +
          'SOLESCOPE_TEST_DATABASE_URL at one, or set SOLESCOPE_TEST_POSTGRES=0 to skip this half deliberately.',
      );
    },
    async cleanup() {
      if (!url) return;
      const admin = await openStore({ url, migrate: false, poolSize: 1 });
      try {
        await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(admin.db);
      } finally {
        await admin.close();
      }
    },
  };
}

function storeSuite(dialect: 'sqlite' | 'postgres', makeTarget: () => Target): void {
  describe(`store on ${dialect}`, () => {
    const target = makeTarget();
    let store: Store;

    beforeAll(async () => {
      store = await target.open();
    });
    afterAll(async () => {
      await store?.close();
      await target.cleanup();
    });

    it('GIVEN a fresh database THEN opening it applies every migration and reports the dialect', async () => {
      expect(store.dialect).toBe(dialect);
      expect(await store.appliedMigrations()).toEqual(knownMigrations());
      await store.ping();
      expect(store.location).not.toMatch(/password|@/);
    });

    it('GIVEN the same bytes twice THEN images.put is idempotent and content-addressed', async () => {
      const source = `src-${uid()}`;
      const input = fakeImage(source, { name: undefined as unknown as string });
      delete (input as { name?: string }).name;
      const a = await store.images.put(input);
      const b = await store.images.put({ ...input, name: 'Late Name', meta: { from: 'second' } });
      expect(a.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(b.sha256).toBe(a.sha256);
      // A missing name/meta is filled in; everything else keeps the first write.
      expect(b.name).toBe('Late Name');
      expect(b.meta).toEqual({ from: 'second' });
      expect(b.createdAt.getTime()).toBe(a.createdAt.getTime());
      expect(await store.images.count({ source })).toBe(1);
      expect(Buffer.compare((await store.images.bytes(a.sha256)) as Buffer, input.bytes)).toBe(0);
      expect(a.byteSize).toBe(64);
      expect(a).not.toHaveProperty('bytes');
      const explicit = await store.images.put(fakeImage(source, { sha256: 'a'.repeat(64) }));
      expect(explicit.sha256).toBe('a'.repeat(64));
    });

    it('GIVEN concurrent puts of one picture THEN exactly one row exists', async () => {
      const source = `race-${uid()}`;
      const input = fakeImage(source);
      const rows = await Promise.all([store.images.put(input), store.images.put(input), store.images.put(input)]);
      expect(new Set(rows.map((r) => r.sha256)).size).toBe(1);
      expect(await store.images.count({ source })).toBe(1);
    });

    it('GIVEN bad image input THEN put throws BAD_INPUT', async () => {
      await expectCode(store.images.put({ ...fakeImage('x'), width: 0 }), 'BAD_INPUT');
      await expectCode(store.images.put({ ...fakeImage('x'), bytes: new Uint8Array() }), 'BAD_INPUT');
      await expectCode(store.images.put({ ...fakeImage('x'), sha256: 'nothex' }), 'BAD_INPUT');
      await expectCode(store.images.put({ ...fakeImage('x'), source: ' ' }), 'BAD_INPUT');
      expect(await store.images.get('f'.repeat(64))).toBeUndefined();
      expect(await store.images.bytes('f'.repeat(64))).toBeUndefined();
    });

    it('GIVEN labelled images THEN find filters by dataset, brand, hype, source, guild, name, generated and time', async () => {
      const source = `find-${uid()}`;
      const ds = `ds-${uid()}`;
      const put = (extra: Partial<Parameters<Store['images']['put']>[0]>) => store.images.put(fakeImage(source, extra));
      const aj = await put({ name: 'Air Jordan 1 Retro High', guildId: 'g1' });
      const dunk = await put({ name: 'Nike Dunk Low 100%_Panda', guildId: 'g1' });
      const sam = await put({ name: 'adidas Samba OG', guildId: 'g2' });
      await sleep(15);
      const between = new Date();
      await sleep(15);
      const gen = await put({ name: 'Generated shoe', generated: true });
      // created_at has millisecond resolution and ties fall back to the hash: the last put must be the newest.
      await sleep(5);
      const anon = await put({});
      await store.datasets.create({ name: ds });
      await store.datasets.addImages(ds, [aj.sha256, dunk.sha256, gen.sha256]);
      await store.labels.add({ imageSha: aj.sha256, task: 'brand', value: 'jordan', by: 'import:x', origin: 'import' });
      await store.labels.add({ imageSha: aj.sha256, task: 'hype', value: 'hyped', by: 'import:x', origin: 'import' });
      await store.labels.add({ imageSha: dunk.sha256, task: 'brand', value: 'nike', by: 'u1', origin: 'vote' });
      await store.labels.add({ imageSha: dunk.sha256, task: 'hype', value: 'not_hyped', by: 'u1', origin: 'vote' });
      await store.labels.add({ imageSha: sam.sha256, task: 'brand', value: 'adidas', by: 'u1', origin: 'vote' });

      const names = async (filter: Parameters<Store['images']['find']>[0]) =>
        (await store.images.find({ source, ...filter })).map((r) => r.name).sort();

      expect((await store.images.find({ source })).length).toBe(5);
      expect(await names({ dataset: ds })).toEqual(['Air Jordan 1 Retro High', 'Generated shoe', 'Nike Dunk Low 100%_Panda']);
      expect(await names({ dataset: [ds, 'no-such-dataset'] })).toHaveLength(3);
      expect(await names({ dataset: 'no-such-dataset' })).toEqual([]);
      expect(await names({ brand: 'jordan' })).toEqual(['Air Jordan 1 Retro High']);
      expect(await names({ brand: ['nike', 'adidas'] })).toEqual(['Nike Dunk Low 100%_Panda', 'adidas Samba OG']);
      expect(await names({ brand: null })).toEqual([null, 'Generated shoe'].sort());
      expect(await names({ hype: 'hyped' })).toEqual(['Air Jordan 1 Retro High']);
      expect(await names({ hype: null, brand: 'adidas' })).toEqual(['adidas Samba OG']);
      expect(await names({ dataset: ds, hype: 'not_hyped' })).toEqual(['Nike Dunk Low 100%_Panda']);
      expect(await names({ guildId: 'g1' })).toEqual(['Air Jordan 1 Retro High', 'Nike Dunk Low 100%_Panda']);
      expect(await names({ nameIncludes: 'JORDAN' })).toEqual(['Air Jordan 1 Retro High']);
      expect(await names({ nameIncludes: ['retro', 'high'] })).toEqual(['Air Jordan 1 Retro High']);
      // LIKE wildcards in the text are literal.
      expect(await names({ nameIncludes: '100%_' })).toEqual(['Nike Dunk Low 100%_Panda']);
      expect(await names({ nameIncludes: '%' })).toEqual(['Nike Dunk Low 100%_Panda']);
      expect(await names({ nameExcludes: ['jordan', 'DUNK'] })).toEqual([null, 'Generated shoe', 'adidas Samba OG'].sort());
      expect(await names({ generated: true })).toEqual(['Generated shoe']);
      expect(await names({ generated: false })).toHaveLength(4);
      expect(await names({ since: between })).toEqual([null, 'Generated shoe'].sort());
      expect(await names({ until: between })).toHaveLength(3);
      expect(await names({ shas: [sam.sha256, anon.sha256] })).toEqual([null, 'adidas Samba OG'].sort());
      expect(await names({ source: [source, 'other'], brand: 'jordan' })).toEqual(['Air Jordan 1 Retro High']);

      const page1 = await store.images.find({ source, limit: 2 });
      const page2 = await store.images.find({ source, limit: 2, offset: 2 });
      const desc = await store.images.find({ source, order: 'desc', limit: 1 });
      expect(page1.map((r) => r.sha256)).not.toContain(page2[0]?.sha256);
      expect(desc[0]?.sha256).toBe(anon.sha256);
      expect(await store.images.count({ source, brand: null })).toBe(2);
      const row = await store.images.get(aj.sha256);
      expect(row).toMatchObject({ brand: 'jordan', hype: 'hyped', guildId: 'g1', generated: false, width: 32, height: 24 });
      expect(await store.images.getMany([aj.sha256, 'f'.repeat(64), aj.sha256])).toHaveLength(1);
      const counts = await store.images.labelCounts('brand', { source });
      expect(Object.fromEntries(counts)).toEqual({ jordan: 1, nike: 1, adidas: 1, null: 2 });
    });

    it('GIVEN many images THEN iterate pages through all of them in order, with filters and a cap', async () => {
      const source = `iter-${uid()}`;
      const shas: string[] = [];
      for (let i = 0; i < 23; i += 1) shas.push((await store.images.put(fakeImage(source, { name: `shoe ${i}` }))).sha256);
      const seen: string[] = [];
      for await (const row of store.images.iterate({ source }, 5)) seen.push(row.sha256);
      expect(seen).toHaveLength(23);
      expect(new Set(seen)).toEqual(new Set(shas));
      expect(seen).toEqual((await store.images.find({ source, limit: 100 })).map((r) => r.sha256));
      const capped: string[] = [];
      for await (const row of store.images.iterate({ source, limit: 7 }, 3)) capped.push(row.sha256);
      expect(capped).toEqual(seen.slice(0, 7));
      const filtered: string[] = [];
      for await (const row of store.images.iterate({ source, nameIncludes: 'shoe 1' }, 4)) filtered.push(row.name ?? '');
      expect(filtered.sort()).toEqual(['shoe 1', 'shoe 10', 'shoe 11', 'shoe 12', 'shoe 13', 'shoe 14', 'shoe 15', 'shoe 16', 'shoe 17', 'shoe 18', 'shoe 19'].sort());
    });

    it('GIVEN votes and imports THEN the resolved label follows the documented rule', async () => {
      const img = await store.images.put(fakeImage(`lbl-${uid()}`));
      const vote = (by: string, value: string) => store.labels.add({ imageSha: img.sha256, task: 'brand', value, by, origin: 'vote' });
      await vote('u1', 'nike');
      await vote('u2', 'adidas');
      // Tie 1–1: the value voted most recently wins.
      expect((await store.labels.resolved(img.sha256)).brand).toBe('adidas');
      await vote('u3', 'nike');
      expect((await store.labels.resolved(img.sha256)).brand).toBe('nike');
      // One vote per user: u3 changing their mind replaces, not adds.
      await vote('u3', 'Adidas');
      expect((await store.labels.list(img.sha256, 'brand')).length).toBe(3);
      expect((await store.labels.resolved(img.sha256)).brand).toBe('adidas');
      // An import label beats any number of votes; the latest import wins.
      await store.labels.add({ imageSha: img.sha256, task: 'brand', value: 'jordan', by: 'import:a', origin: 'import' });
      expect((await store.labels.resolved(img.sha256)).brand).toBe('jordan');
      await vote('u4', 'nike');
      expect((await store.labels.resolved(img.sha256)).brand).toBe('jordan');
      await store.labels.add({ imageSha: img.sha256, task: 'brand', value: 'other', by: 'import:b', origin: 'import' });
      expect((await store.images.get(img.sha256))?.brand).toBe('other');
      // Removing the imports falls back to the votes (nike 2: u1,u4; adidas 2: u2,u3 → latest is u4's nike).
      expect(await store.labels.remove(img.sha256, 'brand', 'import:a')).toBe(true);
      expect(await store.labels.remove(img.sha256, 'brand', 'import:b')).toBe(true);
      expect((await store.labels.resolved(img.sha256)).brand).toBe('nike');
      expect(await store.labels.remove(img.sha256, 'brand', 'nobody')).toBe(false);
      // Hype is independent of brand; "Not Hyped" normalises.
      await store.labels.add({ imageSha: img.sha256, task: 'hype', value: 'Not Hyped', by: 'u1', origin: 'vote' });
      expect(await store.labels.resolved(img.sha256)).toEqual({ brand: 'nike', hype: 'not_hyped' });
      for (const by of ['u1', 'u2', 'u3', 'u4']) await store.labels.remove(img.sha256, 'brand', by);
      expect((await store.labels.resolved(img.sha256)).brand).toBeNull();
    });

    it('GIVEN invalid labels THEN BAD_INPUT or NOT_FOUND', async () => {
      const img = await store.images.put(fakeImage(`bad-${uid()}`));
      await expectCode(store.labels.add({ imageSha: img.sha256, task: 'brand', value: 'puma', by: 'u', origin: 'vote' }), 'BAD_INPUT');
      await expectCode(store.labels.add({ imageSha: img.sha256, task: 'colour' as 'brand', value: 'nike', by: 'u', origin: 'vote' }), 'BAD_INPUT');
      await expectCode(store.labels.add({ imageSha: img.sha256, task: 'hype', value: 'hyped', by: '', origin: 'vote' }), 'BAD_INPUT');
      await expectCode(store.labels.add({ imageSha: 'e'.repeat(64), task: 'hype', value: 'hyped', by: 'u', origin: 'vote' }), 'NOT_FOUND');
    });

    it('GIVEN datasets THEN create/ensure/addImages/removeImages/delete keep counts and refuse bad input', async () => {
      const name = `set ${uid()}`;
      const source = `ds-${uid()}`;
      const a = await store.images.put(fakeImage(source));
      const b = await store.images.put(fakeImage(source));
      const created = await store.datasets.create({ name, description: 'dev', meta: { seed: 1 }, createdBy: 'cli:me' });
      expect(created).toMatchObject({ name, description: 'dev', meta: { seed: 1 }, createdBy: 'cli:me', imageCount: 0 });
      await expectCode(store.datasets.create({ name }), 'CONFLICT');
      expect((await store.datasets.ensure({ name })).id).toBe(created.id);
      expect(await store.datasets.addImages(name, [a.sha256, b.sha256, a.sha256])).toBe(2);
      expect(await store.datasets.addImages(created.id, [a.sha256])).toBe(0);
      // One missing image → nothing of that call is added.
      const c = await store.images.put(fakeImage(source));
      await expectCode(store.datasets.addImages(name, [c.sha256, 'd'.repeat(64)]), 'NOT_FOUND');
      expect((await store.datasets.get(name))?.imageCount).toBe(2);
      await expectCode(store.datasets.addImages('no such set', [a.sha256]), 'NOT_FOUND');
      expect((await store.datasets.list()).find((d) => d.name === name)?.imageCount).toBe(2);
      expect(await store.datasets.removeImages(name, [a.sha256])).toBe(1);
      expect((await store.images.find({ dataset: name })).map((r) => r.sha256)).toEqual([b.sha256]);
      expect(await store.datasets.delete(name)).toBe(true);
      expect(await store.datasets.delete(name)).toBe(false);
      expect(await store.images.get(b.sha256)).toBeDefined();
      await expectCode(store.datasets.create({ name: '  ' }), 'BAD_INPUT');
      // Deleting an image removes its memberships and labels with it.
      const ds2 = `set2-${uid()}`;
      await store.datasets.create({ name: ds2 });
      await store.datasets.addImages(ds2, [c.sha256]);
      await store.labels.add({ imageSha: c.sha256, task: 'hype', value: 'hyped', by: 'u', origin: 'vote' });
      expect(await store.images.delete(c.sha256)).toBe(true);
      expect((await store.datasets.get(ds2))?.imageCount).toBe(0);
      expect(await store.labels.list(c.sha256)).toEqual([]);
      expect(await store.images.bytes(c.sha256)).toBeUndefined();
    });

    it('GIVEN predictions THEN add and list filter them, newest first', async () => {
      const sha = randomBytes(32).toString('hex');
      const p1 = await store.predictions.add({ imageSha: sha, task: 'hype', label: 'hyped', probability: 0.8, modelId: 3, guildId: 'g', userId: 'u' });
      const p2 = await store.predictions.add({ imageSha: sha, task: 'brand', label: 'nike', probability: 0.55, modelId: 'default:brand@1' });
      expect(p1).toMatchObject({ imageSha: sha, task: 'hype', label: 'hyped', probability: 0.8, modelId: '3', guildId: 'g', userId: 'u' });
      expect((await store.predictions.list({ imageSha: sha })).map((p) => p.id)).toEqual([p2.id, p1.id]);
      expect((await store.predictions.list({ imageSha: sha, task: 'brand' })).map((p) => p.id)).toEqual([p2.id]);
      expect((await store.predictions.list({ modelId: 3, imageSha: sha })).map((p) => p.id)).toEqual([p1.id]);
      await expectCode(store.predictions.add({ imageSha: sha, task: 'hype', label: 'x', probability: 1.5, modelId: 1 }), 'BAD_INPUT');
      await expectCode(store.predictions.add({ imageSha: sha, task: 'hype', label: 'x', probability: Number.NaN, modelId: 1 }), 'BAD_INPUT');
    });

    it('GIVEN model versions THEN artifacts round-trip, lists skip blobs, aliases are atomic and roll back', async () => {
      const task = `t${uid()}`;
      const artifact = randomBytes(2048);
      const curves = randomBytes(100);
      const m1 = await store.models.create({
        task,
        artifact,
        metrics: { accuracy: 0.91, perClass: { a: 1 } },
        params: { lr: 0.001 },
        dataSnapshot: { dataset: 'dev', n: 10 },
        curvesPng: curves,
        createdBy: 'cli:me',
      });
      expect(m1).toMatchObject({ task, artifactSize: 2048, hasCurves: true, status: 'candidate', aliases: [], metrics: { accuracy: 0.91 } });
      const full = await store.models.get(m1.id);
      expect(Buffer.compare(full?.artifact as Buffer, artifact)).toBe(0);
      expect(Buffer.compare(full?.curvesPng as Buffer, curves)).toBe(0);
      expect(full?.dataSnapshot).toEqual({ dataset: 'dev', n: 10 });
      const m2 = await store.models.create({ task, artifact: randomBytes(10), metrics: {}, params: {}, dataSnapshot: {}, createdBy: 'job:1' });
      const m3 = await store.models.create({ task, artifact: randomBytes(10), metrics: {}, params: {}, dataSnapshot: {}, createdBy: 'job:2' });
      expect(m2.hasCurves).toBe(false);
      const listed = await store.models.list(task);
      expect(listed.map((m) => m.id)).toEqual([m3.id, m2.id, m1.id]);
      expect(listed[0]).not.toHaveProperty('artifact');

      expect(await store.models.getAlias(task, 'champion')).toBeUndefined();
      await store.models.setAlias(task, 'champion', m1.id, 'u');
      await store.models.setAlias(task, 'champion', m2.id, 'u');
      await store.models.setAlias(task, 'champion', m2.id, 'u'); // no-op, no history entry
      await store.models.setAlias(task, 'champion', m3.id, 'u');
      await store.models.setAlias(task, 'candidate', m3.id);
      expect(await store.models.aliases(task)).toEqual({ champion: m3.id, candidate: m3.id });
      expect((await store.models.summary(m3.id))?.aliases).toEqual(['candidate', 'champion']);
      expect((await store.models.aliasHistory(task, 'champion')).map((h) => [h.modelId, h.previousModelId])).toEqual([
        [m3.id, m2.id],
        [m2.id, m1.id],
        [m1.id, null],
      ]);
      expect(await store.models.rollbackAlias(task, 'champion', 'mod')).toBe(m2.id);
      expect(await store.models.getAlias(task, 'champion')).toBe(m2.id);
      expect(await store.models.rollbackAlias(task, 'champion')).toBe(m1.id);
      await expectCode(store.models.rollbackAlias(task, 'champion'), 'NOT_FOUND');
      expect(await store.models.getAlias(task, 'champion')).toBe(m1.id);

      // Compare-and-set: moves only from the expected model.
      expect(await store.models.setAlias(task, 'champion', m3.id, 'u', { expected: m2.id })).toBe(false);
      expect(await store.models.getAlias(task, 'champion')).toBe(m1.id);
      expect(await store.models.setAlias(task, 'candidate', m1.id, 'u', { expected: null })).toBe(false);
      expect(await store.models.setAlias(task, 'staging', m1.id, 'u', { expected: null })).toBe(true);
      expect(await store.models.setAlias(task, 'staging', m2.id, 'u', { expected: m1.id })).toBe(true);
      expect(await store.models.getAlias(task, 'staging')).toBe(m2.id);
      expect((await store.models.aliasHistory(task, 'staging')).map((h) => [h.modelId, h.previousModelId])).toEqual([
        [m2.id, m1.id],
        [m1.id, null],
      ]);
      // Racing compare-and-sets from the same state: exactly one wins.
      const race = await Promise.all([
        store.models.setAlias(task, 'staging', m1.id, 'a', { expected: m2.id }),
        store.models.setAlias(task, 'staging', m3.id, 'b', { expected: m2.id }),
      ]);
      expect(race.filter(Boolean)).toHaveLength(1);
      await store.models.setAlias(task, 'staging', m3.id);
      await expectCode(store.models.setAlias(task, 'champion', 999_999), 'NOT_FOUND');
      const other = await store.models.create({ task: `${task}x`, artifact: randomBytes(4), metrics: {}, params: {}, dataSnapshot: {}, createdBy: 'x' });
      await expectCode(store.models.setAlias(task, 'champion', other.id), 'BAD_INPUT');
      await expectCode(store.models.setAlias(task, 'Bad Alias', m1.id), 'BAD_INPUT');
      expect(await store.models.getAlias(task, 'champion')).toBe(m1.id);
      await expectCode(store.models.delete(m1.id), 'CONFLICT');
      expect(await store.models.delete(m2.id)).toBe(true);
      await store.models.setStatus(m3.id, 'archived');
      expect((await store.models.list(task, { status: 'archived' })).map((m) => m.id)).toEqual([m3.id]);
      await expectCode(store.models.setStatus(999_999, 'archived'), 'NOT_FOUND');
      expect(await store.models.get(999_999)).toBeUndefined();
      await expectCode(store.models.create({ task, artifact: new Uint8Array(), metrics: {}, params: {}, dataSnapshot: {}, createdBy: 'x' }), 'BAD_INPUT');
    });

    it('GIVEN embeddings THEN vectors round-trip exactly per (image, backbone, prep version)', async () => {
      const sha = randomBytes(32).toString('hex');
      const v = Float32Array.from({ length: 1280 }, (_, i) => Math.sin(i) * 1e3 + 1e-7 * i);
      await store.embeddings.put(sha, 'mobilenet_v2', 'p1', v);
      const back = await store.embeddings.get(sha, 'mobilenet_v2', 'p1');
      expect(back).toBeInstanceOf(Float32Array);
      expect(Array.from(back as Float32Array)).toEqual(Array.from(v));
      expect(await store.embeddings.get(sha, 'mobilenet_v2', 'p2')).toBeUndefined();
      await store.embeddings.put(sha, 'mobilenet_v2', 'p1', Float32Array.from([1, 2, 3]));
      expect(Array.from((await store.embeddings.get(sha, 'mobilenet_v2', 'p1')) as Float32Array)).toEqual([1, 2, 3]);
      const backbone = `bb${uid()}`;
      const shas = Array.from({ length: 7 }, () => randomBytes(32).toString('hex'));
      for (const [i, s] of shas.entries()) await store.embeddings.put(s, backbone, 'p1', Float32Array.from([i, -i]));
      const many = await store.embeddings.getMany([...shas.slice(0, 3), 'nope'], backbone, 'p1');
      expect(many.size).toBe(3);
      const seen: string[] = [];
      for await (const e of store.embeddings.iterate(backbone, 'p1', 3)) seen.push(e.imageSha);
      expect(seen).toEqual([...shas].sort());
      expect(await store.embeddings.count(backbone, 'p1')).toBe(7);
      expect(await store.embeddings.delete(backbone)).toBe(7);
      await expectCode(store.embeddings.put(sha, 'b', 'p', Float32Array.from([Number.NaN])), 'BAD_INPUT');
      await expectCode(store.embeddings.put(sha, 'b', 'p', new Float32Array(0)), 'BAD_INPUT');
    });

    it('GIVEN audit entries THEN list filters them newest first', async () => {
      const actor = `cli:${uid()}`;
      const a = await store.audit.add({ actor, action: 'model.promote', target: 'model:1', details: { from: 2 } });
      const b = await store.audit.add({ actor, action: 'dataset.import' });
      expect(a).toMatchObject({ actor, action: 'model.promote', target: 'model:1', details: { from: 2 } });
      expect(b.details).toBeNull();
      expect((await store.audit.list({ actor })).map((e) => e.id)).toEqual([b.id, a.id]);
      expect((await store.audit.list({ actor, action: 'model.promote' })).map((e) => e.id)).toEqual([a.id]);
    });

    it('GIVEN kv entries THEN JSON, bytes, null and expiry behave', async () => {
      const p = `kv:${uid()}:`;
      await store.kv.set(`${p}json`, { epoch: 3, loss: [0.5, 0.25], nested: { ok: true } });
      await store.kv.set(`${p}bytes`, new Uint8Array([0, 1, 255]));
      await store.kv.set(`${p}null`, null);
      await store.kv.set(`${p}str`, 'plain');
      expect(await store.kv.get(`${p}json`)).toEqual({ epoch: 3, loss: [0.5, 0.25], nested: { ok: true } });
      expect(Array.from((await store.kv.get(`${p}bytes`)) as Uint8Array)).toEqual([0, 1, 255]);
      expect(await store.kv.get(`${p}null`)).toBeNull();
      expect(await store.kv.get(`${p}str`)).toBe('plain');
      expect(await store.kv.get(`${p}missing`)).toBeUndefined();
      await store.kv.set(`${p}json`, 42);
      expect(await store.kv.get(`${p}json`)).toBe(42);
      await store.kv.set(`${p}short`, 'gone soon', 1);
      await store.kv.set(`${p}long`, 'stays', 60_000);
      await sleep(20);
      expect(await store.kv.get(`${p}short`)).toBeUndefined();
      expect(await store.kv.get(`${p}long`)).toBe('stays');
      expect(await store.kv.keys(p)).toEqual([`${p}bytes`, `${p}json`, `${p}long`, `${p}null`, `${p}str`]);
      expect(await store.kv.keys(p.toUpperCase())).toEqual([]);
      expect(await store.kv.purgeExpired()).toBeGreaterThanOrEqual(1);
      expect(await store.kv.delete(`${p}str`)).toBe(true);
      expect(await store.kv.delete(`${p}str`)).toBe(false);
      await expectCode(store.kv.set(`${p}x`, 1, 0), 'BAD_INPUT');
    });

    it('GIVEN webhooks THEN create/get/revoke/list and events add/update/list work', async () => {
      const channelId = `c${uid()}`;
      const hook = await store.webhooks.create({ tokenHash: 'h'.repeat(64), channelId, routes: [{ match: 'jordan' }], createdBy: 'mod' });
      expect(hook).toMatchObject({ channelId, routes: [{ match: 'jordan' }], revokedAt: null });
      await expectCode(store.webhooks.create({ id: hook.id, tokenHash: 'x', channelId, routes: [], createdBy: 'mod' }), 'CONFLICT');
      const named = await store.webhooks.create({ id: `hook-${uid()}`, tokenHash: 'y', channelId, guildId: 'g', name: 'StockX', routes: {}, createdBy: 'mod' });
      expect((await store.webhooks.list({ channelId })).map((h) => h.id)).toEqual([hook.id, named.id]);
      expect((await store.webhooks.update(named.id, { routes: { all: true } })).routes).toEqual({ all: true });
      const ev = await store.webhookEvents.add({ webhookId: hook.id, payload: { title: 'AJ1' }, status: 'received' });
      expect(ev).toMatchObject({ webhookId: hook.id, payload: { title: 'AJ1' }, parsed: null, status: 'received', reason: null, result: null });
      const done = await store.webhookEvents.update(ev.id, { status: 'processed', parsed: { brand: 'jordan' }, result: { hype: 0.9 } });
      expect(done).toMatchObject({ status: 'processed', parsed: { brand: 'jordan' }, result: { hype: 0.9 } });
      await store.webhookEvents.add({ webhookId: hook.id, payload: 'not json object', status: 'rejected', reason: 'no image' });
      expect((await store.webhookEvents.list({ webhookId: hook.id })).map((e) => e.status)).toEqual(['rejected', 'processed']);
      expect((await store.webhookEvents.list({ webhookId: hook.id, status: 'rejected' }))[0]?.reason).toBe('no image');
      await expectCode(store.webhookEvents.add({ webhookId: 'nope', payload: {}, status: 'received' }), 'NOT_FOUND');
      await expectCode(store.webhookEvents.update(999_999, { status: 'x' }), 'NOT_FOUND');
      expect(await store.webhooks.revoke(hook.id)).toBe(true);
      expect(await store.webhooks.revoke(hook.id)).toBe(false);
      await expectCode(store.webhooks.revoke('nope'), 'NOT_FOUND');
      expect((await store.webhooks.get(hook.id))?.revokedAt).toBeInstanceOf(Date);
      expect((await store.webhooks.list({ channelId })).map((h) => h.id)).toEqual([named.id]);
      expect((await store.webhooks.list({ channelId, includeRevoked: true })).length).toBe(2);
    });

    it('GIVEN a transaction that fails THEN none of its writes persist; one that succeeds commits all', async () => {
      const source = `tx-${uid()}`;
      const err = await store
        .transaction(async (tx) => {
          const img = await tx.images.put(fakeImage(source));
          await tx.labels.add({ imageSha: img.sha256, task: 'hype', value: 'hyped', by: 'u', origin: 'vote' });
          throw new Error('boom');
        })
        .catch((e: unknown) => e);
      expect((err as Error).message).toBe('boom');
      expect(await store.images.count({ source })).toBe(0);
      const sha = await store.transaction(async (tx) => {
        const img = await tx.images.put(fakeImage(source));
        await tx.labels.add({ imageSha: img.sha256, task: 'hype', value: 'hyped', by: 'u', origin: 'vote' });
        await tx.models.create({ task: `tx${uid()}`, artifact: randomBytes(3), metrics: {}, params: {}, dataSnapshot: {}, createdBy: 'x' });
        return img.sha256;
      });
      expect((await store.images.get(sha))?.hype).toBe('hyped');
    });
  });
}

storeSuite('sqlite', sqliteTarget);
if (PG_DISABLED) {
  describe.skip('store on postgres (SOLESCOPE_TEST_POSTGRES=0)', () => {
    it('skipped deliberately', () => undefined);
  });
} else {
  storeSuite('postgres', postgresTarget);
}

describe('store opening and DATABASE_URL', () => {
  it('GIVEN DATABASE_URL forms THEN parseDatabaseUrl picks the dialect and file', () => {
    expect(parseDatabaseUrl(undefined, '/data')).toEqual({ dialect: 'sqlite', file: path.resolve('/data/solescope.db') });
    expect(parseDatabaseUrl('', '/d')).toEqual({ dialect: 'sqlite', file: path.resolve('/d/solescope.db') });
    expect(parseDatabaseUrl(':memory:')).toEqual({ dialect: 'sqlite', file: ':memory:' });
    expect(parseDatabaseUrl('sqlite::memory:')).toEqual({ dialect: 'sqlite', file: ':memory:' });
    expect(parseDatabaseUrl('sqlite:///abs/x.db')).toEqual({ dialect: 'sqlite', file: '/abs/x.db' });
    expect(parseDatabaseUrl('sqlite:rel/x.db')).toEqual({ dialect: 'sqlite', file: path.resolve('rel/x.db') });
    expect(parseDatabaseUrl('file:///abs/y.db')).toEqual({ dialect: 'sqlite', file: '/abs/y.db' });
    expect(parseDatabaseUrl('./z.db')).toEqual({ dialect: 'sqlite', file: path.resolve('z.db') });
    expect(parseDatabaseUrl('postgres://u:p@h:5432/db')).toEqual({ dialect: 'postgres', url: 'postgres://u:p@h:5432/db' });
    expect(parseDatabaseUrl('postgresql://h/db').dialect).toBe('postgres');
    expect(() => parseDatabaseUrl('mysql://h/db')).toThrow(/postgres:\/\/…, sqlite:<path>/);
  });

  it('GIVEN no DATABASE_URL THEN the store is a WAL SQLite file in the data dir that reopens without re-migrating', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'solescope-store-'));
    try {
      const dataDir = path.join(dir, 'nested', 'data');
      const first = await openStore({ dataDir });
      expect(first.location).toBe(`sqlite:${path.join(dataDir, 'solescope.db')}`);
      const mode = await sql<{ journal_mode: string }>`pragma journal_mode`.execute(first.db);
      expect(mode.rows[0]?.journal_mode).toBe('wal');
      const img = await first.images.put(fakeImage('persist'));
      await first.close();
      await first.close(); // idempotent
      const second = await openStore({ url: `sqlite:${path.join(dataDir, 'solescope.db')}` });
      expect(await second.appliedMigrations()).toEqual(knownMigrations());
      expect((await second.images.get(img.sha256))?.source).toBe('persist');
      await second.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('GIVEN processes opening one new SQLite file at once (API server and worker starting together) THEN each opens it, migrated once', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'solescope-store-'));
    try {
      const url = `sqlite:${path.join(dir, 'shared.db')}`;
      // Separate connections racing through the migrations, as separate processes do.
      const stores = await Promise.all([0, 1, 2, 3].map(() => openStore({ url })));
      for (const s of stores) expect(await s.appliedMigrations()).toEqual(knownMigrations());
      const img = await stores[0]!.images.put(fakeImage('race'));
      expect((await stores[3]!.images.get(img.sha256))?.source).toBe('race');
      for (const s of stores) await s.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('GIVEN an unreachable Postgres or an unopenable file THEN openStore throws UNAVAILABLE without the password', async () => {
    const err = await expectCode(openStore({ url: 'postgres://someone:s3cret@127.0.0.1:1/nope' }), 'UNAVAILABLE');
    expect(err.message).toContain('127.0.0.1:1');
    expect(err.message).not.toContain('s3cret');
    // A data dir below a regular file cannot be created.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'solescope-store-'));
    try {
      fs.writeFileSync(path.join(dir, 'file'), 'x');
      await expectCode(openStore({ dataDir: path.join(dir, 'file', 'data') }), 'UNAVAILABLE');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    await expectCode(openStore({ url: 'postgres://127.0.0.1:1/x', schema: 'Bad-Name;' }), 'BAD_INPUT');
  });
});
