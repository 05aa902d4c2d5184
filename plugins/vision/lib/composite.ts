/**
 * Scene compositing: a studio shot's shoe cut out of its white background and pasted, smaller and off-centre,
 * onto another background. Two users:
 * - training (`train:defaults --scene-augment N`, {@link sceneBackground}): every development photo is a
 *   white product shot while users post phone photos on floors, beds, tables and shop shelves, so heads see
 *   composites too and learn what the normalisation leaves of such backgrounds (grey halos, floor islands,
 *   clutter GrabCut kept);
 * - the background-shift test (scripts/eval-shift.ts), which uses its own background generators (grey wall,
 *   lit floor, shelf of blocks) that the training scenes deliberately do not include, so that test still
 *   measures generalisation to backgrounds the heads never saw.
 */
import sharp from 'sharp';
import type { Box, RawImage } from '../../../engine/ml/types.ts';
import { seededRandom } from '../../../engine/random.ts';

/** A generator of `w`×`h` RGB backgrounds from a random stream. */
export type BackgroundFn = (w: number, h: number, random: () => number) => Uint8Array;

/** Options of {@link pasteShoe}. */
export interface PasteOptions {
  /** Output size (default 320×240, a phone photo's aspect). */
  readonly width?: number;
  readonly height?: number;
  /** The shoe's width as a share of the frame's, drawn uniformly from this range (default 0.45–0.75). */
  readonly scale?: readonly [number, number];
  /** Probability of mirroring the shoe (default 0.5). */
  readonly mirror?: number;
  /** Draw a soft contact shadow under the shoe (default false: the shift test's composites have none). */
  readonly shadow?: boolean;
  /** Also draw the other shoe of the pair (the mirror image, beside and a little behind), as phone photos often show. */
  readonly pair?: boolean;
  /**
   * Turn the shoe by this many degrees (clockwise as displayed) before placing it, as a phone photo of a shoe
   * lying diagonally on a floor, or toe-up on a foot, shows it (default 0). The shoe keeps the size it would
   * have unturned; the turned patch shrinks only when it would not fit the frame.
   */
  readonly rotate?: number;
  /**
   * Wear the shoe (default false): a trouser leg comes down from the top of the frame and covers the collar, as
   * in the "on feet" photos sneaker communities post. With `pair`, both shoes are worn. Leg pixels are not shoe
   * in the returned mask.
   */
  readonly worn?: boolean;
}

const clamp255 = (v: number): number => (v < 0 ? 0 : v > 255 ? 255 : v);

/**
 * Pastes the shoe of a white-background photo onto `background`: resized to a random share of the frame,
 * at a random position, mirrored at random. The matte is the near-white region connected to the border
 * (flood fill), so white parts inside the shoe (soles, panels) stay.
 */
export async function pasteShoe(raw: RawImage, background: BackgroundFn, random: () => number, opts: PasteOptions = {}): Promise<RawImage> {
  return (await pasteShoePlaced(raw, background, random, opts)).image;
}

/**
 * {@link pasteShoe}, also returning where the (main) shoe landed: the box of its matted pixels in the frame,
 * the ground truth for measuring how well the normaliser finds it (scripts/eval-segment.ts), and a `W*H` mask
 * of every drawn shoe pixel, the pair's too (1 = shoe): the labels the shoe localiser learns from.
 */
