/**
 * `npx tsx scripts/calibrate.ts <probs.jsonl> [--shift shift.jsonl [--choose-on shift]]` (or `--apply hype=1.7,brand=1.2 --heads DIR`): a softmax-temperature study on
 * what `npm run train:defaults -- … --probs-dump FILE` wrote (every held-out and left-out-source answer, as served, at
 * temperatures 0.5–4.0).
 *
 * Why the left-out sources choose the temperature: a user's photo comes from a source no head trained on, so "how sure
 * should the head be" is a question about unseen sources. Each source counts once (the mean of the folds' log-losses),
 * because a new source is one source, however many photos the dev set has of it. The honest figure for a new source is
 * nested: each fold scored at the temperature the other folds choose. The held-out photos never choose anything; they
 * show what the chosen temperature costs or buys on the training sources' own kind of photo.
 *
 * Prints, per task: each set at the heads' temperature (1) and at the chosen one (accuracy, mean stated confidence,
 * ECE, log-loss, Brier, the share marked low confidence and the accuracy of the rest), and what each low-confidence
 * threshold (the head's `minConfidence`, 0.5–0.9) would mark on each set. `--shift FILE` (from
 * `eval-shift --heads DIR --probs-dump FILE`, DIR holding heads of the same recipe, e.g. the shipped ones) adds the same
 * figures per background-shift column: the held-out photos pasted on grey walls, floors and shelves, tilted, worn, in
 * pairs. `--choose-on shift` chooses the temperature on those columns (the clean one left out) instead of on the
 * left-out sources: with three sources, one of them failing, the left-out choice can sit at an end of the range
 * (assets/models/README.md "Calibration" says why the shipped hype head uses it). `--apply` writes the given
 * temperatures into DIR's `<task>.head.json` files (nothing else changes).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { DumpedAnswer } from './lib/probs-dump.ts';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { calibrationReport } from '../engine/ml/calibration.ts';
import { topLabel } from '../engine/ml/head.ts';

type Row = DumpedAnswer;

const { values: args, positionals } = parseArgs({ allowPositionals: true, options: { apply: { type: 'string' }, heads: { type: 'string' }, shift: { type: 'string' }, 'choose-on': { type: 'string', default: 'loso' } } });
if (args['choose-on'] !== 'loso' && args['choose-on'] !== 'shift') throw new Error(`--choose-on is loso or shift, not ${args['choose-on']}`);
if (args.apply) {
  if (!args.heads) throw new Error('--apply needs --heads DIR (the folder holding hype.head.json and brand.head.json)');
  for (const pair of args.apply.split(',')) {
    const [task, value] = pair.split('=');
    const t = Number(value);
    if (!(task === 'hype' || task === 'brand') || !(t > 0)) throw new Error(`--apply takes task=temperature pairs (hype=1.5), not ${pair}`);
    const file = path.join(args.heads, `${task}.head.json`);
    const head = JSON.parse(readFileSync(file, 'utf8')) as { temperature: number };
    head.temperature = t;
    writeFileSync(file, JSON.stringify(head));
    console.log(`${file}: temperature ${t}`);
  }
  process.exit(0);
}
const file = positionals[0];
if (!file) {
  console.error('usage: npx tsx scripts/calibrate.ts <probs.jsonl from train:defaults --probs-dump> | --apply hype=T,brand=T --heads DIR');
  process.exit(2);
}
const read = (f: string) => readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Row);
const rows = read(file);
const shiftRows = args.shift ? read(args.shift) : [];
const temps = Object.keys(rows[0]!.probs);

interface Figures {
  readonly n: number;
  readonly accuracy: number;
  readonly confidence: number;
  readonly ece: number;
  readonly nll: number;
  readonly brier: number;
  readonly warned: number;
  readonly unwarnedAccuracy: number;
}

function figures(set: readonly Row[], t: string, minConfidence?: number): Figures {
  const answers = set.map((r) => r.probs[t]!);
  const c = calibrationReport(set.map((r) => r.truth), answers);
  const warned = set.map((r, i) => r.outside || topLabel(answers[i]!).confidence < (minConfidence ?? r.minConfidence));
  const kept = set.map((r, i) => (warned[i] ? -1 : i)).filter((i) => i >= 0);
  return {
    n: set.length,
    accuracy: c.accuracy,
    confidence: c.meanConfidence,
    ece: c.ece,
    nll: c.nll,
    brier: c.brier,
    warned: warned.filter(Boolean).length / set.length,
    unwarnedAccuracy: kept.length > 0 ? kept.filter((i) => topLabel(answers[i]!).label === set[i]!.truth).length / kept.length : NaN,
  };
}

/** The temperature with the lowest mean log-loss over `sets` (each set counts once). */
function choose(sets: readonly (readonly Row[])[]): string {
  let best = temps[0]!;
  let bestLoss = Infinity;
  for (const t of temps) {
    const loss = sets.reduce((s, set) => s + figures(set, t).nll, 0) / sets.length;
    if (loss < bestLoss) [best, bestLoss] = [t, loss];
  }
  return best;
}

