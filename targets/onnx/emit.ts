/**
 * IR graph → ONNX ModelProto. Each node is lowered by its op's `lower`; this
 * file only names values, collects constants and initializers, and encodes.
 * Names depend only on the graph, so the same graph gives the same bytes.
 * Each ONNX node's doc_string is its IR node's provenance (recipe span, phase).
 */
import { describeNode, formatProvenance, IrError, type Graph, type Node, type Value } from '../../src/ir/graph.js';
import type { LoweringContext, OnnxAttr } from '../../src/ir/op.js';
import { lookupOp } from '../../src/ir/ops/index.js';
import { formatDim, type Dim, type SymbolicDims } from '../../src/ir/symbolic.js';
import { makeTensor, sizeOf, type DType } from '../../src/ir/tensor.js';
import { elemType, IR_VERSION, OPSET, onnx, tensorProto, valueInfo } from './proto.js';

/**
 * An initializer's elements, in the typed array of its input's dtype: Float32Array (f32),
 * Uint16Array of bit patterns (f16, bf16), BigInt64Array (i64), Int32Array (i32),
 * Int8Array (i8), Uint8Array (u8, and bool as 0/1).
 */
export type InitializerData = Float32Array | Uint16Array | BigInt64Array | Int32Array | Int8Array | Uint8Array;

const INITIALIZER_ARRAY: Readonly<Record<DType, new (n: number) => InitializerData>> = {
  f32: Float32Array,
  f16: Uint16Array,
  bf16: Uint16Array,
  i64: BigInt64Array,
  i32: Int32Array,
  i8: Int8Array,
  u8: Uint8Array,
  bool: Uint8Array,
};

export interface EmitOptions {
  /** Graph inputs to store in the model as initializers (inference models), by input name. */
  readonly initializers?: ReadonlyMap<string, InitializerData>;
  /** Above this many bytes of initializers, their data goes to an external file (protobuf caps a model at 2 GiB). */
  readonly externalDataThreshold?: number;
  /** File name (relative to the model) of the external data, when used. */
  readonly externalDataFile?: string;
  readonly docString?: string;
  readonly producerVersion?: string;
  /**
   * The graph's symbolic dimensions (ir/symbolic.ts): inputs and outputs get
   * `dim_param`s, and reshape targets and slice bounds are computed from the inputs'
   * shapes, so the model runs at any batch and sequence length.
   */
  readonly dims?: SymbolicDims;
}

export interface EmittedModel {
  readonly bytes: Uint8Array;
  /** The external data file's contents, when initializers went there. */
  readonly externalData: Uint8Array | null;
  readonly nodeCount: number;
}

const DEFAULT_EXTERNAL_THRESHOLD = 1.5 * 2 ** 30;

/** A graph's nodes as ONNX nodes, and the constants they read (to be initializers of the model). */
export interface LoweredNodes {
  readonly nodes: InstanceType<typeof onnx.NodeProto>[];
  readonly constants: InstanceType<typeof onnx.TensorProto>[];
}

/**
 * Lowers every node of `graph`. Inputs keep their names, outputs get theirs;
 * other values are `v<id>`, temporaries `<prefix>t<n>`, constants `<prefix>const<n>`
 * (the prefix keeps the names of a loop body apart from its model's).
 */