export async function pasteShoePlaced(
  photo: RawImage,
  background: BackgroundFn,
  random: () => number,
  opts: PasteOptions = {},
): Promise<{ image: RawImage; box: Box; mask: Uint8Array }> {
  const W = opts.width ?? 320;
  const H = opts.height ?? 240;
  const [lo, hi] = opts.scale ?? [0.45, 0.75];
  // The drawn width share, reduced when the shoe would not fit the frame's height (aspect kept).
  let scale = Math.min((W * (lo + random() * (hi - lo))) / photo.width, (H - 4) / photo.height);
  let raw = photo;
  if (opts.rotate !== undefined && opts.rotate % 360 !== 0) {
    // Turned on white: the corners the turn opens are white like the studio backdrop, so the matte drops them.
    const turned = await sharp(Buffer.from(raw.data), { raw: { width: raw.width, height: raw.height, channels: 3 } })
      .rotate(opts.rotate, { background: '#ffffff' })
      .raw()
      .toBuffer({ resolveWithObject: true });
    raw = { data: turned.data, width: turned.info.width, height: turned.info.height, channels: 3 };
    // The shoe keeps the size it would have unturned; the turned patch shrinks only when it would not fit.
    scale = Math.min(scale, W / raw.width, (H - 4) / raw.height);
  }
  const sw = Math.max(8, Math.min(W, Math.round(raw.width * scale)));
  const sh = Math.max(8, Math.min(H - 4, Math.round(raw.height * scale)));
  let shoe = sharp(Buffer.from(raw.data), { raw: { width: raw.width, height: raw.height, channels: 3 } }).resize(sw, sh, { fit: 'fill' });
  if (random() < (opts.mirror ?? 0.5)) shoe = shoe.flop();
  const small = await shoe.raw().toBuffer();
  const bg = background(W, H, random);
  const ox = Math.floor(random() * (W - sw + 1));
  const oy = Math.floor(random() * (H - sh + 1));
  const outside = borderMatte(small, sw, sh);
  const mask = new Uint8Array(W * H);
  if (opts.pair) {
    // The other shoe of the pair: mirrored, beside and a little behind (drawn first, so the main one covers it).
    const other = new Uint8Array(small.length);
    const otherOutside = new Uint8Array(outside.length);
    for (let y = 0; y < sh; y++) {
      for (let x = 0; x < sw; x++) {
        const from = y * sw + (sw - 1 - x);
        otherOutside[y * sw + x] = outside[from]!;
        other.set(small.subarray(from * 3, from * 3 + 3), (y * sw + x) * 3);
      }
    }
    const dx = Math.round((random() < 0.5 ? -1 : 1) * sw * (0.3 + random() * 0.3));
    const dy = -Math.round(sh * (0.05 + random() * 0.15));
    if (opts.shadow) castShadow(bg, W, H, otherOutside, sw, sh, ox + dx, oy + dy, 0.3);
    blit(bg, W, H, other, otherOutside, sw, sh, ox + dx, oy + dy, mask);
    if (opts.worn) drawLeg(bg, W, H, otherOutside, sw, sh, ox + dx, oy + dy, random, mask);
  }
  if (opts.shadow) castShadow(bg, W, H, outside, sw, sh, ox, oy, 0.25 + random() * 0.35);
  blit(bg, W, H, small, outside, sw, sh, ox, oy, mask);
  if (opts.worn) drawLeg(bg, W, H, outside, sw, sh, ox, oy, random, mask);
  return { image: { data: bg, width: W, height: H, channels: 3 }, box: matteBox(outside, sw, sh, ox, oy, W, H), mask };
}

/** Trouser colours: denim, dark denim, black, charcoal, khaki, olive, grey joggers, navy. */
const TROUSERS: readonly (readonly [number, number, number])[] = [
  [62, 82, 122],
  [36, 46, 72],
  [28, 28, 32],
  [70, 70, 76],
  [165, 145, 105],
  [92, 96, 62],
  [150, 150, 156],
  [32, 36, 62],
];

/**
 * Draws a trouser leg from the top of the frame down over the collar of a matted shoe drawn at (ox, oy). The
 * collar is at the heel end, which a side view shows as the higher end of the shoe's top edge; the leg is a
 * tapered band (shaded like a cylinder, with grain and a few folds near the hem) centred a quarter of the shoe's
 * length from the heel, reaching 10–25 % of the shoe's height below the collar. Clears `mask` under the leg.
 */
