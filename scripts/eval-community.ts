/**
 * `npx tsx scripts/eval-community.ts --data <manifest.csv> --leave-out <source>`: community training runs (`train`,
 * the moderators' command) compared by their training views, leaving one source of the data out — the README's
 * "Measured leaving one source of the dev set out" protocol, plus shifted copies of the left-out photos.
 *
 * Each source (`source_repo` up to its first `/`) is imported as its own dataset into a store of its own
 * (`--out`/community.db, so a re-run reuses every embedding). Per task, views setting (`--views`, e.g.
 * `mirror,mirror+turned`) and seed, `train --dataset <the other sources> --views … --seed … --wait` trains a
 * version, and `evaluate --model <it>` scores it as served on the left-out source's photos (`clean`) and on each
 * `--kinds` copy of them: the shoe pasted on one of eval-shift's backgrounds (never trained on; `grey`, `floor`,
 * `busy`), `+tilt` laid diagonally 35–90° either way, with eval-shift's draws (seed 42). `--shift-every N` keeps
 * every Nth photo in the shifted copies. Rows go to `--out`/results.jsonl as they come; a markdown table of
 * accuracy and macro-F1, means over seeds, is printed at the end, and one of calibration (ECE / log-loss).
 * `--temperatures auto,1`: the first is `train --temperature`; each further number scores the same version (same
 * weights) answering at that temperature instead, registered as a copy, so a temperature choice is compared on
 * photos from a source the run never saw.
 *
 * The shifted copies are PNGs under `--out` (gitignored data/tmp by default): never commit them, they are made
 * from ../shared photos. Heavy: about 5 minutes per 700 shifted photos on 2 cores for the first version scored
 * (their embeddings are cached for the next), and 0.2 s per training photo for turned views.
 */
