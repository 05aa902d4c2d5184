/**
 * The study's image pipeline, used identically at training and at inference:
 *
 * 1. **Background**: estimate the border colour; when the border is near-uniform and light (a studio
 *    backdrop), flood-fill the background from the border; otherwise (busy, or a darker near-uniform border
 *    such as a carpet, a rug or a table top) segment with GrabCut. Then find the object's bounding box and
 *    paint the background white. With `segment: false` non-studio backgrounds are left alone.
 * 2. **Orientation** (Sneaker-ML): grayscale → Canny edges → probabilistic Hough lines; the length-weighted
 *    sign of the sloped lines tells which way the toe line runs. Combined with the silhouette's height
 *    profile (a side-view sneaker is tall at the heel collar and low at the toe) when a mask exists. The
 *    image is mirrored so the toe points RIGHT (the majority of hyped resale shots).
 * 3. **Upright** (opt-in, `upright`): when the silhouette is clearly elongated and its sole (the straighter
 *    long edge) runs far from level — a shoe photographed diagonally on a floor, or toe-up on a foot — turn
 *    the photo so the sole is level and at the bottom; a level shoe standing on its collar, with a clearly
 *    straighter edge on top, is turned over. Studio side views sit within the threshold and pass unchanged.
 *    Where the localiser's box is the object (a small shoe GrabCut alone would not believe), GrabCut's object
 *    inside the box is the silhouette it measures. Bump {@link UPRIGHT_VERSION} when its decisions change.
 * 4. **Framing**: crop a square around the object with a margin (padding with white), resize to the backbone
 *    size with area resampling, output floats in [0,1].
 *
 * Bump {@link PREP_VERSION} whenever the output for the same input changes: cached embeddings are keyed by it.
 */
import { EngineError } from '../errors.ts';
import { getCv, withMats, type Cv } from './opencv.ts';
import type { Box, ModelInput, RawImage } from './types.ts';

/** Version of the preprocessing behaviour (part of every embedding cache key). */
export const PREP_VERSION = 3;

/** Options of {@link preprocess}. */
export interface PreprocessOptions {
  /** Output side in pixels (the backbone's input size: 224 MobileNetV2, 299 InceptionV3). */
  readonly size: number;
  /** Mirror so the toe points right (default true). */
  readonly orient?: boolean;
  /** Crop to the object and whiten its background (default true). */
  readonly crop?: boolean;
  /**
   * On a busy background (a floor, a shop, a street), find the object with GrabCut and treat the rest as
   * background (default true). Off: busy photos are only padded to a square.
   */
  readonly segment?: boolean;
  /**
   * Flood-fill ANY near-uniform border, not only a light one (normaliser v2's rule; default false). Training
   * only: on a patterned floor it leaves patches of floor around the shoe, and heads that learn from such
   * "remnant" crops of scene composites transfer better across sources (assets/models/README.md).
   */
  readonly floodAnyUniform?: boolean;
  /**
   * Where a shoe localiser (plugins/vision/lib/localise.ts) thinks the object is, in original pixels. Used only
   * off a studio backdrop: GrabCut starts from this box (grown by a margin) instead of the whole frame, and when
   * GrabCut's object disagrees with it (box IoU below 0.5) the box itself is the object. Part of the caller's
   * cache key: the same photo with and without a hint are different inputs.
   */
  readonly objectHint?: Box;
  /**
   * Turn the shoe upright before framing (default false): when the object's silhouette is elongated (axis
   * ratio at least {@link UPRIGHT_MIN_ELONGATION}) and its sole — the straighter of its two long edges — runs
   * more than {@link UPRIGHT_MIN_DEG} from level (or it is level but upside down, on clear evidence), turn the
   * photo so the sole is level and at the bottom. The
   * heads learnt from side views on a level sole; users photograph shoes at any angle. See {@link uprightEvidence}.
   */
  readonly upright?: boolean;
  /**
   * Turn the photo by exactly this many degrees (counter-clockwise as displayed) before framing, instead of what
   * the upright step would measure; 0 leaves it as it is. For a turn found elsewhere: the learnt turn
   * (plugins/vision/lib/angle.ts) reads from the backbone's embedding how far a shoe the step left alone is still
   * turned. Part of {@link prepCacheKey}.
   */
  readonly turn?: number;
}

/** How the background was handled (see {@link PreprocessResult.background}). */
export type BackgroundKind = 'uniform' | 'segmented' | 'located' | 'busy';

/** Which way the toe points in the ORIGINAL image. */
export type ToeDirection = 'left' | 'right' | 'unknown';

/** What the orientation step found. */
export interface OrientationEvidence {
  /** Toe direction in the original image. */
  readonly toe: ToeDirection;
  /** Combined evidence in [-1,1]; positive means the toe points right. */
  readonly score: number;
  /** Hough cue in [-1,1] (length-weighted sign of sloped edge lines), 0 without lines. */
  readonly houghScore: number;
  /** Silhouette cue in [-1,1] (heel taller than toe), 0 without a foreground mask. */
  readonly shapeScore: number;
  /** Length-weighted mean angle of the sloped lines on the winning side, degrees, image coordinates (y down). */
  readonly angle: number;
  /** Number of Hough lines used. */
  readonly lines: number;
}

/** What the orientation step looked at, for the study's figures (edges, Hough lines, votes). */
export interface OrientationTrace {
  /** The analysed region, in analysis pixels (the object's box, or the whole analysis image). */
  region: Box;
  /** That region's RGB pixels. */
  image: Uint8Array;
  /** Its Canny edge map (0/255). */
  edges: Uint8Array;
  /** Hough segments in region coordinates; `vote` +1 = toe right, -1 = toe left, 0 = ignored (flat/steep). */
  segments: { x1: number; y1: number; x2: number; y2: number; vote: -1 | 0 | 1 }[];
}

/** The output of {@link preprocess}. */
export interface PreprocessResult extends ModelInput {
  /** `size*size*3` floats in [0,1], RGB, row-major. */
  readonly tensorData: Float32Array;
  readonly size: number;
  /** Whether the output was mirrored (the toe pointed left). */
  readonly mirrored: boolean;
  /** The dominant toe-line angle in degrees (see {@link OrientationEvidence.angle}). */
  readonly angle: number;
  /** The orientation evidence (also computed when `orient` is false, for reporting). */
  readonly orientation: OrientationEvidence;
  /**
   * The object's bounding box in the pixels of the frame (the original image, or the rotated one when
   * `rotation` is not 0); the whole frame when none was found or `crop` is off.
   */
  readonly bbox: Box;
  /** The square region of the frame (may extend past its edges) that maps onto the output, before mirroring. */
  readonly crop: Box;
  /** Degrees the photo was turned by the upright step (counter-clockwise as displayed); 0 when it was not. */
  readonly rotation: number;
  /**
   * With a rotation: the affine map `[a, b, c, d, e, f]` from original pixels (x, y) to frame pixels
   * (a·x + b·y + c, d·x + e·y + f), where `bbox` and `crop` live; absent when the frame is the original.
   */
  readonly frame?: readonly number[];
  /**
   * `uniform`: near-uniform light border (a studio backdrop), background flood-filled, whitened and cropped;
   * `segmented`: any other border, object found by GrabCut, background whitened and cropped; `located`: the
   * same, but GrabCut missed and the `objectHint` box is the object (whitened outside it); `busy`: left as is
   * (segmentation off or implausible).
   */
  readonly background: BackgroundKind;
  /** The estimated background colour (median of the border). */
  readonly backgroundColor: readonly [number, number, number];
}