function drawLeg(bg: Uint8Array, W: number, H: number, outside: Uint8Array, sw: number, sh: number, ox: number, oy: number, random: () => number, mask: Uint8Array): void {
  const top = new Int32Array(sw).fill(-1);
  let x0 = -1;
  let x1 = -1;
  for (let x = 0; x < sw; x++) {
    for (let y = 0; y < sh; y++) {
      if (!outside[y * sw + x]) {
        top[x] = y;
        break;
      }
    }
    if (top[x]! >= 0) {
      if (x0 < 0) x0 = x;
      x1 = x;
    }
  }
  if (x0 < 0) return;
  const len = x1 - x0 + 1;
  const meanTop = (from: number, to: number): number => {
    let sum = 0;
    let n = 0;
    for (let x = from; x < to; x++) {
      if (top[x]! < 0) continue;
      sum += top[x]!;
      n++;
    }
    return n > 0 ? sum / n : sh;
  };
  const quarter = Math.max(1, Math.round(len / 4));
  const heelLeft = meanTop(x0, x0 + quarter) <= meanTop(x1 + 1 - quarter, x1 + 1);
  const along = len * (0.2 + random() * 0.15);
  const cx = heelLeft ? x0 + along : x1 - along;
  const half = (len * (0.15 + random() * 0.08)) / 2 + len * 0.04;
  // The collar: the highest shoe pixel under the leg; the hem reaches below it.
  let collar = sh;
  for (let x = Math.max(0, Math.floor(cx - half)); x <= Math.min(sw - 1, Math.ceil(cx + half)); x++) if (top[x]! >= 0) collar = Math.min(collar, top[x]!);
  const hem = oy + collar + sh * (0.1 + random() * 0.15);
  const bottomX = ox + cx;
  // The leg leans a little and widens upwards (a trouser, not a sock).
  const topX = bottomX + (random() - 0.5) * sh * 0.8;
  const topHalf = half * (1.15 + random() * 0.4);
  const base = TROUSERS[Math.floor(random() * TROUSERS.length)]!;
  const tint = base.map((c) => c + (random() - 0.5) * 30);
  const folds = Array.from({ length: 2 + Math.floor(random() * 3) }, () => hem - random() * sh * 0.6);
  const yEnd = Math.min(H - 1, Math.floor(hem));
  for (let gy = 0; gy <= yEnd; gy++) {
    const t = yEnd > 0 ? gy / yEnd : 1;
    const c = topX + (bottomX - topX) * t;
    const hw = topHalf + (half - topHalf) * t;
    // A slightly curved hem: the leg's bottom edge dips towards the front.
    for (let gx = Math.max(0, Math.floor(c - hw)); gx <= Math.min(W - 1, Math.ceil(c + hw)); gx++) {
      const u = (gx - c) / hw;
      if (Math.abs(u) > 1) continue;
      if (gy > hem - 2 * (1 - u * u)) continue;
      let k = 0.7 + 0.4 * Math.sqrt(1 - u * u);
      for (const f of folds) k *= 1 - 0.25 * Math.exp(-(((gy - f) / 2) ** 2));
      const d = (gy * W + gx) * 3;
      for (let ch = 0; ch < 3; ch++) bg[d + ch] = clamp255(tint[ch]! * k + (random() - 0.5) * 12);
      mask[gy * W + gx] = 0;
    }
  }
}

/** The frame box of the shoe pixels (matte 0) of a `sw`×`sh` patch drawn at (ox, oy), clipped to the frame. */
function matteBox(outside: Uint8Array, sw: number, sh: number, ox: number, oy: number, W: number, H: number): Box {
  let x0 = Infinity;
  let y0 = Infinity;
  let x1 = -Infinity;
  let y1 = -Infinity;
  for (let y = 0; y < sh; y++) {
    for (let x = 0; x < sw; x++) {
      if (outside[y * sw + x]) continue;
      x0 = Math.min(x0, x);
      x1 = Math.max(x1, x + 1);
      y0 = Math.min(y0, y);
      y1 = Math.max(y1, y + 1);
    }
  }
  if (x1 < 0) return { x: ox, y: oy, width: 0, height: 0 };
  const left = Math.max(0, ox + x0);
  const top = Math.max(0, oy + y0);
  return { x: left, y: top, width: Math.max(0, Math.min(W, ox + x1) - left), height: Math.max(0, Math.min(H, oy + y1) - top) };
}

