/**
 * Group-aware train/test splits, as the study did: shoe names are fuzzy-matched into groups (the same model
 * listed twice, `Air Jordan 1 High OG "Chicago"` vs `air-jordan-1-retro-high-og-chicago-555088-101`) and a
 * group never straddles train and test, so a test score is not inflated by near-copies of training images.
 * Also leave-one-source-out folds: the way users meet the model is photos from places it never saw.
 */
import { distance } from 'fastest-levenshtein';
import { seededRandom } from '../../../engine/random.ts';

/** A seeded PRNG (mulberry32, engine/random.ts): deterministic splits and training for a given seed. */
export { seededRandom };

/** Fisher–Yates shuffle with a seeded PRNG (returns a new array). */
export function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

// Words that name a brand line or a listing habit, not a model: they make unrelated shoes look alike.
const STOP = new Set(['the', 'and', 'for', 'mens', 'men', 'womens', 'women', 'wmns', 'gs', 'ps', 'td', 'bg', 'shoe', 'shoes', 'sneaker', 'sneakers']);

/**
 * Normalise a shoe name into comparable tokens: lowercase, punctuation to spaces, style codes
 * (`555088-101`, `bv1803`) and pure numbers longer than 2 digits dropped (model numbers such as `1`, `11`
 * stay), stop words dropped.
 */