export function lowerNodes(graph: Graph, prefix = '', dims?: SymbolicDims): LoweredNodes {
  const nodes: InstanceType<typeof onnx.NodeProto>[] = [];
  const constants = new Map<string, string>();
  const constantProtos: InstanceType<typeof onnx.TensorProto>[] = [];
  const names = new Map<Value, string>();
  let temp = 0;

  for (const v of graph.inputs) names.set(v, v.inputName!);
  // A value that is exactly one graph output (and not an input) is named after it, saving a copy.
  const outputUses = new Map<Value, number>();
  for (const o of graph.outputs) outputUses.set(o.value, (outputUses.get(o.value) ?? 0) + 1);
  for (const o of graph.outputs) if (o.value.producer && outputUses.get(o.value) === 1) names.set(o.value, o.name);

  const nameOf = (v: Value): string => {
    let n = names.get(v);
    if (n === undefined) {
      n = `${prefix}v${v.id}`;
      names.set(v, n);
    }
    return n;
  };

  const constant = (dtype: DType, values: readonly number[], dims: readonly number[]): string => {
    const key = `${dtype}|${dims.join(',')}|${values.join(',')}`;
    let name = constants.get(key);
    if (!name) {
      name = `${prefix}const${constants.size}`;
      constants.set(key, name);
      constantProtos.push(tensorProto(name, makeTensor(dtype, dims, values)));
    }
    return name;
  };

  // Every ONNX node an IR node lowers to carries its provenance ("recipe.pt-recipe:12:5 forward")
  // as doc_string, so an onnxruntime error about a node leads back to the recipe line.
  let docString = '';
  const ctx: LoweringContext = {
    input: (node, i) => nameOf(node.inputs[i]!),
    output: (node, i) => nameOf(node.outputs[i]!),
    emit(opType, inputs, outputs, attrs = {}) {
      const outs = typeof outputs === 'number' ? Array.from({ length: outputs }, () => `${prefix}t${temp++}`) : [...outputs];
      const attribute = Object.entries(attrs).map(([k, a]) => attributeProto(k, a));
      nodes.push(onnx.NodeProto.create({ opType, input: [...inputs], output: outs, name: `${prefix}n${nodes.length}_${opType}`, attribute, ...(docString ? { docString } : {}) }));
      return outs;
    },
    constInt64: (values, dims) => constant('i64', values, dims ?? [values.length]),
    constFloat: (values, dims) => constant('f32', values, dims ?? [values.length]),
    constBool: (values, dims) => constant('bool', values.map(Number), dims ?? [values.length]),
    constInt8: (values, dims) => constant('i8', values, dims ?? [values.length]),
    shapeOf: (v) => {
      const symbolic = dims?.shapes.get(v.id);
      return symbolic ? runtimeInts(symbolic) : ctx.constInt64(v.shape);
    },
    intsOf: (node, attr, values) => {
      const symbolic = dims && node.outputs.length ? dims.attrs.get(node.outputs[0]!.id)?.[attr] : undefined;
      if (!symbolic) return ctx.constInt64(values);
      const raw = node.attrs[attr] as readonly number[];
      if (raw.join() !== values.join()) throw new IrError(`attribute ${attr} [${raw.join(', ')}] counts from the end of an axis whose size varies; write it from the start`);
      return runtimeInts(symbolic);
    },
  };

  // Dynamic sizes: each symbol read once from its input's shape, each list of dimensions built once.
  const symbolTensors = new Map<string, string>();
  const intLists = new Map<string, string>();
  const symbolTensor = (name: string): string => {
    let t = symbolTensors.get(name);
    if (!t) {
      const source = dims!.symbols.find((s) => s.name === name);
      if (!source) throw new IrError(`no input gives the size ${name}`);
      t = ctx.emit('Shape', [source.input], 1, { start: { i: source.axis }, end: { i: source.axis + 1 } })[0]!;
      symbolTensors.set(name, t);
    }
    return t;
  };
  const runtimeInts = (list: readonly Dim[]): string => {
    const key = list.map(formatDim).join(',');
    let name = intLists.get(key);
    if (!name) {
      const parts = list.map((d) => {
        if (typeof d === 'number') return ctx.constInt64([d]);
        let t = d.symbols.map(symbolTensor).reduce((a, b) => ctx.emit('Mul', [a, b], 1)[0]!);
        if (d.coefficient !== 1) t = ctx.emit('Mul', [t, ctx.constInt64([d.coefficient])], 1)[0]!;
        if (d.offset !== 0) t = ctx.emit('Add', [t, ctx.constInt64([d.offset])], 1)[0]!;
        return t;
      });
      name = parts.length === 1 ? parts[0]! : ctx.emit('Concat', parts, 1, { axis: { i: 0 } })[0]!;
      intLists.set(key, name);
    }
    return name;
  };

  for (const node of graph.nodes) {
    docString = formatProvenance(node.provenance);
    lowerNode(ctx, node);
  }
  docString = '';

  // Outputs that could not take the producer's name: inputs passed through, or one value output twice.
  for (const o of graph.outputs) {
    if (names.get(o.value) !== o.name) ctx.emit('Identity', [nameOf(o.value)], [o.name]);
  }
  return { nodes, constants: constantProtos };
}

