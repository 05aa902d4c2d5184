/**
 * Kernels and gradients that tfjs 4.22 lacks on the backends solescope runs on, registered once per process.
 *
 * The wasm backend ships no `Conv2DBackpropFilter` (so no conv layer can train on it), no
 * `DepthwiseConv2dNativeBackpropInput/Filter` (no gradient through MobileNet's depthwise layers) and no
 * `UnsortedSegmentSum` (the gradient of `gather`). Each is written here as a composite of kernels the
 * backend does have, so it runs at native speed and needs no new wasm code:
 *
 * - a filter gradient is itself a correlation: with x and dy transposed so that the batch becomes the
 *   contracted "channel" axis, `dW = conv(xᵀ, dyᵀ)` with the forward stride used as the dilation;
 * - a depthwise input gradient is a depthwise correlation of the stride-dilated dy with the 180°-rotated
 *   filter;
 * - a segment sum is a matrix product with a one-hot matrix.
 *
 * wasm's `Conv2DBackpropInput` exists but is a scalar loop about 10× slower than a forward conv; it is
 * replaced by the same rotated-filter correlation run through XNNPACK's conv2d where that is faster.
 * Likewise wasm's `BatchMatMul` with a transposed operand (both products of every dense layer's gradient) is a
 * scalar loop; it becomes an explicit transpose followed by XNNPACK's plain product.
 *
 * On every backend, comparison kernels (`Greater`, `Less`, …) have no registered gradient. `leakyRelu`'s and
 * `maximum`'s gradients use them, so a second-order gradient (WGAN-GP's gradient penalty) fails with
 * "gradient function not found for Greater". They are piecewise constant, so their true gradient is zero,
 * which is what is registered here.
 *
 * Every registration is checked against finite differences in test/ml/patches.test.ts.
 */
import type * as tfjs from '@tensorflow/tfjs';

type Tf = typeof tfjs;
type Tensor = tfjs.Tensor;
type Tensor4D = tfjs.Tensor4D;
type NamedAttrMap = tfjs.NamedAttrMap;
type PadSpec = 'valid' | 'same' | number | tfjs.backend_util.ExplicitPadding;
type RoundingMode = 'floor' | 'round' | 'ceil' | undefined;

/** Kernels this module can register where a backend lacks them. */
export const PATCHED_KERNELS = [
  'Conv2DBackpropFilter',
  'DepthwiseConv2dNativeBackpropInput',
  'DepthwiseConv2dNativeBackpropFilter',
  'UnsortedSegmentSum',
] as const;

/** Kernels given a zero gradient where none is registered (they are piecewise constant). */
export const ZERO_GRADIENT_KERNELS = ['Greater', 'GreaterEqual', 'Less', 'LessEqual', 'Equal', 'NotEqual'] as const;

/** What {@link applyPatches} did, for logs and tests. */
export interface PatchReport {
  /** `backend/kernel` pairs registered by this call. */
  readonly kernels: readonly string[];
  /** Kernel names that received a zero gradient in this call. */
  readonly gradients: readonly string[];
}

/**
 * Registers the missing kernels (for `wasm` and the current backend, wherever absent) and the zero gradients
 * of comparison kernels. Idempotent: a second call registers nothing. Call it after the backend is chosen
 * (`engine/ml/runtime.ts` does).
 */
