/**
 * TF.js LayersModel → ONNX (opset 13), written in TypeScript over protobufjs.
 *
 * The graph keeps the Keras interface — the input is channels-last `[N,H,W,C]` and 4-D outputs come back
 * channels-last — while the convolutions inside run channels-first (ONNX's only conv layout): a Transpose
 * follows the input and values stay NCHW until something needs the Keras order (Flatten over a spatial map,
 * Reshape, a 4-D graph output).
 *
 * Exactness matters more than cleverness: TF's SAME padding is asymmetric (the extra row/column goes at the
 * end), so every SAME conv/pool gets explicit pads computed from the static input size; average pooling
 * excludes padding from the count as TF does. Two rewrites shrink the graph without changing results beyond
 * float rounding: BatchNormalization folds into the preceding linear Conv/DepthwiseConv (MobileNetV2 has 52,
 * InceptionV3 94), and ZeroPadding2D folds into a following VALID conv's pads.
 *
 * Layers covered (all that the nsfwjs MobileNetV2 and InceptionV3 use, plus near relatives): InputLayer,
 * Conv2D, DepthwiseConv2D, SeparableConv2D, BatchNormalization, Dense, ReLU, LeakyReLU, ELU, Softmax,
 * Activation, Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, ZeroPadding2D, MaxPooling2D,
 * AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, Flatten, Reshape, Rescaling, Dropout and
 * the other inference-time identities, and nested functional/sequential models. Anything else is a
 * `BAD_INPUT` error naming the layer, never a silently wrong graph.
 */
import { createHash } from 'node:crypto';
import type * as tfTypes from '@tensorflow/tfjs';
import { EngineError } from '../../errors.ts';
import { GraphBuilder, float, valueInfo, type AttrValue, type Dim } from './graph-builder.ts';

export type { Dim } from './graph-builder.ts';
import { IR_VERSION, OPSET, encodeModel } from './proto.ts';

/** Bumped whenever the exporter writes a different graph for the same model (invalidates cached exports). */
export const EXPORTER_VERSION = 1;

/** Options of {@link exportLayersModel}. */
export interface ExportOptions {
  /**
   * Layer names whose outputs become graph outputs, in order (default: the model's own outputs). Only the
   * part of the model these need is exported, so `['flatten_1']` gives a pure embedding graph.
   */
  readonly outputs?: readonly string[];
  /** Graph name written into the file (default: the model name). */
  readonly name?: string;
  /** Extra `metadata_props` (e.g. the source model and its hash). */
  readonly metadata?: Readonly<Record<string, string>>;
}

/** A graph input or output: its name and channels-last shape (`null` = any size, e.g. the batch). */
export interface TensorSpec {
  readonly name: string;
  readonly shape: readonly Dim[];
}

/** What the exporter did, for logs and tests. */
export interface ExportStats {
  readonly nodes: number;
  readonly initializers: number;
  /** BatchNormalization layers folded into a conv (no op left for them). */
  readonly foldedBatchNorms: number;
  /** ZeroPadding2D layers folded into a conv's pads. */
  readonly foldedPads: number;
  /** Node count per ONNX op type. */
  readonly ops: Readonly<Record<string, number>>;
}

/** An exported model: the `.onnx` bytes and its interface. */
export interface ExportedModel {
  readonly bytes: Uint8Array;
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
  readonly stats: ExportStats;
}

/**
 * Converts a TF.js LayersModel (functional or sequential) to an ONNX model. Reads the weights from the
 * model's variables (no tensors are created). Unsupported layers or configurations are `BAD_INPUT` errors.
 */
export function exportLayersModel(model: tfTypes.LayersModel, opts: ExportOptions = {}): ExportedModel {
  return new Exporter(model as unknown as ModelLike, opts).run();
}

/**
 * A stable fingerprint of a model's topology and weights plus the export options and exporter version: the
 * cache key of an exported file. Reads every weight once (~0.1 s for InceptionV3).
 */
export function modelFingerprint(model: tfTypes.LayersModel, opts: Pick<ExportOptions, 'outputs'> = {}): string {
  const hash = createHash('sha256');
  hash.update(`solescope-onnx-exporter/${EXPORTER_VERSION}/opset${OPSET}\n`);
  hash.update(JSON.stringify(model.toJSON(undefined, false)));
  hash.update(`\noutputs=${JSON.stringify(opts.outputs ?? null)}\n`);
  for (const w of model.weights) {
    const t = w.read();
    const data = t.dataSync() as Float32Array;
    hash.update(`${w.name}:${t.shape.join('x')}:${t.dtype}\n`);
    hash.update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }
  return hash.digest('hex');
}

// ---------------------------------------------------------------------------------------------------------
// Structural views of the tfjs-layers internals the exporter walks (public fields of tfjs-layers 4.x classes,
// not all of them in the d.ts of @tensorflow/tfjs).

interface SymbolicLike {
  readonly id: number;
  readonly shape: readonly Dim[];
  readonly sourceLayer: LayerLike;
  readonly nodeIndex: number;
  readonly tensorIndex: number;
}

interface NodeLike {
  readonly inputTensors: readonly SymbolicLike[];
  readonly outputTensors: readonly SymbolicLike[];
}

