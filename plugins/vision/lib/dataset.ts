/**
 * Labelled data on disk, in the two shapes of the shared contract:
 * - a `manifest.csv` with `file,brand,hype,name` (more columns kept as `extra`; `file` relative to the CSV);
 * - an ImageFolder: class subfolders. Every folder name on the way from the root to a file that is a brand
 *   (`jordan/…`) or a hype label (`hyped/…`) labels it, so `hyped/jordan/x.jpg` carries both.
 * Empty or unknown labels mean "unlabelled for that task" (the dev data's `brand = unknown`).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { EngineError } from '../../../engine/errors.ts';
import type { EmbedItem } from './features.ts';
import { decodePixels } from './input.ts';
import { parseLabel } from './labels.ts';
import { fuzzyGroups, groupSplit } from './split.ts';

/** One labelled image reference read from a manifest or an ImageFolder. */
export interface DatasetRow {
  /** Absolute path of the image file. */
  readonly file: string;
  readonly brand?: string;
  readonly hype?: string;
  /** Shoe name when known (used by the fuzzy-name group split). */
  readonly name?: string;
  /** Where the image came from (manifest `source_repo`, or the folder). Used for leave-one-source-out. */
  readonly source?: string;
  /** Other manifest columns, verbatim. */
  readonly extra?: Readonly<Record<string, string>>;
}

/** A parsed labelled source. */
export interface LabelledSource {
  readonly kind: 'manifest' | 'folder';
  /** The manifest file or the folder. */
  readonly location: string;
  readonly rows: readonly DatasetRow[];
  /** Lines or files skipped, with why (missing file, unsafe path, not an image extension). */
  readonly skipped: readonly { readonly item: string; readonly reason: string }[];
}

// HEIC/HEIF and BMP are listed although sharp's prebuilt decoder reads neither: such files are tried and reported
// with the loader's message (how to send a JPEG), not dropped as "not an image file name".
const IMAGE_EXT = /\.(jpe?g|png|webp|gif|avif|heic|heif|tiff?|bmp)$/i;

/**
 * Parse RFC 4180 CSV (quoted fields, doubled quotes, CRLF). Returns rows of cells; a trailing newline
 * does not produce an empty row.
 */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  const src = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text; // BOM from spreadsheet exports
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    if (quoted) {
      if (c === '"') {
        if (src[i + 1] === '"') {
          cell += '"';
          i++;
        } else quoted = false;
      } else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(cell);
      cell = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && src[i + 1] === '\n') i++;
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
    } else cell += c;
  }
  if (cell !== '' || row.length > 0) {
    row.push(cell);
    rows.push(row);
  }
  return rows.filter((r) => !(r.length === 1 && r[0] === ''));
}

/** Read a `manifest.csv`. Needs a `file` column; `brand`, `hype`, `name`, `source_repo`/`source` are optional. */
export function readManifest(csvPath: string): LabelledSource {
  const location = path.resolve(csvPath);
  let text: string;
  try {
    text = readFileSync(location, 'utf8');
  } catch {
    throw new EngineError('NOT_FOUND', `Cannot read the manifest ${csvPath}.`);
  }
  const [header, ...body] = parseCsv(text);
  const cols = (header ?? []).map((h) => h.trim().toLowerCase());
  const fileIdx = cols.indexOf('file');
  if (fileIdx < 0) {
    throw new EngineError('BAD_INPUT', `${path.basename(csvPath)} has no "file" column (expected file,brand,hype,name).`);
  }
  const root = path.dirname(location);
  const rows: DatasetRow[] = [];
  const skipped: { item: string; reason: string }[] = [];
  const at = (cells: string[], name: string): string | undefined => {
    const i = cols.indexOf(name);
    const v = i >= 0 ? cells[i]?.trim() : undefined;
    return v === '' ? undefined : v;
  };
  for (const cells of body) {
    const rel = cells[fileIdx]?.trim() ?? '';
    if (rel === '') continue;
    const file = path.resolve(root, rel);
    // A manifest may only point inside its own folder: it can come from an untrusted upload.
    if (file !== root && !file.startsWith(root + path.sep)) {
      skipped.push({ item: rel, reason: 'points outside the manifest folder' });
      continue;
    }
    if (!existsSync(file)) {
      skipped.push({ item: rel, reason: 'file not found' });
      continue;
    }
    const extra: Record<string, string> = {};
    cols.forEach((c, i) => {
      if (!['file', 'brand', 'hype', 'name'].includes(c) && cells[i] !== undefined) extra[c] = cells[i] ?? '';
    });
    const brand = parseLabel('brand', at(cells, 'brand'));
    const hype = parseLabel('hype', at(cells, 'hype'));
    const name = at(cells, 'name');
    const sourceRaw = at(cells, 'source_repo') ?? at(cells, 'source');
    // `owner/repo@commit` → `owner/repo`: a source is the place, not the version.
    const source = sourceRaw?.split('@')[0];
    rows.push({
      file,
      ...(brand !== undefined ? { brand } : {}),
      ...(hype !== undefined ? { hype } : {}),
      ...(name !== undefined ? { name } : {}),
      ...(source !== undefined ? { source } : {}),
      extra,
    });
  }
  return { kind: 'manifest', location, rows, skipped };
}