export function applyPatches(tf: Tf, backends?: readonly string[]): PatchReport {
  const kernels: string[] = [];
  const gradients: string[] = [];
  const targets = new Set(backends ?? ['wasm', currentBackend(tf)].filter((b): b is string => b !== undefined));
  const impl = implementations(tf);
  for (const backendName of targets) {
    for (const kernelName of PATCHED_KERNELS) {
      if (tf.getKernel(kernelName, backendName) !== undefined) continue;
      const compute = impl[kernelName];
      tf.registerKernel({
        kernelName,
        backendName,
        // Returning a Tensor (not a bare TensorInfo) lets the engine use it as the output as is. The ops
        // inside run at kernel depth > 0, so they are not recorded on the gradient tape.
        kernelFunc: ({ inputs, attrs }) => compute(inputs as Record<string, Tensor>, attrs ?? {}) as never,
      });
      kernels.push(`${backendName}/${kernelName}`);
    }
  }
  for (const backendName of targets) {
    if (backendName === 'wasm' && overrideBackpropInput(tf, backendName)) kernels.push(`${backendName}/Conv2DBackpropInput`);
    if (backendName === 'wasm' && overrideTransposedMatMul(tf, backendName)) kernels.push(`${backendName}/BatchMatMul`);
  }
  for (const kernelName of ZERO_GRADIENT_KERNELS) {
    if (tf.getGradient(kernelName) !== undefined) continue;
    tf.registerGradient({
      kernelName,
      inputsToSave: ['a', 'b'],
      gradFunc: (_dy, saved) => {
        const [a, b] = saved as [Tensor, Tensor];
        // float32 zeros whatever the input dtype: the tape insists gradients are float32.
        return { a: () => tf.zeros(a.shape), b: () => tf.zeros(b.shape) };
      },
    });
    gradients.push(kernelName);
  }
  return { kernels, gradients };
}

const OVERRIDDEN = Symbol.for('solescope.patches.override');

/**
 * Replaces wasm's `Conv2DBackpropInput` (a scalar loop) with {@link conv2dBackpropInput}, keeping the
 * native kernel for the cases where it is faster: few input channels (the composite's conv would have that
 * many output channels, where XNNPACK is inefficient) or a format the composite does not handle.
 * Returns whether it replaced the kernel (false when already replaced or absent).
 */
function overrideBackpropInput(tf: Tf, backendName: string): boolean {
  const native = tf.getKernel('Conv2DBackpropInput', backendName);
  if (native === undefined || (native.kernelFunc as unknown as Record<symbol, boolean>)[OVERRIDDEN]) return false;
  const kernelFunc: tfjs.KernelFunc = (args) => {
    const attrs = args.attrs ?? {};
    const inputShape = attrs.inputShape as [number, number, number, number];
    const dataFormat = (attrs.dataFormat as 'NHWC' | 'NCHW' | undefined) ?? 'NHWC';
    if (dataFormat !== 'NHWC' || inputShape[3] < 8) return native.kernelFunc(args);
    const inputs = args.inputs as Record<string, Tensor>;
    return conv2dBackpropInput(tf, req(inputs, 'dy') as Tensor4D, req(inputs, 'filter') as Tensor4D, {
      inputShape,
      strides: attrs.strides as number | [number, number],
      pad: attrs.pad as PadSpec,
      dimRoundingMode: attrs.dimRoundingMode as RoundingMode,
      dataFormat,
    }) as never;
  };
  (kernelFunc as unknown as Record<symbol, boolean>)[OVERRIDDEN] = true;
  tf.unregisterKernel('Conv2DBackpropInput', backendName);
  tf.registerKernel({ ...native, kernelFunc });
  return true;
}

/**
 * Replaces wasm's `BatchMatMul` with one that transposes an operand explicitly before the product whenever
 * `transposeA` or `transposeB` is set. XNNPACK serves only the plain product; the transposed ones fall to a
 * scalar loop, and those are exactly the two products of every dense layer's gradient (`dW = xᵀ·dy`,
 * `dx = dy·Wᵀ`). Measured on a [256, 2048] × [2048, 64] layer: `aᵀ·b` 118 ms and `a·bᵀ` 36 ms natively, 7 ms
 * each as transpose + product (the forward product: 2 ms); a 64-unit MLP head fits about 3× faster.
 * Returns whether it replaced the kernel (false when already replaced or absent).
 */