export function emitModel(graph: Graph, options: EmitOptions = {}): EmittedModel {
  const { nodes, constants: constantProtos } = lowerNodes(graph, '', options.dims);
  const dimsOf = (v: Value): readonly (number | string)[] => options.dims?.shapes.get(v.id)?.map((d) => (typeof d === 'number' ? d : formatDim(d))) ?? v.shape;
  const init = options.initializers ?? new Map();
  const inputs = graph.inputs.filter((v) => !init.has(v.inputName!));
  const initializers = graph.inputs.filter((v) => init.has(v.inputName!)).map((v) => initializerProto(v, init.get(v.inputName!)!));
  const totalInitBytes = initializers.reduce((n, t) => n + (t.rawData?.length ?? 0), 0);
  let externalData: Uint8Array | null = null;
  if (totalInitBytes > (options.externalDataThreshold ?? DEFAULT_EXTERNAL_THRESHOLD)) {
    externalData = moveToExternal(initializers, options.externalDataFile ?? `${graph.name}.onnx.data`);
  }

  const model = onnx.ModelProto.create({
    irVersion: IR_VERSION,
    opsetImport: [{ domain: '', version: OPSET }],
    producerName: 'pt-recipe',
    producerVersion: options.producerVersion ?? '',
    docString: options.docString ?? '',
    graph: {
      name: graph.name,
      node: nodes,
      input: inputs.map((v) => valueInfo(v.inputName!, v.dtype, dimsOf(v))),
      output: graph.outputs.map((o) => valueInfo(o.name, o.value.dtype, dimsOf(o.value))),
      initializer: [...constantProtos, ...initializers],
    },
  });
  return { bytes: onnx.ModelProto.encode(model).finish(), externalData, nodeCount: nodes.length };
}

function lowerNode(ctx: LoweringContext, node: Node): void {
  try {
    lookupOp(node.op).lower(ctx, node);
  } catch (e) {
    throw new IrError(`lowering ${describeNode(node)} to ONNX: ${(e as Error).message}`);
  }
}

function attributeProto(name: string, a: OnnxAttr): InstanceType<typeof onnx.AttributeProto> {
  const T = onnx.AttributeProto.AttributeType;
  if ('i' in a) return onnx.AttributeProto.create({ name, type: T.INT, i: a.i });
  if ('f' in a) return onnx.AttributeProto.create({ name, type: T.FLOAT, f: a.f });
  if ('s' in a) return onnx.AttributeProto.create({ name, type: T.STRING, s: new TextEncoder().encode(a.s) });
  if ('ints' in a) return onnx.AttributeProto.create({ name, type: T.INTS, ints: [...a.ints] });
  if ('floats' in a) return onnx.AttributeProto.create({ name, type: T.FLOATS, floats: [...a.floats] });
  return onnx.AttributeProto.create({ name, type: T.TENSOR, t: tensorProto('', a.t) });
}

/** An initializer stores its array's bytes as they are (little-endian, as ONNX's raw_data is). */
function initializerProto(v: Value, data: InitializerData): InstanceType<typeof onnx.TensorProto> {
  const expected = sizeOf(v.shape);
  if (data.length !== expected) throw new IrError(`initializer ${v.inputName} has ${data.length} values, its shape [${v.shape.join(', ')}] needs ${expected}`);
  const array = INITIALIZER_ARRAY[v.dtype];
  if (!(data instanceof array)) throw new IrError(`initializer ${v.inputName} is ${v.dtype}, carried as ${array.name}, but its data is ${data.constructor.name}`);
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
  return onnx.TensorProto.create({ name: v.inputName!, dims: [...v.shape], dataType: elemType(v.dtype), rawData: bytes });
}

/** Moves initializer data into one external file, 64-byte aligned as onnx's own writer does. */
function moveToExternal(initializers: InstanceType<typeof onnx.TensorProto>[], file: string): Uint8Array {
  const align = (n: number): number => Math.ceil(n / 64) * 64;
  let size = 0;
  for (const t of initializers) size = align(size) + (t.rawData?.length ?? 0);
  const out = new Uint8Array(size);
  let offset = 0;
  for (const t of initializers) {
    offset = align(offset);
    const raw = t.rawData ?? new Uint8Array(0);
    out.set(raw, offset);
    t.externalData = [
      { key: 'location', value: file },
      { key: 'offset', value: String(offset) },
      { key: 'length', value: String(raw.length) },
    ];
    t.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
    (t as { rawData: Uint8Array | null }).rawData = null;
    offset += raw.length;
  }
  return out;
}