/**
 * Draws a matted shoe at (ox, oy), clipped to the frame; pixels next to the matte get a soft alpha from their
 * whiteness (anti-aliased edges).
 */
function blit(bg: Uint8Array, W: number, H: number, small: Uint8Array, outside: Uint8Array, sw: number, sh: number, ox: number, oy: number, mask: Uint8Array): void {
  for (let y = 0; y < sh; y++) {
    const gy = oy + y;
    if (gy < 0 || gy >= H) continue;
    for (let x = 0; x < sw; x++) {
      const gx = ox + x;
      const i = y * sw + x;
      if (gx < 0 || gx >= W || outside[i]) continue;
      const s = i * 3;
      const r = small[s]!;
      const g = small[s + 1]!;
      const b = small[s + 2]!;
      const nearBg = (x > 0 && outside[i - 1]) || (x < sw - 1 && outside[i + 1]) || (y > 0 && outside[i - sw]) || (y < sh - 1 && outside[i + sw]);
      const alpha = nearBg ? Math.max(0.3, Math.min(1, (250 - Math.min(r, g, b)) / 40)) : 1;
      mask[gy * W + gx] = 1;
      const d = (gy * W + gx) * 3;
      bg[d] = Math.round(r * alpha + bg[d]! * (1 - alpha));
      bg[d + 1] = Math.round(g * alpha + bg[d + 1]! * (1 - alpha));
      bg[d + 2] = Math.round(b * alpha + bg[d + 2]! * (1 - alpha));
    }
  }
}

/** 1 where a pixel is near-white and connected to the border (the studio background), else 0. */
export function borderMatte(rgb: Uint8Array, w: number, h: number): Uint8Array {
  const isWhite = (i: number): boolean => Math.min(rgb[i * 3]!, rgb[i * 3 + 1]!, rgb[i * 3 + 2]!) >= 235;
  const outside = new Uint8Array(w * h);
  const queue: number[] = [];
  for (let x = 0; x < w; x++) queue.push(x, (h - 1) * w + x);
  for (let y = 0; y < h; y++) queue.push(y * w, y * w + w - 1);
  while (queue.length > 0) {
    const i = queue.pop()!;
    if (outside[i] || !isWhite(i)) continue;
    outside[i] = 1;
    const x = i % w;
    const y = (i - x) / w;
    if (x > 0) queue.push(i - 1);
    if (x < w - 1) queue.push(i + 1);
    if (y > 0) queue.push(i - w);
    if (y < h - 1) queue.push(i + w);
  }
  return outside;
}

/**
 * Darkens the background along the shoe's lower edge: per column, a band centred on the lowest shoe pixel
 * nearby (so it spreads a little past the toe and heel), fading with distance — the contact shadow of a shoe
 * standing on a floor. Real floor photos have one; without it the pasted shoe floats.
 */
function castShadow(bg: Uint8Array, W: number, H: number, outside: Uint8Array, sw: number, sh: number, ox: number, oy: number, strength: number): void {
  // Per column: the lowest shoe pixel. The shadow is an ellipse-ish band just below it, fading with distance.
  const reach = Math.max(3, Math.round(sh * 0.12));
  for (let x = -reach; x < sw + reach; x++) {
    let bottom = -1;
    for (let dx = -reach; dx <= reach && bottom < sh - 1; dx++) {
      const cx = x + dx;
      if (cx < 0 || cx >= sw) continue;
      for (let y = sh - 1; y > bottom; y--) {
        if (!outside[y * sw + cx]) {
          bottom = y;
          break;
        }
      }
    }
    if (bottom < 0) continue;
    for (let dy = -reach; dy <= reach; dy++) {
      const gx = ox + x;
      const gy = oy + bottom + dy;
      if (gx < 0 || gx >= W || gy < 0 || gy >= H) continue;
      const fade = 1 - Math.abs(dy) / (reach + 1);
      const k = 1 - strength * fade * fade;
      const d = (gy * W + gx) * 3;
      bg[d] = Math.round(bg[d]! * k);
      bg[d + 1] = Math.round(bg[d + 1]! * k);
      bg[d + 2] = Math.round(bg[d + 2]! * k);
    }
  }
}

