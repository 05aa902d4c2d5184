/**
 * Writes the bundled procedural style images to assets/styles/ (deterministic: re-running reproduces the
 * committed files byte for byte with the same sharp/libvips version).
 *
 *   npx tsx scripts/make-styles.ts
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { drawStyle, STYLE_NAMES, STYLES_DIR } from '../plugins/generative/lib/styles.ts';
import { rgbToPng } from '../plugins/generative/lib/raster.ts';

await mkdir(STYLES_DIR, { recursive: true });
for (const name of STYLE_NAMES) {
  const png = await rgbToPng(drawStyle(name, 256));
  await writeFile(path.join(STYLES_DIR, `${name}.png`), png);
  console.log(`${name}.png ${(png.length / 1024).toFixed(0)} KiB`);
}