/**
 * Version of the upright step, part of cache keys with `upright`: bump when its decisions change (2: a level
 * shoe on its collar is turned over; a shoe the localiser's box frames is measured from GrabCut's object inside
 * the box).
 */
export const UPRIGHT_VERSION = 2;

/** The string to key caches with: version plus the options that change the output. */
export function prepCacheKey(opts: PreprocessOptions): string {
  const flag = (v: boolean | undefined): number => (v === false ? 0 : 1);
  return `p${PREP_VERSION}-${opts.size}-o${flag(opts.orient)}c${flag(opts.crop)}s${flag(opts.segment)}${opts.floodAnyUniform === true ? 'u' : ''}${opts.upright === true ? `r${UPRIGHT_VERSION}` : ''}${opts.turn !== undefined ? `t${opts.turn.toFixed(1)}` : ''}`;
}

// Tunables, chosen on generated silhouettes and checked on the dev set (see the ml-runtime report).
const ANALYSIS_SIDE = 256; // analysis runs on a copy whose longest side is at most this
const BORDER_TOLERANCE = 32; // max per-channel difference from the border colour to count as background
const UNIFORM_FRACTION = 0.8; // share of border pixels near the median for the border to be "uniform"
// Darkest channel of the border's median colour for a uniform border to count as a studio backdrop. Below it
// (a carpet, a rug, tiles, a table) the border often passes the uniformity test while the floor holds
// patches of other colours that the flood fill keeps as "object" (box IoU 0.44 on carpet composites, 0.96 with
// GrabCut: scripts/eval-segment.ts), so GrabCut handles it. Augmentation tints (200–255) stay studio.
const STUDIO_MIN_LEVEL = 180;
const MIN_OBJECT_FRACTION = 0.005; // smaller foregrounds are noise: treat as "no object"
const CROP_MARGIN = 0.06; // margin around the object, as a share of its longer side
const SLOPE_MIN_DEG = 8; // lines flatter than this are soles/horizons, not the toe line
const SLOPE_MAX_DEG = 70; // steeper lines are heels, tongues and verticals
const DECISION_THRESHOLD = 0.08; // |score| below this: orientation unknown, do not mirror
const SHAPE_WEIGHT_UNIFORM = 0.5; // weight of the silhouette cue against the Hough cue
const SHAPE_WEIGHT_SEGMENTED = 0.25;
const SEGMENT_SIDE = 128; // GrabCut runs on a copy at most this large (it is the slowest step)
const SEGMENT_MIN = 0.04; // a GrabCut foreground outside [min, max] of the frame is not trusted
const SEGMENT_MAX = 0.85;
const HINT_MARGIN = 0.1; // GrabCut's rectangle: the hint grown by this share of its size on every side
const HINT_AGREEMENT = 0.5; // GrabCut's box must overlap the hint this much (IoU) to be believed
/**
 * Upright step: the silhouette's long/short axis ratio (square root of the second-moment eigenvalues) below
 * which its axis is not trusted: a shoe seen from the front or the back is not elongated, and boots and
 * high-tops (ratio 1.6–1.8) have a straight shaft that passes for a sole. Side-view sneakers on the dev set:
 * median 2.1–2.3.
 */
export const UPRIGHT_MIN_ELONGATION = 1.8;
/** Upright step: sole tilts up to this many degrees are left alone (studio "hero" shots tilt the shoe). */
export const UPRIGHT_MIN_DEG = 30;
/**
 * Upright step: how much straighter one long edge of the silhouette must be than the other (|sole score|, see
 * {@link SilhouetteAxis.sole}) for it to be taken as the sole. Upright studio sneakers score 0.9 (median); on
 * GrabCut's rougher masks of a shoe on a floor the sign stays right but the score drops to 0.1–0.4.
 */
const UPRIGHT_MIN_SOLE = 0.05;
/**
 * Upright step: a level shoe upside down is turned over only when its sole score is at least this clear. Measured
 * with scripts/probe-upright.ts: it turns over none of 1,354 level studio photos and none of 231 level shoes on a
 * grey wall (0.2 would turn 1 and 3, 0.05 6 and 3), and 42 of the 44 upside-down ones of `grey+spin`.
 */
const UPRIGHT_FLIP_SOLE = 0.4;
/** Upright step, where the localiser's box is the object: GrabCut's object must fill this share of the box to be measured. */
const LOCATED_SILHOUETTE_MIN = 0.2;
/** Slices along the long axis for the sole test. */
const SOLE_BINS = 32;

/**
 * Normalises one decoded image for a backbone. Pure function of its input (no randomness): the same image
 * always gives the same tensor, at training and at inference.
 */
export function preprocess(img: RawImage, opts: PreprocessOptions): Promise<PreprocessResult> {
  return run(img, opts);
}

async function run(img: RawImage, opts: PreprocessOptions, trace?: OrientationTrace): Promise<PreprocessResult> {
  const size = Math.floor(opts.size);
  if (!Number.isFinite(size) || size < 8 || size > 2048) {
    throw new EngineError('BAD_INPUT', `Preprocessing size must be 8..2048 (got ${opts.size})`);
  }
  return withImageMat(img, (cv, track, original) => {
    const analysed = analyse(cv, track, original, img.width, img.height, opts.crop !== false && opts.segment !== false, opts.crop !== false, trace, opts.floodAnyUniform === true, opts.objectHint);
    if (opts.turn !== undefined && !Number.isFinite(opts.turn)) throw new EngineError('BAD_INPUT', `Preprocessing turn must be a finite number of degrees (got ${opts.turn})`);
    const axis = opts.turn === undefined && opts.upright === true && analysed.silhouette !== null ? silhouetteAxis(analysed.silhouette, analysed.aw, analysed.ah) : null;
    const turn = opts.turn !== undefined ? opts.turn : axis === null ? 0 : uprightTurn(axis);
    // Without a background mask (segmentation off) there is nothing to frame a turned photo by: left as it is.
    const turned = turn % 360 === 0 || analysed.background === null ? null : turnFrame(cv, track, original, img.width, img.height, analysed, turn);
    const { src, width, height, a } = turned ?? { src: original, width: img.width, height: img.height, a: analysed };
    const { scale, aw, ah, background, orientation, border } = a;
    const smallBox = a.box;
    const mirrored = opts.orient !== false && orientation.toe === 'left';

    // Object box and square crop in original pixels.
    const bbox: Box =
      smallBox === null
        ? { x: 0, y: 0, width, height }
        : clampBox(
            {
              x: smallBox.x / scale,
              y: smallBox.y / scale,
              width: smallBox.width / scale,
              height: smallBox.height / scale,
            },
            width,
            height,
          );
    const crop = squareAround(bbox, smallBox === null ? 0 : CROP_MARGIN);

    const out = renderCrop(cv, track, src, width, height, crop, size);
    if (background !== null) whitenBackground(out.data, size, background, aw, ah, crop, scale);
    if (mirrored) cv.flip(out, out, 1);

    const tensorData = new Float32Array(size * size * 3);
    const bytes = out.data;
    for (let i = 0; i < tensorData.length; i++) tensorData[i] = bytes[i]! / 255;
    return {
      tensorData,
      size,
      mirrored,
      angle: orientation.angle,
      orientation,
      bbox,
      crop,
      rotation: turned === null ? 0 : turn,
      ...(turned === null ? {} : { frame: turned.frame }),
      background: a.kind,
      backgroundColor: border.color,
    };
  });
}