/** Read an ImageFolder (class subfolders, any depth). */
export async function readImageFolder(dir: string): Promise<LabelledSource> {
  const location = path.resolve(dir);
  const rows: DatasetRow[] = [];
  const skipped: { item: string; reason: string }[] = [];
  const walk = async (folder: string, labels: { brand?: string; hype?: string }): Promise<void> => {
    const entries = await readdir(folder, { withFileTypes: true });
    entries.sort((a, b) => a.name.localeCompare(b.name));
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue;
      const full = path.join(folder, entry.name);
      if (entry.isDirectory()) {
        const brand = parseLabel('brand', entry.name);
        const hype = parseLabel('hype', entry.name);
        await walk(full, { ...labels, ...(brand ? { brand } : {}), ...(hype ? { hype } : {}) });
      } else if (entry.isFile()) {
        if (!IMAGE_EXT.test(entry.name)) {
          if (!/\.(csv|md|txt|json)$/i.test(entry.name)) skipped.push({ item: path.relative(location, full), reason: 'not an image file name' });
          continue;
        }
        rows.push({ file: full, ...labels, source: `folder:${path.basename(location)}` });
      }
    }
  };
  await walk(location, {});
  return { kind: 'folder', location, rows, skipped };
}

/** Read a manifest (path ending in `.csv`) or an ImageFolder. */
export async function readLabelledSource(pathOrCsv: string): Promise<LabelledSource> {
  let stat;
  try {
    stat = statSync(pathOrCsv);
  } catch {
    throw new EngineError('NOT_FOUND', `No such file or folder: ${pathOrCsv}`);
  }
  if (stat.isDirectory()) {
    const manifest = path.join(pathOrCsv, 'manifest.csv');
    return existsSync(manifest) ? readManifest(manifest) : readImageFolder(pathOrCsv);
  }
  if (/\.csv$/i.test(pathOrCsv)) return readManifest(pathOrCsv);
  throw new EngineError('BAD_INPUT', `${pathOrCsv} is neither a folder nor a manifest .csv file.`);
}

/** What {@link applyLabelOverlay} changed. */
export interface OverlayReport {
  /** Overlay lines whose file is a row of the source. */
  readonly matched: number;
  /** Overlay lines naming a file the source does not have. */
  readonly unmatched: number;
  /** Labels the overlay added, per task (a row the source already labels keeps its own label). */
  readonly added: { readonly brand: number; readonly hype: number };
  /** Labels the overlay disagreed with and left alone, per task. */
  readonly conflicts: { readonly brand: number; readonly hype: number };
}

/**
 * A label overlay: a CSV with a `file` column (relative to the manifest the overlay is applied to, as in that
 * manifest) and `brand` and/or `hype` columns, plus any other columns (kept in the row's `extra`, e.g.
 * `footwear`). It adds labels a manifest lacks without copying or editing the manifest — how the hand labels
 * in assets/labels/ extend the sneakers-dev development set, which has no brand for its zjy-T photos.
 */
export function readLabelOverlay(csvPath: string): Map<string, Record<string, string>> {
  let text: string;
  try {
    text = readFileSync(csvPath, 'utf8');
  } catch {
    throw new EngineError('NOT_FOUND', `Cannot read the label overlay ${csvPath}.`);
  }
  const [header, ...body] = parseCsv(text);
  const cols = (header ?? []).map((h) => h.trim().toLowerCase());
  if (!cols.includes('file') || !(cols.includes('brand') || cols.includes('hype'))) {
    throw new EngineError('BAD_INPUT', `${path.basename(csvPath)} needs a "file" column and a "brand" or "hype" column.`);
  }
  const out = new Map<string, Record<string, string>>();
  for (const cells of body) {
    const rec: Record<string, string> = {};
    cols.forEach((c, i) => {
      const v = cells[i]?.trim();
      if (v) rec[c] = v;
    });
    if (rec.file) out.set(path.posix.normalize(rec.file.replaceAll('\\', '/')), rec);
  }
  return out;
}

/**
 * Apply a label overlay ({@link readLabelOverlay}) to a manifest source. Only missing labels are added: a
 * label the manifest already has wins (the source's own labels are the better-documented ones), and a
 * disagreement is counted, not applied. Overlay columns other than file/brand/hype land in `extra`.
 */