/** Smooth value noise in [0,1] on a grid of `cell` pixels (bilinear between random lattice values). */
function valueNoise(w: number, h: number, cell: number, random: () => number): Float32Array {
  const gw = Math.ceil(w / cell) + 2;
  const gh = Math.ceil(h / cell) + 2;
  const lattice = new Float32Array(gw * gh).map(() => random());
  const out = new Float32Array(w * h);
  for (let y = 0; y < h; y++) {
    const fy = y / cell;
    const y0 = Math.floor(fy);
    const ty = fy - y0;
    for (let x = 0; x < w; x++) {
      const fx = x / cell;
      const x0 = Math.floor(fx);
      const tx = fx - x0;
      const a = lattice[y0 * gw + x0]! * (1 - tx) + lattice[y0 * gw + x0 + 1]! * tx;
      const b = lattice[(y0 + 1) * gw + x0]! * (1 - tx) + lattice[(y0 + 1) * gw + x0 + 1]! * tx;
      out[y * w + x] = a * (1 - ty) + b * ty;
    }
  }
  return out;
}

const randomColour = (random: () => number, lo = 30, hi = 230): [number, number, number] => [lo + random() * (hi - lo), lo + random() * (hi - lo), lo + random() * (hi - lo)];

/**
 * The training scenes. None is a plain wall, a lit grain floor or a shelf of rectangular blocks: those are
 * the shift test's, kept out so that test measures backgrounds the heads never saw.
 */
