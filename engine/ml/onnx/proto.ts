/**
 * ONNX protobuf encoding and decoding through protobufjs and the official field numbers (`onnx.proto`, the
 * subset of `onnx/onnx.proto3` the exporter writes). The schema is parsed once per process, lazily.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

/** ONNX IR version written (IR 7 = ONNX 1.7+, the first IR that may carry opset 13). */
export const IR_VERSION = 7;

/** The default-domain opset the exporter targets. */
export const OPSET = 13;

/** `TensorProto.DataType` values used here. */
export const DataType = { FLOAT: 1, INT64: 7 } as const;

/** `AttributeProto.AttributeType` values used here. */
export const AttributeType = { FLOAT: 1, INT: 2, STRING: 3, FLOATS: 6, INTS: 7 } as const;

/** A tensor as protobufjs plain object (`TensorProto`). Weights go in `raw_data` (little-endian). */
export interface TensorMessage {
  name: string;
  dims: number[];
  data_type: number;
  raw_data: Uint8Array;
}

/** One `AttributeProto`. Exactly one value field is set, matching `type`. */
export interface AttributeMessage {
  name: string;
  type: number;
  f?: number;
  i?: number;
  s?: Uint8Array;
  floats?: number[];
  ints?: number[];
}

/** One `NodeProto`. */
export interface NodeMessage {
  name: string;
  op_type: string;
  input: string[];
  output: string[];
  attribute: AttributeMessage[];
}

/** One graph input or output (`ValueInfoProto`): float32 with a shape whose unknown dims are named. */
export interface ValueInfoMessage {
  name: string;
  type: {
    tensor_type: {
      elem_type: number;
      shape: { dim: ({ dim_value: number } | { dim_param: string })[] };
    };
  };
}

/** A whole model (`ModelProto`). */
export interface ModelMessage {
  ir_version: number;
  producer_name: string;
  producer_version: string;
  model_version?: number;
  doc_string?: string;
  opset_import: { domain: string; version: number }[];
  graph: {
    name: string;
    node: NodeMessage[];
    initializer: TensorMessage[];
    input: ValueInfoMessage[];
    output: ValueInfoMessage[];
  };
  metadata_props: { key: string; value: string }[];
}

let modelType: protobuf.Type | undefined;

function modelProto(): protobuf.Type {
  if (modelType === undefined) {
    const source = readFileSync(fileURLToPath(new URL('./onnx.proto', import.meta.url)), 'utf8');
    const root = protobuf.parse(source, { keepCase: true }).root;
    modelType = root.lookupType('onnx.ModelProto');
  }
  return modelType;
}

/** Serialises a model to ONNX bytes. */
export function encodeModel(model: ModelMessage): Uint8Array {
  const type = modelProto();
  return type.encode(type.fromObject(model as unknown as Record<string, unknown>)).finish();
}

/**
 * Parses ONNX bytes back to a plain object (int64 as numbers, bytes as Uint8Array, enums as numbers). Used by
 * tests and tools that inspect an exported graph; inference never needs it.
 */
export function decodeModel(bytes: Uint8Array): ModelMessage {
  const type = modelProto();
  return type.toObject(type.decode(bytes), { longs: Number, enums: Number, bytes: Uint8Array, defaults: true, arrays: true }) as ModelMessage;
}
