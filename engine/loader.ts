/**
 * Loads plugins from a folder: each `plugins/<name>/index.ts` (or `plugins/<name>.ts`) default-exports a
 * `definePlugin(...)` object. Adding a plugin is adding one file; no engine or transport change.
 */
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { pluginShapeSchema, type PluginDefinition } from './define.ts';
import { EngineError } from './errors.ts';
import { formatZodError } from './schema.ts';

const ENTRY_NAMES = ['index.ts', 'index.js', 'index.mjs'];

/** Find plugin entry files in `dir` (sorted by name for a stable order). */
export async function findPluginFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  const files: string[] = [];
  for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    if (entry.name.startsWith('.') || entry.name.startsWith('_')) continue;
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      for (const candidate of ENTRY_NAMES) {
        const f = path.join(full, candidate);
        if (await stat(f).then((s) => s.isFile(), () => false)) {
          files.push(f);
          break;
        }
      }
    } else if (/\.(ts|js|mjs)$/.test(entry.name) && !/\.(test|d)\.ts$/.test(entry.name)) {
      files.push(full);
    }
  }
  return files;
}

/** Import and shape-check one plugin module. */
export async function loadPluginFile(file: string): Promise<PluginDefinition> {
  const mod = (await import(pathToFileURL(file).href)) as { default?: unknown };
  const plugin = mod.default;
  const shape = pluginShapeSchema.safeParse(plugin);
  if (!shape.success) {
    throw new EngineError('BAD_INPUT', `${file} does not default-export a plugin: ${formatZodError(shape.error)}`, {
      details: { code: 'ENGINE_ERR_PLUGIN_SHAPE' },
    });
  }
  return plugin as PluginDefinition;
}

/** Load every plugin in `dir`, optionally filtered by name. */
export async function loadPlugins(dir: string, only?: (name: string) => boolean): Promise<PluginDefinition[]> {
  const plugins: PluginDefinition[] = [];
  for (const file of await findPluginFiles(dir)) {
    // By convention a plugin's folder (or file) is named like the plugin: filter before importing so a
    // broken plugin that was not asked for cannot stop the others.
    const base = path.basename(file).replace(/\.(ts|js|mjs)$/, '');
    const folderName = base === 'index' ? path.basename(path.dirname(file)) : base;
    if (only && !only(folderName)) continue;
    const plugin = await loadPluginFile(file);
    if (!only || only(plugin.name)) plugins.push(plugin);
  }
  return plugins;
}