export const TRAINING_SCENES = {
  /** Carpet, concrete, grass, gravel: two colours mixed by multi-octave value noise. */
  carpet: (w, h, random) => {
    const a = randomColour(random);
    const b = randomColour(random);
    const n1 = valueNoise(w, h, 24 + random() * 40, random);
    const n2 = valueNoise(w, h, 3 + random() * 5, random);
    const out = new Uint8Array(w * h * 3);
    for (let i = 0; i < w * h; i++) {
      const t = Math.min(1, Math.max(0, 0.65 * n1[i]! + 0.35 * n2[i]!));
      for (let c = 0; c < 3; c++) out[i * 3 + c] = clamp255(a[c]! * (1 - t) + b[c]! * t);
    }
    return out;
  },
  /** A tiled floor or table: square tiles with grout lines, per-tile tint, a lighting falloff. */
  tiles: (w, h, random) => {
    const base = randomColour(random, 60, 240);
    const grout = randomColour(random, 20, 200);
    const tile = 20 + Math.floor(random() * 50);
    const line = 1 + Math.floor(random() * 3);
    const tileTint = new Map<number, number>();
    const cx = random() * w;
    const cy = random() * h;
    const out = new Uint8Array(w * h * 3);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const tx = Math.floor(x / tile);
        const ty = Math.floor(y / tile);
        const key = ty * 1000 + tx;
        if (!tileTint.has(key)) tileTint.set(key, 0.88 + random() * 0.24);
        const light = 1.1 - 0.5 * Math.hypot(x - cx, y - cy) / Math.hypot(w, h);
        const isGrout = x % tile < line || y % tile < line;
        const col = isGrout ? grout : base;
        const k = (isGrout ? 1 : tileTint.get(key)!) * light;
        for (let c = 0; c < 3; c++) out[(y * w + x) * 3 + c] = clamp255(col[c]! * k);
      }
    }
    return out;
  },
  /** Bedding, denim, a rug: stripes or plaid at a random angle. */
  fabric: (w, h, random) => {
    const a = randomColour(random);
    const b = randomColour(random);
    const angle = random() * Math.PI;
    const period = 6 + random() * 30;
    const plaid = random() < 0.5;
    const ca = Math.cos(angle);
    const sa = Math.sin(angle);
    const out = new Uint8Array(w * h * 3);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const u = (x * ca + y * sa) / period;
        const v = (-x * sa + y * ca) / period;
        let t = 0.5 + 0.5 * Math.sin(u * 2 * Math.PI);
        if (plaid) t = 0.5 * t + 0.25 + 0.25 * Math.sin(v * 2 * Math.PI);
        const grain = (random() - 0.5) * 16;
        for (let c = 0; c < 3; c++) out[(y * w + x) * 3 + c] = clamp255(a[c]! * (1 - t) + b[c]! * t + grain);
      }
    }
    return out;
  },
  /** A room corner: a wall above a floor, the line between them at a random height, light from one side. */
  room: (w, h, random) => {
    const wall = randomColour(random, 120, 245);
    const floor = randomColour(random, 40, 200);
    const horizon = Math.floor(h * (0.2 + random() * 0.4));
    const side = random() < 0.5 ? 0 : w;
    const out = new Uint8Array(w * h * 3);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const light = 1.05 - 0.35 * (Math.abs(x - side) / w);
        const col = y < horizon ? wall : floor;
        const noise = (random() - 0.5) * 10;
        for (let c = 0; c < 3; c++) out[(y * w + x) * 3 + c] = clamp255(col[c]! * light + noise);
      }
    }
    return out;
  },
  /** Things lying around: filled discs and thick strokes of random colours over a noisy base. */
  clutter: (w, h, random) => {
    const base = randomColour(random, 60, 200);
    const out = new Uint8Array(w * h * 3);
    for (let i = 0; i < w * h; i++) for (let c = 0; c < 3; c++) out[i * 3 + c] = clamp255(base[c]! + (random() - 0.5) * 20);
    const things = 6 + Math.floor(random() * 14);
    for (let t = 0; t < things; t++) {
      const col = randomColour(random, 0, 255);
      if (random() < 0.6) {
        const r = 8 + random() * Math.min(w, h) * 0.3;
        const cx = random() * w;
        const cy = random() * h;
        for (let y = Math.max(0, Math.floor(cy - r)); y < Math.min(h, cy + r); y++) {
          for (let x = Math.max(0, Math.floor(cx - r)); x < Math.min(w, cx + r); x++) {
            if ((x - cx) ** 2 + (y - cy) ** 2 <= r * r) for (let c = 0; c < 3; c++) out[(y * w + x) * 3 + c] = clamp255(col[c]!);
          }
        }
      } else {
        const x0 = random() * w;
        const y0 = random() * h;
        const x1 = random() * w;
        const y1 = random() * h;
        const width = 3 + random() * 12;
        const len = Math.hypot(x1 - x0, y1 - y0) || 1;
        for (let s = 0; s <= len; s++) {
          const px = x0 + ((x1 - x0) * s) / len;
          const py = y0 + ((y1 - y0) * s) / len;
          for (let y = Math.max(0, Math.floor(py - width / 2)); y < Math.min(h, py + width / 2); y++) {
            for (let x = Math.max(0, Math.floor(px - width / 2)); x < Math.min(w, px + width / 2); x++) for (let c = 0; c < 3; c++) out[(y * w + x) * 3 + c] = clamp255(col[c]!);
          }
        }
      }
    }
    return out;
  },
} satisfies Record<string, BackgroundFn>;

/** The names of the training scenes. */
export type SceneName = keyof typeof TRAINING_SCENES;

/**
 * The background-shift test's own backgrounds (scripts/eval-shift.ts, scripts/eval-segment.ts): a plain grey
 * wall, a lit floor with grain, a busy shelf of coloured blocks. Never used for training (the
 * {@link TRAINING_SCENES} deliberately exclude them), so that test measures backgrounds the heads never saw.
 */