/** The long axis of a silhouette and which of its long edges is the sole (see {@link uprightEvidence}). */
export interface SilhouetteAxis {
  /** Long-axis direction in degrees, (-90, 90], image coordinates (y down: positive descends to the right). */
  readonly angle: number;
  /** Long/short axis ratio (square root of the eigenvalues of the second moments), at least 1. */
  readonly elongation: number;
  /**
   * Which long edge is the sole, in [-1, 1]: positive when the edge that is "down" once the axis is horizontal
   * is the straighter one (a shoe on its sole), negative when the straighter edge would be on top.
   */
  readonly sole: number;
  /** Direction of the sole edge (the straighter one) relative to the long axis, degrees, same convention. */
  readonly tilt: number;
}

/** Calls `fn(x, y)` for every object pixel (mask value 0) of a `w`×`h` background mask. */
function forObjectPixels(bg: Uint8Array, w: number, h: number, fn: (x: number, y: number) => void): void {
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) if (bg[y * w + x] === 0) fn(x, y);
  }
}

/**
 * The long axis of the object in a `w`×`h` background mask (second moments), and its extent on either side per
 * slice along that axis, from which {@link soleScore} tells the sole from the upper.
 */
function silhouetteAxis(bg: Uint8Array, w: number, h: number): SilhouetteAxis | null {
  let n = 0;
  let sx = 0;
  let sy = 0;
  forObjectPixels(bg, w, h, (x, y) => {
    n++;
    sx += x;
    sy += y;
  });
  if (n < MIN_OBJECT_FRACTION * w * h || n < 16) return null;
  const mx = sx / n;
  const my = sy / n;
  let m20 = 0;
  let m02 = 0;
  let m11 = 0;
  forObjectPixels(bg, w, h, (x, y) => {
    const dx = x - mx;
    const dy = y - my;
    m20 += dx * dx;
    m02 += dy * dy;
    m11 += dx * dy;
  });
  m20 /= n;
  m02 /= n;
  m11 /= n;
  const theta = 0.5 * Math.atan2(2 * m11, m20 - m02);
  const half = Math.sqrt(((m20 - m02) / 2) ** 2 + m11 ** 2);
  const l1 = (m20 + m02) / 2 + half;
  const l2 = Math.max(1e-9, (m20 + m02) / 2 - half);
  // Along-axis (s) and across-axis (t, pointing "down" once the image is turned by theta: see turnFrame)
  // coordinates; per slice along the axis, the object's extent on either side.
  const ux = Math.cos(theta);
  const uy = Math.sin(theta);
  const reach = 2.5 * Math.sqrt(l1);
  const bins = SOLE_BINS;
  const low = new Float64Array(bins).fill(-Infinity); // deepest t (the "down" edge)
  const high = new Float64Array(bins).fill(Infinity); // shallowest t (the "up" edge)
  forObjectPixels(bg, w, h, (x, y) => {
    const dx = x - mx;
    const dy = y - my;
    const k = Math.floor(((dx * ux + dy * uy + reach) / (2 * reach)) * bins);
    if (k < 0 || k >= bins) return;
    const t = -dx * uy + dy * ux;
    if (t > low[k]!) low[k] = t;
    if (t < high[k]!) high[k] = t;
  });
  const { score: sole, slopes } = soleScore(low, high);
  // The sole's own direction relative to the axis (a side view's axis tilts towards the low toe): per slice
  // of width 2·reach/bins, the fitted edge moves `slope` pixels across.
  const tilt = (Math.atan((sole < 0 ? slopes.up : slopes.down) / ((2 * reach) / bins)) * 180) / Math.PI;
  let angle = (theta * 180) / Math.PI;
  if (angle <= -90) angle += 180;
  return { angle: round3(angle), elongation: round3(Math.sqrt(l1 / l2)), sole: round3(sole), tilt: round3(tilt) };
}

/**
 * Which long edge of a silhouette is the sole, from its extent per slice along the axis (`low`: the edge on the
 * "down" side, `high`: the other; ±Infinity where a slice is empty): the sole is straight, the upper is not
 * (collar, tongue, laces, toe box). The residual of a straight-line fit to the middle slices of each edge gives
 * (up − down) / (up + down) in [-1, 1]: positive when the "down" edge is the straighter one.
 */
function soleScore(low: Float64Array, high: Float64Array): { score: number; slopes: { down: number; up: number } } {
  const used: number[] = [];
  for (let k = 0; k < low.length; k++) if (Number.isFinite(low[k]!)) used.push(k);
  if (used.length < 8) return { score: 0, slopes: { down: 0, up: 0 } };
  // The middle of the shoe: the rounded heel and toe ends bend both edges alike.
  const cut = Math.floor(used.length * 0.15);
  const mid = used.slice(cut, used.length - cut);
  const fit = (raw: Float64Array): { residual: number; slope: number } => {
    // A moving average over three slices first: GrabCut's mask is found at half the analysis size, and its
    // staircase along a diagonal edge would otherwise count as much as the upper's real bends.
    const edge = new Float64Array(raw.length);
    for (const k of used) {
      let sum = 0;
      let count = 0;
      for (const j of [k - 1, k, k + 1]) {
        if (j >= 0 && j < raw.length && Number.isFinite(raw[j]!)) {
          sum += raw[j]!;
          count++;
        }
      }
      edge[k] = sum / count;
    }
    const n = mid.length;
    let sx = 0;
    let sy = 0;
    let sxx = 0;
    let sxy = 0;
    for (const k of mid) {
      sx += k;
      sy += edge[k]!;
      sxx += k * k;
      sxy += k * edge[k]!;
    }
    const slope = (n * sxy - sx * sy) / Math.max(1e-9, n * sxx - sx * sx);
    const icpt = (sy - slope * sx) / n;
    let r = 0;
    for (const k of mid) r += (edge[k]! - (icpt + slope * k)) ** 2;
    return { residual: Math.sqrt(r / n), slope };
  };
  const down = fit(low);
  const up = fit(high);
  const total = up.residual + down.residual;
  return { score: total === 0 ? 0 : (up.residual - down.residual) / total, slopes: { down: down.slope, up: up.slope } };
}

/** The upright step's thresholds (see {@link UPRIGHT_RULE}); `flipSole: null` never turns a level shoe over. */
export interface UprightRule {
  readonly minElongation: number;
  readonly minSole: number;
  readonly flipSole: number | null;
}

/** The thresholds the upright step uses. */
export const UPRIGHT_RULE: UprightRule = { minElongation: UPRIGHT_MIN_ELONGATION, minSole: UPRIGHT_MIN_SOLE, flipSole: UPRIGHT_FLIP_SOLE };

