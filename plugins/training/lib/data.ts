/**
 * Training data = images of the imported datasets + images the community labelled with the bot's vote
 * buttons, each labelled by a configurable rule when labels conflict. Generated images (dream, style
 * transfer, GAN samples) are never training data for a classifier, whatever their labels say.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { EngineError, type ImageRow, type Store } from '../../../engine/index.ts';

/** Labels of each classifier task, in model output order. */
export const TASK_CLASSES = {
  brand: ['jordan', 'nike', 'adidas', 'other'],
  hype: ['hyped', 'not_hyped'],
} as const satisfies Record<string, readonly string[]>;

/** A classifier task. */
export type ClassifierTask = keyof typeof TASK_CLASSES;

/**
 * How conflicting labels of one image become one label:
 * - `import-wins`: an imported (curated) label beats votes; votes decide by majority otherwise (the store's rule);
 * - `majority`: every label counts once; ties drop the image;
 * - `latest`: the newest label wins;
 * - `unanimous`: any disagreement drops the image.
 */
export const conflictRuleSchema = z.enum(['import-wins', 'majority', 'latest', 'unanimous']);
/** A conflict rule. */
export type ConflictRule = z.infer<typeof conflictRuleSchema>;

/** One labelled training item. */
export interface LabelledItem {
  readonly sha: string;
  readonly name: string | undefined;
  readonly label: string;
  readonly origin: 'import' | 'vote' | 'mixed';
  /** Where the picture came from ({@link sourceGroup}); the trainer's source-nuisance projection groups by it. */
  readonly group: string;
}

/** What a run was trained on (stored with the model version). */
export interface DataSnapshot {
  readonly task: string;
  readonly datasets: readonly string[];
  readonly conflictRule: ConflictRule;
  readonly minVotes: number;
  readonly n: number;
  readonly counts: Readonly<Record<string, number>>;
  readonly fromImports: number;
  readonly fromVotes: number;
  readonly droppedConflicts: number;
  readonly excludedGenerated: number;
  /** Distinct community labellers whose votes were used. */
  readonly labellers: number;
  /** SHA-256 over the sorted `sha:label` pairs: two runs on the same data have the same digest. */
  readonly digest: string;
}

interface LabelRecord {
  sha: string;
  value: string;
  by: string;
  origin: string;
  at: number;
  id: number;
}

/** Apply a conflict rule to the labels of one image. Undefined = drop the image. */
export function resolveLabel(labels: readonly LabelRecord[], rule: ConflictRule, minVotes: number): { value: string; origin: LabelledItem['origin'] } | undefined {
  if (labels.length === 0) return undefined;
  const newestFirst = [...labels].sort((a, b) => b.at - a.at || b.id - a.id);
  const imports = newestFirst.filter((l) => l.origin === 'import');
  const votes = newestFirst.filter((l) => l.origin !== 'import');
  const distinct = new Set(labels.map((l) => l.value));
  const originOf = (value: string): LabelledItem['origin'] => {
    const o = new Set(labels.filter((l) => l.value === value).map((l) => (l.origin === 'import' ? 'import' : 'vote')));
    return o.size > 1 ? 'mixed' : o.has('import') ? 'import' : 'vote';
  };
  if (rule === 'latest') {
    const v = newestFirst[0]!.value;
    return { value: v, origin: originOf(v) };
  }
  if (rule === 'unanimous') {
    if (distinct.size !== 1) return undefined;
    if (imports.length === 0 && votes.length < minVotes) return undefined;
    const v = labels[0]!.value;
    return { value: v, origin: originOf(v) };
  }
  if (rule === 'import-wins' && imports.length > 0) return { value: imports[0]!.value, origin: 'import' };
  const pool = rule === 'import-wins' ? votes : labels;
  if (imports.length === 0 && votes.length < minVotes) return undefined;
  const tally = new Map<string, number>();
  for (const l of pool) tally.set(l.value, (tally.get(l.value) ?? 0) + 1);
  const ranked = [...tally.entries()].sort((a, b) => b[1] - a[1]);
  if (ranked.length === 0) return undefined;
  if (ranked.length > 1 && ranked[0]![1] === ranked[1]![1]) return undefined;
  return { value: ranked[0]![0], origin: originOf(ranked[0]![0]) };
}

/**
 * The source an image belongs to, for the source-nuisance projection: the manifest's `source_repo` an import
 * recorded (`meta.origin`), else the dataset it was imported into, else how it arrived (`discord`, `upload`,
 * `monitor`…) and from which server. Photos of one source share a style (camera, backdrop, framing).
 */