export const SHIFT_BACKGROUNDS = {
  grey: (w, h, random) => {
    const out = new Uint8Array(w * h * 3);
    const g = 90 + random() * 110;
    const tint = [g + (random() - 0.5) * 20, g + (random() - 0.5) * 20, g + (random() - 0.5) * 20];
    for (let i = 0; i < w * h; i++) for (let c = 0; c < 3; c++) out[i * 3 + c] = Math.max(0, Math.min(255, tint[c]! + (random() - 0.5) * 10));
    return out;
  },
  floor: (w, h, random) => {
    // A lit floor: vertical brightness gradient, a base colour (wood/concrete/tile) and grain.
    const out = new Uint8Array(w * h * 3);
    const base = [100 + random() * 100, 80 + random() * 90, 60 + random() * 90];
    const freq = 0.05 + random() * 0.2;
    for (let y = 0; y < h; y++) {
      const light = 0.7 + 0.5 * (y / h);
      for (let x = 0; x < w; x++) {
        const grain = Math.sin((x + y * 0.3) * freq) * 12 + (random() - 0.5) * 24;
        for (let c = 0; c < 3; c++) out[(y * w + x) * 3 + c] = Math.max(0, Math.min(255, base[c]! * light + grain));
      }
    }
    return out;
  },
  busy: (w, h, random) => {
    // Overlapping coloured blocks (shelves, boxes, clothes) over a mid-grey, plus noise.
    const out = new Uint8Array(w * h * 3).fill(120);
    const blocks = 12 + Math.floor(random() * 20);
    for (let b = 0; b < blocks; b++) {
      const bw = Math.floor(w * (0.1 + random() * 0.4));
      const bh = Math.floor(h * (0.1 + random() * 0.4));
      const x0 = Math.floor(random() * (w - bw));
      const y0 = Math.floor(random() * (h - bh));
      const col = [random() * 255, random() * 255, random() * 255];
      for (let y = y0; y < y0 + bh; y++) for (let x = x0; x < x0 + bw; x++) for (let c = 0; c < 3; c++) out[(y * w + x) * 3 + c] = col[c]!;
    }
    for (let i = 0; i < out.length; i++) out[i] = Math.max(0, Math.min(255, out[i]! + (random() - 0.5) * 30));
    return out;
  },
} satisfies Record<string, BackgroundFn>;

/** The names of the shift test's backgrounds. */
export type ShiftBackgroundName = keyof typeof SHIFT_BACKGROUNDS;