/**
 * The turn (degrees, counter-clockwise as displayed) that puts the sole of an elongated, steeply tilted (or
 * upside-down) silhouette level and at the bottom; 0 to leave the image as it is. Other thresholds than the
 * step's are for measuring them (scripts/probe-upright.ts).
 */
export function uprightTurn(axis: SilhouetteAxis, rule: UprightRule = UPRIGHT_RULE): number {
  // Not elongated (a front or back view), or no clearly straighter edge (a boot's shaft, a pair): no axis to trust.
  if (axis.elongation < rule.minElongation || Math.abs(axis.sole) < rule.minSole) return 0;
  // Where the sole runs in the image (the axis of a side view tilts towards the low toe; the sole is level).
  const raw = axis.angle + axis.tilt;
  const level = raw > 90 ? raw - 180 : raw <= -90 ? raw + 180 : raw;
  // Turning by `raw` (OpenCV's counter-clockwise convention, y down) maps the sole onto the horizontal and the
  // across-axis coordinate onto "down", so a negative sole score means the shoe would stand on its collar;
  // turning by `level` instead differs by a half turn when the two differ.
  const upsideDown = (axis.sole < 0) !== (level !== raw);
  if (Math.abs(level) <= UPRIGHT_MIN_DEG) {
    // A level shoe standing on its collar (a phone photo taken from the other side) is turned over, but only on
    // clear evidence: sole shots and odd silhouettes have no straight edge to trust.
    return upsideDown && rule.flipSole !== null && Math.abs(axis.sole) >= rule.flipSole ? level + 180 : 0;
  }
  return upsideDown ? level + 180 : level;
}

/** The image, its analysis copy and its background mask turned by `turn` degrees on a canvas that holds them. */
function turnFrame(
  cv: Cv,
  track: Track,
  src: InstanceType<Cv['Mat']>,
  width: number,
  height: number,
  a: Analysis,
  turn: number,
): { src: InstanceType<Cv['Mat']>; width: number; height: number; a: Analysis; frame: number[] } | null {
  const rad = (turn * Math.PI) / 180;
  const c = Math.abs(Math.cos(rad));
  const s = Math.abs(Math.sin(rad));
  const W = Math.max(1, Math.round(width * c + height * s));
  const H = Math.max(1, Math.round(width * s + height * c));
  const aw = Math.max(1, Math.round(W * a.scale));
  const ah = Math.max(1, Math.round(H * a.scale));
  /** Rotation about the centre of a w×h image onto the centre of a tw×th canvas. */
  const matrix = (w: number, h: number, tw: number, th: number): InstanceType<Cv['Mat']> => {
    const m = track(cv.getRotationMatrix2D(new cv.Point(w / 2, h / 2), turn, 1));
    m.data64F[2] = m.data64F[2]! + (tw - w) / 2;
    m.data64F[5] = m.data64F[5]! + (th - h) / 2;
    return m;
  };
  const white = new cv.Scalar(255, 255, 255, 255);
  const full = matrix(width, height, W, H);
  const turned = track(new cv.Mat());
  cv.warpAffine(src, turned, full, new cv.Size(W, H), cv.INTER_LINEAR, cv.BORDER_CONSTANT, white);
  const small = matrix(a.aw, a.ah, aw, ah);
  const smallTurned = track(new cv.Mat());
  cv.warpAffine(a.small, smallTurned, small, new cv.Size(aw, ah), cv.INTER_AREA, cv.BORDER_CONSTANT, white);
  /** A background mask turned with the analysis copy (what the turn brings in from outside is background). */
  const turnMask = (m: Uint8Array): Uint8Array => {
    const maskIn = track(new cv.Mat(a.ah, a.aw, cv.CV_8UC1));
    maskIn.data.set(m);
    const maskOut = track(new cv.Mat());
    cv.warpAffine(maskIn, maskOut, small, new cv.Size(aw, ah), cv.INTER_NEAREST, cv.BORDER_CONSTANT, new cv.Scalar(1, 1, 1, 1));
    return new Uint8Array(maskOut.data);
  };
  const background = turnMask(a.background!);
  // Where the localiser's box is the object, the turned box is a diamond around the shoe: frame the turned
  // silhouette instead, or the crop would hold far more wall than shoe.
  const silhouette = a.silhouette === a.background ? background : a.silhouette === null ? null : turnMask(a.silhouette);
  const box = (a.kind === 'located' && silhouette !== null ? foregroundBox(silhouette, aw, ah) : null) ?? foregroundBox(background, aw, ah);
  if (box === null) return null;
  const orientation = detectOrientationOn(cv, track, smallTurned, aw, ah, box, background, a.shapeWeight);
  return {
    src: turned,
    width: W,
    height: H,
    a: { ...a, aw, ah, small: smallTurned, background, box, orientation, silhouette },
    frame: Array.from(full.data64F),
  };
}

/**
 * What the upright step sees in an image: the silhouette's long axis (null without an object mask) and the
 * turn it would apply (degrees counter-clockwise, 0 for none). For measuring the step on a labelled set.
 */
export async function uprightEvidence(img: RawImage, opts: { segment?: boolean; objectHint?: Box } = {}): Promise<{ axis: SilhouetteAxis | null; turn: number; background: BackgroundKind }> {
  return withImageMat(img, (cv, track, src) => {
    const a = analyse(cv, track, src, img.width, img.height, opts.segment !== false, true, undefined, false, opts.objectHint);
    const axis = a.silhouette !== null ? silhouetteAxis(a.silhouette, a.aw, a.ah) : null;
    return { axis, turn: axis === null ? 0 : uprightTurn(axis), background: a.kind };
  });
}

/**
 * Only the orientation step (no rendering): which way the toe points and why. Used by `preprocess` and for
 * measuring orientation accuracy on a labelled set.
 */
export async function detectOrientation(img: RawImage, opts: { segment?: boolean } = {}): Promise<OrientationEvidence> {
  return withImageMat(img, (cv, track, src) => analyse(cv, track, src, img.width, img.height, opts.segment !== false, true).orientation);
}

/** Runs `fn` on the image as an 8-bit RGB OpenCV Mat; every Mat it tracks is freed afterwards. */
async function withImageMat<T>(img: RawImage, fn: (cv: Cv, track: Track, src: InstanceType<Cv['Mat']>) => T): Promise<T> {
  const rgb = toRgb(img);
  const { cv } = await getCv();
  return withMats((track) => {
    const src = track(new cv.Mat(img.height, img.width, cv.CV_8UC3));
    src.data.set(rgb);
    return fn(cv, track, src);
  });
}

/**
 * Whether {@link preprocess} flood-fills this image's background (a studio backdrop) rather than segmenting it:
 * then an `objectHint` would go unused, so callers skip computing one.
 */
export async function floodsBackground(img: RawImage, opts: { floodAnyUniform?: boolean } = {}): Promise<boolean> {
  return withImageMat(img, (cv, track, src) => {
    const { small, aw, ah } = analysisCopy(cv, track, src, img.width, img.height);
    return isFlooded(borderStats(small.data, aw, ah), opts.floodAnyUniform === true);
  });
}

