/**
 * `npx tsx scripts/replay-tta.ts <views.jsonl>`: scores combinations of test-time views on what
 * `scripts/eval-shift.ts --tta-dump` wrote (per held-out photo and column: the head's probabilities on each view of
 * the served input alone). A head's answer over several views is the mean of their probabilities (engine/ml/head.ts
 * `headProbabilities`), so every combination is scored exactly. Prints, per task, the photos each combination gets
 * right per column against the shipped `whole+mirror`. assets/models/README.md, "Serving levers on the shipped heads,
 * studied".
 */
import { readFileSync } from 'node:fs';

interface Row {
  readonly task: string;
  readonly kind: string;
  readonly truth: string;
  readonly probs: Record<string, Record<string, number>>;
}
const file = process.argv[2];
if (!file) {
  console.error('usage: npx tsx scripts/replay-tta.ts <views.jsonl from eval-shift --tta-dump>');
  process.exit(2);
}
const rows = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Row);
const COMBOS = ['whole', 'whole+mirror', 'whole+mirror+in85', 'whole+mirror+in85+in85m', 'whole+mirror+out85', 'whole+mirror+out85+out85m', 'whole+mirror+in85+in85m+out85+out85m', 'whole+in85+out85'];
const SHIPPED = 'whole+mirror';
/** The first label with the highest mean probability over the views (insertion order breaks ties, as topLabel). */
function answer(r: Row, views: readonly string[]): string {
  let best = '';
  let bestP = -1;
  for (const label of Object.keys(r.probs[views[0]!]!)) {
    const p = views.reduce((s, v) => s + r.probs[v]![label]!, 0) / views.length;
    if (p > bestP) {
      bestP = p;
      best = label;
    }
  }
  return best;
}
for (const task of [...new Set(rows.map((r) => r.task))]) {
  const mine = rows.filter((r) => r.task === task);
  const kinds = [...new Set(mine.map((r) => r.kind))];
  const right = (combo: string): number[] => kinds.map((k) => mine.filter((r) => r.kind === k && answer(r, combo.split('+')) === r.truth).length);
  const shipped = right(SHIPPED);
  console.log(`${task}: columns ${kinds.map((k) => `${k} (${mine.filter((r) => r.kind === k).length})`).join(', ')}`);
  console.log(`  ${SHIPPED.padEnd(40)} ${shipped.join(' ')}  (photos right)`);
  for (const combo of COMBOS.filter((c) => c !== SHIPPED)) {
    const d = right(combo).map((n, i) => n - shipped[i]!);
    const sum = d.reduce((a, b) => a + b, 0);
    console.log(`  ${combo.padEnd(40)} ${d.map((v) => (v > 0 ? `+${v}` : `${v}`)).join(' ')}  total ${sum > 0 ? '+' : ''}${sum}`);
  }
}
