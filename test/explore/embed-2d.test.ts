import { describe, expect, it } from 'vitest';
import { defaultPerplexity, tsne2d, umap2d } from '../../plugins/explore/lib/embed-2d.ts';
import { gaussian, seededRandom } from '../../plugins/explore/lib/numerics.ts';

function twoGroups(n: number): number[][] {
  const normal = gaussian(seededRandom(n));
  return Array.from({ length: n }, (_, i) => Array.from({ length: 5 }, () => (i < n / 2 ? 0 : 8) + normal() * 0.3));
}

const finite = (pts: number[][]): boolean => pts.every((p) => p.length === 2 && p.every(Number.isFinite));

describe('2-D layouts', () => {
  it('GIVEN small n THEN the default perplexity stays below n', () => {
    for (const n of [3, 4, 10, 31, 100, 1000]) {
      expect(defaultPerplexity(n)).toBeLessThan(n);
      expect(defaultPerplexity(n)).toBeGreaterThanOrEqual(2);
    }
    expect(defaultPerplexity(1000)).toBe(30);
  });

  for (const n of [3, 4, 20]) {
    it(`GIVEN ${n} points THEN t-SNE and UMAP give finite, seeded coordinates`, () => {
      const pts = twoGroups(n);
      const a = tsne2d(pts, { perplexity: defaultPerplexity(n), iterations: 200, seed: 1 });
      const b = tsne2d(pts, { perplexity: defaultPerplexity(n), iterations: 200, seed: 1 });
      expect(finite(a)).toBe(true);
      expect(a).toEqual(b);
      const u = umap2d(pts, 1);
      expect(u).toHaveLength(n);
      expect(finite(u)).toBe(true);
      expect(umap2d(pts, 1)).toEqual(u);
    });
  }

  it('GIVEN two separated groups THEN t-SNE keeps them apart', () => {
    const pts = twoGroups(20);
    const xy = tsne2d(pts, { perplexity: 5, iterations: 300, seed: 3 });
    const centre = (from: number, to: number) => [0, 1].map((d) => xy.slice(from, to).reduce((s, p) => s + p[d]!, 0) / (to - from));
    const [a, b] = [centre(0, 10), centre(10, 20)];
    const between = Math.hypot(a[0]! - b[0]!, a[1]! - b[1]!);
    const within = xy.slice(0, 10).reduce((s, p) => s + Math.hypot(p[0]! - a[0]!, p[1]! - a[1]!), 0) / 10;
    expect(between).toBeGreaterThan(2 * within);
  });
});