const pct = (v: number) => (Number.isNaN(v) ? '  n/a' : `${(v * 100).toFixed(1).padStart(5)}`);
const line = (what: string, t: string, f: Figures) =>
  `${what.padEnd(26)} T=${t.padEnd(4)} n=${String(f.n).padStart(4)}  acc ${pct(f.accuracy)}  said ${pct(f.confidence)}  ECE ${f.ece.toFixed(3)}  log-loss ${f.nll.toFixed(3)}  Brier ${f.brier.toFixed(3)}  warned ${pct(f.warned)}  unwarned acc ${pct(f.unwarnedAccuracy)}`;

for (const task of [...new Set(rows.map((r) => r.task))]) {
  const mine = rows.filter((r) => r.task === task);
  const held = mine.filter((r) => r.fold === 'held-out');
  const folds = [...new Set(mine.map((r) => r.fold))].filter((f) => f !== 'held-out');
  const foldRows = folds.map((f) => mine.filter((r) => r.fold === f));
  console.log(`\n## ${task}`);
  const shifted = shiftRows.filter((r) => r.task === task);
  const kinds = [...new Set(shifted.map((r) => r.fold))];
  // The shifted columns minus the clean one: the held-out photos on other backgrounds, tilted, worn, in pairs.
  const shiftSets = kinds.filter((k) => k !== 'clean').map((k) => shifted.filter((r) => r.fold === k));
  if (args['choose-on'] === 'shift' && shiftSets.length === 0) throw new Error(`--choose-on shift needs --shift rows for ${task}`);
  if (folds.length === 0) throw new Error(`${file} has no left-out-source answers for ${task}: dump them with train:defaults --probs-dump (LOSO runs by default)`);
  const onLoso = choose(foldRows);
  const onShift = shiftSets.length > 0 ? choose(shiftSets) : undefined;
  const chosen = args['choose-on'] === 'shift' ? onShift! : onLoso;
  console.log(`temperature chosen on the left-out sources (${folds.join(', ')}; each counts once): ${onLoso}`);
  if (onShift) console.log(`temperature chosen on the shifted columns (${kinds.filter((k) => k !== 'clean').join(', ')}; each counts once): ${onShift}`);
  console.log(`the temperature used below (--choose-on ${args['choose-on']}): ${chosen}`);
  console.log(`temperature the held-out photos themselves would choose (for reference only): ${choose([held])}`);
  for (const f of folds) console.log(`  ${f} alone would choose ${choose([mine.filter((r) => r.fold === f)])}`);
  console.log('\nheld-out photos (never used to choose):');
  console.log(line('  as trained', '1.0', figures(held, '1.0')));
  console.log(line('  chosen', chosen, figures(held, chosen)));
  console.log('\neach left-out source, at the temperature the other sources choose (nested):');
  let before = 0;
  let after = 0;
  folds.forEach((f, k) => {
    const others = foldRows.filter((_, j) => j !== k);
    const t = choose(others);
    const a = figures(foldRows[k]!, '1.0');
    const b = figures(foldRows[k]!, t);
    before += a.nll / folds.length;
    after += b.nll / folds.length;
    console.log(line(`  ${f} as trained`, '1.0', a));
    console.log(line(`  ${f} nested`, t, b));
    if (chosen !== t) console.log(line(`  ${f} chosen`, chosen, figures(foldRows[k]!, chosen)));
  });
  console.log(`  mean log-loss over the left-out sources: as trained ${before.toFixed(3)}, nested ${after.toFixed(3)}`);
  // The warning's threshold (the head's minConfidence) is the other lever: at the chosen temperature and at 1, what
  // share each threshold marks and how often the unmarked answers are right, on every set.
  console.log('\nthe low-confidence threshold: share warned / accuracy of the unwarned answers');
  const sets: [string, readonly Row[]][] = [['held-out', held], ...folds.map((f, k): [string, readonly Row[]] => [f, foldRows[k]!])];
  console.log(`  ${'T'.padEnd(4)} ${'minConf'.padEnd(8)} ${sets.map(([name]) => name.padStart(17)).join(' ')}`);
  for (const t of [...new Set(['1.0', chosen])]) {
    for (const m of [0.5, 0.6, 0.7, 0.8, 0.9]) {
      const cells = sets.map(([, set]) => {
        const f = figures(set, t, m);
        return `${pct(f.warned)} / ${pct(f.unwarnedAccuracy)}`.padStart(17);
      });
      console.log(`  ${t.padEnd(4)} ${m.toFixed(1).padEnd(8)} ${cells.join(' ')}`);
    }
  }
  if (shifted.length > 0) {
    console.log('\nthe held-out photos on shifted backgrounds (--shift; heads of the same recipe):');
    for (const kind of kinds) {
      const set = shifted.filter((r) => r.fold === kind);
      console.log(line(`  ${kind} as trained`, '1.0', figures(set, '1.0')));
      console.log(line(`  ${kind} chosen`, chosen, figures(set, chosen)));
    }
  }
}