export function sourceGroup(img: Pick<ImageRow, 'source' | 'meta' | 'guildId'>): string {
  const meta = img.meta ?? {};
  if (typeof meta.origin === 'string' && meta.origin) return meta.origin;
  if (img.source === 'import' && typeof meta.dataset === 'string' && meta.dataset) return `dataset:${meta.dataset}`;
  return img.guildId ? `${img.source}:${img.guildId}` : img.source;
}

/** Options of {@link collectTrainingData}. */
export interface CollectOptions {
  readonly task: ClassifierTask;
  /** Dataset names (default: every dataset). */
  readonly datasets?: readonly string[];
  readonly conflictRule: ConflictRule;
  /** Votes an image needs when it has no imported label (default 1). */
  readonly minVotes?: number;
  /** Only votes from this guild (default: all guilds). */
  readonly guildId?: string;
}

/** Collect the labelled items of a task, with the snapshot that describes them. */
export async function collectTrainingData(store: Store, options: CollectOptions): Promise<{ items: LabelledItem[]; snapshot: DataSnapshot }> {
  const { task } = options;
  const minVotes = Math.max(1, options.minVotes ?? 1);
  const allDatasets = (await store.datasets.list()).map((d) => d.name);
  const datasets = options.datasets && options.datasets.length > 0 ? [...options.datasets] : allDatasets;
  for (const d of datasets) {
    if (!allDatasets.includes(d)) throw new EngineError('NOT_FOUND', `There is no dataset "${d}". Known: ${allDatasets.join(', ') || 'none (import one with `dataset import`)'}.`);
  }
  const candidates = new Map<string, { name: string | undefined; generated: boolean; group: string }>();
  if (datasets.length > 0) {
    for await (const img of store.images.iterate({ dataset: datasets })) candidates.set(img.sha256, { name: img.name ?? undefined, generated: img.generated, group: sourceGroup(img) });
  }
  // Every label of the task, in one query (dialect-neutral Kysely), grouped per image.
  const q = store.db.selectFrom('labels').select(['id', 'image_sha', 'value', 'by', 'origin', 'created_at', 'guild_id']).where('task', '=', task);
  const rows = (await q.execute()) as unknown as { id: number; image_sha: string; value: string; by: string; origin: string; created_at: string | Date; guild_id: string | null }[];
  const byImage = new Map<string, LabelRecord[]>();
  const voted = new Set<string>();
  for (const r of rows) {
    if (r.origin !== 'import' && options.guildId && r.guild_id !== options.guildId) continue;
    const rec: LabelRecord = { sha: r.image_sha, value: r.value, by: r.by, origin: r.origin, at: new Date(r.created_at).getTime(), id: Number(r.id) };
    byImage.set(r.image_sha, [...(byImage.get(r.image_sha) ?? []), rec]);
    if (r.origin !== 'import') voted.add(r.image_sha);
  }
  // Community-labelled images join even when they are in no dataset (uploads from Discord).
  const missing = [...voted].filter((sha) => !candidates.has(sha));
  for (let i = 0; i < missing.length; i += 500) {
    for (const img of await store.images.getMany(missing.slice(i, i + 500))) candidates.set(img.sha256, { name: img.name ?? undefined, generated: img.generated, group: sourceGroup(img) });
  }
  const classes: readonly string[] = TASK_CLASSES[task];
  const items: LabelledItem[] = [];
  const labellers = new Set<string>();
  let dropped = 0;
  let generated = 0;
  for (const [sha, info] of candidates) {
    if (info.generated) {
      generated++;
      continue;
    }
    const labels = (byImage.get(sha) ?? []).filter((l) => classes.includes(l.value));
    if (labels.length === 0) continue;
    const resolved = resolveLabel(labels, options.conflictRule, minVotes);
    if (!resolved) {
      dropped++;
      continue;
    }
    for (const l of labels) if (l.origin !== 'import' && l.value === resolved.value) labellers.add(l.by);
    items.push({ sha, name: info.name, label: resolved.value, origin: resolved.origin, group: info.group });
  }
  items.sort((a, b) => (a.sha < b.sha ? -1 : 1));
  const counts: Record<string, number> = Object.fromEntries(classes.map((c) => [c, 0]));
  for (const it of items) counts[it.label] = (counts[it.label] ?? 0) + 1;
  const digest = createHash('sha256')
    .update(items.map((i) => `${i.sha}:${i.label}`).join('\n'))
    .digest('hex');
  return {
    items,
    snapshot: {
      task,
      datasets,
      conflictRule: options.conflictRule,
      minVotes,
      n: items.length,
      counts,
      fromImports: items.filter((i) => i.origin !== 'vote').length,
      fromVotes: items.filter((i) => i.origin !== 'import').length,
      droppedConflicts: dropped,
      excludedGenerated: generated,
      labellers: labellers.size,
      digest,
    },
  };
}
