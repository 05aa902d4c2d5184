/**
 * `npx tsx scripts/probe-upright.ts --data <manifest.csv> [--labels a.csv,b.csv]`: why the upright step leaves
 * turned shoes alone, and what a looser rule would cost on the dev set's level photos.
 *
 * Part 1 makes the same turned composites as `scripts/eval-shift.ts` (`--kinds tilt,spin`: `grey+tilt`, `grey+spin`;
 * `level` pastes the shoe unturned, where any turn is a mistake; the held-out side
 * of train:defaults' split for `--task`, seed 42), finds each shoe with the shipped localiser as serving does, and
 * reports, per photo the step does not turn, why: the localiser's box framed it (GrabCut disagreed, so there is
 * no mask), no silhouette, not elongated, no clearly straighter edge, or a level shoe (upside down or not). Then
 * it counts the turns the candidate rules would make and how close they come to the true angle.
 *
 * Part 2 runs the step's analysis on every `--dev-every`-th labelled dev photo (studio shots, level: a turn there
 * is a mistake) and counts the photos each rule would turn.
 *
 * A few minutes on 2 cores (a partial forward pass and GrabCut per composite); run it with `nice -n 10`.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { loadBackbone, isBackboneName } from '../engine/ml/backbones.ts';
import { uprightEvidence, uprightTurn, UPRIGHT_MIN_ELONGATION, UPRIGHT_RULE, type SilhouetteAxis } from '../engine/ml/preprocess.ts';
import { seededRandom } from '../engine/random.ts';
import type { RawImage } from '../engine/ml/types.ts';
import { pasteShoe, SHIFT_BACKGROUNDS } from '../plugins/vision/lib/composite.ts';
import { loadLabelledItems, readLabelledSource, withLabelOverlays } from '../plugins/vision/lib/dataset.ts';
import { decodePixels } from '../plugins/vision/lib/input.ts';
import { makeLocator, shippedLocaliser } from '../plugins/vision/lib/localise.ts';
import { fuzzyGroups, groupSplit } from '../plugins/vision/lib/split.ts';

const { values: args } = parseArgs({
  options: {
    data: { type: 'string' },
    labels: { type: 'string' },
    backbone: { type: 'string', default: 'inception_v3_m67' },
    seed: { type: 'string', default: '42' },
    task: { type: 'string', default: 'brand' },
    'dev-every': { type: 'string', default: '2' },
    kinds: { type: 'string', default: 'tilt,spin' },
  },
});
if (!args.data) {
  console.error('usage: npx tsx scripts/probe-upright.ts --data <manifest.csv> [--labels a.csv,b.csv] [--task brand] [--dev-every 2]');
  process.exit(2);
}
const log = (m: string): void => console.error(`[probe-upright] ${m}`);
const seed = Number(args.seed);
const task = args.task as 'hype' | 'brand';
if (!isBackboneName(args.backbone!)) throw new Error(`unknown backbone ${args.backbone}`);

/** The same turns as eval-shift's kinds (clockwise degrees). */
const TURNS: Readonly<Record<string, (random: () => number) => number>> = {
  tilt: (random) => (random() < 0.5 ? -1 : 1) * (35 + random() * 55),
  spin: (random) => 35 + random() * 290,
  // Level shoes on the wall: any turn is a mistake.
  level: () => 0,
};

/** A rule: the turn (counter-clockwise degrees) for a silhouette's axis, 0 for none: the step's with other thresholds. */
type Rule = (axis: SilhouetteAxis) => number;
const rule =
  (flipSole: number | null, minElongation = UPRIGHT_MIN_ELONGATION): Rule =>
  (axis) =>
    uprightTurn(axis, { ...UPRIGHT_RULE, minElongation, flipSole });
const RULES: Readonly<Record<string, Rule>> = {
  'v1 (no flip)': rule(null),
  'flip level ≥0.05': rule(0.05),
  'flip level ≥0.2': rule(0.2),
  'flip level ≥0.4': rule(0.4),
  'elongation 1.6': rule(null, 1.6),
  'elongation 1.6, flip ≥0.2': rule(0.2, 1.6),
};

const angleError = (a: number, b: number): number => Math.abs(((((a - b) % 360) + 540) % 360) - 180);