function overrideTransposedMatMul(tf: Tf, backendName: string): boolean {
  const native = tf.getKernel('BatchMatMul', backendName);
  if (native === undefined || (native.kernelFunc as unknown as Record<symbol, boolean>)[OVERRIDDEN]) return false;
  const kernelFunc: tfjs.KernelFunc = (args) => {
    const attrs = args.attrs ?? {};
    if (!attrs.transposeA && !attrs.transposeB) return native.kernelFunc(args);
    const inputs = args.inputs as Record<string, Tensor>;
    // Swap the last two axes only: the batch axes stay where they are.
    const swap = (t: Tensor): Tensor => {
      const perm = t.shape.map((_, i) => i);
      const r = perm.length;
      [perm[r - 2], perm[r - 1]] = [r - 1, r - 2];
      return tf.transpose(t, perm);
    };
    // Ops inside a kernel run at kernel depth > 0: not taped; tidy frees the explicit transposes.
    return tf.tidy(() =>
      tf.matMul(attrs.transposeA ? swap(req(inputs, 'a')) : req(inputs, 'a'), attrs.transposeB ? swap(req(inputs, 'b')) : req(inputs, 'b')),
    ) as never;
  };
  (kernelFunc as unknown as Record<symbol, boolean>)[OVERRIDDEN] = true;
  tf.unregisterKernel('BatchMatMul', backendName);
  tf.registerKernel({ ...native, kernelFunc });
  return true;
}

function currentBackend(tf: Tf): string | undefined {
  // tf.getBackend() would initialise a default backend when none is set yet; only ask when one is.
  return tf.engine().backendName ?? undefined;
}

type KernelImpl = (inputs: Record<string, Tensor>, attrs: NamedAttrMap) => Tensor;

function implementations(tf: Tf): Record<(typeof PATCHED_KERNELS)[number], KernelImpl> {
  return {
    Conv2DBackpropFilter: (inputs, attrs) =>
      conv2dBackpropFilter(tf, req(inputs, 'x') as Tensor4D, req(inputs, 'dy') as Tensor4D, {
        filterShape: attrs.filterShape as [number, number, number, number],
        strides: attrs.strides as number | [number, number],
        dilations: 1,
        pad: attrs.pad as PadSpec,
        dimRoundingMode: attrs.dimRoundingMode as RoundingMode,
        dataFormat: (attrs.dataFormat as 'NHWC' | 'NCHW' | undefined) ?? 'NHWC',
      }),
    DepthwiseConv2dNativeBackpropFilter: (inputs, attrs) =>
      depthwiseBackpropFilter(tf, req(inputs, 'x') as Tensor4D, req(inputs, 'dy') as Tensor4D, {
        filterShape: attrs.filterShape as [number, number, number, number],
        strides: attrs.strides as number | [number, number],
        dilations: (attrs.dilations as number | [number, number] | undefined) ?? 1,
        pad: attrs.pad as PadSpec,
        dimRoundingMode: attrs.dimRoundingMode as RoundingMode,
      }),
    DepthwiseConv2dNativeBackpropInput: (inputs, attrs) =>
      depthwiseBackpropInput(tf, req(inputs, 'dy') as Tensor4D, req(inputs, 'filter') as Tensor4D, {
        inputShape: attrs.inputShape as [number, number, number, number],
        strides: attrs.strides as number | [number, number],
        dilations: (attrs.dilations as number | [number, number] | undefined) ?? 1,
        pad: attrs.pad as PadSpec,
        dimRoundingMode: attrs.dimRoundingMode as RoundingMode,
      }),
    UnsortedSegmentSum: (inputs, attrs) =>
      unsortedSegmentSum(tf, req(inputs, 'x'), req(inputs, 'segmentIds'), attrs.numSegments as number),
  };
}

function req(inputs: Record<string, Tensor>, name: string): Tensor {
  const t = inputs[name];
  if (t === undefined) throw new Error(`patched kernel: missing input "${name}"`);
  return t;
}

function pair(v: number | [number, number]): [number, number] {
  return typeof v === 'number' ? [v, v] : v;
}

/**
 * Pads (positive amounts) or crops (negative amounts) axes 1 and 2 of a rank-4 tensor, so a composite can
 * shape its input to exactly what a 'valid' correlation needs.
 */