interface LayerLike {
  readonly name: string;
  readonly inboundNodes: readonly NodeLike[];
  getClassName(): string;
  getConfig(): Record<string, unknown>;
}

interface ModelLike extends LayerLike {
  readonly inputs: readonly SymbolicLike[];
  readonly outputs: readonly SymbolicLike[];
  readonly layers: readonly LayerLike[];
  /** `${layer}_ib-${nodeIndex}` keys of the nodes that are part of this model's graph. */
  readonly containerNodes?: ReadonlySet<string>;
  getLayer(name: string): LayerLike;
}

interface VariableLike {
  read(): { readonly shape: readonly number[]; dataSync(): ArrayLike<number> };
}

type Layout = 'nchw' | 'keras';

/** Deferred work: emitted only when a consumer cannot absorb it (see the fold rules in the header). */
type Pending =
  | { readonly kind: 'pad'; readonly input: Value; readonly pads: Pads4; readonly base: string }
  | { readonly kind: 'conv'; readonly conv: ConvSpec; readonly base: string };

/** [top, bottom, left, right] */
type Pads4 = readonly [number, number, number, number];

interface ConvSpec {
  readonly input: Value;
  /** ONNX weight [outC, inC/group, kh, kw]. */
  readonly weight: Float32Array;
  readonly weightDims: readonly [number, number, number, number];
  readonly bias: Float32Array | null;
  readonly strides: readonly [number, number];
  readonly dilations: readonly [number, number];
  readonly group: number;
  /** Explicit [top, left, bottom, right] pads, or null for auto SAME_UPPER (unknown spatial size). */
  readonly pads: readonly [number, number, number, number] | null;
}

/** One tensor of the Keras graph as it exists in the ONNX graph. */
interface Value {
  /** The Keras (channels-last) shape, batch first. */
  readonly shape: readonly Dim[];
  layout: Layout;
  /** The ONNX value name once materialised. */
  name: string | null;
  pending: Pending | null;
  /** Cached layout conversions. */
  nchw?: string;
  keras?: string;
}

type Scope = Map<number, Value[]>;

const IDENTITY_LAYERS = new Set([
  'Dropout',
  'SpatialDropout1D',
  'SpatialDropout2D',
  'SpatialDropout3D',
  'GaussianNoise',
  'GaussianDropout',
  'AlphaDropout',
  'ActivityRegularization',
  'Masking',
]);

const TO_NCHW = [0, 3, 1, 2];
const TO_NHWC = [0, 2, 3, 1];
/** Keras channels-last axis → the same axis of an NCHW tensor. */
const NHWC_AXIS_IN_NCHW = [0, 2, 3, 1];

class Exporter {
  private readonly g = new GraphBuilder();
  private readonly model: ModelLike;
  private readonly opts: ExportOptions;
  private foldedBatchNorms = 0;
  private foldedPads = 0;

  constructor(model: ModelLike, opts: ExportOptions) {
    this.model = model;
    this.opts = opts;
  }

  run(): ExportedModel {
    const model = this.model;
    const outputNames = this.opts.outputs ?? model.outputs.map((t) => t.sourceLayer.name);
    if (outputNames.length === 0) throw new EngineError('BAD_INPUT', 'Export needs at least one output layer');
    if (new Set(outputNames).size !== outputNames.length) {
      throw new EngineError('BAD_INPUT', `Duplicate export outputs: ${outputNames.join(', ')}`);
    }
    const outputTensors = this.opts.outputs === undefined ? [...model.outputs] : outputNames.map((name) => this.outputTensorOf(name));

    const inputs: TensorSpec[] = model.inputs.map((t) => ({ name: t.sourceLayer.name, shape: [...t.shape] }));
    for (const spec of inputs) this.g.reserve(spec.name);
    for (const name of outputNames) this.g.reserve(name);

    const scope: Scope = new Map();
    model.inputs.forEach((t, i) => {
      const spec = inputs[i]!;
      scope.set(t.id, [{ shape: spec.shape, layout: 'keras', name: this.g.claim(spec.name), pending: null }]);
    });

    const outputs: TensorSpec[] = [];
    outputTensors.forEach((tensor, i) => {
      const name = outputNames[i]!;
      const value = this.resolve(tensor, scope);
      const src = value.shape.length === 4 ? this.asKeras(value) : this.materialize(value);
      this.g.node('Identity', [src], this.g.claim(name));
      outputs.push({ name, shape: [...tensor.shape] });
    });

    const nodes = this.g.nodes;
    const usedInputs = new Set(nodes.flatMap((n) => n.input));
    const graphInputs = inputs.filter((spec) => usedInputs.has(spec.name));
    const ops: Record<string, number> = {};
    for (const n of nodes) ops[n.op_type] = (ops[n.op_type] ?? 0) + 1;
    const bytes = encodeModel({
      ir_version: IR_VERSION,
      producer_name: 'solescope',
      producer_version: `onnx-exporter-${EXPORTER_VERSION}`,
      opset_import: [{ domain: '', version: OPSET }],
      graph: {
        name: this.opts.name ?? model.name,
        node: nodes,
        initializer: this.g.initializers,
        input: graphInputs.map((spec) => valueInfo(spec.name, spec.shape)),
        output: outputs.map((spec) => valueInfo(spec.name, spec.shape)),
      },
      metadata_props: Object.entries({ layout: 'NHWC', ...this.opts.metadata }).map(([key, value]) => ({ key, value })),
    });
    return {
      bytes,
      inputs: graphInputs,
      outputs,
      stats: {
        nodes: nodes.length,
        initializers: this.g.initializers.length,
        foldedBatchNorms: this.foldedBatchNorms,
        foldedPads: this.foldedPads,
        ops,
      },
    };
  }