import { appendFileSync, existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { createEngine, silentLogger } from '../engine/index.ts';
import { openStore } from '../engine/store/index.ts';
import { seededRandom } from '../engine/random.ts';
import training from '../plugins/training/index.ts';
import { createVisionPlugin } from '../plugins/vision/index.ts';
import { pasteShoe, SHIFT_BACKGROUNDS } from '../plugins/vision/lib/composite.ts';
import { readLabelledSource, withLabelOverlays } from '../plugins/vision/lib/dataset.ts';
import { decodePixels } from '../plugins/vision/lib/input.ts';

const { values: args } = parseArgs({
  options: {
    data: { type: 'string' },
    labels: { type: 'string', default: '' },
    out: { type: 'string', default: 'data/tmp/community' },
    'leave-out': { type: 'string' },
    tasks: { type: 'string', default: 'brand,hype' },
    views: { type: 'string', default: 'mirror,mirror+turned' },
    seeds: { type: 'string', default: '1,2' },
    kinds: { type: 'string', default: 'grey+tilt,busy+tilt,floor' },
    'shift-every': { type: 'string', default: '1' },
    temperatures: { type: 'string', default: 'auto' },
  },
});
if (!args.data || !args['leave-out']) {
  console.error('usage: npx tsx scripts/eval-community.ts --data <manifest.csv> --leave-out <source> [--labels a.csv,b.csv] [--out data/tmp/community] [--tasks brand,hype] [--views mirror,mirror+turned] [--seeds 1,2] [--kinds grey+tilt,busy+tilt,floor] [--shift-every 1] [--temperatures auto,1]');
  process.exit(2);
}
const log = (m: string): void => console.error(`[${new Date().toISOString().slice(11, 19)}] ${m}`);
const out = path.resolve(args.out!);
mkdirSync(out, { recursive: true });

// One manifest per source, its labels merged with the overlays, its files reached through a link to the images.
const source = withLabelOverlays(await readLabelledSource(args.data), args.labels!.split(',').filter(Boolean), log);
const imagesDir = path.dirname(source.rows[0]!.file);
if (!existsSync(path.join(out, 'images'))) symlinkSync(imagesDir, path.join(out, 'images'));
const sourceOf = (s: string | undefined): string => (s ?? 'unknown').split('/')[0]!;
const sources = [...new Set(source.rows.map((r) => sourceOf(r.source)))];
const cell = (v: string | undefined): string => `"${(v ?? '').replaceAll('"', '""')}"`;
for (const s of sources) {
  const rows = source.rows.filter((r) => sourceOf(r.source) === s);
  writeFileSync(path.join(out, `${s}.csv`), ['file,brand,hype,name', ...rows.map((r) => [`images/${path.basename(r.file)}`, r.brand, r.hype, r.name].map(cell).join(','))].join('\n') + '\n');
}
const leftOut = args['leave-out'];
if (!sources.includes(leftOut)) throw new Error(`--leave-out ${leftOut}: the sources are ${sources.join(', ')}`);

const engine = createEngine({ logger: silentLogger(), store: await openStore({ url: `sqlite:${path.join(out, 'community.db')}` }) });
await engine.register(createVisionPlugin());
await engine.register(training);
const cli = { transport: 'cli' as const, allowLocalPaths: true, caller: { id: 'eval-community', isModerator: true } };
for (const s of sources) {
  const r = await engine.invoke('dataset import', { source: path.join(out, `${s}.csv`), name: s }, cli);
  if (!r.ok) throw r.error;
  log(`import ${s}: ${r.reply.text.split('\n')[0]}`);
}

// Shifted copies of the left-out photos, with eval-shift's draws (its seed 42 and per-photo streams).
const rows = source.rows.filter((r) => sourceOf(r.source) === leftOut);
const every = Number(args['shift-every']);
const sets: Record<string, string> = { clean: path.join(out, `${leftOut}.csv`) };
for (const kind of args.kinds!.split(',').filter(Boolean)) {
  const [bg, turn, ...rest] = kind.split('+');
  if (!(bg! in SHIFT_BACKGROUNDS) || (turn !== undefined && turn !== 'tilt') || rest.length > 0) throw new Error(`--kinds ${kind}: one of ${Object.keys(SHIFT_BACKGROUNDS).join(', ')}, optionally +tilt`);
  const dir = path.join(out, `shift-${leftOut}-${kind}${every > 1 ? `-every${every}` : ''}`);
  const csv = path.join(dir, 'manifest.csv');
  sets[kind] = csv;
  if (existsSync(csv)) continue;
  mkdirSync(dir, { recursive: true });
  const lines = ['file,brand,hype,name'];
  for (const [i, r] of rows.entries()) {
    if (i % every !== 0) continue;
    const raw = (await decodePixels(await readFile(r.file))).raw;
    const random = seededRandom(42 * 1000 + i * 7 + bg!.length);
    const background = SHIFT_BACKGROUNDS[bg as keyof typeof SHIFT_BACKGROUNDS];
    let img;
    if (turn === 'tilt') {
      // eval-shift's `tilt`: 35–90° either way, on a square 360 px frame at the untilted kinds' shoe size.
      const t = seededRandom(42 * 1000 + i * 13 + 5);
      const rotate = (t() < 0.5 ? -1 : 1) * (35 + t() * 55);
      img = await pasteShoe(raw, background, random, { rotate, width: 360, height: 360, scale: [0.4, 2 / 3] });
    } else {
      img = await pasteShoe(raw, background, random);
    }
    await sharp(Buffer.from(img.data), { raw: { width: img.width, height: img.height, channels: 3 } }).png().toFile(path.join(dir, `${i}.png`));
    lines.push([`${i}.png`, r.brand, r.hype, r.name].map(cell).join(','));
  }
  writeFileSync(csv, lines.join('\n') + '\n');
  log(`shifted ${kind}: ${lines.length - 1} photos`);
}

interface Row {
  readonly leftOut: string;
  readonly task: string;
  readonly views: string;
  readonly seed: number;
  readonly set: string;
  readonly model: number;
  readonly n: number;
  readonly accuracy: number;
  readonly macroF1: number;
  /** What the version answered at, and how `train` chose it (`auto`, or the number it was given). */
  readonly temperature: number;
  readonly temperatureMode: string;
  readonly ece: number;
  readonly nll: number;
}
const others = sources.filter((s) => s !== leftOut).join(',');
const results = path.join(out, 'results.jsonl');
const done: Row[] = [];
for (const task of args.tasks!.split(',')) {
  for (const views of args.views!.split(',')) {
    for (const seed of args.seeds!.split(',').map(Number)) {
      const started = Date.now();
      const [first, ...alsoAt] = args.temperatures!.split(',');
      const trained = await engine.invoke('train', { task, dataset: others, views, seed, temperature: first, wait: true }, cli);
      if (!trained.ok) throw trained.error;
      const { model, views: used, temperature, metrics } = trained.reply.data as { model: number; views: string[]; temperature: { used: number; validation?: { n: number } }; metrics: { n: number; accuracy: number; macroF1: number } };
      log(`${task} ${views} seed ${seed}: version ${model} in ${((Date.now() - started) / 1000).toFixed(0)} s (views used: ${used.join('+') || 'none'}; temperature ${temperature.used} on ${temperature.validation?.n ?? 0} validation photos; its own test photos: n ${metrics.n}, accuracy ${metrics.accuracy.toFixed(3)}, macro-F1 ${metrics.macroF1.toFixed(3)})`);
      // The same weights at the other temperatures: copies of the version differing only in the head file's temperature.
      const versions = [{ model, temperature: temperature.used, mode: first! }];
      for (const t of alsoAt) {
        const record = (await engine.services.store.models.get(model))!;
        const head = { ...(JSON.parse(Buffer.from(record.artifact).toString('utf8')) as Record<string, unknown>), temperature: Number(t) };
        const copy = await engine.services.store.models.create({ task, artifact: Buffer.from(JSON.stringify(head)), metrics: {}, params: { ...record.params, copyOf: model }, dataSnapshot: record.dataSnapshot, createdBy: 'eval-community', status: 'candidate' });
        versions.push({ model: copy.id, temperature: Number(t), mode: t });
      }
      for (const v of versions) {
        for (const [set, csv] of Object.entries(sets)) {
          const e = await engine.invoke('evaluate', { task, data: csv, model: String(v.model) }, cli);
          if (!e.ok) throw e.error;
          const d = e.reply.data as { n: number; accuracy: number; macroF1: number; calibration: { ece: number; nll: number } };
          const row: Row = { leftOut, task, views, seed, set, model: v.model, n: d.n, accuracy: d.accuracy, macroF1: d.macroF1, temperature: v.temperature, temperatureMode: v.mode, ece: d.calibration.ece, nll: d.calibration.nll };
          appendFileSync(results, JSON.stringify(row) + '\n');
          done.push(row);
          log(`  T=${v.temperature} (${v.mode}) ${set}: n ${d.n}, accuracy ${d.accuracy.toFixed(3)}, macro-F1 ${d.macroF1.toFixed(3)}, ECE ${d.calibration.ece.toFixed(3)}, log-loss ${d.calibration.nll.toFixed(3)}`);
        }
      }
    }
  }
}
await engine.close();

// Means over seeds, one line per task, views setting and temperature.
const setNames = Object.keys(sets);
const table = [`| left out | task | views | temperature | ${setNames.map((s) => `${s} (acc / F1)`).join(' | ')} |`, `|---|---|---|---|${setNames.map(() => '---|').join('')}`];
const calibrationTable = [`| left out | task | views | temperature | ${setNames.map((s) => `${s} (ECE / log-loss)`).join(' | ')} |`, `|---|---|---|---|${setNames.map(() => '---|').join('')}`];
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
for (const task of args.tasks!.split(',')) {
  for (const views of args.views!.split(',')) {
    for (const mode of args.temperatures!.split(',')) {
      const of = (set: string) => done.filter((x) => x.task === task && x.views === views && x.set === set && x.temperatureMode === mode);
      // `auto` can choose differently per seed: the label gives the values chosen.
      const label = `${mode}${mode === 'auto' ? ` (${[...new Set(of(setNames[0]!).map((x) => x.temperature))].join(', ')})` : ''}`;
      table.push(`| ${leftOut} | ${task} | ${views} | ${label} | ${setNames.map((set) => `${mean(of(set).map((x) => x.accuracy)).toFixed(3)} / ${mean(of(set).map((x) => x.macroF1)).toFixed(3)}`).join(' | ')} |`);
      calibrationTable.push(`| ${leftOut} | ${task} | ${views} | ${label} | ${setNames.map((set) => `${mean(of(set).map((x) => x.ece)).toFixed(3)} / ${mean(of(set).map((x) => x.nll)).toFixed(3)}`).join(' | ')} |`);
    }
  }
}
console.log(table.join('\n'));
console.log(`\n${calibrationTable.join('\n')}`);