const source = withLabelOverlays(await readLabelledSource(args.data), args.labels?.split(',').filter(Boolean) ?? [], log);
const items = await loadLabelledItems(source);
const backbone = await loadBackbone(args.backbone!);
const locate = makeLocator(backbone, shippedLocaliser(backbone.name));
const rawOf = async (file: string): Promise<RawImage> => (await decodePixels(await readFile(file))).raw;

// Part 1: the held-out side's turned composites (the same draws as eval-shift's `grey+<turn>`).
const idx = items.map((it, i) => (it.row[task] !== undefined ? i : -1)).filter((i) => i >= 0);
const groups = fuzzyGroups(idx.map((i) => ({ name: items[i]!.row.name, fallbackKey: items[i]!.sha })));
const split = groupSplit(groups, idx.map((i) => items[i]!.row[task]), { testSize: 0.1, seed });
const test = split.test.map((k) => items[idx[k]!]!);
for (const turnName of args.kinds!.split(',')) {
  const reasons = new Map<string, number>();
  const turns = new Map<string, { turned: number; within15: number; wrong: number }>();
  const current = { turned: 0, within15: 0, wrong: 0 };
  for (const [i, it] of test.entries()) {
    const bg = 'grey';
    const random = seededRandom(seed * 1000 + i * 7 + bg.length);
    const rotate = TURNS[turnName]!(seededRandom(seed * 1000 + i * 13 + 5));
    const replay = seededRandom(seed * 1000 + i * 7 + bg.length);
    replay();
    const truth = replay() < 0.5 ? -rotate : rotate;
    const composite = await pasteShoe(await rawOf(it.row.file), SHIFT_BACKGROUNDS[bg], random, { rotate, width: 360, height: 360, scale: [0.4, 2 / 3] });
    const hint = await locate(composite);
    const ev = await uprightEvidence(composite, hint ? { objectHint: hint } : {});
    let reason: string;
    if (ev.turn !== 0) reason = ev.background === 'located' ? 'turned (located)' : 'turned';
    else if (ev.axis === null) reason = `no silhouette (${ev.background})`;
    else if (ev.axis.elongation < UPRIGHT_MIN_ELONGATION) reason = 'not elongated';
    else if (Math.abs(ev.axis.sole) < 0.05) reason = 'no straighter edge';
    else if (ev.background === 'located') reason = 'located, level or unclear';
    else reason = RULES['flip level ≥0.05']!(ev.axis) !== 0 ? 'level, upside down' : 'level';
    reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
    if (ev.turn !== 0) {
      current.turned++;
      if (angleError(ev.turn, truth) <= 15) current.within15++;
      else if (angleError(ev.turn, truth) > 30) current.wrong++;
    }
    for (const [name, r] of Object.entries(RULES)) {
      const t = ev.axis === null ? 0 : r(ev.axis);
      const e = turns.get(name) ?? { turned: 0, within15: 0, wrong: 0 };
      if (t !== 0) {
        e.turned++;
        if (angleError(t, truth) <= 15) e.within15++;
        else if (angleError(t, truth) > 30) e.wrong++;
      }
      turns.set(name, e);
    }
  }
  console.log(`\ngrey+${turnName}: the step as it is turns ${current.turned}, within 15° ${current.within15}, off by more than 30° ${current.wrong}`);
  console.log(`grey+${turnName}, ${test.length} held-out ${task} photos: ${[...reasons].map(([r, n]) => `${r} ${n}`).join('; ')}`);
  for (const [name, e] of turns) console.log(`  rule ${name}: turns ${e.turned}, within 15° ${e.within15}, off by more than 30° ${e.wrong}`);
}

// Part 2: level studio photos, where any turn is a mistake.
const every = Number(args['dev-every']);
const dev = items.filter((_, i) => i % every === 0);
const falseTurns = new Map<string, number>();
let currentFalse = 0;
for (const it of dev) {
  const ev = await uprightEvidence(await rawOf(it.row.file));
  if (ev.turn !== 0) currentFalse++;
  for (const [name, r] of Object.entries(RULES)) {
    if (ev.axis !== null && r(ev.axis) !== 0) falseTurns.set(name, (falseTurns.get(name) ?? 0) + 1);
  }
}
console.log(`\n${dev.length} dev photos (every ${every}th), turned by the step as it is: ${currentFalse}; by each rule:`);
for (const name of Object.keys(RULES)) console.log(`  rule ${name}: ${falseTurns.get(name) ?? 0}`);
process.exit(0);