  private outputTensorOf(layerName: string): SymbolicLike {
    let layer: LayerLike;
    try {
      layer = this.model.getLayer(layerName);
    } catch {
      throw new EngineError('BAD_INPUT', `The model has no layer "${layerName}" to export`, { details: { layer: layerName } });
    }
    // A layer can sit in several graphs (a nested model also has the node of its own input): take the node
    // that belongs to this model.
    const own = this.model.containerNodes;
    const index = layer.inboundNodes.findIndex((_, i) => own?.has(`${layer.name}_ib-${i}`) ?? i === 0);
    const node = layer.inboundNodes[index];
    const out = node?.outputTensors[0];
    if (out === undefined || (node?.outputTensors.length ?? 0) !== 1) {
      throw new EngineError('BAD_INPUT', `Layer "${layerName}" has no single output to export`);
    }
    return out;
  }

  /** The Value of a symbolic tensor, converting its producing layer (and everything upstream) on first use. */
  private resolve(tensor: SymbolicLike, scope: Scope): Value {
    const known = scope.get(tensor.id);
    if (known !== undefined) return known[0]!;
    const layer = tensor.sourceLayer;
    const node = layer.inboundNodes[tensor.nodeIndex];
    if (node === undefined) throw new EngineError('BAD_INPUT', `Layer ${layer.name} has no node ${tensor.nodeIndex}`);
    if (layer.getClassName() === 'InputLayer') {
      throw new EngineError('BAD_INPUT', `Input ${layer.name} is not an input of the exported model`);
    }
    const inputs = node.inputTensors.map((t) => this.resolve(t, scope));
    const outputs = this.convert(layer, inputs, node.outputTensors);
    node.outputTensors.forEach((t, i) => scope.set(t.id, [outputs[i]!]));
    const value = scope.get(tensor.id)?.[0];
    if (value === undefined) throw new EngineError('INTERNAL', `Export lost the output of ${layer.name}`);
    return value;
  }

  private convert(layer: LayerLike, inputs: Value[], outTensors: readonly SymbolicLike[]): Value[] {
    const cls = layer.getClassName();
    if (isModel(layer)) return this.inline(layer, inputs);
    if (outTensors.length !== 1) throw unsupported(layer, `${outTensors.length} outputs`);
    const shape = outTensors[0]!.shape;
    const cfg = layer.getConfig();
    if (cfg.dataFormat !== undefined && cfg.dataFormat !== 'channelsLast') {
      throw unsupported(layer, `dataFormat ${String(cfg.dataFormat)}`);
    }
    const x = inputs[0];
    if (x === undefined) throw unsupported(layer, 'no input');
    if (IDENTITY_LAYERS.has(cls)) return [x];
    switch (cls) {
      case 'Conv2D':
        return [this.conv2d(layer, cfg, x, shape)];
      case 'DepthwiseConv2D':
        return [this.depthwise(layer, cfg, x, shape)];
      case 'SeparableConv2D':
        return [this.separable(layer, cfg, x, shape)];
      case 'BatchNormalization':
        return [this.batchNorm(layer, cfg, x, shape)];
      case 'Dense':
        return [this.dense(layer, cfg, x, shape)];
      case 'Activation':
        return [this.activation(layer, String(cfg.activation ?? 'linear'), x, shape)];
      case 'ReLU':
        return [this.relu(layer, cfg, x, shape)];
      case 'LeakyReLU':
        return [this.unary(layer, 'LeakyRelu', x, shape, { alpha: float(num(cfg.alpha, 0.3)) })];
      case 'ELU':
        return [this.unary(layer, 'Elu', x, shape, { alpha: float(num(cfg.alpha, 1)) })];
      case 'Softmax':
        return [this.softmax(layer, x, shape, num(cfg.axis, -1))];
      case 'Add':
      case 'Subtract':
      case 'Multiply':
      case 'Average':
      case 'Maximum':
      case 'Minimum':
        return [this.merge(layer, cls, inputs, shape)];
      case 'Concatenate':
        return [this.concat(layer, cfg, inputs, shape)];
      case 'ZeroPadding2D':
        return [this.zeroPad(layer, cfg, x, shape)];
      case 'MaxPooling2D':
      case 'AveragePooling2D':
        return [this.pool(layer, cls === 'MaxPooling2D' ? 'MaxPool' : 'AveragePool', cfg, x, shape)];
      case 'GlobalAveragePooling2D':
      case 'GlobalMaxPooling2D':
        return [this.globalPool(layer, cls === 'GlobalAveragePooling2D' ? 'GlobalAveragePool' : 'GlobalMaxPool', x, shape)];
      case 'Flatten':
        return [this.flatten(layer, x, shape)];
      case 'Reshape':
        return [this.reshape(layer, x, shape)];
      case 'Rescaling':
        return [this.rescale(layer, cfg, x, shape)];
      default:
        throw unsupported(layer, 'this layer type');
    }
  }