/** A cheap content hash of pixels (FNV-1a over a stride), so each image gets its own scene from one seed. */
function pixelSeed(data: ArrayLike<number>): number {
  let h = 0x811c9dc5;
  const step = Math.max(1, Math.floor(data.length / 4096));
  for (let i = 0; i < data.length; i += step) {
    h ^= data[i]!;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * A training composite: the image's shoe on one of the {@link TRAINING_SCENES}, chosen with its placement
 * from `seed` and the image's own pixels (one seed gives every image a different scene, deterministically,
 * so the embedding can be cached under the seed). Soft contact shadow (70 %), the pair (30 %), worn under a
 * trouser leg ({@link SCENE_WORN_SHARE}: 30 %), the shoe 35–90 % of the frame width.
 */
export async function sceneComposite(raw: RawImage, seed: number): Promise<RawImage> {
  return (await sceneCompositePlaced(raw, seed)).image;
}

/**
 * {@link sceneComposite} with where the shoe landed (see {@link pasteShoePlaced}) and whether it is worn;
 * `opts.worn` forces that decision (the rest of the scene stays the seed's).
 */
export async function sceneCompositePlaced(
  raw: RawImage,
  seed: number,
  opts: { readonly worn?: boolean } = {},
): Promise<{ image: RawImage; box: Box; mask: Uint8Array; worn: boolean }> {
  const random = seededRandom((Math.imul(seed, 0x9e3779b1) ^ pixelSeed(raw.data)) >>> 0);
  const names = Object.keys(TRAINING_SCENES) as SceneName[];
  const name = names[Math.floor(random() * names.length)]!;
  // Phone photos come in landscape and portrait, and often show the pair.
  const portrait = random() < 0.4;
  const pair = random() < 0.3;
  // Sneaker communities post many "on feet" photos, so a share of scenes is worn. The decision comes from its own
  // stream and the leg is drawn after the shoe, so every scene that is not worn stays byte-identical to the
  // scenes before legs were added (what the legs buy is then measured on the worn share alone).
  const worn = opts.worn ?? seededRandom((Math.imul(seed, 0x85ebca6b) ^ pixelSeed(raw.data) ^ 0x5bd1e995) >>> 0)() < SCENE_WORN_SHARE;
  const placed = await pasteShoePlaced(raw, TRAINING_SCENES[name], random, {
    width: portrait ? 240 : 320,
    height: portrait ? 320 : 240,
    scale: pair ? [0.35, 0.6] : [0.4, 0.9],
    shadow: random() < 0.7,
    pair,
    worn,
  });
  return { ...placed, worn };
}

/** Share of training scenes whose shoe is worn (a trouser leg over the collar; see {@link PasteOptions.worn}). */
export const SCENE_WORN_SHARE = 0.3;

/**
 * The frame of a served training composite ({@link turnedComposite}, {@link pairWornComposite}): landscape (49 %),
 * portrait (30 %) or square (21 %), on one of the {@link TRAINING_SCENES}. Drawn in this order from `random`, so the
 * composites stay the ones the shipped heads and angle file learnt from.
 */
function servedFrame(random: () => number): { scene: BackgroundFn; width: number; height: number } {
  const portrait = random() < 0.3;
  const square = !portrait && random() < 0.3;
  const names = Object.keys(TRAINING_SCENES) as SceneName[];
  const scene = TRAINING_SCENES[names[Math.floor(random() * names.length)]!];
  return { scene, width: portrait ? 240 : 320, height: portrait || square ? 320 : 240 };
}

/**
 * A training composite turned as users' photos are: the shoe on one of the {@link TRAINING_SCENES}, turned 30 % of
 * the time within ±15°, 40 % tilted 20–90° either way, 30 % by any angle (a floor shot from above, a shoe toe-up on a
 * foot, a photo taken sideways), never mirrored, landscape, portrait or square, the shoe 35–80 % of the frame
 * width, with a contact shadow (70 %), the pair (20 %) or worn (20 %). `turn` is the clockwise turn as displayed.
 * Used by train:angle (what the learnt turn learns from) and by the heads' turned training views.
 */
export async function turnedComposite(raw: RawImage, random: () => number): Promise<{ image: RawImage; turn: number }> {
  const u = random();
  const turn = u < 0.3 ? (random() - 0.5) * 30 : u < 0.7 ? (random() < 0.5 ? -1 : 1) * (20 + random() * 70) : random() * 360 - 180;
  const { scene, width, height } = servedFrame(random);
  const image = await pasteShoe(raw, scene, random, {
    width,
    height,
    scale: [0.35, 0.8],
    mirror: 0,
    rotate: turn,
    shadow: random() < 0.7,
    pair: random() < 0.2,
    worn: random() < 0.2,
  });
  return { image, turn };
}

/**
 * A training composite of the photos users find hardest after tilted ones: a pair in frame or a shoe worn (the
 * weakest level columns of the shift test, assets/models/README.md "Pairs and worn shoes"). The shoe lies on one of
 * the {@link TRAINING_SCENES}, nearly level (within ±10°, as a phone held by hand frames it), never mirrored,
 * landscape, portrait or square, with a contact shadow (70 %), and always a pair (40 %), worn (35 %) or a worn pair
 * (25 %) — in {@link sceneComposite} each is a minority (30 % each), so a head sees few of them.
 * Used by the heads' pair-and-worn training views (`train:defaults --pair-worn-copies`).
 */
export async function pairWornComposite(raw: RawImage, random: () => number): Promise<{ image: RawImage; turn: number; pair: boolean; worn: boolean }> {
  const u = random();
  const pair = u < 0.4 || u >= 0.75;
  const worn = u >= 0.4;
  const turn = (random() - 0.5) * 20;
  const { scene, width, height } = servedFrame(random);
  const image = await pasteShoe(raw, scene, random, {
    width,
    height,
    scale: pair ? [0.35, 0.6] : [0.4, 0.85],
    mirror: 0,
    rotate: turn,
    shadow: random() < 0.7,
    pair,
    worn,
  });
  return { image, turn, pair, worn };
}
