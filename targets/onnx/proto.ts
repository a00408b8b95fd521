/**
 * The ONNX protobuf schema (onnx-proto's generated classes) and the mapping
 * from IR dtypes to ONNX element types.
 */
import onnxProto from 'onnx-proto';
import type { DType, Tensor } from '../../src/ir/tensor.js';

export const onnx = onnxProto.onnx;
export type ModelProto = InstanceType<typeof onnx.ModelProto>;

/** The opset every emitted model declares; IR version 8 is the one that goes with it. */
export const OPSET = 17;
export const IR_VERSION = 8;

const ELEM: Record<DType, number> = {
  f32: onnx.TensorProto.DataType.FLOAT,
  i64: onnx.TensorProto.DataType.INT64,
  bool: onnx.TensorProto.DataType.BOOL,
};

export function elemType(dtype: DType): number {
  return ELEM[dtype];
}

/** Little-endian raw bytes of values in an IR dtype. */
export function rawBytes(dtype: DType, values: ArrayLike<number>): Uint8Array {
  switch (dtype) {
    case 'f32':
      return new Uint8Array(Float32Array.from(values).buffer);
    case 'i64': {
      const out = new BigInt64Array(values.length);
      for (let i = 0; i < values.length; i++) out[i] = BigInt(values[i]!);
      return new Uint8Array(out.buffer);
    }
    case 'bool':
      return Uint8Array.from(values, (v) => (v ? 1 : 0));
  }
}

export function tensorProto(name: string, t: Tensor): InstanceType<typeof onnx.TensorProto> {
  return onnx.TensorProto.create({ name, dims: [...t.shape], dataType: elemType(t.dtype), rawData: rawBytes(t.dtype, t.data) });
}

export function valueInfo(name: string, dtype: DType, shape: readonly number[]): InstanceType<typeof onnx.ValueInfoProto> {
  return onnx.ValueInfoProto.create({
    name,
    type: { tensorType: { elemType: elemType(dtype), shape: { dim: shape.map((d) => ({ dimValue: d })) } } },
  });
}
