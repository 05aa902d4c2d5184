import { describe, expect, it } from 'vitest';
import { loadHead } from '../../plugins/training/lib/head.ts';
import type { JobContext } from '../../engine/index.ts';
import { evaluateArtifact, validationAsServed, type PreparedRun } from '../../plugins/training/lib/pipeline.ts';
import type { DataSnapshot, LabelledItem } from '../../plugins/training/lib/data.ts';
import { parseHead, predictHead } from '../../plugins/vision/lib/head.ts';
import { handHead } from './hand-heads.ts';

// A hand-built hype head on 3-d embeddings: dimension 0 votes hyped (+) or not_hyped (−).
function hypeHead(tta?: 'mirror'): Uint8Array {
  const head = handHead({ id: 'hand-built', task: 'hype', labels: ['hyped', 'not_hyped'], kernel: [1, -1, 0, 0, 0, 0], ood: { centroids: [[1, 0, 0]], threshold: 2 }, ...(tta ? { tta } : {}) });
  return Buffer.from(JSON.stringify(head));
}

// Eight hyped photos. Their photos lean slightly the wrong way in the first four, their mirrors clearly the right
// way: the photo alone gets 4 of 8 right, photo + mirror all 8.
const item = (i: number): LabelledItem => ({ sha: `s${i}`, name: `shoe ${i}`, label: 'hyped', origin: 'import', group: 'test' });
const items = Array.from({ length: 8 }, (_, i) => item(i));
const photos = items.map((_, i) => Float32Array.from([i < 4 ? -0.2 : 1, 0, 0]));
const mirrors = items.map(() => Float32Array.from([2, 0, 0]));
const split = { x: photos, y: items.map(() => 0), items };
const run = (withMirror: boolean): PreparedRun => ({
  classes: ['hyped', 'not_hyped'],
  features: { backbone: 'synthetic', prepVersion: 'test' },
  snapshot: {} as DataSnapshot,
  train: { x: [], y: [], items: [] },
  validation: withMirror ? { ...split, mirror: mirrors } : split,
  test: withMirror ? { ...split, mirror: mirrors } : split,
  views: ['mirror'],
});

describe('scoring a head as it is served (test-time views)', () => {
  it('GIVEN a tta:mirror head THEN the split is scored from photo + mirror; a plain head from the photo alone', () => {
    expect(evaluateArtifact(hypeHead(), run(true))!.accuracy).toBe(0.5);
    expect(evaluateArtifact(hypeHead('mirror'), run(true))!.accuracy).toBe(1);
    expect(evaluateArtifact(hypeHead('mirror'), run(true), 'validation')!.accuracy).toBe(1);
    // The auto choice compares both ways on the same weights.
    expect(evaluateArtifact(hypeHead('mirror'), run(true), 'validation', 'none')!.accuracy).toBe(0.5);
    expect(evaluateArtifact(hypeHead(), run(true), 'validation', 'mirror')!.accuracy).toBe(1);
  });

  it('GIVEN a tuning trial THEN its objective is the validation score with the view train would choose for it', async () => {
    // A worker without an embedder: the mirrors a run already holds are used, none can be made.
    const ctx = { services: { store: {} }, engine: { service: () => undefined }, logger: { warn: () => undefined } } as unknown as JobContext;
    const head = Buffer.from(hypeHead());
    const photo = evaluateArtifact(head, run(true), 'validation', 'none')!.macroF1;
    const mirror = evaluateArtifact(head, run(true), 'validation', 'mirror')!.macroF1;
    expect(mirror).toBeGreaterThan(photo);
    expect(await validationAsServed(head, run(true), 'mirror', ctx)).toEqual({ macroF1: mirror, tta: { mode: 'mirror', used: 'mirror' } });
    expect(await validationAsServed(head, run(true), 'none', ctx)).toEqual({ macroF1: photo, tta: { mode: 'none', used: 'none' } });
    expect(await validationAsServed(head, run(true), 'auto', ctx)).toEqual({ macroF1: mirror, tta: { mode: 'auto', used: 'mirror', validation: { photo, mirror } } });
    // Mirrors asked for but not makeable here: scored from the photo alone, and the choice says why.
    expect(await validationAsServed(head, run(false), 'mirror', ctx)).toEqual({
      macroF1: photo,
      tta: { mode: 'mirror', used: 'none', note: 'this worker could not make mirror views of the validation and test photos' },
    });
  });

  it('GIVEN a tta:mirror head and a split without mirror embeddings THEN it is not comparable (never scored photo-only)', () => {
    expect(evaluateArtifact(hypeHead('mirror'), run(false))).toBeUndefined();
    expect(evaluateArtifact(hypeHead(), run(false))!.accuracy).toBe(0.5);
  });

  it('GIVEN an open-set brand head with a mirror view THEN the gate\'s loadHead predicts exactly what serving answers', () => {
    // Labels without `other`: the open-set share is the only `other` (as in brand heads trained on the manifest alone).
    const brand = handHead({
      id: 'open-set',
      task: 'brand',
      labels: ['jordan', 'nike', 'adidas'],
      features: { trim: false, flipAverage: false, l2: true },
      kernel: [3, 0, 0, 0, 3, 0, 0, 0, 3],
      openSet: { centroids: [[1, 0, 0], [0, 1, 0], [0, 0, 1]], radius: [0.1, 0.1, 0.1], spread: [0.05, 0.05, 0.05] },
      ood: { centroids: [[1, 0, 0], [0, 1, 0], [0, 0, 1]], threshold: 0.5 },
      tta: 'mirror',
    });
    const gate = loadHead(brand as never);
    expect(gate.classes).toEqual(['jordan', 'nike', 'adidas', 'other']);
    expect(gate.tta).toBe('mirror');
    const served = parseHead(brand, 'test');
    for (const [photo, mirror] of [
      [[1, 0.05, 0], [0.9, 0.1, 0.1]],
      [[0.6, 0.6, 0.2], [0.2, 1, 0]],
      [[0.3, 0.3, 0.9], [0.4, 0.4, 0.8]],
    ] as const) {
      const p = Float32Array.from(photo);
      const m = Float32Array.from(mirror);
      const answer = predictHead(served, p, [m]).probabilities;
      expect(gate.predict(p, [m])).toEqual(gate.classes.map((c) => answer[c]));
      // The open-set share is real here (the second photo lies beyond every radius).
      expect(gate.predict(p, [m])[3]).toBe(answer.other);
    }
    expect(gate.predict(Float32Array.from([0.6, 0.6, 0.2]))[3]).toBeGreaterThan(0.5);
  });
});