/** The copy analysis runs on: at most ANALYSIS_SIDE on its longest side (area resampling). */
function analysisCopy(cv: Cv, track: Track, src: InstanceType<Cv['Mat']>, width: number, height: number): { small: InstanceType<Cv['Mat']>; scale: number; aw: number; ah: number } {
  const scale = Math.min(1, ANALYSIS_SIDE / Math.max(width, height));
  const aw = Math.max(1, Math.round(width * scale));
  const ah = Math.max(1, Math.round(height * scale));
  const small = track(new cv.Mat());
  if (scale < 1) cv.resize(src, small, new cv.Size(aw, ah), 0, 0, cv.INTER_AREA);
  else src.copyTo(small);
  return { small, scale, aw, ah };
}

/** The flood-fill decision: a near-uniform border that is light (a studio backdrop), or any with `floodAnyUniform`. */
function isFlooded(border: BorderStats, floodAnyUniform: boolean): boolean {
  return border.uniformFraction >= UNIFORM_FRACTION && (floodAnyUniform || Math.min(...border.color) >= STUDIO_MIN_LEVEL);
}

interface Analysis {
  /** Analysis pixels per original pixel. */
  readonly scale: number;
  readonly aw: number;
  readonly ah: number;
  readonly border: BorderStats;
  readonly kind: BackgroundKind;
  /** Background mask at analysis size (1 = background), or null when there is none. */
  readonly background: Uint8Array | null;
  /** The object's box at analysis size, or null. */
  readonly box: Box | null;
  readonly orientation: OrientationEvidence;
  /** The analysis copy itself (tracked: freed with the other Mats). */
  readonly small: InstanceType<Cv['Mat']>;
  /** Weight of the silhouette cue in the orientation score (depends on how the mask was found). */
  readonly shapeWeight: number;
  /**
   * The mask the upright step measures (1 = background), or null: the background mask, except where the localiser's
   * box is the object (`located`): there GrabCut's object inside that box, when it fills enough of it (see
   * {@link LOCATED_SILHOUETTE_MIN}).
   */
  readonly silhouette: Uint8Array | null;
}

/** Background, object box and orientation, computed on a copy at most ANALYSIS_SIDE large. */
function analyse(
  cv: Cv,
  track: Track,
  src: InstanceType<Cv['Mat']>,
  width: number,
  height: number,
  segment: boolean,
  useUniformMask: boolean,
  trace?: OrientationTrace,
  floodAnyUniform = false,
  hint?: Box,
): Analysis {
  const { small, scale, aw, ah } = analysisCopy(cv, track, src, width, height);
  const border = borderStats(small.data, aw, ah);
  const flood = isFlooded(border, floodAnyUniform);
  let kind: BackgroundKind = flood ? 'uniform' : 'busy';
  let background: Uint8Array | null = null;
  if (kind === 'uniform' && useUniformMask) background = floodBackground(small.data, aw, ah, border.color);
  // The hint in analysis pixels, clipped to the frame (null when it misses the frame entirely).
  const hintA = hint === undefined ? null : clipToFrame({ x: hint.x * scale, y: hint.y * scale, width: hint.width * scale, height: hint.height * scale }, aw, ah);
  /** GrabCut's object, even one too small to be believed as the whole frame's object (see silhouetteInBox below). */
  let cut: { background: Uint8Array; plausible: boolean } | null = null;
  if (kind === 'busy' && segment) {
    cut = grabCutBackground(cv, track, small, aw, ah, hintA === null ? null : clipToFrame(grow(hintA, HINT_MARGIN), aw, ah));
    if (cut?.plausible === true) {
      background = cut.background;
      kind = 'segmented';
    }
  }
  let box = background === null ? null : foregroundBox(background, aw, ah);
  if (box === null) background = null;
  let silhouette = background;
  if (kind !== 'uniform' && segment && hintA !== null && (box === null || boxIou(box, hintA) < HINT_AGREEMENT)) {
    // GrabCut framed something else (clutter, a shelf): the localiser's box is the better object.
    // GrabCut's object (too small for the frame, or not matching the box) may still be the shoe's silhouette
    // inside the box: what the upright step measures.
    silhouette = cut === null ? null : silhouetteInBox(cut.background, aw, ah, hintA);
    background = new Uint8Array(aw * ah).fill(1);
    for (let y = hintA.y; y < hintA.y + hintA.height; y++) background.fill(0, y * aw + hintA.x, y * aw + hintA.x + hintA.width);
    box = hintA;
    kind = 'located';
  }
  // The silhouette is exact on a flood-filled product shot and rougher from GrabCut: trust it less there
  // (80 dev images composited on synthetic floors: 94 % with 0.25, 91 % with 0.5, 90 % Hough alone).
  const shapeWeight = background === null || kind === 'located' ? 0 : kind === 'uniform' ? SHAPE_WEIGHT_UNIFORM : SHAPE_WEIGHT_SEGMENTED;
  const orientation = detectOrientationOn(cv, track, small, aw, ah, box, background, shapeWeight, trace);
  return { scale, aw, ah, border, kind, background, box, orientation, small, shapeWeight, silhouette };
}

/**
 * GrabCut's object (mask value 0) inside the localiser's box, as a background mask; null when it fills less than
 * {@link LOCATED_SILHOUETTE_MIN} of the box. Where GrabCut's whole object disagrees with the box (it took in a
 * shadow, the wall's edge, the other shoe), its part inside the box is still mostly the shoe's silhouette.
 */
function silhouetteInBox(bg: Uint8Array, w: number, h: number, box: Box): Uint8Array | null {
  const out = new Uint8Array(w * h).fill(1);
  let inside = 0;
  for (let y = box.y; y < box.y + box.height; y++) {
    for (let x = box.x; x < box.x + box.width; x++) {
      if (bg[y * w + x] === 0) {
        out[y * w + x] = 0;
        inside++;
      }
    }
  }
  return inside >= LOCATED_SILHOUETTE_MIN * box.width * box.height ? out : null;
}

/**
 * Foreground by GrabCut, initialised with everything but a thin frame (or everything outside `rect`, analysis
 * pixels) as background and the rest as "probably object"; only the largest connected part is kept. Null when
 * it keeps nothing or almost everything; `plausible` is false when the object is too small to be the frame's
 * (a small shoe found from the localiser's box may still be measured by the upright step).
 */