function padCrop(tf: Tf, t: Tensor4D, top: number, bottom: number, left: number, right: number): Tensor4D {
  const [n, h, w, c] = t.shape;
  const cropTop = Math.max(0, -top);
  const cropBottom = Math.max(0, -bottom);
  const cropLeft = Math.max(0, -left);
  const cropRight = Math.max(0, -right);
  let out = t;
  if (cropTop + cropBottom + cropLeft + cropRight > 0) {
    out = tf.slice(t, [0, cropTop, cropLeft, 0], [n, h - cropTop - cropBottom, w - cropLeft - cropRight, c]);
  }
  const padTop = Math.max(0, top);
  const padBottom = Math.max(0, bottom);
  const padLeft = Math.max(0, left);
  const padRight = Math.max(0, right);
  if (padTop + padBottom + padLeft + padRight > 0) {
    out = tf.pad(out, [
      [0, 0],
      [padTop, padBottom],
      [padLeft, padRight],
      [0, 0],
    ]);
  }
  return out;
}

/** Spacing of a conv, resolved to numbers. */
interface Geometry {
  readonly strides: [number, number];
  readonly dilations: [number, number];
  readonly padTop: number;
  readonly padLeft: number;
  readonly outHeight: number;
  readonly outWidth: number;
}

function geometry(
  tf: Tf,
  xShape: [number, number, number, number],
  filterShape: [number, number, number, number],
  strides: number | [number, number],
  dilations: number | [number, number],
  pad: PadSpec,
  dimRoundingMode: RoundingMode,
  depthwise: boolean,
): Geometry {
  const info = tf.backend_util.computeConv2DInfo(
    xShape,
    filterShape,
    strides,
    dilations,
    pad,
    dimRoundingMode,
    depthwise,
  );
  return {
    strides: pair(strides),
    dilations: pair(dilations),
    padTop: info.padInfo.top,
    padLeft: info.padInfo.left,
    outHeight: info.outHeight,
    outWidth: info.outWidth,
  };
}

/** Options of {@link conv2dBackpropFilter}. */
export interface Conv2dBackpropFilterOptions {
  readonly filterShape: [number, number, number, number];
  readonly strides: number | [number, number];
  readonly dilations: number | [number, number];
  readonly pad: PadSpec;
  readonly dimRoundingMode: RoundingMode;
  readonly dataFormat: 'NHWC' | 'NCHW';
}

/**
 * dW[i,j,ci,co] = Σ_{n,oh,ow} x[n, oh·s + i·d − pt, ow·s + j·d − pl, ci] · dy[n, oh, ow, co].
 * With x as [Cin, H, W, N] and dy as a [OH, OW, N, Cout] filter, that is a conv with stride d and dilation s
 * giving [Cin, fh, fw, Cout]; tfjs guarantees that one of s and d is 1, as conv2d requires.
 */
export function conv2dBackpropFilter(tf: Tf, x: Tensor4D, dy: Tensor4D, o: Conv2dBackpropFilterOptions): Tensor4D {
  if (o.dataFormat !== 'NHWC') throw new Error('Conv2DBackpropFilter patch: only NHWC is supported');
  return tf.tidy(() => {
    const [fh, fw] = o.filterShape;
    const g = geometry(tf, x.shape, o.filterShape, o.strides, o.dilations, o.pad, o.dimRoundingMode, false);
    const [sh, sw] = g.strides;
    const [dh, dw] = g.dilations;
    const [, h, w] = x.shape;
    const needH = (fh - 1) * dh + (g.outHeight - 1) * sh + 1;
    const needW = (fw - 1) * dw + (g.outWidth - 1) * sw + 1;
    const xT = tf.transpose(x, [3, 1, 2, 0]);
    const xP = padCrop(tf, xT, g.padTop, needH - h - g.padTop, g.padLeft, needW - w - g.padLeft);
    const dyT = tf.transpose(dy, [1, 2, 0, 3]);
    const out = tf.conv2d(xP, dyT, [dh, dw], 'valid', 'NHWC', [sh, sw]);
    return tf.transpose(out, [1, 2, 0, 3]);
  });
}

