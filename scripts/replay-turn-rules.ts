/**
 * `npx tsx scripts/replay-turn-rules.ts <looks.jsonl>`: replays decision rules of the learnt turn on the looks that
 * `scripts/eval-shift.ts --learn-dump` wrote (per held-out photo and shifted column: the first look and, where it read
 * 15° or more, the view turned by that reading), and prints how many photos each rule gets right against the shipped
 * rule, per task and column. Each rule picks one of the two views (or averages them), so no embedding is needed.
 * Rules: `ship T C K` (the shipped form: turn when the first look reads ≥ T° with confidence ≥ C, keep it when the
 * second look reads < K°; shipped: 30, 0.5, 30), `rel` (keep when the second look reads under half the first),
 * `avg` (average the two views' probabilities), `conf` (keep the view the head is surer of). assets/models/README.md,
 * "Serving levers on the shipped heads, studied".
 */
import { readFileSync } from 'node:fs';

interface Look {
  readonly turn: number;
  readonly confidence: number;
  readonly label: string;
  readonly probabilities: Record<string, number>;
}
interface Row {
  readonly task: string;
  readonly kind: string;
  readonly truth: string;
  readonly plain?: string;
  readonly first?: Look;
  readonly turned?: Look;
}
type Rule = (first: Look, turned: Look | undefined) => string;

const file = process.argv[2];
if (!file) {
  console.error('usage: npx tsx scripts/replay-turn-rules.ts <looks.jsonl from eval-shift --learn-dump>');
  process.exit(2);
}
const rows = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Row);
const top = (p: Record<string, number>): string => Object.entries(p).reduce((a, b) => (b[1] > a[1] ? b : a))[0];
const sure = (l: Look): number => Math.max(...Object.values(l.probabilities));
/** Whether a turn is tried: the first look reads at least `t`° with confidence `c` (and its turned view was dumped). */
const tried = (f: Look, t: Look | undefined, minTurn: number, minConf: number): t is Look => t !== undefined && Math.abs(f.turn) >= minTurn && f.confidence >= minConf;

const rules = new Map<string, Rule>([['never', (f) => f.label]]);
for (const T of [20, 25, 30, 40]) {
  for (const C of [0.3, 0.5, 0.7]) {
    for (const K of [20, 30, 40]) rules.set(`ship ${T} ${C} ${K}`, (f, t) => (tried(f, t, T, C) && Math.abs(t.turn) < K ? t.label : f.label));
    rules.set(`rel ${T} ${C}`, (f, t) => (tried(f, t, T, C) && Math.abs(t.turn) < 0.5 * Math.abs(f.turn) ? t.label : f.label));
    rules.set(`avg ${T} ${C}`, (f, t) => (tried(f, t, T, C) && Math.abs(t.turn) < 30 ? top(Object.fromEntries(Object.keys(f.probabilities).map((k) => [k, (f.probabilities[k]! + t.probabilities[k]!) / 2]))) : f.label));
    rules.set(`conf ${T} ${C}`, (f, t) => (tried(f, t, T, C) && sure(t) > sure(f) ? t.label : f.label));
  }
}
const cells = [...new Set(rows.map((r) => `${r.task}|${r.kind}`))].sort();
const right = (rule: Rule): number[] => cells.map((c) => rows.filter((r) => `${r.task}|${r.kind}` === c && (r.plain ?? rule(r.first!, r.turned)) === r.truth).length);
const shipped = right(rules.get('ship 30 0.5 30')!);
console.log(`cells (task|column, photos): ${cells.map((c) => `${c} ${rows.filter((r) => `${r.task}|${r.kind}` === c).length}`).join(', ')}`);
console.log(`shipped rule, photos right: ${shipped.join(' ')}`);
const scored = [...rules].map(([name, rule]) => {
  const d = right(rule).map((n, i) => n - shipped[i]!);
  const per = (task: string): number => d.reduce((s, v, i) => s + (cells[i]!.startsWith(`${task}|`) ? v : 0), 0);
  return { name, hype: per('hype'), brand: per('brand'), d };
});
scored.sort((a, b) => b.hype + b.brand - (a.hype + a.brand));
const sign = (n: number): string => (n > 0 ? `+${n}` : `${n}`);
for (const s of scored) console.log(`${s.name.padEnd(16)} hype ${sign(s.hype).padStart(3)}  brand ${sign(s.brand).padStart(3)}  per cell ${s.d.map(sign).join(' ')}`);