  // --- layout and deferred values -------------------------------------------------------------------------

  private materialize(v: Value): string {
    if (v.name !== null) return v.name;
    const p = v.pending;
    if (p === null) throw new EngineError('INTERNAL', 'Export value has neither a name nor pending work');
    if (p.kind === 'pad') {
      const [top, bottom, left, right] = p.pads;
      const x = this.asNchw(p.input);
      const pads = this.g.int64Tensor(`${p.base}_pads`, [0, 0, top, left, 0, 0, bottom, right]);
      v.name = this.g.node('Pad', [x, pads], this.g.unique(p.base), { mode: 'constant' });
    } else {
      v.name = this.emitConv(p.conv, this.g.unique(p.base));
    }
    v.layout = 'nchw';
    return v.name;
  }

  private asNchw(v: Value): string {
    const name = this.materialize(v);
    if (v.layout === 'nchw') return name;
    if (v.shape.length !== 4) throw new EngineError('INTERNAL', `Cannot make a rank-${v.shape.length} value NCHW`);
    v.nchw ??= this.g.node('Transpose', [name], this.g.unique(`${name}_nchw`), { perm: TO_NCHW });
    return v.nchw;
  }

  private asKeras(v: Value): string {
    const name = this.materialize(v);
    if (v.layout === 'keras') return name;
    v.keras ??= this.g.node('Transpose', [name], this.g.unique(`${name}_nhwc`), { perm: TO_NHWC });
    return v.keras;
  }

  /** The name of `v` in the given layout. */
  private inLayout(v: Value, layout: Layout): string {
    return layout === 'nchw' ? this.asNchw(v) : this.asKeras(v);
  }

  /** NCHW when any 4-D input already is (saves transposes), else Keras order. */
  private commonLayout(values: readonly Value[]): Layout {
    return values.some((v) => v.shape.length === 4 && (v.layout === 'nchw' || v.pending !== null)) ? 'nchw' : 'keras';
  }

  private emitConv(c: ConvSpec, out: string): string {
    const x = this.asNchw(c.input);
    const w = this.g.floatTensor(`${out}_W`, c.weightDims, c.weight);
    const ins = [x, w];
    if (c.bias !== null) ins.push(this.g.floatTensor(`${out}_B`, [c.bias.length], c.bias));
    const attrs: Record<string, AttrValue> = {
      kernel_shape: [c.weightDims[2], c.weightDims[3]],
      strides: [...c.strides],
      dilations: [...c.dilations],
      group: c.group,
    };
    if (c.pads === null) attrs.auto_pad = 'SAME_UPPER';
    else attrs.pads = [...c.pads];
    return this.g.node('Conv', ins, out, attrs);
  }

  // --- layers ---------------------------------------------------------------------------------------------

  private inline(inner: ModelLike, inputs: Value[]): Value[] {
    if (inner.inputs.length !== inputs.length) throw unsupported(inner, `${inputs.length} inputs for ${inner.inputs.length}`);
    // A fresh scope per call: a nested model applied twice gets two copies of its graph.
    const scope: Scope = new Map();
    inner.inputs.forEach((t, i) => scope.set(t.id, [inputs[i]!]));
    return inner.outputs.map((t) => this.resolve(t, scope));
  }

  /** Shared by Conv2D / DepthwiseConv2D / SeparableConv2D: strides, dilations and pads for `x`. */
  private convGeometry(
    layer: LayerLike,
    cfg: Record<string, unknown>,
    x: Value,
    kernel: readonly [number, number],
  ): { input: Value; strides: [number, number]; dilations: [number, number]; pads: [number, number, number, number] | null } {
    const strides = pair(cfg.strides, 1);
    const dilations = pair(cfg.dilationRate, 1);
    if ((strides[0] > 1 || strides[1] > 1) && (dilations[0] > 1 || dilations[1] > 1)) {
      throw unsupported(layer, 'strides and dilation together');
    }
    const padding = String(cfg.padding ?? 'valid');
    if (padding === 'valid') {
      const p = x.pending;
      if (p?.kind === 'pad') {
        this.foldedPads++;
        const [top, bottom, left, right] = p.pads;
        return { input: p.input, strides, dilations, pads: [top, left, bottom, right] };
      }
      return { input: x, strides, dilations, pads: [0, 0, 0, 0] };
    }
    if (padding !== 'same') throw unsupported(layer, `padding ${padding}`);
    const [h, w] = [x.shape[1] ?? null, x.shape[2] ?? null];
    if (h === null || w === null) return { input: x, strides, dilations, pads: null };
    const [top, bottom] = samePads(h, kernel[0], strides[0], dilations[0]);
    const [left, right] = samePads(w, kernel[1], strides[1], dilations[1]);
    return { input: x, strides, dilations, pads: [top, left, bottom, right] };
  }

