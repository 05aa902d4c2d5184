/**
 * A small append-only builder of an ONNX graph: unique value names, nodes with typed attributes, float and
 * int64 initializers. The exporter drives it; it knows nothing about Keras.
 */
import { endianness } from 'node:os';
import {
  AttributeType,
  DataType,
  type AttributeMessage,
  type NodeMessage,
  type TensorMessage,
  type ValueInfoMessage,
} from './proto.ts';

/** An attribute value: numbers are INT when integral unless wrapped with {@link float}, arrays likewise. */
export type AttrValue = number | string | readonly number[] | FloatAttr | FloatsAttr;

/** Marks a number attribute as FLOAT (e.g. `epsilon`, `alpha`). */
export interface FloatAttr {
  readonly float: number;
}

/** Marks a number-array attribute as FLOATS. */
export interface FloatsAttr {
  readonly floats: readonly number[];
}

/** A FLOAT attribute value. */
export const float = (value: number): FloatAttr => ({ float: value });

/** A dimension of a graph input/output: a size, or `null` for a symbolic (batch, unknown) dimension. */
export type Dim = number | null;

if (endianness() !== 'LE') {
  // raw_data must be little-endian; every platform onnxruntime-node ships for is, so refuse rather than swap.
  throw new Error('The ONNX exporter needs a little-endian platform');
}

/** Builds the nodes and initializers of one graph. */
export class GraphBuilder {
  readonly nodes: NodeMessage[] = [];
  readonly initializers: TensorMessage[] = [];
  private readonly used = new Set<string>();
  private readonly reserved = new Set<string>();

  /** Keeps names for later (graph outputs) so {@link unique} never hands them out. */
  reserve(name: string): void {
    this.reserved.add(name);
  }

  /** A value name based on `base` that no other value uses (and that is not reserved). */
  unique(base: string): string {
    const clean = base.length > 0 ? base : 'v';
    let name = clean;
    for (let i = 1; this.used.has(name) || this.reserved.has(name); i++) name = `${clean}__${i}`;
    this.used.add(name);
    return name;
  }

  /** Claims a reserved name (for the node that produces a graph output). */
  claim(name: string): string {
    if (this.used.has(name)) throw new Error(`ONNX value name ${name} is already used`);
    this.used.add(name);
    return name;
  }

  /** Appends a node; returns its single output name (or the first of `outputs`). */
  node(opType: string, inputs: readonly string[], output: string, attrs: Record<string, AttrValue> = {}): string {
    this.nodes.push({
      name: `${opType}_${this.nodes.length}`,
      op_type: opType,
      input: [...inputs],
      output: [output],
      attribute: Object.entries(attrs).map(([name, value]) => attribute(name, value)),
    });
    return output;
  }

  /** A float32 initializer; returns its name. */
  floatTensor(base: string, dims: readonly number[], data: Float32Array): string {
    const size = dims.reduce((a, b) => a * b, 1);
    if (size !== data.length) throw new Error(`Initializer ${base}: ${data.length} values for dims [${dims.join(',')}]`);
    const name = this.unique(base);
    this.initializers.push({
      name,
      dims: [...dims],
      data_type: DataType.FLOAT,
      raw_data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    });
    return name;
  }

  /** An int64 initializer (shapes, pads); returns its name. */
  int64Tensor(base: string, values: readonly number[]): string {
    const name = this.unique(base);
    const data = BigInt64Array.from(values.map((v) => BigInt(v)));
    this.initializers.push({
      name,
      dims: [values.length],
      data_type: DataType.INT64,
      raw_data: new Uint8Array(data.buffer),
    });
    return name;
  }

  /** A float32 scalar initializer (rank 0, e.g. Clip bounds). */
  floatScalar(base: string, value: number): string {
    const name = this.unique(base);
    const data = Float32Array.of(value);
    this.initializers.push({ name, dims: [], data_type: DataType.FLOAT, raw_data: new Uint8Array(data.buffer) });
    return name;
  }
}

/** A float32 graph input/output description; `null` dims become named symbolic dims. */
export function valueInfo(name: string, dims: readonly Dim[]): ValueInfoMessage {
  return {
    name,
    type: {
      tensor_type: {
        elem_type: DataType.FLOAT,
        shape: { dim: dims.map((d, i) => (d === null ? { dim_param: i === 0 ? 'N' : `${name}_d${i}` } : { dim_value: d })) },
      },
    },
  };
}

function attribute(name: string, value: AttrValue): AttributeMessage {
  if (typeof value === 'string') return { name, type: AttributeType.STRING, s: new TextEncoder().encode(value) };
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new Error(`Attribute ${name}=${value}: use float() for FLOAT attributes`);
    return { name, type: AttributeType.INT, i: value };
  }
  if ('float' in value) return { name, type: AttributeType.FLOAT, f: value.float };
  if ('floats' in value) return { name, type: AttributeType.FLOATS, floats: [...value.floats] };
  return { name, type: AttributeType.INTS, ints: [...value] };
}