export function nameTokens(name: string): string[] {
  return name
    .toLowerCase()
    .replace(/['’"]/g, '')
    .replace(/[^a-z0-9]+/g, ' ')
    .split(' ')
    .filter((t) => t !== '' && !STOP.has(t))
    .filter((t) => !(/\d/.test(t) && /[a-z]/.test(t) && t.length >= 5)) // style codes like bv1803, dd1391
    .filter((t) => !/^\d{3,}$/.test(t));
}

/** Similarity in [0,1] of two token lists: the larger of token-set Jaccard and Levenshtein ratio of the sorted sets. */
export function nameSimilarity(a: readonly string[], b: readonly string[]): number {
  if (a.length === 0 || b.length === 0) return 0;
  const sa = new Set(a);
  const sb = new Set(b);
  let inter = 0;
  for (const t of sa) if (sb.has(t)) inter++;
  const jaccard = inter / (sa.size + sb.size - inter);
  const sA = [...sa].sort().join(' ');
  const sB = [...sb].sort().join(' ');
  const lev = 1 - distance(sA, sB) / Math.max(sA.length, sB.length);
  return Math.max(lev, jaccard);
}

/** Options of {@link fuzzyGroups}. */
export interface FuzzyGroupOptions {
  /** Names at least this similar (on distinctive tokens) fall into one group (default 0.75). */
  readonly threshold?: number;
}

/**
 * Group items by fuzzy name: union–find over pairs whose {@link nameSimilarity} reaches the threshold.
 * Items without a name each get their own group (keyed by `fallbackKey`, e.g. the content hash, so
 * byte-identical copies still group together). Returns one group id per item (ids are small integers,
 * stable for the same input).
 */
export function fuzzyGroups(
  items: readonly { readonly name?: string | undefined; readonly fallbackKey: string }[],
  opts: FuzzyGroupOptions = {},
): number[] {
  const threshold = opts.threshold ?? 0.75;
  const n = items.length;
  const parent = Array.from({ length: n }, (_, i) => i);
  const find = (i: number): number => {
    while (parent[i] !== i) {
      parent[i] = parent[parent[i] as number] as number;
      i = parent[i] as number;
    }
    return i;
  };
  const union = (a: number, b: number): void => {
    const ra = find(a);
    const rb = find(b);
    if (ra !== rb) parent[Math.max(ra, rb)] = Math.min(ra, rb);
  };
  // Same fallback key (content hash) or same normalised name → same group, whatever the threshold.
  const byKey = new Map<string, number>();
  const tokens = items.map((it) => (it.name ? nameTokens(it.name) : []));
  items.forEach((it, i) => {
    const keys = [`k:${it.fallbackKey}`, ...(tokens[i]!.length > 0 ? [`n:${tokens[i]!.join(' ')}`] : [])];
    for (const key of keys) {
      const j = byKey.get(key);
      if (j === undefined) byKey.set(key, i);
      else union(i, j);
    }
  });
  // Tokens most names share ("air", "jordan", "1", "dunk", "low") say little about which model a shoe is and
  // chain unrelated shoes into one giant group; compare names on their distinctive tokens (colourway,
  // collaboration, edition). A name made only of common tokens keeps them all.
  const named = tokens.map((t, i) => ({ t, i })).filter((x) => x.t.length > 0);
  const df = new Map<string, number[]>();
  for (const { t, i } of named) for (const tok of new Set(t)) df.set(tok, [...(df.get(tok) ?? []), i]);
  const common = Math.max(5, Math.floor(named.length * 0.1));
  const distinctive = tokens.map((t) => {
    const rare = t.filter((tok) => (df.get(tok)?.length ?? 0) <= common);
    return rare.length > 0 ? rare : t;
  });
  const checked = new Set<number>();
  for (const { i } of named) {
    checked.clear();
    const mine = distinctive[i]!;
    const candidates = mine.flatMap((tok) => df.get(tok) ?? []);
    for (const j of candidates) {
      if (j <= i || checked.has(j)) continue;
      checked.add(j);
      if (nameSimilarity(mine, distinctive[j]!) >= threshold) union(i, j);
    }
  }
  const ids = new Map<number, number>();
  return items.map((_, i) => {
    const root = find(i);
    let id = ids.get(root);
    if (id === undefined) {
      id = ids.size;
      ids.set(root, id);
    }
    return id;
  });
}

/** Options of {@link groupSplit}. */
export interface GroupSplitOptions {
  /** Fraction of items for the test side (default 0.1). */
  readonly testSize?: number;
  /** Seed (default 42). */
  readonly seed?: number;
}

/**
 * Split items into train and test indices so that no group is on both sides. Groups are visited in a
 * seeded random order and go to test while the test side of their (majority) label is below its share,
 * which keeps class proportions close to the whole (stratified) without breaking a group.
 */
export function groupSplit(
  groups: readonly number[],
  labels: readonly (string | undefined)[],
  opts: GroupSplitOptions = {},
): { train: number[]; test: number[] } {
  const testSize = opts.testSize ?? 0.1;
  const random = seededRandom(opts.seed ?? 42);
  const members = new Map<number, number[]>();
  groups.forEach((g, i) => members.set(g, [...(members.get(g) ?? []), i]));
  const labelOf = (idx: number[]): string => {
    const counts = new Map<string, number>();
    for (const i of idx) counts.set(labels[i] ?? '', (counts.get(labels[i] ?? '') ?? 0) + 1);
    return [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))[0]?.[0] ?? '';
  };
  const totals = new Map<string, number>();
  for (const l of labels) totals.set(l ?? '', (totals.get(l ?? '') ?? 0) + 1);
  const taken = new Map<string, number>();
  const test: number[] = [];
  const train: number[] = [];
  const order = shuffled([...members.keys()].sort((a, b) => a - b), random);
  for (const g of order) {
    const idx = members.get(g)!;
    const label = labelOf(idx);
    const target = Math.round((totals.get(label) ?? 0) * testSize);
    const have = taken.get(label) ?? 0;
    // Take the group if it brings this label closer to its target than leaving it out would.
    if (have < target && Math.abs(target - (have + idx.length)) <= Math.abs(target - have)) {
      test.push(...idx);
      taken.set(label, have + idx.length);
    } else train.push(...idx);
  }
  return { train: train.sort((a, b) => a - b), test: test.sort((a, b) => a - b) };
}

/** Leave-one-source-out folds: for each source, train on every other source and test on it. */
export function leaveOneSourceOut(sources: readonly (string | undefined)[]): { source: string; train: number[]; test: number[] }[] {
  const names = [...new Set(sources.map((s) => s ?? 'unknown'))].sort();
  return names.map((source) => ({
    source,
    train: sources.flatMap((s, i) => ((s ?? 'unknown') !== source ? [i] : [])),
    test: sources.flatMap((s, i) => ((s ?? 'unknown') === source ? [i] : [])),
  }));
}
