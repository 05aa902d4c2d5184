/**
 * The bundled style images: procedural patterns the project draws itself (no third-party art), written to
 * assets/styles/ by scripts/make-styles.ts and read by `style-transfer --style <name>`.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { mulberry32 } from './gan.ts';
import type { Rgb } from './raster.ts';

/** Names of the bundled styles. */
export const STYLE_NAMES = ['mosaic', 'stripes', 'waves', 'dots', 'marble'] as const;

/** A bundled style name. */
export type StyleName = (typeof STYLE_NAMES)[number];

/** Folder of the bundled style PNGs. */
export const STYLES_DIR = fileURLToPath(new URL('../../../assets/styles/', import.meta.url));

/** The PNG bytes of a bundled style, or undefined when its file is missing. */
export async function readBundledStyle(name: StyleName): Promise<Buffer | undefined> {
  const file = path.join(STYLES_DIR, `${name}.png`);
  return existsSync(file) ? readFile(file) : undefined;
}

type Colour = readonly [number, number, number];

// Palettes chosen for strong, distinct textures (bold primaries, neon, ink, earth).
const PALETTES: Record<StyleName, readonly Colour[]> = {
  mosaic: [[230, 57, 70], [241, 250, 238], [69, 123, 157], [29, 53, 87], [244, 162, 97], [42, 157, 143]],
  stripes: [[255, 0, 110], [251, 86, 7], [255, 190, 11], [58, 134, 255], [131, 56, 236]],
  waves: [[0, 18, 51], [0, 119, 182], [144, 224, 239], [255, 255, 255]],
  dots: [[255, 214, 10], [255, 0, 84], [0, 0, 0], [255, 255, 255]],
  marble: [[38, 38, 38], [120, 94, 70], [224, 214, 196], [250, 248, 242]],
};

/** Draws a bundled style procedurally (deterministic): `size`² RGB. */
export function drawStyle(name: StyleName, size = 256): Rgb {
  const data = new Uint8Array(size * size * 3);
  const pal = PALETTES[name];
  const put = (x: number, y: number, c: Colour) => data.set(c, (y * size + x) * 3);
  const rng = mulberry32(STYLE_NAMES.indexOf(name) + 11);
  const lerp = (a: Colour, b: Colour, t: number): Colour => [0, 1, 2].map((i) => Math.round(a[i]! + (b[i]! - a[i]!) * t)) as unknown as Colour;
  const ramp = (t: number): Colour => {
    const u = Math.max(0, Math.min(0.9999, t)) * (pal.length - 1);
    const i = Math.floor(u);
    return lerp(pal[i]!, pal[i + 1] ?? pal[i]!, u - i);
  };
  switch (name) {
    case 'mosaic': {
      // Voronoi cells with dark grout: stained glass.
      const seeds = Array.from({ length: 70 }, () => ({ x: rng() * size, y: rng() * size, c: pal[Math.floor(rng() * pal.length)]! }));
      for (let y = 0; y < size; y++) {
        for (let x = 0; x < size; x++) {
          let d1 = Infinity;
          let d2 = Infinity;
          let c: Colour = pal[0]!;
          for (const s of seeds) {
            const d = (s.x - x) ** 2 + (s.y - y) ** 2;
            if (d < d1) {
              d2 = d1;
              d1 = d;
              c = s.c;
            } else if (d < d2) d2 = d;
          }
          put(x, y, Math.sqrt(d2) - Math.sqrt(d1) < 2.2 ? [20, 20, 24] : c);
        }
      }
      break;
    }
    case 'stripes': {
      // Bent diagonal bands of neon colour.
      for (let y = 0; y < size; y++) {
        for (let x = 0; x < size; x++) {
          const v = (x + y + 18 * Math.sin(y / 17) + 10 * Math.sin(x / 23)) / 14;
          put(x, y, pal[Math.floor(((v % pal.length) + pal.length) % pal.length)]!);
        }
      }
      break;
    }
    case 'waves': {
      // Interference of three circular waves: a Hokusai-blue ripple field.
      const centres = [0, 1, 2].map(() => ({ x: rng() * size, y: rng() * size, k: 0.12 + rng() * 0.1 }));
      for (let y = 0; y < size; y++) {
        for (let x = 0; x < size; x++) {
          let v = 0;
          for (const c of centres) v += Math.sin(Math.hypot(x - c.x, y - c.y) * c.k);
          put(x, y, ramp((v / 3 + 1) / 2));
        }
      }
      break;
    }
    case 'dots': {
      // Pop-art halftone: dot radius follows a smooth field, on a rotated grid.
      const cell = 12;
      const a = Math.PI / 6;
      for (let y = 0; y < size; y++) {
        for (let x = 0; x < size; x++) {
          const u = x * Math.cos(a) + y * Math.sin(a);
          const v = -x * Math.sin(a) + y * Math.cos(a);
          const cu = (Math.floor(u / cell) + 0.5) * cell;
          const cv = (Math.floor(v / cell) + 0.5) * cell;
          const field = 0.5 + 0.5 * Math.sin(x / 40) * Math.cos(y / 33);
          const r = cell * 0.5 * (0.25 + 0.75 * field);
          const inside = Math.hypot(u - cu, v - cv) < r;
          const band = Math.floor((x + y) / (size / 2)) % 2;
          put(x, y, inside ? pal[band === 0 ? 1 : 2]! : pal[band === 0 ? 0 : 3]!);
        }
      }
      break;
    }
    case 'marble': {
      // Turbulent sine veins (value-noise turbulence), the classic procedural marble.
      const g = 8;
      const lattice = Float32Array.from({ length: g * g }, () => rng());
      const noise = (x: number, y: number) => {
        const fx = (x / size) * g;
        const fy = (y / size) * g;
        const ix = Math.floor(fx) % g;
        const iy = Math.floor(fy) % g;
        const tx = fx - Math.floor(fx);
        const ty = fy - Math.floor(fy);
        const s = (t: number) => t * t * (3 - 2 * t);
        // Wrapping lattice: the pattern tiles seamlessly, including across octaves.
        const at = (i: number, j: number) => lattice[(j % g) * g + (i % g)]!;
        const top = at(ix, iy) + (at(ix + 1, iy) - at(ix, iy)) * s(tx);
        const bottom = at(ix, iy + 1) + (at(ix + 1, iy + 1) - at(ix, iy + 1)) * s(tx);
        return top + (bottom - top) * s(ty);
      };
      for (let y = 0; y < size; y++) {
        for (let x = 0; x < size; x++) {
          let turb = 0;
          for (let o = 1; o <= 4; o *= 2) turb += noise((x * o) % size, (y * o) % size) / o;
          const v = Math.abs(Math.sin((x + y) / 24 + turb * 2.5));
          put(x, y, ramp(v));
        }
      }
      break;
    }
  }
  return { data, width: size, height: size };
}