/** Options of {@link depthwiseBackpropFilter}. */
export interface DepthwiseBackpropFilterOptions {
  readonly filterShape: [number, number, number, number];
  readonly strides: number | [number, number];
  readonly dilations: number | [number, number];
  readonly pad: PadSpec;
  readonly dimRoundingMode: RoundingMode;
}

/**
 * dW[i,j,c,m] = Σ_{n,oh,ow} x[n, oh·s + i·d − pt, …, c] · dy[n, oh, ow, c·M + m]. Folding the batch into the
 * channel axis ([1, H, W, N·C] and a [OH, OW, N·C, M] filter) makes it one depthwise correlation, then a sum
 * over N.
 */
export function depthwiseBackpropFilter(
  tf: Tf,
  x: Tensor4D,
  dy: Tensor4D,
  o: DepthwiseBackpropFilterOptions,
): Tensor4D {
  return tf.tidy(() => {
    const [fh, fw, c, m] = o.filterShape;
    const [n, h, w] = x.shape;
    const g = geometry(tf, x.shape, o.filterShape, o.strides, o.dilations, o.pad, o.dimRoundingMode, true);
    const [sh, sw] = g.strides;
    const [dh, dw] = g.dilations;
    const needH = (fh - 1) * dh + (g.outHeight - 1) * sh + 1;
    const needW = (fw - 1) * dw + (g.outWidth - 1) * sw + 1;
    const xF = tf.reshape<tfjs.Rank.R4>(tf.transpose(x, [1, 2, 0, 3]), [1, h, w, n * c]);
    const xP = padCrop(tf, xF, g.padTop, needH - h - g.padTop, g.padLeft, needW - w - g.padLeft);
    const dyF = tf.reshape<tfjs.Rank.R4>(
      tf.transpose(tf.reshape(dy, [n, g.outHeight, g.outWidth, c, m]), [1, 2, 0, 3, 4]),
      [g.outHeight, g.outWidth, n * c, m],
    );
    const out = tf.depthwiseConv2d(xP, dyF, [dh, dw], 'valid', 'NHWC', [sh, sw]);
    return tf.sum(tf.reshape(out, [fh, fw, n, c, m]), 2);
  });
}

/** Options of {@link depthwiseBackpropInput}. */
export interface DepthwiseBackpropInputOptions {
  readonly inputShape: [number, number, number, number];
  readonly strides: number | [number, number];
  readonly dilations: number | [number, number];
  readonly pad: PadSpec;
  readonly dimRoundingMode: RoundingMode;
}

/**
 * dx[n,p,q,c] = Σ_{i,j,m} dy_s[n, p + pt − i·d, q + pl − j·d, c·M + m] · W[i,j,c,m], where dy_s is dy with
 * s − 1 zeros between its elements: a 'valid' depthwise correlation of the padded dy_s with the rotated
 * filter (multiplier 1 over C·M channels), then a sum over M.
 */
export function depthwiseBackpropInput(
  tf: Tf,
  dy: Tensor4D,
  filter: Tensor4D,
  o: DepthwiseBackpropInputOptions,
): Tensor4D {
  return tf.tidy(() => {
    const [fh, fw, c, m] = filter.shape;
    const [n, h, w] = o.inputShape;
    const g = geometry(tf, o.inputShape, filter.shape, o.strides, o.dilations, o.pad, o.dimRoundingMode, true);
    const [sh, sw] = g.strides;
    const [dh, dw] = g.dilations;
    const dyS = stretch(tf, dy, sh, sw);
    const [, lh, lw] = dyS.shape;
    const top = (fh - 1) * dh - g.padTop;
    const left = (fw - 1) * dw - g.padLeft;
    const dyP = padCrop(tf, dyS, top, h + (fh - 1) * dh - top - lh, left, w + (fw - 1) * dw - left - lw);
    const rotated = tf.reshape<tfjs.Rank.R4>(tf.reverse(filter, [0, 1]), [fh, fw, c * m, 1]);
    const out = tf.depthwiseConv2d(dyP, rotated, 1, 'valid', 'NHWC', [dh, dw]);
    return tf.sum(tf.reshape(out, [n, h, w, c, m]), 4);
  });
}

