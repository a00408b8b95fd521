/**
 * Builds IR graphs. `emit` is the one way to add a node: it looks the op up in
 * the op table and runs its type rule, so a graph is well typed by
 * construction. The named helpers (`b.mul`, `b.reduceSum`, …) come from
 * `OpBuilder`. Every node records the builder's current scope (`blocks.2.attn`)
 * and provenance (recipe span and phase), which the lowering, autodiff and the
 * optimizer set around the code that emits it.
 */
import { formatProvenance, IrError, NO_PROVENANCE, type Attrs, type Graph, type GraphOutput, type Node, type Phase, type Provenance, type SourcePoint, type Value } from './graph.js';
import { OpBuilder } from './opBuilder.js';
import { lookupOp } from './ops/index.js';
import { sameShape, type DType } from './tensor.js';

export class GraphBuilder extends OpBuilder {
  private readonly inputList: Value[] = [];
  private readonly nodeList: Node[] = [];
  private readonly outputList: GraphOutput[] = [];
  private nextValue = 0;
  private nextNode = 0;
  private scopes: string[] = [];
  private current: Provenance = NO_PROVENANCE;

  constructor(readonly name: string) {
    super();
  }

  /**
   * A builder that continues `graph`: same name, the same input values, and
   * fresh ids above every id in it, with no nodes yet. The rewriter
   * (`passes/rewrite.ts`) rebuilds a graph through it.
   */
  static continuing(graph: Graph): GraphBuilder {
    const b = new GraphBuilder(graph.name);
    b.inputList.push(...graph.inputs);
    let maxValue = -1;
    let maxNode = -1;
    for (const v of graph.inputs) maxValue = Math.max(maxValue, v.id);
    for (const n of graph.nodes) {
      maxNode = Math.max(maxNode, n.id);
      for (const o of n.outputs) maxValue = Math.max(maxValue, o.id);
    }
    b.nextValue = maxValue + 1;
    b.nextNode = maxNode + 1;
    return b;
  }

  input(name: string, dtype: DType, shape: readonly number[]): Value {
    if (this.inputList.some((v) => v.inputName === name)) throw new IrError(`graph ${this.name}: duplicate input ${name}`);
    const v: Value = { id: this.nextValue++, dtype, shape: [...shape], producer: null, inputName: name };
    this.inputList.push(v);
    return v;
  }

  output(name: string, value: Value): void {
    if (this.outputList.some((o) => o.name === name)) throw new IrError(`graph ${this.name}: duplicate output ${name}`);
    this.outputList.push({ name, value });
  }

  /** Runs `body` with `name` appended to the scope recorded on new nodes. */
  scoped<T>(name: string, body: () => T): T {
    this.scopes.push(name);
    try {
      return body();
    } finally {
      this.scopes.pop();
    }
  }

  get scope(): string {
    return this.scopes.join('.');
  }

  /** The provenance recorded on nodes emitted now. */
  get provenance(): Provenance {
    return this.current;
  }

  /** Runs `body` with new nodes attributed to the recipe expression at `span` (the phase is kept). */
  at<T>(span: SourcePoint, body: () => T): T {
    return this.withProvenance({ span, phase: this.current.phase }, body);
  }

  /** Runs `body` with new nodes marked as belonging to `phase` (the span is kept). */
  inPhase<T>(phase: Phase, body: () => T): T {
    return this.withProvenance({ span: this.current.span, phase }, body);
  }

  /** Runs `body` with `provenance` recorded on new nodes. */
  withProvenance<T>(provenance: Provenance, body: () => T): T {
    const saved = this.current;
    this.current = provenance;
    try {
      return body();
    } finally {
      this.current = saved;
    }
  }

  /** Runs `body` with the scope and provenance of `node`: what replaces a node looks as if it came from where the node did. */
  withOriginOf<T>(node: Node, body: () => T): T {
    const saved = this.enterOriginOf(node);
    try {
      return body();
    } finally {
      this.leaveOrigin(saved);
    }
  }

  /** `withOriginOf` without a closure, for the rewriter's per-node loop: returns what `leaveOrigin` restores. */
  enterOriginOf(node: Node): { readonly scopes: string[]; readonly provenance: Provenance } {
    const saved = { scopes: this.scopes, provenance: this.current };
    this.scopes = node.scope ? [node.scope] : [];
    this.current = node.provenance;
    return saved;
  }

  leaveOrigin(saved: { readonly scopes: string[]; readonly provenance: Provenance }): void {
    this.scopes = saved.scopes;
    this.current = saved.provenance;
  }

  /** Adds a node; returns its outputs. */
  emit(op: string, inputs: readonly Value[], attrs: Attrs = {}): Value[] {
    return this.addNode(op, inputs, attrs, null);
  }

  /**
   * For the rewriter: a copy of `node` reading `inputs` instead of its own. The
   * type rule runs again; the outputs are new values (their producer is the copy)
   * that keep the old outputs' ids, so `node` itself must not stay in the graph.
   */
  reemit(node: Node, inputs: readonly Value[]): Value[] {
    // A type rule is a pure function of its inputs' types and the attributes: when the new
    // inputs have the old ones' types (a CSE merge, a folded constant), the outputs keep theirs.
    if (inputs.every((v, i) => v.dtype === node.inputs[i]!.dtype && sameShape(v.shape, node.inputs[i]!.shape))) {
      const outputs: Value[] = [];
      const copy: Node = { ...node, id: this.nextNode++, inputs: [...inputs], outputs };
      for (const o of node.outputs) outputs.push({ ...o, producer: copy });
      this.nodeList.push(copy);
      return outputs;
    }
    return this.withOriginOf(node, () =>
      this.addNode(
        node.op,
        inputs,
        node.attrs,
        node.outputs.map((o) => o.id),
      ),
    );
  }

  /** For the rewriter: appends `node` as it is (its inputs must already be in this graph). */
  adopt(node: Node): readonly Value[] {
    this.nodeList.push(node);
    return node.outputs;
  }

  private addNode(op: string, inputs: readonly Value[], attrs: Attrs, outputIds: readonly number[] | null): Value[] {
    const def = lookupOp(op);
    let types;
    try {
      types = def.infer(inputs, attrs);
    } catch (e) {
      const where = [this.scope ? `in ${this.scope}` : '', this.current.span ? `at ${formatProvenance(this.current)}` : ''].filter((w) => w);
      throw new IrError(`${(e as Error).message}${where.length ? ` (${where.join(', ')})` : ''}`);
    }
    if (outputIds && outputIds.length !== types.length) throw new IrError(`${op}: the copy has ${types.length} outputs, the node it replaces ${outputIds.length}`);
    const outputs: Value[] = [];
    const node: Node = { id: this.nextNode++, op, inputs: [...inputs], attrs, outputs, scope: this.scope, provenance: this.current };
    types.forEach((t, i) => outputs.push({ id: outputIds ? outputIds[i]! : this.nextValue++, dtype: t.dtype, shape: [...t.shape], producer: node, inputName: null }));
    this.nodeList.push(node);
    return outputs;
  }

  build(): Graph {
    return { name: this.name, inputs: [...this.inputList], nodes: [...this.nodeList], outputs: [...this.outputList] };
  }
}