function grabCutBackground(
  cv: Cv,
  track: Track,
  small: InstanceType<Cv['Mat']>,
  aw: number,
  ah: number,
  rect: Box | null = null,
): { background: Uint8Array; plausible: boolean } | null {
  if (Math.min(aw, ah) < 16) return null;
  const k = Math.min(1, SEGMENT_SIDE / Math.max(aw, ah));
  const gw = Math.max(8, Math.round(aw * k));
  const gh = Math.max(8, Math.round(ah * k));
  const img = track(new cv.Mat());
  cv.resize(small, img, new cv.Size(gw, gh), 0, 0, cv.INTER_AREA);
  const mask = track(new cv.Mat());
  const bgdModel = track(new cv.Mat());
  const fgdModel = track(new cv.Mat());
  const mx = Math.max(1, Math.round(gw * 0.04));
  const my = Math.max(1, Math.round(gh * 0.04));
  const init =
    rect === null
      ? new cv.Rect(mx, my, gw - 2 * mx, gh - 2 * my)
      : (() => {
          const x0 = Math.max(1, Math.round((rect.x * gw) / aw));
          const y0 = Math.max(1, Math.round((rect.y * gh) / ah));
          const x1 = Math.min(gw - 1, Math.round(((rect.x + rect.width) * gw) / aw));
          const y1 = Math.min(gh - 1, Math.round(((rect.y + rect.height) * gh) / ah));
          return new cv.Rect(x0, y0, Math.max(2, x1 - x0), Math.max(2, y1 - y0));
        })();
  // GrabCut's GMMs start from k-means with OpenCV's global RNG: reseed so the same image always gives the
  // same mask, whatever ran before (embeddings are cached per image).
  cv.setRNGSeed(0x5013);
  cv.grabCut(img, mask, init, bgdModel, fgdModel, 3, cv.GC_INIT_WITH_RECT);
  const m = mask.data;
  const fg = new Uint8Array(gw * gh);
  for (let i = 0; i < fg.length; i++) fg[i] = m[i] === cv.GC_FGD || m[i] === cv.GC_PR_FGD ? 1 : 0;
  const kept = largestComponent(fg, gw, gh);
  const share = kept.count / (gw * gh);
  if (share === 0 || share > SEGMENT_MAX) return null;
  // Back to analysis size (nearest neighbour; whitening samples it bilinearly later).
  const bg = new Uint8Array(aw * ah);
  for (let y = 0; y < ah; y++) {
    const sy = Math.min(gh - 1, Math.floor(((y + 0.5) * gh) / ah));
    for (let x = 0; x < aw; x++) {
      const sx = Math.min(gw - 1, Math.floor(((x + 0.5) * gw) / aw));
      bg[y * aw + x] = kept.mask[sy * gw + sx] === 1 ? 0 : 1;
    }
  }
  return { background: bg, plausible: share >= SEGMENT_MIN };
}

/** The largest 4-connected component of a binary mask (1 inside). */
function largestComponent(mask: Uint8Array, w: number, h: number): { mask: Uint8Array; count: number } {
  const label = new Int32Array(w * h);
  const queue = new Int32Array(w * h);
  let best = 0;
  let bestCount = 0;
  let next = 0;
  for (let start = 0; start < mask.length; start++) {
    if (mask[start] !== 1 || label[start] !== 0) continue;
    next++;
    let head = 0;
    let tail = 0;
    queue[tail++] = start;
    label[start] = next;
    while (head < tail) {
      const i = queue[head++]!;
      const x = i % w;
      const visit = (j: number): void => {
        if (mask[j] === 1 && label[j] === 0) {
          label[j] = next;
          queue[tail++] = j;
        }
      };
      if (x > 0) visit(i - 1);
      if (x < w - 1) visit(i + 1);
      if (i >= w) visit(i - w);
      if (i < w * (h - 1)) visit(i + w);
    }
    if (tail > bestCount) {
      bestCount = tail;
      best = next;
    }
  }
  const out = new Uint8Array(w * h);
  for (let i = 0; i < out.length; i++) out[i] = label[i] === best && best !== 0 ? 1 : 0;
  return { mask: out, count: bestCount };
}

/** Packs any accepted raw image into tightly packed RGB bytes (alpha over white, gray replicated). */
export function toRgb(img: RawImage): Uint8Array {
  const { width, height } = img;
  const channels = img.channels ?? 3;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new EngineError('BAD_INPUT', `Image size must be positive integers (got ${width}x${height})`);
  }
  if (img.data.length !== width * height * channels) {
    throw new EngineError('BAD_INPUT', `Raw image has ${img.data.length} bytes, expected ${width}x${height}x${channels}`);
  }
  if (channels === 3) return img.data instanceof Uint8Array ? img.data : new Uint8Array(img.data);
  const n = width * height;
  const out = new Uint8Array(n * 3);
  const d = img.data;
  if (channels === 1) {
    for (let i = 0; i < n; i++) out[i * 3] = out[i * 3 + 1] = out[i * 3 + 2] = d[i]!;
  } else {
    for (let i = 0; i < n; i++) {
      const a = d[i * 4 + 3]! / 255;
      for (let c = 0; c < 3; c++) out[i * 3 + c] = Math.round(d[i * 4 + c]! * a + 255 * (1 - a));
    }
  }
  return out;
}

interface BorderStats {
  readonly color: readonly [number, number, number];
  readonly uniformFraction: number;
}

/** Median colour of a ring along the edges and the share of ring pixels close to it. */
function borderStats(data: Uint8Array, w: number, h: number): BorderStats {
  const ring = Math.max(1, Math.round(Math.min(w, h) * 0.03));
  const hist = [new Uint32Array(256), new Uint32Array(256), new Uint32Array(256)] as const;
  const idx: number[] = [];
  for (let y = 0; y < h; y++) {
    const edgeRow = y < ring || y >= h - ring;
    for (let x = 0; x < w; x++) {
      if (!edgeRow && x >= ring && x < w - ring) continue;
      const p = (y * w + x) * 3;
      idx.push(p);
      hist[0][data[p]!]!++;
      hist[1][data[p + 1]!]!++;
      hist[2][data[p + 2]!]!++;
    }
  }
  const median = (hc: Uint32Array): number => {
    let acc = 0;
    for (let v = 0; v < 256; v++) {
      acc += hc[v]!;
      if (acc * 2 >= idx.length) return v;
    }
    return 255;
  };
  const color = [median(hist[0]), median(hist[1]), median(hist[2])] as const;
  let near = 0;
  for (const p of idx) if (colorDistance(data, p, color) <= BORDER_TOLERANCE) near++;
  return { color, uniformFraction: idx.length === 0 ? 0 : near / idx.length };
}

function colorDistance(data: Uint8Array, p: number, c: readonly [number, number, number]): number {
  return Math.max(Math.abs(data[p]! - c[0]), Math.abs(data[p + 1]! - c[1]), Math.abs(data[p + 2]! - c[2]));
}

/**
 * Background = pixels close to the border colour AND connected to the border (so a white panel inside a
 * white shoe on a white floor stays part of the shoe). Returns 1 for background, 0 for object.
 */
function floodBackground(data: Uint8Array, w: number, h: number, color: readonly [number, number, number]): Uint8Array {
  const bg = new Uint8Array(w * h);
  const queue = new Int32Array(w * h);
  let head = 0;
  let tail = 0;
  const seed = (i: number): void => {
    if (bg[i] === 0 && colorDistance(data, i * 3, color) <= BORDER_TOLERANCE) {
      bg[i] = 1;
      queue[tail++] = i;
    }
  };
  for (let x = 0; x < w; x++) {
    seed(x);
    seed((h - 1) * w + x);
  }
  for (let y = 0; y < h; y++) {
    seed(y * w);
    seed(y * w + w - 1);
  }
  while (head < tail) {
    const i = queue[head++]!;
    const x = i % w;
    if (x > 0) seed(i - 1);
    if (x < w - 1) seed(i + 1);
    if (i >= w) seed(i - w);
    if (i < w * (h - 1)) seed(i + w);
  }
  return bg;
}

