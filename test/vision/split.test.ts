import { describe, it, expect } from 'vitest';
import { fuzzyGroups, groupSplit, leaveOneSourceOut, nameSimilarity, nameTokens } from '../../plugins/vision/lib/split.ts';

const names = [
  'Air Jordan 1 Retro High OG "Chicago"',
  'air-jordan-1-retro-high-og-chicago-555088-101',
  'Jordan 1 Retro High Chicago',
  'Nike Dunk Low Retro White Black Panda',
  'nike dunk low white black panda dd1391-100',
  'adidas Yeezy Boost 350 V2 Zebra',
  'Yeezy Boost 350 V2 "Zebra" CP9654',
  'Air Jordan 4 Retro Bred',
  'Nike Air Max 90 Infrared',
  'New Balance 550 White Green',
  'Air Jordan 1 Low Travis Scott Mocha',
  'Air Jordan 1 High Travis Scott Mocha',
];

describe('fuzzy shoe-name groups', () => {
  it('GIVEN listings of the same model under different spellings THEN they share a group', () => {
    const g = fuzzyGroups(names.map((name, i) => ({ name, fallbackKey: `f${i}` })));
    expect(g[0]).toBe(g[1]);
    expect(g[1]).toBe(g[2]);
    expect(g[3]).toBe(g[4]);
    expect(g[5]).toBe(g[6]);
    expect(g[10]).toBe(g[11]);
    // Different models stay apart.
    expect(new Set([g[0], g[3], g[5], g[7], g[8], g[9], g[10]]).size).toBe(7);
  });

  it('GIVEN unnamed items THEN each is its own group unless the content hash repeats', () => {
    const g = fuzzyGroups([{ fallbackKey: 'a' }, { fallbackKey: 'b' }, { fallbackKey: 'a' }]);
    expect(g[0]).toBe(g[2]);
    expect(g[0]).not.toBe(g[1]);
  });

  it('drops style codes and keeps model numbers when tokenising', () => {
    expect(nameTokens('Air Jordan 1 Retro High OG 555088-101 bv1803')).toEqual(['air', 'jordan', '1', 'retro', 'high', 'og']);
    expect(nameSimilarity(['a', 'b'], ['a', 'b'])).toBe(1);
    expect(nameSimilarity([], ['a'])).toBe(0);
  });
});

describe('group-aware split', () => {
  // 60 synthetic models × 1–4 listings each, two classes.
  const items: { name: string; label: string }[] = [];
  const colours = ['crimson', 'volt', 'panda', 'bred', 'chicago', 'mocha', 'zebra', 'infrared', 'royal', 'shadow'];
  const lines = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot'];
  for (let m = 0; m < 60; m++) {
    const base = `${lines[m % 6]} runner ${colours[Math.floor(m / 6)]}`;
    for (let k = 0; k < 1 + (m % 4); k++) items.push({ name: k % 2 ? base.toUpperCase() : `${base} ${100 + k}`, label: m % 3 === 0 ? 'not_hyped' : 'hyped' });
  }
  const groups = fuzzyGroups(items.map((it, i) => ({ name: it.name, fallbackKey: String(i) })));

  it('GIVEN a seed THEN no fuzzy-name group sits on both sides and the split is deterministic', () => {
    const a = groupSplit(groups, items.map((i) => i.label), { seed: 7, testSize: 0.2 });
    const b = groupSplit(groups, items.map((i) => i.label), { seed: 7, testSize: 0.2 });
    expect(a).toEqual(b);
    const trainGroups = new Set(a.train.map((i) => groups[i]));
    for (const i of a.test) expect(trainGroups.has(groups[i])).toBe(false);
    expect(a.train.length + a.test.length).toBe(items.length);
    // Roughly the asked share, with both classes represented on the test side.
    expect(a.test.length / items.length).toBeGreaterThan(0.1);
    expect(a.test.length / items.length).toBeLessThan(0.3);
    expect(new Set(a.test.map((i) => items[i]!.label)).size).toBe(2);
    const c = groupSplit(groups, items.map((i) => i.label), { seed: 8, testSize: 0.2 });
    expect(c.test).not.toEqual(a.test);
  });

  it('defaults to a 10 % test side', () => {
    const s = groupSplit(groups, items.map((i) => i.label));
    expect(s.test.length / items.length).toBeGreaterThan(0.04);
    expect(s.test.length / items.length).toBeLessThan(0.16);
  });

  it('GIVEN sources THEN leave-one-source-out tests each source on a model that never saw it', () => {
    const folds = leaveOneSourceOut(['a', 'b', 'a', undefined, 'b']);
    expect(folds.map((f) => f.source)).toEqual(['a', 'b', 'unknown']);
    expect(folds[0]).toEqual({ source: 'a', train: [1, 3, 4], test: [0, 2] });
  });
});
