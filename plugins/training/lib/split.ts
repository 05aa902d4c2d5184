/**
 * Group-aware, stable train/test split. Shoe names are fuzzy-grouped (token overlap or small edit
 * distance, as the study did) so one model never sits on both sides; each group goes to the test side by
 * a hash of (seed, group key), not by a shuffle — so a group keeps its side as data grows, and a new
 * candidate is evaluated on the same test images as the champion was.
 */
import { createHash } from 'node:crypto';
import { distance } from 'fastest-levenshtein';

/** An item to split: an id and the shoe name (empty names group by id). */
export interface SplitItem {
  readonly id: string;
  readonly name?: string | undefined;
}

const STOP = new Set(['the', 'and', 'x', 'sneaker', 'sneakers', 'shoe', 'shoes', 'mens', 'womens', 'gs', 'ps', 'td', 'og', 'retro', 'low', 'high', 'mid']);

/** Normalised name tokens (lowercase words, no sizes or stop words). */
export function tokens(name: string): string[] {
  return name
    .toLowerCase()
    .replace(/\.[a-z0-9]{2,4}$/, '')
    .split(/[^a-z0-9]+/)
    .filter((t) => t.length > 1 && !STOP.has(t) && !/^\d{1,2}(\.\d)?$/.test(t));
}

function similar(a: string[], b: string[]): boolean {
  if (a.length === 0 || b.length === 0) return false;
  const sa = new Set(a);
  const inter = b.filter((t) => sa.has(t)).length;
  const union = new Set([...a, ...b]).size;
  if (inter / union >= 0.6) return true;
  const ja = a.join(' ');
  const jb = b.join(' ');
  return distance(ja, jb) <= Math.max(1, Math.floor(Math.min(ja.length, jb.length) * 0.15));
}

/** Fuzzy groups: returns a group key per item (the smallest token string of its group). */
export function fuzzyGroups(items: readonly SplitItem[]): string[] {
  const toks = items.map((it) => tokens(it.name ?? ''));
  const parent = items.map((_, i) => i);
  const find = (i: number): number => {
    while (parent[i] !== i) {
      parent[i] = parent[parent[i]!]!;
      i = parent[i]!;
    }
    return i;
  };
  // Exact token strings first (cheap), then fuzzy pairs among the distinct strings.
  const byKey = new Map<string, number>();
  toks.forEach((t, i) => {
    if (t.length === 0) return;
    const key = t.join(' ');
    const first = byKey.get(key);
    if (first === undefined) byKey.set(key, i);
    else parent[find(i)] = find(first);
  });
  const reps = [...byKey.values()];
  for (let a = 0; a < reps.length; a++) {
    for (let b = a + 1; b < reps.length; b++) {
      const ia = reps[a]!;
      const ib = reps[b]!;
      if (similar(toks[ia]!, toks[ib]!)) parent[find(ia)] = find(ib);
    }
  }
  const keyOf = new Map<number, string>();
  items.forEach((it, i) => {
    const root = find(i);
    const key = toks[i]!.length > 0 ? toks[i]!.join(' ') : `#${it.id}`;
    const cur = keyOf.get(root);
    if (cur === undefined || key < cur) keyOf.set(root, key);
  });
  return items.map((_, i) => keyOf.get(find(i))!);
}

/** Deterministic [0, 1) from a string. */
function unit(text: string): number {
  return createHash('sha256').update(text).digest().readUInt32BE(0) / 2 ** 32;
}

/** Split ids into train and test by group, with about `testSize` of the groups on the test side. */
export function groupSplit(items: readonly SplitItem[], options: { testSize: number; seed: number }): { train: string[]; test: string[]; groups: Map<string, string> } {
  const keys = fuzzyGroups(items);
  const train: string[] = [];
  const test: string[] = [];
  const groups = new Map<string, string>();
  const score = new Map<string, number>();
  for (const key of keys) if (!score.has(key)) score.set(key, unit(`${options.seed}:${key}`));
  let testKeys = new Set([...score].filter(([, u]) => u < options.testSize).map(([k]) => k));
  // Few groups can leave one side empty by chance: then the lowest-scored group(s) go to test (and the
  // highest stays in train), still a pure function of (seed, group keys).
  const ranked = [...score].sort((a, b) => a[1] - b[1]).map(([k]) => k);
  if (testKeys.size === 0 && ranked.length >= 2) testKeys = new Set([ranked[0]!]);
  if (testKeys.size === ranked.length && ranked.length >= 2) testKeys.delete(ranked[ranked.length - 1]!);
  items.forEach((it, i) => {
    const key = keys[i]!;
    groups.set(it.id, key);
    (testKeys.has(key) ? test : train).push(it.id);
  });
  return { train, test, groups };
}