export function applyLabelOverlay(source: LabelledSource, overlay: ReadonlyMap<string, Readonly<Record<string, string>>>): { source: LabelledSource; report: OverlayReport } {
  const root = source.kind === 'manifest' ? path.dirname(source.location) : source.location;
  let matched = 0;
  const added = { brand: 0, hype: 0 };
  const conflicts = { brand: 0, hype: 0 };
  const seen = new Set<string>();
  const rows = source.rows.map((row): DatasetRow => {
    const rel = path.relative(root, row.file).split(path.sep).join('/');
    const rec = overlay.get(rel);
    if (!rec) return row;
    matched++;
    seen.add(rel);
    let next: DatasetRow = row;
    for (const task of ['brand', 'hype'] as const) {
      const label = parseLabel(task, rec[task]);
      if (label === undefined) continue;
      if (row[task] === undefined) {
        next = { ...next, [task]: label };
        added[task]++;
      } else if (row[task] !== label) conflicts[task]++;
    }
    const extra = Object.fromEntries(Object.entries(rec).filter(([k]) => !['file', 'brand', 'hype'].includes(k)));
    return Object.keys(extra).length ? { ...next, extra: { ...row.extra, ...extra } } : next;
  });
  const unmatched = [...overlay.keys()].filter((k) => !seen.has(k)).length;
  return { source: { ...source, rows }, report: { matched, unmatched, added, conflicts } };
}

/** One applied overlay's report, with the file it came from. */
export interface NamedOverlayReport extends OverlayReport {
  readonly overlay: string;
}

/**
 * Apply label overlays in order (`--labels a.csv,b.csv`): each one sees the labels the previous ones added,
 * so the first overlay to label a row wins, after the manifest.
 */
export function applyLabelOverlays(source: LabelledSource, overlayPaths: readonly string[]): { source: LabelledSource; reports: NamedOverlayReport[] } {
  let out = source;
  const reports: NamedOverlayReport[] = [];
  for (const overlayPath of overlayPaths) {
    const applied = applyLabelOverlay(out, readLabelOverlay(overlayPath));
    out = applied.source;
    reports.push({ overlay: overlayPath, ...applied.report });
  }
  return { source: out, reports };
}

/** One line saying what an overlay did (the scripts' log, the commands' reply text). */
export function describeOverlayReport(r: NamedOverlayReport): string {
  return `labels ${r.overlay}: ${r.matched} rows matched (${r.unmatched} unmatched), added ${r.added.brand} brand / ${r.added.hype} hype labels, ${r.conflicts.brand + r.conflicts.hype} conflicts left to the manifest`;
}

/**
 * Apply label overlays in order (the scripts' `--labels a.csv,b.csv`), reporting each through `log`.
 */
export function withLabelOverlays(source: LabelledSource, overlayPaths: readonly string[], log?: (msg: string) => void): LabelledSource {
  const applied = applyLabelOverlays(source, overlayPaths);
  for (const r of applied.reports) log?.(describeOverlayReport(r));
  return applied.source;
}

/** A labelled row with its content id (pixel hash: the embedding cache key). */
export interface LabelledItem {
  readonly row: DatasetRow;
  readonly sha: string;
}

/**
 * The rows of a source that carry a hype or brand label, decoded once for their content ids (the scripts'
 * shared first step). Undecodable files are skipped and reported through `onSkip`.
 */
export async function loadLabelledItems(source: LabelledSource, onSkip?: (file: string, why: string) => void): Promise<LabelledItem[]> {
  const items: LabelledItem[] = [];
  for (const row of source.rows) {
    if (row.brand === undefined && row.hype === undefined) continue;
    try {
      items.push({ row, sha: (await decodePixels(await readFile(row.file), undefined, path.basename(row.file))).sha256 });
    } catch (error) {
      onSkip?.(row.file, (error as Error).message);
    }
  }
  return items;
}

/** Labelled items as embedding inputs (read from disk only when not cached). */
export function asEmbedItems(items: readonly LabelledItem[]): EmbedItem[] {
  return items.map((it) => ({ sha256: it.sha, load: async () => new Uint8Array(await readFile(it.row.file)) }));
}

/**
 * The content ids of every photo on the held-out side of either task's split (train:defaults' fuzzy-name group split
 * for the seed): what models trained beside the heads (the shoe localiser, the learnt turn) must not learn from, so
 * the shift test's composites of those photos stay unseen.
 */
export function heldOutOfEitherTask(items: readonly LabelledItem[], seed: number, testSize = 0.1): Set<string> {
  const heldOut = new Set<string>();
  for (const task of ['hype', 'brand'] as const) {
    const idx = items.map((it, i) => (it.row[task] !== undefined ? i : -1)).filter((i) => i >= 0);
    const groups = fuzzyGroups(idx.map((i) => ({ name: items[i]!.row.name, fallbackKey: items[i]!.sha })));
    const split = groupSplit(groups, idx.map((i) => items[i]!.row[task]), { testSize, seed });
    for (const k of split.test) heldOut.add(items[idx[k]!]!.sha);
  }
  return heldOut;
}
