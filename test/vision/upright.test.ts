import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it, expect } from 'vitest';
import { loadBackbone } from '../../engine/ml/backbones.ts';
import { openStore } from '../../engine/store/index.ts';
import { embedItems, prepareInputPlaced, prepKey, variantOf } from '../../plugins/vision/lib/features.ts';
import { featureSpecSchema, type FeatureSpec } from '../../plugins/vision/lib/head.ts';
import { drawShoe, turnRaw } from '../ml/fixtures.ts';

describe('the upright step in the feature pipeline', () => {
  const spec: FeatureSpec = { trim: false, flipAverage: false, l2: true, normalise: true, orient: false };

  it('GIVEN upright in a head\'s feature spec THEN it is part of the cache key and turns the model input, and placement says how', async () => {
    expect(featureSpecSchema.parse({ ...spec, upright: true }).upright).toBe(true);
    const key = prepKey(variantOf({ ...spec, upright: true }, false));
    expect(key).not.toBe(prepKey(variantOf(spec, false)));
    expect(key).toContain('u');
    const turned = await turnRaw(drawShoe({ seed: 7, toe: 'right' }), 60);
    const plain = await prepareInputPlaced(turned, 64, variantOf(spec, false));
    const up = await prepareInputPlaced(turned, 64, variantOf({ ...spec, upright: true }, false));
    expect(plain.placement!.frame).toBeUndefined();
    expect(up.placement!.frame).toHaveLength(6);
    expect(Array.from(up.input)).not.toEqual(Array.from(plain.input));
  });

  it('GIVEN photos the step leaves alone THEN their cached embedding without the step is reused; a turned one gets a forward pass', async () => {
    const backbone = await loadBackbone('mobilenet_v2');
    const store = await openStore({ url: `sqlite:${path.join(mkdtempSync(path.join(tmpdir(), 'upright-')), 'cache.db')}` });
    try {
      const level = drawShoe({ seed: 8, toe: 'right', width: 160, height: 120 });
      const items = [level, await turnRaw(level, 65)].map((raw, i) => ({ sha256: `img${i}`, load: async () => raw }));
      const plain = await embedItems(backbone, items, spec, { store });
      // Sentinels under the plain key: a reused embedding is the sentinel itself, a recomputed one is not.
      const plainKey = prepKey(variantOf(spec, false));
      const sentinels = plain.map((v, i) => new Float32Array(v.length).fill(i + 1));
      for (const [i, s] of sentinels.entries()) await store.embeddings.put(`img${i}`, backbone.name, plainKey, s);
      const up = await embedItems(backbone, items, { ...spec, upright: true }, { store });
      expect(up[0]).toEqual(sentinels[0]);
      expect(up[1]).not.toEqual(sentinels[1]);
      expect(up[1]).not.toEqual(plain[1]);
      // The turned shoe now looks like the level one to the backbone: closer than before the step.
      const cos = (a: Float32Array, b: Float32Array): number => {
        let d = 0;
        let na = 0;
        let nb = 0;
        for (let i = 0; i < a.length; i++) {
          d += a[i]! * b[i]!;
          na += a[i]! ** 2;
          nb += b[i]! ** 2;
        }
        return d / Math.sqrt(na * nb);
      };
      expect(cos(up[1]!, plain[0]!)).toBeGreaterThan(cos(plain[1]!, plain[0]!));
      expect(await store.embeddings.get('img1', backbone.name, prepKey(variantOf({ ...spec, upright: true }, false)))).toEqual(up[1]);
    } finally {
      await store.close();
    }
  });
});