/** Bounding box of the object (non-background) pixels, ignoring rows/columns with only stray pixels. */
function foregroundBox(bg: Uint8Array, w: number, h: number): Box | null {
  const cols = new Uint32Array(w);
  const rows = new Uint32Array(h);
  let total = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (bg[y * w + x] === 0) {
        cols[x]!++;
        rows[y]!++;
        total++;
      }
    }
  }
  if (total < MIN_OBJECT_FRACTION * w * h) return null;
  // A column (row) counts when at least 1 % of its height (width) is object: JPEG specks and dust do not.
  const span = (arr: Uint32Array, minCount: number): [number, number] | null => {
    let a = 0;
    while (a < arr.length && arr[a]! < minCount) a++;
    let b = arr.length - 1;
    while (b > a && arr[b]! < minCount) b--;
    return a < arr.length ? [a, b] : null;
  };
  const xs = span(cols, Math.max(1, Math.ceil(0.01 * h)));
  const ys = span(rows, Math.max(1, Math.ceil(0.01 * w)));
  if (xs === null || ys === null) return null;
  return { x: xs[0], y: ys[0], width: xs[1] - xs[0] + 1, height: ys[1] - ys[0] + 1 };
}

type Track = <M extends { delete(): void }>(mat: M) => M;

function detectOrientationOn(
  cv: Cv,
  track: Track,
  small: InstanceType<Cv['Mat']>,
  w: number,
  h: number,
  box: Box | null,
  background: Uint8Array | null,
  shapeWeight: number,
  trace?: OrientationTrace,
): OrientationEvidence {
  const region = box ?? { x: 0, y: 0, width: w, height: h };
  const side = Math.max(region.width, region.height);
  const gray = track(new cv.Mat());
  cv.cvtColor(small, gray, cv.COLOR_RGB2GRAY);
  const roi = track(gray.roi(new cv.Rect(region.x, region.y, region.width, region.height)));
  const blurred = track(new cv.Mat());
  cv.GaussianBlur(roi, blurred, new cv.Size(3, 3), 0);
  const edges = track(new cv.Mat());
  cv.Canny(blurred, edges, 50, 150);
  const lines = track(new cv.Mat());
  cv.HoughLinesP(
    edges,
    lines,
    1,
    Math.PI / 180,
    Math.max(8, Math.round(side * 0.06)),
    Math.max(6, side * 0.08),
    Math.max(2, side * 0.02),
  );

  if (trace !== undefined) {
    trace.region = region;
    trace.edges = Uint8Array.from(edges.data);
    const image = new Uint8Array(region.width * region.height * 3);
    const all = small.data;
    for (let y = 0; y < region.height; y++) {
      const from = ((region.y + y) * w + region.x) * 3;
      image.set(all.subarray(from, from + region.width * 3), y * region.width * 3);
    }
    trace.image = image;
    trace.segments = [];
  }
  let pos = 0;
  let neg = 0;
  let posAngle = 0;
  let negAngle = 0;
  let used = 0;
  const l = lines.data32S;
  for (let i = 0; i + 3 < l.length; i += 4) {
    const dx = l[i + 2]! - l[i]!;
    const dy = l[i + 3]! - l[i + 1]!;
    let angle = (Math.atan2(dy, dx) * 180) / Math.PI; // image coordinates: positive = descends to the right
    if (angle > 90) angle -= 180;
    if (angle <= -90) angle += 180;
    const abs = Math.abs(angle);
    const counts = abs >= SLOPE_MIN_DEG && abs <= SLOPE_MAX_DEG;
    trace?.segments.push({ x1: l[i]!, y1: l[i + 1]!, x2: l[i + 2]!, y2: l[i + 3]!, vote: !counts ? 0 : angle > 0 ? 1 : -1 });
    if (!counts) continue;
    const length = Math.hypot(dx, dy);
    used++;
    if (angle > 0) {
      pos += length;
      posAngle += angle * length;
    } else {
      neg += length;
      negAngle += angle * length;
    }
  }
  // A toe line descending to the right (positive in image coordinates) means the toe points right.
  const houghScore = pos + neg === 0 ? 0 : (pos - neg) / (pos + neg);
  const angle = pos + neg === 0 ? 0 : pos >= neg ? posAngle / pos : negAngle / neg;

  const shapeScore = background === null || box === null ? 0 : silhouetteScore(background, w, box);
  const score = (1 - shapeWeight) * houghScore + shapeWeight * shapeScore;
  const toe: ToeDirection = score > DECISION_THRESHOLD ? 'right' : score < -DECISION_THRESHOLD ? 'left' : 'unknown';
  return {
    toe,
    score: round3(score),
    houghScore: round3(houghScore),
    shapeScore: round3(shapeScore),
    angle: Math.round(angle * 10) / 10,
    lines: used,
  };
}

/**
 * Heel-vs-toe cue from the mask: the object's height in the left and right thirds of its box. A side-view
 * shoe is tall at the heel collar and low at the toe, so a taller left means the toe points right.
 */
function silhouetteScore(bg: Uint8Array, w: number, box: Box): number {
  const third = Math.max(1, Math.floor(box.width / 3));
  const colHeight = (x: number): number => {
    let top = -1;
    let bottom = -1;
    for (let y = box.y; y < box.y + box.height; y++) {
      if (bg[y * w + x] === 0) {
        if (top < 0) top = y;
        bottom = y;
      }
    }
    return top < 0 ? 0 : bottom - top + 1;
  };
  let left = 0;
  let right = 0;
  for (let i = 0; i < third; i++) {
    left += colHeight(box.x + i);
    right += colHeight(box.x + box.width - 1 - i);
  }
  if (left + right === 0) return 0;
  // Scale so a 2:1 heel/toe height ratio already counts as strong evidence.
  return Math.max(-1, Math.min(1, (3 * (left - right)) / (left + right)));
}

/** Intersection over union of two boxes. */
export function boxIou(p: Box, q: Box): number {
  const ix = Math.max(0, Math.min(p.x + p.width, q.x + q.width) - Math.max(p.x, q.x));
  const iy = Math.max(0, Math.min(p.y + p.height, q.y + q.height) - Math.max(p.y, q.y));
  const union = p.width * p.height + q.width * q.height - ix * iy;
  return union > 0 ? (ix * iy) / union : 0;
}

/** `b` grown by `share` of its width/height on every side. */
function grow(b: Box, share: number): Box {
  return { x: b.x - b.width * share, y: b.y - b.height * share, width: b.width * (1 + 2 * share), height: b.height * (1 + 2 * share) };
}

/** `b` rounded to whole pixels inside a `w`×`h` frame; null when nothing of it is inside. */
function clipToFrame(b: Box, w: number, h: number): Box | null {
  const x = Math.max(0, Math.floor(b.x));
  const y = Math.max(0, Math.floor(b.y));
  const x2 = Math.min(w, Math.ceil(b.x + b.width));
  const y2 = Math.min(h, Math.ceil(b.y + b.height));
  return x2 - x < 2 || y2 - y < 2 ? null : { x, y, width: x2 - x, height: y2 - y };
}