  /** A conv value: deferred when linear (so a BatchNormalization can fold into it), else emitted + activated. */
  private convValue(layer: LayerLike, cfg: Record<string, unknown>, conv: ConvSpec, shape: readonly Dim[]): Value {
    const activation = String(cfg.activation ?? 'linear');
    const value: Value = { shape, layout: 'nchw', name: null, pending: { kind: 'conv', conv, base: layer.name } };
    return activation === 'linear' ? value : this.activation(layer, activation, value, shape);
  }

  private conv2d(layer: LayerLike, cfg: Record<string, unknown>, x: Value, shape: readonly Dim[]): Value {
    const k = readWeight(layer, 'kernel'); // [kh, kw, in/group, out]
    const [kh, kw, ci, co] = dims4(layer, k.shape);
    const group = num(cfg.groups, 1);
    const geo = this.convGeometry(layer, cfg, x, [kh, kw]);
    const weight = new Float32Array(co * ci * kh * kw);
    for (let y = 0; y < kh; y++) {
      for (let xx = 0; xx < kw; xx++) {
        for (let i = 0; i < ci; i++) {
          const src = ((y * kw + xx) * ci + i) * co;
          for (let o = 0; o < co; o++) weight[((o * ci + i) * kh + y) * kw + xx] = k.data[src + o]!;
        }
      }
    }
    return this.convValue(layer, cfg, { ...geo, weight, weightDims: [co, ci, kh, kw], bias: optionalBias(layer, cfg), group }, shape);
  }

  private depthwise(layer: LayerLike, cfg: Record<string, unknown>, x: Value, shape: readonly Dim[]): Value {
    const conv = this.depthwiseSpec(layer, cfg, x, readWeight(layer, 'depthwiseKernel'));
    return this.convValue(layer, cfg, { ...conv, bias: optionalBias(layer, cfg) }, shape);
  }

  private depthwiseSpec(layer: LayerLike, cfg: Record<string, unknown>, x: Value, k: WeightData): ConvSpec {
    const [kh, kw, ci, m] = dims4(layer, k.shape); // [kh, kw, in, multiplier]
    const geo = this.convGeometry(layer, cfg, x, [kh, kw]);
    // TF's depthwise output channel i*m + j is input channel i through multiplier j: exactly ONNX's
    // grouped conv with group = in and weight row i*m + j.
    const weight = new Float32Array(ci * m * kh * kw);
    for (let y = 0; y < kh; y++) {
      for (let xx = 0; xx < kw; xx++) {
        for (let i = 0; i < ci; i++) {
          for (let j = 0; j < m; j++) weight[((i * m + j) * kh + y) * kw + xx] = k.data[((y * kw + xx) * ci + i) * m + j]!;
        }
      }
    }
    return { ...geo, weight, weightDims: [ci * m, 1, kh, kw], bias: null, group: ci };
  }

  private separable(layer: LayerLike, cfg: Record<string, unknown>, x: Value, shape: readonly Dim[]): Value {
    const depth = this.depthwiseSpec(layer, cfg, x, readWeight(layer, 'depthwiseKernel'));
    const mid: Value = {
      shape: [shape[0] ?? null, shape[1] ?? null, shape[2] ?? null, depth.weightDims[0]],
      layout: 'nchw',
      name: this.emitConv(depth, this.g.unique(`${layer.name}_depthwise`)),
      pending: null,
    };
    const p = readWeight(layer, 'pointwiseKernel'); // [1, 1, in*m, out]
    const [, , ci, co] = dims4(layer, p.shape);
    const weight = new Float32Array(co * ci);
    for (let i = 0; i < ci; i++) for (let o = 0; o < co; o++) weight[o * ci + i] = p.data[i * co + o]!;
    const pointwise: ConvSpec = {
      input: mid,
      weight,
      weightDims: [co, ci, 1, 1],
      bias: optionalBias(layer, cfg),
      strides: [1, 1],
      dilations: [1, 1],
      group: 1,
      pads: [0, 0, 0, 0],
    };
    return this.convValue(layer, cfg, pointwise, shape);
  }

