import { describe, it, expect } from 'vitest';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { bootstrapInterval, classificationReport, formatRange, formatReport } from '../../plugins/vision/lib/metrics.ts';
import { reportFromConfusion } from '../../engine/ml/metrics.ts';
import { applyLabelOverlay, parseCsv, readLabelOverlay, readLabelledSource, withLabelOverlays } from '../../plugins/vision/lib/dataset.ts';
import { BRANDS } from '../../plugins/vision/lib/labels.ts';

describe('classification report', () => {
  it('GIVEN known predictions THEN precision, recall, F1, macro and weighted averages match hand computation', () => {
    const yTrue = ['a', 'a', 'a', 'b', 'b', 'c'];
    const yPred = ['a', 'a', 'b', 'b', 'c', 'c'];
    const r = classificationReport(yTrue, yPred, ['a', 'b', 'c', 'd']);
    expect(r.n).toBe(6);
    expect(r.accuracy).toBeCloseTo(4 / 6);
    expect(r.perClass.a).toEqual({ precision: 1, recall: 2 / 3, f1: 0.8, support: 3 });
    expect(r.perClass.b!.precision).toBeCloseTo(0.5);
    expect(r.perClass.b!.recall).toBeCloseTo(0.5);
    expect(r.perClass.c!.f1).toBeCloseTo(2 / 3);
    // 'd' never occurs: it is listed but not averaged.
    expect(r.perClass.d!.support).toBe(0);
    expect(r.macroF1).toBeCloseTo((0.8 + 0.5 + 2 / 3) / 3);
    expect(r.weightedF1).toBeCloseTo((0.8 * 3 + 0.5 * 2 + (2 / 3) * 1) / 6);
    expect(r.confusion.matrix).toEqual([
      [2, 1, 0, 0],
      [0, 1, 1, 0],
      [0, 0, 1, 0],
      [0, 0, 0, 0],
    ]);
    const text = formatReport(r);
    expect(text).toMatch(/precision\s+recall\s+f1-score\s+support/);
    expect(text).toMatch(/accuracy\s+0\.67\s+6/);
    // The same report from the counts alone (what a bootstrap resample is scored with).
    expect(reportFromConfusion(r.confusion.labels, r.confusion.matrix)).toEqual(r);
  });

  it('GIVEN a confusion matrix THEN the bootstrap interval holds the figure, narrows with more photos and is seeded', () => {
    const labels = ['hyped', 'not_hyped'];
    // 100 photos, 80 right: the binomial standard error is 0.04, so a 95 % interval about ±0.08.
    const small = bootstrapInterval({ labels, matrix: [[40, 10], [10, 40]] });
    expect(small).toMatchObject({ level: 0.95, resamples: 1000 });
    expect(small.accuracy[0]).toBeLessThan(0.8);
    expect(small.accuracy[1]).toBeGreaterThan(0.8);
    const width = small.accuracy[1] - small.accuracy[0];
    expect(width).toBeGreaterThan(0.12);
    expect(width).toBeLessThan(0.2);
    expect(small.macroF1[0]).toBeLessThan(0.8);
    expect(small.macroF1[1]).toBeGreaterThan(0.8);
    // Ten times the photos, the same rates: about a third of the width (1/√10).
    const large = bootstrapInterval({ labels, matrix: [[400, 100], [100, 400]] });
    expect(large.accuracy[1] - large.accuracy[0]).toBeLessThan(width * 0.45);
    expect(large.accuracy[1] - large.accuracy[0]).toBeGreaterThan(width * 0.2);
    // Seeded: the same matrix gives the same interval; a perfect model has nowhere to move.
    expect(bootstrapInterval({ labels, matrix: [[40, 10], [10, 40]] })).toEqual(small);
    expect(bootstrapInterval({ labels, matrix: [[7, 0], [0, 3]] })).toMatchObject({ accuracy: [1, 1], macroF1: [1, 1] });
    expect(bootstrapInterval({ labels, matrix: [[0, 0], [0, 0]] }).resamples).toBe(0);
  });

  it('GIVEN an interval THEN formatRange writes it with an en dash, three decimals unless told', () => {
    expect(formatRange([0.80123, 0.8964])).toBe('0.801–0.896');
    expect(formatRange([0.5, 1], (v) => `${Math.round(v * 100)} %`)).toBe('50 %–100 %');
  });
});