function clampBox(b: Box, w: number, h: number): Box {
  const x = Math.max(0, Math.floor(b.x));
  const y = Math.max(0, Math.floor(b.y));
  const x2 = Math.min(w, Math.ceil(b.x + b.width));
  const y2 = Math.min(h, Math.ceil(b.y + b.height));
  return { x, y, width: Math.max(1, x2 - x), height: Math.max(1, y2 - y) };
}

function squareAround(b: Box, margin: number): Box {
  const side = Math.round(Math.max(b.width, b.height) * (1 + 2 * margin));
  const cx = b.x + b.width / 2;
  const cy = b.y + b.height / 2;
  return { x: Math.round(cx - side / 2), y: Math.round(cy - side / 2), width: side, height: side };
}

/** The square `crop` of `src` (white outside the image) resized to `size`×`size` with area resampling. */
function renderCrop(
  cv: Cv,
  track: Track,
  src: InstanceType<Cv['Mat']>,
  width: number,
  height: number,
  crop: Box,
  size: number,
): InstanceType<Cv['Mat']> {
  const out = track(new cv.Mat(size, size, cv.CV_8UC3, new cv.Scalar(255, 255, 255, 255)));
  const ix = Math.max(0, crop.x);
  const iy = Math.max(0, crop.y);
  const ix2 = Math.min(width, crop.x + crop.width);
  const iy2 = Math.min(height, crop.y + crop.height);
  if (ix2 <= ix || iy2 <= iy) return out;
  const k = size / crop.width;
  const dx = Math.round((ix - crop.x) * k);
  const dy = Math.round((iy - crop.y) * k);
  const dw = Math.max(1, Math.min(size - dx, Math.round((ix2 - ix) * k)));
  const dh = Math.max(1, Math.min(size - dy, Math.round((iy2 - iy) * k)));
  const roi = track(src.roi(new cv.Rect(ix, iy, ix2 - ix, iy2 - iy)));
  const resized = track(new cv.Mat());
  cv.resize(roi, resized, new cv.Size(dw, dh), 0, 0, k < 1 ? cv.INTER_AREA : cv.INTER_LINEAR);
  const target = track(out.roi(new cv.Rect(dx, dy, dw, dh)));
  resized.copyTo(target);
  return out;
}

/** Paints background pixels of the rendered crop white, sampling the analysis mask (bilinear, soft edge). */
function whitenBackground(
  out: Uint8Array,
  size: number,
  bg: Uint8Array,
  aw: number,
  ah: number,
  crop: Box,
  scale: number,
): void {
  const step = crop.width / size;
  for (let v = 0; v < size; v++) {
    const sy = ((crop.y + (v + 0.5) * step) * scale) - 0.5;
    for (let u = 0; u < size; u++) {
      const sx = ((crop.x + (u + 0.5) * step) * scale) - 0.5;
      const m = sampleMask(bg, aw, ah, sx, sy);
      if (m <= 0) continue;
      const p = (v * size + u) * 3;
      for (let c = 0; c < 3; c++) out[p + c] = Math.round(out[p + c]! * (1 - m) + 255 * m);
    }
  }
}

function sampleMask(bg: Uint8Array, w: number, h: number, x: number, y: number): number {
  if (x < -0.5 || y < -0.5 || x > w - 0.5 || y > h - 0.5) return 1; // outside the image: padding, white
  const x0 = Math.max(0, Math.min(w - 1, Math.floor(x)));
  const y0 = Math.max(0, Math.min(h - 1, Math.floor(y)));
  const x1 = Math.min(w - 1, x0 + 1);
  const y1 = Math.min(h - 1, y0 + 1);
  const fx = Math.max(0, Math.min(1, x - x0));
  const fy = Math.max(0, Math.min(1, y - y0));
  const top = bg[y0 * w + x0]! * (1 - fx) + bg[y0 * w + x1]! * fx;
  const bottom = bg[y1 * w + x0]! * (1 - fx) + bg[y1 * w + x1]! * fx;
  return top * (1 - fy) + bottom * fy;
}

function round3(v: number): number {
  return Math.round(v * 1000) / 1000;
}

/**
 * The study's orientation figures side by side (each `size`×`size`, letterboxed): the Canny edges of the
 * object, the Hough segments over it (green: toe-right votes, red: toe-left votes, grey: too flat or steep
 * to count), and the final model input (cropped, background whitened, mirrored when the toe pointed left).
 */
export async function orientationFigure(img: RawImage, opts: { size?: number; segment?: boolean } = {}): Promise<{
  png: Buffer;
  result: PreprocessResult;
}> {
  const size = Math.max(32, Math.min(1024, Math.floor(opts.size ?? 224)));
  const trace: OrientationTrace = { region: { x: 0, y: 0, width: 1, height: 1 }, image: new Uint8Array(3), edges: new Uint8Array(1), segments: [] };
  const result = await run(img, { size, ...(opts.segment === undefined ? {} : { segment: opts.segment }) }, trace);
  const { createCanvas, ImageData } = await import('@napi-rs/canvas');
  const { width: rw, height: rh } = trace.region;
  const k = size / Math.max(rw, rh);
  const ox = (size - rw * k) / 2;
  const oy = (size - rh * k) / 2;
  const gap = 4;
  const canvas = createCanvas(3 * size + 2 * gap, size);
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const panel = (rgba: Uint8ClampedArray, w: number, h: number, x: number): void => {
    const tile = createCanvas(w, h);
    tile.getContext('2d').putImageData(new ImageData(rgba, w, h), 0, 0);
    ctx.drawImage(tile, x + ox, oy, w * k, h * k);
  };
  const edgesRgba = new Uint8ClampedArray(rw * rh * 4);
  const imageRgba = new Uint8ClampedArray(rw * rh * 4);
  for (let i = 0; i < rw * rh; i++) {
    edgesRgba.fill(trace.edges[i]!, i * 4, i * 4 + 3);
    edgesRgba[i * 4 + 3] = 255;
    for (let c = 0; c < 3; c++) imageRgba[i * 4 + c] = trace.image[i * 3 + c]!;
    imageRgba[i * 4 + 3] = 255;
  }
  ctx.fillStyle = '#000000';
  ctx.fillRect(0, 0, size, size);
  panel(edgesRgba, rw, rh, 0);
  panel(imageRgba, rw, rh, size + gap);
  ctx.lineWidth = 2;
  for (const seg of trace.segments) {
    ctx.strokeStyle = seg.vote === 1 ? '#00c800' : seg.vote === -1 ? '#e00000' : '#a0a0a0';
    ctx.beginPath();
    ctx.moveTo(size + gap + ox + seg.x1 * k, oy + seg.y1 * k);
    ctx.lineTo(size + gap + ox + seg.x2 * k, oy + seg.y2 * k);
    ctx.stroke();
  }
  const out = new Uint8ClampedArray(size * size * 4);
  for (let i = 0; i < size * size; i++) {
    for (let c = 0; c < 3; c++) out[i * 4 + c] = Math.round(result.tensorData[i * 3 + c]! * 255);
    out[i * 4 + 3] = 255;
  }
  const final = createCanvas(size, size);
  final.getContext('2d').putImageData(new ImageData(out, size, size), 0, 0);
  ctx.drawImage(final, 2 * (size + gap), 0);
  return { png: canvas.toBuffer('image/png'), result };
}