  private batchNorm(layer: LayerLike, cfg: Record<string, unknown>, x: Value, shape: readonly Dim[]): Value {
    const rank = shape.length;
    const axis = num(Array.isArray(cfg.axis) ? (cfg.axis.length === 1 ? cfg.axis[0] : NaN) : cfg.axis, -1);
    if (axis !== -1 && axis !== rank - 1) throw unsupported(layer, `axis ${axis} (only the channel axis)`);
    const channels = shape[rank - 1];
    if (typeof channels !== 'number') throw unsupported(layer, 'an unknown channel count');
    const eps = num(cfg.epsilon, 1e-3);
    const mean = readWeight(layer, 'movingMean').data;
    const variance = readWeight(layer, 'movingVariance').data;
    const gamma = readWeightOrNull(layer, 'gamma')?.data ?? null;
    const beta = readWeightOrNull(layer, 'beta')?.data ?? null;
    // y = (x - mean) * s + beta with s = gamma / sqrt(var + eps), in float64.
    const scale = new Float64Array(channels);
    const shift = new Float64Array(channels);
    for (let c = 0; c < channels; c++) {
      scale[c] = (gamma?.[c] ?? 1) / Math.sqrt(variance[c]! + eps);
      shift[c] = (beta?.[c] ?? 0) - mean[c]! * scale[c]!;
    }
    const p = x.pending;
    if (p?.kind === 'conv' && x.name === null) {
      // Fold: W' = W * s (per output channel), b' = b * s + shift.
      const c = p.conv;
      const perOut = c.weight.length / channels;
      const weight = new Float32Array(c.weight.length);
      for (let o = 0; o < channels; o++) {
        const s = scale[o]!;
        for (let j = o * perOut; j < (o + 1) * perOut; j++) weight[j] = c.weight[j]! * s;
      }
      const bias = new Float32Array(channels);
      for (let o = 0; o < channels; o++) bias[o] = (c.bias?.[o] ?? 0) * scale[o]! + shift[o]!;
      this.foldedBatchNorms++;
      return { shape, layout: 'nchw', name: null, pending: { kind: 'conv', conv: { ...c, weight, bias }, base: layer.name } };
    }
    // Standalone: x * s + shift, broadcast over the channel axis of whichever layout x is in.
    const layout: Layout = rank === 4 ? this.commonLayout([x]) : 'keras';
    const xs = this.inLayout(x, layout);
    const vecDims = layout === 'nchw' ? [channels, 1, 1] : [channels];
    const s = this.g.floatTensor(`${layer.name}_scale`, vecDims, Float32Array.from(scale));
    const t = this.g.floatTensor(`${layer.name}_shift`, vecDims, Float32Array.from(shift));
    const mul = this.g.node('Mul', [xs, s], this.g.unique(`${layer.name}_mul`));
    return { shape, layout, name: this.g.node('Add', [mul, t], this.g.unique(layer.name)), pending: null };
  }

  private dense(layer: LayerLike, cfg: Record<string, unknown>, x: Value, shape: readonly Dim[]): Value {
    const k = readWeight(layer, 'kernel'); // [in, units]
    if (k.shape.length !== 2) throw unsupported(layer, `kernel shape [${k.shape.join(',')}]`);
    const [inDim, units] = k.shape as [number, number];
    const xs = this.asKeras(x);
    const w = this.g.floatTensor(`${layer.name}_W`, [inDim, units], k.data.slice());
    const bias = optionalBias(layer, cfg);
    let out: string;
    if (x.shape.length === 2) {
      const ins = [xs, w];
      if (bias !== null) ins.push(this.g.floatTensor(`${layer.name}_B`, [units], bias));
      out = this.g.node('Gemm', ins, this.g.unique(layer.name));
    } else {
      out = this.g.node('MatMul', [xs, w], this.g.unique(`${layer.name}_matmul`));
      if (bias !== null) {
        out = this.g.node('Add', [out, this.g.floatTensor(`${layer.name}_B`, [units], bias)], this.g.unique(layer.name));
      }
    }
    const value: Value = { shape, layout: 'keras', name: out, pending: null };
    return this.activation(layer, String(cfg.activation ?? 'linear'), value, shape);
  }

  private relu(layer: LayerLike, cfg: Record<string, unknown>, x: Value, shape: readonly Dim[]): Value {
    const maxValue = cfg.maxValue === null || cfg.maxValue === undefined ? null : num(cfg.maxValue, NaN);
    const slope = num(cfg.negativeSlope, 0);
    if (num(cfg.threshold, 0) !== 0) throw unsupported(layer, 'a non-zero threshold');
    if (slope !== 0) {
      if (maxValue !== null) throw unsupported(layer, 'negativeSlope together with maxValue');
      return this.unary(layer, 'LeakyRelu', x, shape, { alpha: float(slope) });
    }
    return maxValue === null ? this.unary(layer, 'Relu', x, shape) : this.clip(layer.name, x, shape, 0, maxValue);
  }

  private clip(base: string, x: Value, shape: readonly Dim[], min: number, max: number): Value {
    const xs = this.materialize(x);
    const lo = this.g.floatScalar(`${base}_min`, min);
    const hi = this.g.floatScalar(`${base}_max`, max);
    return { shape, layout: x.layout, name: this.g.node('Clip', [xs, lo, hi], this.g.unique(base)), pending: null };
  }

  private unary(layer: LayerLike, op: string, x: Value, shape: readonly Dim[], attrs: Record<string, AttrValue> = {}): Value {
    const xs = this.materialize(x);
    return { shape, layout: x.layout, name: this.g.node(op, [xs], this.g.unique(layer.name), attrs), pending: null };
  }

  private activation(layer: LayerLike, name: string, x: Value, shape: readonly Dim[]): Value {
    switch (name) {
      case 'linear':
        return x;
      case 'relu':
        return this.unary(layer, 'Relu', x, shape);
      case 'relu6':
        return this.clip(layer.name, x, shape, 0, 6);
      case 'sigmoid':
        return this.unary(layer, 'Sigmoid', x, shape);
      case 'tanh':
        return this.unary(layer, 'Tanh', x, shape);
      case 'softplus':
        return this.unary(layer, 'Softplus', x, shape);
      case 'softsign':
        return this.unary(layer, 'Softsign', x, shape);
      case 'elu':
        return this.unary(layer, 'Elu', x, shape, { alpha: float(1) });
      case 'selu':
        return this.unary(layer, 'Selu', x, shape, { alpha: float(1.6732632423543772), gamma: float(1.0507009873554805) });
      case 'hard_sigmoid':
      case 'hardSigmoid':
        return this.unary(layer, 'HardSigmoid', x, shape, { alpha: float(0.2), beta: float(0.5) });
      case 'exponential':
        return this.unary(layer, 'Exp', x, shape);
      case 'swish': {
        const xs = this.materialize(x);
        const sig = this.g.node('Sigmoid', [xs], this.g.unique(`${layer.name}_sigmoid`));
        return { shape, layout: x.layout, name: this.g.node('Mul', [xs, sig], this.g.unique(layer.name)), pending: null };
      }
      case 'softmax':
        return this.softmax(layer, x, shape, -1);
      default:
        throw unsupported(layer, `activation "${name}"`);
    }
  }

