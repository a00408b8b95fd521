/**
 * The ONNX protobuf schema (onnx-proto's generated classes) and the mapping
 * from IR dtypes to ONNX element types.
 */
import onnxProto from 'onnx-proto';
import { encodeHalf } from '../../src/ir/floatBits.js';
import { castValue, DTYPE_INFO, type DType, type Tensor } from '../../src/ir/tensor.js';

export const onnx = onnxProto.onnx;
export type ModelProto = InstanceType<typeof onnx.ModelProto>;

/** The opset every emitted model declares; IR version 8 is the one that goes with it. */
export const OPSET = 17;
export const IR_VERSION = 8;

/** The ONNX element type of an IR dtype (the numbers are TensorProto.DataType's). */
export function elemType(dtype: DType): number {
  return DTYPE_INFO[dtype].onnx;
}

/**
 * Little-endian raw bytes of values in an IR dtype: f16 and bf16 as their
 * 16-bit patterns (rounded to nearest even), integers converted as `cast` does.
 */
export function rawBytes(dtype: DType, values: ArrayLike<number>): Uint8Array {
  const bytesOf = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  switch (dtype) {
    case 'f32':
      return bytesOf(Float32Array.from(values));
    case 'f16':
    case 'bf16':
      return bytesOf(encodeHalf(dtype, values));
    case 'i64': {
      const out = new BigInt64Array(values.length);
      for (let i = 0; i < values.length; i++) out[i] = BigInt(Math.trunc(values[i]!));
      return bytesOf(out);
    }
    case 'i32':
      return bytesOf(Int32Array.from(values, castValue('i32')));
    case 'i8':
      return bytesOf(Int8Array.from(values, castValue('i8')));
    case 'u8':
      return Uint8Array.from(values, castValue('u8'));
    case 'bool':
      return Uint8Array.from(values, (v) => (v ? 1 : 0));
  }
}

export function tensorProto(name: string, t: Tensor): InstanceType<typeof onnx.TensorProto> {
  return onnx.TensorProto.create({ name, dims: [...t.shape], dataType: elemType(t.dtype), rawData: rawBytes(t.dtype, t.data) });
}

/** A value's name and type; a string dimension is a `dim_param` (a size known at run time: `batch`, `past_sequence + 1`). */
export function valueInfo(name: string, dtype: DType, shape: readonly (number | string)[]): InstanceType<typeof onnx.ValueInfoProto> {
  return onnx.ValueInfoProto.create({
    name,
    type: { tensorType: { elemType: elemType(dtype), shape: { dim: shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
  });
}