describe('labelled data on disk', () => {
  it('parses quoted CSV cells', () => {
    expect(parseCsv('file,name\r\n"a,b.jpg","say ""hi"""\n')).toEqual([
      ['file', 'name'],
      ['a,b.jpg', 'say "hi"'],
    ]);
  });

  it('GIVEN a manifest THEN labels normalise, unknowns are unlabelled, and paths outside the folder are refused', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'vision-ds-'));
    mkdirSync(path.join(dir, 'img'));
    for (const f of ['a.jpg', 'b.jpg', 'c.jpg']) writeFileSync(path.join(dir, 'img', f), 'x');
    writeFileSync(
      path.join(dir, 'manifest.csv'),
      'file,brand,hype,name,source_repo\nimg/a.jpg,Nike,Not Hyped,Dunk Low,me/repo@abc\nimg/b.jpg,unknown,hyped,,\nimg/c.jpg,,,"x, y",\n../etc/passwd,nike,,,\nimg/missing.jpg,nike,,,\n',
    );
    const src = await readLabelledSource(path.join(dir, 'manifest.csv'));
    expect(src.kind).toBe('manifest');
    expect(src.rows).toHaveLength(3);
    expect(src.rows[0]).toMatchObject({ brand: 'nike', hype: 'not_hyped', name: 'Dunk Low', source: 'me/repo' });
    expect(src.rows[1]!.brand).toBeUndefined();
    expect(src.rows[1]!.hype).toBe('hyped');
    expect(src.rows[2]!.name).toBe('x, y');
    expect(src.skipped.map((s) => s.reason).sort()).toEqual(['file not found', 'points outside the manifest folder']);
    // A folder with a manifest.csv reads the manifest.
    expect((await readLabelledSource(dir)).kind).toBe('manifest');
  });

  it('GIVEN an ImageFolder THEN every class folder on the path labels the file', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'vision-if-'));
    mkdirSync(path.join(dir, 'hyped', 'jordan'), { recursive: true });
    mkdirSync(path.join(dir, 'adidas'));
    mkdirSync(path.join(dir, 'misc'));
    writeFileSync(path.join(dir, 'hyped', 'jordan', 'x.png'), 'x');
    writeFileSync(path.join(dir, 'adidas', 'y.JPG'), 'x');
    writeFileSync(path.join(dir, 'misc', 'z.webp'), 'x');
    writeFileSync(path.join(dir, 'misc', 'notes.bin'), 'x');
    const src = await readLabelledSource(dir);
    expect(src.kind).toBe('folder');
    const byName = Object.fromEntries(src.rows.map((r) => [path.basename(r.file), r]));
    expect(byName['x.png']).toMatchObject({ brand: 'jordan', hype: 'hyped' });
    expect(byName['y.JPG']).toMatchObject({ brand: 'adidas' });
    expect(byName['z.webp']!.brand).toBeUndefined();
    expect(src.skipped).toHaveLength(1);
    await expect(readLabelledSource(path.join(dir, 'nope'))).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('GIVEN a label overlay THEN it adds only missing labels, counts disagreements and keeps its extra columns', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'vision-ov-'));
    mkdirSync(path.join(dir, 'img'));
    for (const f of ['a.jpg', 'b.jpg', 'c.jpg']) writeFileSync(path.join(dir, 'img', f), 'x');
    writeFileSync(path.join(dir, 'manifest.csv'), 'file,brand,hype\nimg/a.jpg,nike,\nimg/b.jpg,unknown,hyped\nimg/c.jpg,,\n');
    const overlayPath = path.join(dir, 'overlay.csv');
    writeFileSync(overlayPath, 'file,brand,footwear\nimg/a.jpg,adidas,sneaker\nimg/b.jpg,Jordan,sneaker\nimg/c.jpg,unknown,other_footwear\nimg/gone.jpg,nike,sneaker\n');
    const src = await readLabelledSource(path.join(dir, 'manifest.csv'));
    const { source, report } = applyLabelOverlay(src, readLabelOverlay(overlayPath));
    expect(report).toEqual({ matched: 3, unmatched: 1, added: { brand: 1, hype: 0 }, conflicts: { brand: 1, hype: 0 } });
    const byName = Object.fromEntries(source.rows.map((r) => [path.basename(r.file), r]));
    expect(byName['a.jpg']!.brand).toBe('nike'); // the manifest's own label wins
    expect(byName['b.jpg']).toMatchObject({ brand: 'jordan', hype: 'hyped' });
    expect(byName['c.jpg']!.brand).toBeUndefined(); // "unknown" adds nothing
    expect(byName['c.jpg']!.extra).toMatchObject({ footwear: 'other_footwear' });
    expect(src.rows[1]!.brand).toBeUndefined(); // the input source is not mutated
    const logged: string[] = [];
    expect(withLabelOverlays(src, [overlayPath], (m) => logged.push(m)).rows[1]!.brand).toBe('jordan');
    expect(logged[0]).toMatch(/3 rows matched \(1 unmatched\), added 1 brand \/ 0 hype labels, 1 conflicts/);
    writeFileSync(overlayPath, 'file,colour\nimg/a.jpg,red\n');
    expect(() => readLabelOverlay(overlayPath)).toThrow(/brand.*hype/);
    expect(() => readLabelOverlay(path.join(dir, 'none.csv'))).toThrow(/Cannot read/);
  });

  it('the shipped hand-label overlay is well formed: one line per zjy-T photo, valid labels, non-shoes unlabelled', () => {
    const overlay = readLabelOverlay(path.join(import.meta.dirname, '../../assets/labels/sneakers-dev-zjy-brand.csv'));
    expect(overlay.size).toBe(1954);
    const counts: Record<string, number> = {};
    for (const [file, rec] of overlay) {
      expect(file).toMatch(/^images\/zjy-T__[\w.-]+\.jpg$/);
      expect([...BRANDS, 'unknown']).toContain(rec.brand);
      expect(['sneaker', 'other_footwear']).toContain(rec.footwear);
      if (rec.footwear === 'other_footwear') expect(rec.brand).toBe('unknown');
      counts[rec.brand!] = (counts[rec.brand!] ?? 0) + 1;
    }
    for (const b of BRANDS) expect(counts[b]).toBeGreaterThan(150);
  });

  it('the shipped hype overlay covers the Farfetch photos only, with a basis that agrees with each label and with the brand overlay', () => {
    const labels = path.join(import.meta.dirname, '../../assets/labels');
    const hype = readLabelOverlay(path.join(labels, 'sneakers-dev-zjy-hype.csv'));
    const brand = readLabelOverlay(path.join(labels, 'sneakers-dev-zjy-brand.csv'));
    expect(hype.size).toBe(1322);
    // Which label each basis may carry: the rule the README states, so a typing slip between columns fails here.
    const allowed: Record<string, string> = {
      'retail-not-sneaker': 'not_hyped',
      'retail-other-brand': 'not_hyped',
      'resale-model': 'hyped',
      'possible-resale-model': 'unknown',
      'jordan-performance-model': 'unknown',
      'not-judged': 'unknown',
    };
    const counts: Record<string, number> = {};
    for (const [file, rec] of hype) {
      expect(file).toMatch(/^images\/zjy-T__\w+__farfetch_shoe\d+\.jpg$/);
      expect(allowed[rec.basis!]).toBe(rec.hype);
      const b = brand.get(file)!;
      if (rec.basis === 'retail-not-sneaker') expect(b.footwear).toBe('other_footwear');
      if (rec.basis === 'retail-other-brand') expect(b.brand).toBe('other');
      if (rec.basis === 'resale-model') expect(['jordan', 'nike', 'adidas']).toContain(b.brand);
      counts[rec.hype!] = (counts[rec.hype!] ?? 0) + 1;
    }
    expect(counts.hyped).toBeGreaterThan(90);
    expect(counts.not_hyped).toBeGreaterThan(800);
  });
});