/** Options of {@link conv2dBackpropInput}. */
export interface Conv2dBackpropInputOptions {
  readonly inputShape: [number, number, number, number];
  readonly strides: number | [number, number];
  readonly pad: PadSpec;
  readonly dimRoundingMode: RoundingMode;
  readonly dataFormat: 'NHWC' | 'NCHW';
}

/**
 * dx[n,p,q,ci] = Σ_{i,j,co} dy_s[n, p + pt − i, q + pl − j, co] · W[i,j,ci,co]: a 'valid' conv2d of the
 * padded, stride-dilated dy with the rotated filter (in and out channels swapped). tfjs-wasm's own kernel is
 * a scalar loop ~10× slower than its XNNPACK conv2d, and every input gradient (deep dream, style transfer,
 * Grad-CAM below the last layer, the GAN) runs through it.
 */
export function conv2dBackpropInput(tf: Tf, dy: Tensor4D, filter: Tensor4D, o: Conv2dBackpropInputOptions): Tensor4D {
  if (o.dataFormat !== 'NHWC') throw new Error('Conv2DBackpropInput patch: only NHWC is supported');
  return tf.tidy(() => {
    const [fh, fw] = filter.shape;
    const [, h, w] = o.inputShape;
    const g = geometry(tf, o.inputShape, filter.shape, o.strides, 1, o.pad, o.dimRoundingMode, false);
    const [sh, sw] = g.strides;
    const dyS = stretch(tf, dy, sh, sw);
    const [, lh, lw] = dyS.shape;
    const top = fh - 1 - g.padTop;
    const left = fw - 1 - g.padLeft;
    const dyP = padCrop(tf, dyS, top, h + fh - 1 - top - lh, left, w + fw - 1 - left - lw);
    const rotated = tf.transpose(tf.reverse(filter, [0, 1]), [0, 1, 3, 2]);
    return tf.conv2d(dyP, rotated, 1, 'valid');
  });
}

/** Inserts s − 1 zeros between neighbouring elements along axes 1 and 2: [N, (H−1)·sh + 1, (W−1)·sw + 1, C]. */
function stretch(tf: Tf, t: Tensor4D, sh: number, sw: number): Tensor4D {
  if (sh === 1 && sw === 1) return t;
  const [n, h, w, c] = t.shape;
  const expanded = tf.reshape(t, [n, h, 1, w, 1, c]);
  const padded = tf.pad(expanded, [
    [0, 0],
    [0, 0],
    [0, sh - 1],
    [0, 0],
    [0, sw - 1],
    [0, 0],
  ]);
  const flat = tf.reshape<tfjs.Rank.R4>(padded, [n, h * sh, w * sw, c]);
  return tf.slice(flat, [0, 0, 0, 0], [n, (h - 1) * sh + 1, (w - 1) * sw + 1, c]);
}

/**
 * out[k, …] = Σ_{i: ids[i] = k} x[i, …] as oneHot(ids)ᵀ · x. Ids outside [0, numSegments) are dropped, as
 * TensorFlow does (their one-hot row is all zeros).
 */
export function unsortedSegmentSum(tf: Tf, x: Tensor, segmentIds: Tensor, numSegments: number): Tensor {
  return tf.tidy(() => {
    const idRank = segmentIds.rank;
    const count = segmentIds.size;
    const inner = x.shape.slice(idRank);
    const flat = tf.reshape(tf.cast(x, 'float32'), [count, inner.reduce((a, b) => a * b, 1)]);
    const oneHot = tf.cast(tf.oneHot(tf.cast(tf.reshape(segmentIds, [count]), 'int32'), numSegments), 'float32');
    const summed = tf.reshape(tf.matMul(oneHot, flat, true, false), [numSegments, ...inner]);
    return x.dtype === 'float32' ? summed : tf.cast(summed, x.dtype);
  });
}
