/**
 * Import boundaries (STYLE.md): bot → jobs → plugins → engine, never back; plugins never import each
 * other; the engine imports no transport or queue library. Also: no import cycles between source files.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve('.');
const LAYERS = ['engine', 'plugins', 'jobs', 'bot'] as const;

function walk(dir: string): string[] {
  let out: string[] = [];
  for (const name of readdirSync(dir)) {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) out = out.concat(walk(full));
    else if (/\.(ts|mts)$/.test(name) && !name.endsWith('.d.ts')) out.push(full);
  }
  return out;
}

const importRe = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

function importsOf(file: string): string[] {
  const src = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of src.matchAll(importRe)) out.push((m[1] ?? m[2]) as string);
  return out;
}

const files = LAYERS.flatMap((l) => {
  try {
    return walk(path.join(root, l));
  } catch {
    return [];
  }
});

function layerOf(file: string): string {
  return path.relative(root, file).split(path.sep)[0] ?? '';
}

function pluginOf(file: string): string | undefined {
  const parts = path.relative(root, file).split(path.sep);
  return parts[0] === 'plugins' ? parts[1] : undefined;
}

describe('architecture', () => {
  it('GIVEN every source file THEN imports only flow bot → jobs → plugins → engine', () => {
    const violations: string[] = [];
    const rank = { engine: 0, plugins: 1, jobs: 2, bot: 3 } as Record<string, number>;
    for (const file of files) {
      const from = layerOf(file);
      for (const spec of importsOf(file)) {
        if (from === 'engine' && /^(discord\.js|@discordjs\/|express|multer|bullmq|@bull-board\/|commander)/.test(spec)) {
          violations.push(`${path.relative(root, file)} imports ${spec}`);
        }
        if (!spec.startsWith('.')) continue;
        const target = path.resolve(path.dirname(file), spec);
        const to = layerOf(target);
        if (!(to in rank)) continue;
        if ((rank[to] ?? 0) > (rank[from] ?? 0)) violations.push(`${path.relative(root, file)} (${from}) imports ${spec} (${to})`);
        const pa = pluginOf(file);
        const pb = pluginOf(target);
        if (pa && pb && pa !== pb) violations.push(`plugin ${pa} imports plugin ${pb}: ${path.relative(root, file)} → ${spec}`);
      }
    }
    expect(violations).toEqual([]);
  });

  it('GIVEN relative imports THEN there is no cycle across layers or plugins', () => {
    const graph = new Map<string, string[]>();
    for (const file of files) {
      graph.set(
        file,
        importsOf(file)
          .filter((s) => s.startsWith('.') && !/^import\(/.test(s))
          .map((s) => path.resolve(path.dirname(file), s))
          .filter((t) => files.includes(t)),
      );
    }
    // Only cycles that cross a module boundary (layer or plugin) are architecture problems; a file
    // importing types back from its own folder is common and harmless with `import type`.
    const unit = (f: string) => `${layerOf(f)}/${pluginOf(f) ?? ''}`;
    const cycles: string[] = [];
    const state = new Map<string, number>();
    const stack: string[] = [];
    const visit = (n: string): void => {
      state.set(n, 1);
      stack.push(n);
      for (const m of graph.get(n) ?? []) {
        if (state.get(m) === 1) {
          const cyc = stack.slice(stack.indexOf(m));
          if (new Set(cyc.map(unit)).size > 1) cycles.push(cyc.map((c) => path.relative(root, c)).join(' → '));
        } else if (!state.has(m)) visit(m);
      }
      stack.pop();
      state.set(n, 2);
    };
    for (const f of files) if (!state.has(f)) visit(f);
    expect(cycles).toEqual([]);
  });
});