  private softmax(layer: LayerLike, x: Value, shape: readonly Dim[], kerasAxis: number): Value {
    const xs = this.materialize(x);
    const rank = shape.length;
    const a = kerasAxis < 0 ? kerasAxis + rank : kerasAxis;
    const axis = x.layout === 'nchw' ? NHWC_AXIS_IN_NCHW[a]! : a;
    return { shape, layout: x.layout, name: this.g.node('Softmax', [xs], this.g.unique(layer.name), { axis }), pending: null };
  }

  private merge(layer: LayerLike, cls: string, inputs: readonly Value[], shape: readonly Dim[]): Value {
    if (inputs.length < 2) throw unsupported(layer, `${inputs.length} inputs`);
    if (inputs.some((v) => v.shape.length !== shape.length)) throw unsupported(layer, 'inputs of different ranks');
    const layout = shape.length === 4 ? this.commonLayout(inputs) : 'keras';
    const names = inputs.map((v) => this.inLayout(v, layout));
    let out: string;
    const fold = (op: string): string =>
      names.slice(1).reduce((acc, n, i) => this.g.node(op, [acc, n], this.g.unique(i === names.length - 2 ? layer.name : `${layer.name}_${i}`)), names[0]!);
    switch (cls) {
      case 'Add':
        out = names.length === 2 ? fold('Add') : this.g.node('Sum', names, this.g.unique(layer.name));
        break;
      case 'Subtract':
        if (names.length !== 2) throw unsupported(layer, `${names.length} inputs`);
        out = fold('Sub');
        break;
      case 'Multiply':
        out = fold('Mul');
        break;
      case 'Average':
        out = this.g.node('Mean', names, this.g.unique(layer.name));
        break;
      case 'Maximum':
        out = this.g.node('Max', names, this.g.unique(layer.name));
        break;
      default:
        out = this.g.node('Min', names, this.g.unique(layer.name));
    }
    return { shape, layout, name: out, pending: null };
  }

  private concat(layer: LayerLike, cfg: Record<string, unknown>, inputs: readonly Value[], shape: readonly Dim[]): Value {
    const rank = shape.length;
    const raw = num(cfg.axis, -1);
    const a = raw < 0 ? raw + rank : raw;
    const layout = rank === 4 ? this.commonLayout(inputs) : 'keras';
    const names = inputs.map((v) => this.inLayout(v, layout));
    const axis = layout === 'nchw' ? NHWC_AXIS_IN_NCHW[a]! : a;
    return { shape, layout, name: this.g.node('Concat', names, this.g.unique(layer.name), { axis }), pending: null };
  }

  private zeroPad(layer: LayerLike, cfg: Record<string, unknown>, x: Value, shape: readonly Dim[]): Value {
    const p = cfg.padding;
    let pads: Pads4;
    if (typeof p === 'number') pads = [p, p, p, p];
    else if (Array.isArray(p) && p.length === 2 && p.every((v) => typeof v === 'number')) {
      pads = [p[0] as number, p[0] as number, p[1] as number, p[1] as number];
    } else if (Array.isArray(p) && p.length === 2 && p.every((v) => Array.isArray(v) && v.length === 2)) {
      const [[top, bottom], [left, right]] = p as [[number, number], [number, number]];
      pads = [top, bottom, left, right];
    } else throw unsupported(layer, `padding ${JSON.stringify(p)}`);
    return { shape, layout: 'nchw', name: null, pending: { kind: 'pad', input: x, pads, base: layer.name } };
  }

  private pool(layer: LayerLike, op: 'MaxPool' | 'AveragePool', cfg: Record<string, unknown>, x: Value, shape: readonly Dim[]): Value {
    const kernel = pair(cfg.poolSize, 2);
    const strides = cfg.strides === null || cfg.strides === undefined ? kernel : pair(cfg.strides, 1);
    const padding = String(cfg.padding ?? 'valid');
    const attrs: Record<string, AttrValue> = { kernel_shape: kernel, strides };
    if (padding === 'same') {
      const [h, w] = [x.shape[1] ?? null, x.shape[2] ?? null];
      if (h === null || w === null) attrs.auto_pad = 'SAME_UPPER';
      else {
        const [top, bottom] = samePads(h, kernel[0], strides[0], 1);
        const [left, right] = samePads(w, kernel[1], strides[1], 1);
        attrs.pads = [top, left, bottom, right];
      }
    } else if (padding !== 'valid') throw unsupported(layer, `padding ${padding}`);
    // TF averages over the valid (unpadded) window only.
    if (op === 'AveragePool') attrs.count_include_pad = 0;
    const xs = this.asNchw(x);
    return { shape, layout: 'nchw', name: this.g.node(op, [xs], this.g.unique(layer.name), attrs), pending: null };
  }

  private globalPool(layer: LayerLike, op: string, x: Value, shape: readonly Dim[]): Value {
    const xs = this.asNchw(x);
    const pooled = this.g.node(op, [xs], this.g.unique(shape.length === 4 ? layer.name : `${layer.name}_pool`));
    if (shape.length === 4) return { shape, layout: 'nchw', name: pooled, pending: null }; // keepdims
    return { shape, layout: 'keras', name: this.g.node('Flatten', [pooled], this.g.unique(layer.name), { axis: 1 }), pending: null };
  }

  private flatten(layer: LayerLike, x: Value, shape: readonly Dim[]): Value {
    if (x.shape.length <= 2) return x;
    // Over a 1x1 map, NCHW and NHWC orders agree: skip the transpose (MobileNetV2 / InceptionV3 embeddings).
    const oneByOne = x.shape.length === 4 && x.shape[1] === 1 && x.shape[2] === 1;
    const xs = oneByOne && this.commonLayout([x]) === 'nchw' ? this.asNchw(x) : this.asKeras(x);
    return { shape, layout: 'keras', name: this.g.node('Flatten', [xs], this.g.unique(layer.name), { axis: 1 }), pending: null };
  }

  private reshape(layer: LayerLike, x: Value, shape: readonly Dim[]): Value {
    const target = shape.slice(1).map((d) => (d === null ? -1 : d));
    if (target.filter((d) => d === -1).length > 1) throw unsupported(layer, `target shape ${JSON.stringify(shape)}`);
    const xs = this.asKeras(x);
    const dims = this.g.int64Tensor(`${layer.name}_shape`, [0, ...target]);
    return { shape, layout: 'keras', name: this.g.node('Reshape', [xs, dims], this.g.unique(layer.name)), pending: null };
  }

  private rescale(layer: LayerLike, cfg: Record<string, unknown>, x: Value, shape: readonly Dim[]): Value {
    const xs = this.materialize(x);
    const scale = this.g.floatScalar(`${layer.name}_scale`, num(cfg.scale, 1));
    const offset = this.g.floatScalar(`${layer.name}_offset`, num(cfg.offset, 0));
    const mul = this.g.node('Mul', [xs, scale], this.g.unique(`${layer.name}_mul`));
    return { shape, layout: x.layout, name: this.g.node('Add', [mul, offset], this.g.unique(layer.name)), pending: null };
  }
}

// --- helpers -------------------------------------------------------------------------------------------------

interface WeightData {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

function readWeightOrNull(layer: LayerLike, field: string): WeightData | null {
  const variable = (layer as unknown as Record<string, VariableLike | null | undefined>)[field];
  if (variable === null || variable === undefined || typeof variable.read !== 'function') return null;
  const t = variable.read();
  const data = t.dataSync();
  // One concrete array type keeps the weight loops monomorphic (and fast) in V8.
  return { shape: t.shape, data: data instanceof Float32Array ? data : Float32Array.from(data) };
}

function readWeight(layer: LayerLike, field: string): WeightData {
  const w = readWeightOrNull(layer, field);
  if (w === null) throw unsupported(layer, `a missing ${field} (is the model built?)`);
  return w;
}

function optionalBias(layer: LayerLike, cfg: Record<string, unknown>): Float32Array | null {
  if (cfg.useBias === false) return null;
  const b = readWeightOrNull(layer, 'bias');
  return b === null ? null : b.data.slice();
}

function dims4(layer: LayerLike, shape: readonly number[]): [number, number, number, number] {
  if (shape.length !== 4) throw unsupported(layer, `kernel shape [${shape.join(',')}]`);
  return shape as [number, number, number, number];
}

/** TF SAME padding along one axis: [before, after], the odd pixel after. */
export function samePads(size: number, kernel: number, stride: number, dilation: number): [number, number] {
  const effective = (kernel - 1) * dilation + 1;
  const out = Math.ceil(size / stride);
  const total = Math.max((out - 1) * stride + effective - size, 0);
  const before = Math.floor(total / 2);
  return [before, total - before];
}

function pair(v: unknown, fallback: number): [number, number] {
  if (typeof v === 'number') return [v, v];
  if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'number' && typeof v[1] === 'number') return [v[0], v[1]];
  if (v === undefined || v === null) return [fallback, fallback];
  throw new EngineError('BAD_INPUT', `Expected a number or a pair, got ${JSON.stringify(v)}`);
}

function num(v: unknown, fallback: number): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : fallback;
}

function isModel(layer: LayerLike): layer is ModelLike {
  const l = layer as Partial<ModelLike>;
  return Array.isArray(l.layers) && Array.isArray(l.inputs) && Array.isArray(l.outputs);
}

function unsupported(layer: LayerLike, what: string): EngineError {
  return new EngineError('BAD_INPUT', `ONNX export does not support ${what} in layer ${layer.name} (${layer.getClassName()})`, {
    details: { layer: layer.name, className: layer.getClassName() },
  });
}
