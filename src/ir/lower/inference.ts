/**
 * Generation graphs derived from a model's forward: a KV-cache graph that runs S
 * new tokens per sequence after C cached ones. Prefill is the graph with no cache
 * (C = 0, S = the prompt length); a decode step is the graph with S = 1. Nothing
 * here is written per architecture: the derivation reads the forward's IR (as
 * lowered from the recipe, shapes concrete for S new tokens) and rewrites the
 * parts whose meaning depends on where a token sits in its sequence:
 *
 * - **causal attention**: `where(causal_mask(S), f(q @ transpose(k)), y)`, then a
 *   softmax over the last axis, then `@ v` (`f`: scaling by constants). Its keys
 *   and values — the tensors with the sequence on axis -2 that reach the two
 *   matmuls (after rope, before any head broadcast) — are concatenated after the
 *   cached ones (`past.<block>.key`, `past.<block>.value`), and the causal mask
 *   becomes the attention mask of the cache (see below). The new keys and values
 *   are outputs (`present.<block>.key`, `.value`). `<block>` is the attention
 *   block's scope, `gpt.blocks.0.attn`: one cache per attention block, each of
 *   its own shape (a block with fewer key/value heads than query heads caches
 *   the fewer, as long as the head broadcast comes after the cache point).
 * - **rope** rotates by each token's position (the `positions` input) instead of
 *   0..S-1.
 * - **position tables**: `table[:S]` of a parameter (learned position
 *   embeddings) becomes `gather(table, positions)`.
 *
 * Inputs: `tokens` i64[B, S], `positions` i64[B, S] (each token's position in
 * its sequence; pad tokens position 0), `attention_mask` bool[B, C + S] (which
 * cache slots and new tokens are real: left padding and unused slots are false),
 * and per attention block `past.<block>.key` and `.value` of [B, heads, C,
 * head_dim] (when C > 0). A new token sees the real cached slots and the real new
 * tokens at positions up to its own (a left pad, at position 0, sees the first
 * real token: its row stays finite and never poisons the cache with NaN).
 *
 * Anything else that mixes information across sequence positions (a cumulative
 * sum, a convolution over time, attention written without `causal_mask`) is not
 * recognised, and the cache would silently drop it: the models this derives for
 * are std.nn's attention blocks and blocks written the same way.
 */
import { GraphBuilder } from '../builder.js';
import { IrError, type Graph, type Node, type Value } from '../graph.js';
import { ropeTables } from '../ops/nn.js';
import type { SymbolicDims } from '../symbolic.js';
import { makeTensor, sizeOf, type Tensor } from '../tensor.js';

/** The names of one attention block's cache tensors, and their shape for one token. */
export interface CacheSite {
  /** The attention block's scope in the model: `gpt.blocks.0.attn`. */
  readonly block: string;
  readonly pastKey: string;
  readonly pastValue: string;
  readonly presentKey: string;
  readonly presentValue: string;
  /** Key and value shapes with the sequence axis (-2) of length 1: [B, kv_heads, 1, head_dim]. */
  readonly keyShape: readonly number[];
  readonly valueShape: readonly number[];
}

/** The cache-graph derivation's result. */
export interface CachedGraph {
  readonly graph: Graph;
  /** One entry per attention block, in the order of the forward. */
  readonly sites: readonly CacheSite[];
  /**
   * The most positions the model has: the rows of its smallest position table
   * (learned position embeddings), or null when nothing bounds them (rope, or no
   * positions at all). A sequence longer than this cannot be generated.
   */
  readonly maxPositions: number | null;
  /** Symbolic dimensions when the graph serves any batch and length (inferenceStage.ts, dynamicGenerationGraphs). */
  readonly dims?: SymbolicDims;
}

export interface CacheOptions {
  /** C: cached slots per sequence before the S new tokens (0: a prefill graph, no past inputs). */
  readonly past: number;
  /**
   * What `present.*` holds: `new`, the S new tokens' keys and values ([B, h, S, d]),
   * for a runtime that keeps the cache and writes them into it; `all`, the past
   * followed by them ([B, h, C + S, d]), the convention of a growing cache.
   */
  readonly present?: 'new' | 'all';
  /**
   * Rows of the rope tables: positions must stay below it. Default C + S (what this
   * graph can reach); a graph emitted with dynamic sizes needs one bound for all.
   */
  readonly positionLimit?: number;
}

/** Input and output names shared by every generation graph. */
export const GENERATION_IO = { tokens: 'tokens', positions: 'positions', mask: 'attention_mask', logits: 'logits' } as const;

/** A causal attention found in the forward: the nodes the derivation rewrites. */
interface AttentionMatch {
  readonly block: string;
  /** The masking `where`. */
  readonly where: Node;
  /** Where the cached keys and values join: the values reaching the matmuls through head broadcasts only. */
  readonly key: Value;
  readonly value: Value;
  /** Reshape/expand/transpose nodes between the cache points and the matmuls (their sequence length changes). */
  readonly broadcasts: readonly Node[];
}

/**
 * Derives the cache graph of `forward` (the model's forward for S new tokens:
 * inputs `tokens` i64[B, S] and the parameters, output `logits` [B, S, V]).
 * Throws an IrError naming what it could not derive.
 */
export function deriveCachedGraph(forward: Graph, options: CacheOptions): CachedGraph {
  const tokens = forward.inputs.find((v) => v.inputName === GENERATION_IO.tokens);
  if (!tokens || tokens.dtype !== 'i64' || tokens.shape.length !== 2) throw new IrError(`graph ${forward.name}: a generation graph is derived from a forward with an input tokens: i64[B, S]`);
  const [B, S] = tokens.shape as [number, number];
  const C = options.past;
  const L = C + S;
  const uses = usesOf(forward);
  const matches = findAttention(forward, uses, B, S);
  const byWhere = new Map(matches.map((m) => [m.where, m]));
  const broadcastNodes = new Set(matches.flatMap((m) => m.broadcasts));
  const cachePoints = new Map<Value, { match: AttentionMatch; kind: 'key' | 'value' }>();
  for (const m of matches) {
    cachePoints.set(m.key, { match: m, kind: 'key' });
    cachePoints.set(m.value, { match: m, kind: 'value' });
  }

  const b = GraphBuilder.continuing(forward);
  const positions = b.input(GENERATION_IO.positions, 'i64', [B, S]);
  const attentionMask = b.input(GENERATION_IO.mask, 'bool', [B, L]);
  const sites: CacheSite[] = [];
  const past = new Map<Value, Value>();
  for (const m of matches) {
    const names = siteNames(m.block);
    const oneToken = (v: Value): number[] => withSequence(v.shape, 1);
    sites.push({ block: m.block, ...names, keyShape: oneToken(m.key), valueShape: oneToken(m.value) });
    if (C > 0) {
      past.set(m.key, b.input(names.pastKey, 'f32', withSequence(m.key.shape, C)));
      past.set(m.value, b.input(names.pastValue, 'f32', withSequence(m.value.shape, C)));
    }
  }

  // The attention mask, built once: [B, S, L], then reshaped to each score tensor's rank.
  // Causality among the new tokens compares positions, so no constant depends on S or C
  // (a graph with dynamic sizes computes it as it is).
  let mask3: Value | null = null;
  const maskOfRank = (rank: number): Value => {
    if (!mask3) {
      const newValid = C > 0 ? b.slice(attentionMask, [C], [L], [1]) : attentionMask;
      const earlier = b.not(b.greater(b.reshape(positions, [B, 1, S]), b.reshape(positions, [B, S, 1])));
      const newKeys = b.and(earlier, b.reshape(newValid, [B, 1, S]));
      if (C > 0) {
        // Every real cached slot comes before the new tokens; equal(p, p) is a [B, S, 1] of true with no constant.
        const rows = b.reshape(b.equal(positions, positions), [B, S, 1]);
        mask3 = b.concat([b.and(b.reshape(b.slice(attentionMask, [0], [C], [1]), [B, 1, C]), rows), newKeys], 2);
      } else mask3 = newKeys;
    }
    return b.reshape(mask3, [B, ...new Array<number>(rank - 3).fill(1), S, L]);
  };

  let maxPositions: number | null = null;
  const positionTable = (table: Value): Value => {
    maxPositions = maxPositions === null ? table.shape[0]! : Math.min(maxPositions, table.shape[0]!);
    return b.gather(table, positions);
  };

  const mapped = new Map<Value, Value>();
  for (const v of forward.inputs) mapped.set(v, v);
  const value = (old: Value): Value => {
    const v = mapped.get(old);
    if (!v) throw new IrError(`deriving the cache graph of ${forward.name}: value %${old.id} is read before it is computed`);
    return v;
  };
  const presents: { name: string; value: Value }[] = [];

  for (const node of forward.nodes) {
    const outs = b.withOriginOf(node, (): readonly Value[] => {
      const match = byWhere.get(node);
      if (match) return [b.where(maskOfRank(node.outputs[0]!.shape.length), value(node.inputs[1]!), value(node.inputs[2]!))];
      if (node.op === 'rope' && node.attrs['inverse'] !== true) return [ropeAt(b, value(node.inputs[0]!), positions, node.attrs['base'] as number, options.positionLimit ?? L, B, S)];
      if (isPositionSlice(node, tokens, S)) return [positionTable(node.inputs[0]!)];
      if (broadcastNodes.has(node)) {
        const shape = node.attrs['shape'];
        const attrs = Array.isArray(shape) ? { ...node.attrs, shape: withSequence(shape as number[], L) } : node.attrs;
        return b.emit(node.op, node.inputs.map(value), attrs);
      }
      const inputs = node.inputs.map((v, i) => (isDirectPositionTable(node, i, tokens, S) ? positionTable(v) : value(v)));
      return inputs.every((v, i) => v === node.inputs[i]) ? b.adopt(node) : b.reemit(node, inputs);
    });
    node.outputs.forEach((o, i) => {
      let out = outs[i]!;
      const point = cachePoints.get(o);
      if (point) {
        const names = siteNames(point.match.block);
        const joined = C > 0 ? b.concat([past.get(o)!, out], out.shape.length - 2) : out;
        presents.push({ name: point.kind === 'key' ? names.presentKey : names.presentValue, value: options.present === 'all' ? joined : out });
        out = joined;
      }
      mapped.set(o, out);
    });
  }

  const logits = forward.outputs.find((o) => o.name === GENERATION_IO.logits);
  if (!logits) throw new IrError(`graph ${forward.name}: a generation graph is derived from a forward with an output logits`);
  b.output(GENERATION_IO.logits, value(logits.value));
  for (const p of presents) b.output(p.name, p.value);
  return { graph: { ...b.build(), name: C > 0 ? 'decode' : 'prefill' }, sites, maxPositions };
}

/** The input and output names of an attention block's cache. */
export function siteNames(block: string): Pick<CacheSite, 'pastKey' | 'pastValue' | 'presentKey' | 'presentValue'> {
  return { pastKey: `past.${block}.key`, pastValue: `past.${block}.value`, presentKey: `present.${block}.key`, presentValue: `present.${block}.value` };
}

/** `shape` with its sequence axis (-2) set to `length`. */
function withSequence(shape: readonly number[], length: number): number[] {
  const out = [...shape];
  out[out.length - 2] = length;
  return out;
}

type Uses = ReadonlyMap<Value, readonly { readonly node: Node; readonly index: number }[]>;

function usesOf(graph: Graph): Uses {
  const uses = new Map<Value, { node: Node; index: number }[]>();
  for (const node of graph.nodes) {
    node.inputs.forEach((v, index) => {
      let list = uses.get(v);
      if (!list) uses.set(v, (list = []));
      list.push({ node, index });
    });
  }
  return uses;
}

/** Whether `t` is `causal_mask(n)`: bool [n, n], true on and below the diagonal. */
function isCausalMask(t: Tensor): boolean {
  const [n, m] = t.shape;
  if (t.dtype !== 'bool' || t.shape.length !== 2 || n !== m) return false;
  for (let i = 0; i < n!; i++) for (let j = 0; j < n!; j++) if ((t.data[i * n! + j] !== 0) !== (j <= i)) return false;
  return true;
}

function constantOf(v: Value): Tensor | null {
  const p = v.producer;
  return p?.op === 'constant' ? (p.attrs['value'] as Tensor) : null;
}

/** Ops a score tensor may pass through between `q @ kᵀ` and the mask: scaling, shifting, soft-capping. */
const SCORE_SCALERS = new Set(['mul', 'div', 'add', 'sub']);
const SCORE_UNARY = new Set(['tanh', 'neg']);

/** Whether `perm` swaps the last two axes and keeps the others. */
function swapsLastTwo(perm: readonly number[]): boolean {
  const r = perm.length;
  return r >= 2 && perm[r - 2] === r - 1 && perm[r - 1] === r - 2 && perm.slice(0, r - 2).every((p, i) => p === i);
}

function findAttention(graph: Graph, uses: Uses, B: number, S: number): AttentionMatch[] {
  const matches: AttentionMatch[] = [];
  const blocks = new Map<string, number>();
  const fail = (node: Node, why: string): never => {
    throw new IrError(`deriving a KV cache for the causal attention in ${node.scope || graph.name}: ${why}`);
  };
  const onlyUse = (v: Value, node: Node): { node: Node; index: number } => {
    const list = uses.get(v) ?? [];
    if (list.length !== 1) fail(node, `%${v.id} (${node.op}) has ${list.length} uses; the derivation needs the attention's intermediate values to feed only the next step`);
    return list[0]!;
  };
  for (const node of graph.nodes) {
    if (node.op !== 'where') continue;
    const cond = constantOf(node.inputs[0]!);
    if (!cond || cond.shape[0] !== S || !isCausalMask(cond)) continue;
    // Back from the masked scores to q @ kᵀ.
    let scores = node.inputs[1]!;
    for (;;) {
      const p = scores.producer;
      if (!p) fail(node, 'the masked scores do not come from a matmul');
      if (SCORE_UNARY.has(p!.op)) scores = p!.inputs[0]!;
      else if (SCORE_SCALERS.has(p!.op) && constantOf(p!.inputs[1]!) && sizeOf(p!.inputs[1]!.shape) === 1) scores = p!.inputs[0]!;
      else if (SCORE_SCALERS.has(p!.op) && (p!.op === 'mul' || p!.op === 'add') && constantOf(p!.inputs[0]!) && sizeOf(p!.inputs[0]!.shape) === 1) scores = p!.inputs[1]!;
      else break;
    }
    const qk = scores.producer;
    if (qk?.op !== 'matmul') fail(node, `the masked scores come from ${qk?.op ?? 'an input'}, not from q @ transpose(k)`);
    const kt = qk!.inputs[1]!.producer;
    if (kt?.op !== 'transpose' || !swapsLastTwo(kt.attrs['perm'] as number[])) fail(node, 'the keys of q @ k are not transpose(k) over the last two axes');
    const scoreShape = node.outputs[0]!.shape;
    if (scoreShape[0] !== B || scoreShape.length < 3) fail(node, `the scores [${scoreShape.join(', ')}] do not have the batch (${B}) first`);
    // Forward from the mask: softmax over the keys, then att @ v.
    const soft = onlyUse(node.outputs[0]!, node).node;
    if (soft.op !== 'softmax' || soft.attrs['axis'] !== scoreShape.length - 1) fail(node, `the masked scores go to ${soft.op}, not to a softmax over the last axis`);
    const av = onlyUse(soft.outputs[0]!, soft);
    if (av.node.op !== 'matmul' || av.index !== 0) fail(node, 'the attention weights do not multiply the values (att @ v)');
    const broadcasts: Node[] = [];
    const key = cachePoint(kt!.inputs[0]!, S, uses, broadcasts, kt!);
    const value = cachePoint(av.node.inputs[1]!, S, uses, broadcasts, av.node);
    const base = node.scope || 'attention';
    const seen = blocks.get(base) ?? 0;
    blocks.set(base, seen + 1);
    matches.push({ block: seen === 0 ? base : `${base}.${seen}`, where: node, key, value, broadcasts });
  }
  return matches;
}

/**
 * Walks from the tensor a matmul reads back through head broadcasts (reshape,
 * expand and transpose that keep the last two axes [S, d] as they are) to the
 * value to cache, collecting the broadcasts. Every value on the way must feed
 * only the next step.
 */
function cachePoint(v: Value, S: number, uses: Uses, broadcasts: Node[], consumer: Node): Value {
  let at = v;
  for (;;) {
    if (at.shape[at.shape.length - 2] !== S) throw new IrError(`deriving a KV cache in ${consumer.scope}: ${consumer.op} reads [${at.shape.join(', ')}], whose axis -2 is not the sequence (${S})`);
    if ((uses.get(at) ?? []).length !== 1) throw new IrError(`deriving a KV cache in ${consumer.scope}: the keys or values are also used outside the attention`);
    const p = at.producer;
    if (!p || !['reshape', 'expand', 'transpose'].includes(p.op)) return at;
    const input = p.inputs[0]!;
    const keepsLastTwo =
      p.op === 'transpose'
        ? ((perm) => perm[perm.length - 2] === perm.length - 2 && perm[perm.length - 1] === perm.length - 1)(p.attrs['perm'] as number[])
        : input.shape.length >= 2 && input.shape.slice(-2).every((d, i) => d === at.shape[at.shape.length - 2 + i]);
    if (!keepsLastTwo) return at;
    broadcasts.push(p);
    at = input;
  }
}

/** `table[:S]` of a parameter along its first axis: rows 0..S-1 of a position table. */
function isPositionSlice(node: Node, tokens: Value, S: number): boolean {
  if (node.op !== 'slice') return false;
  const input = node.inputs[0]!;
  const ints = (k: string): readonly number[] => (node.attrs[k] as readonly number[] | undefined) ?? [];
  return input.inputName !== null && input !== tokens && ints('axes').join() === '0' && ints('starts').join() === '0' && ints('ends').join() === String(S) && (node.attrs['steps'] === undefined || ints('steps').join() === '1');
}

/**
 * Input `index` of `node` is a whole position table used as rows 0..S-1 (the
 * lowering drops `table[:S]` when S is all its rows): a parameter [S, ...]
 * added to activations [B, S, ...].
 */
function isDirectPositionTable(node: Node, index: number, tokens: Value, S: number): boolean {
  if (node.op !== 'add') return false;
  const table = node.inputs[index]!;
  const other = node.inputs[1 - index]!;
  return table.inputName !== null && table !== tokens && table.shape.length >= 2 && table.shape[0] === S && other.shape.length === table.shape.length + 1 && other.shape.slice(1).every((d, i) => d === table.shape[i]);
}

/**
 * rope(x) at each token's position: x [B, ..., S, D] rotated by the angles of
 * `positions` [B, S], with the tables rope's own lowering uses (so a token at
 * position p gets exactly the rotation of row p).
 */
function ropeAt(b: GraphBuilder, x: Value, positions: Value, base: number, tableRows: number, B: number, S: number): Value {
  const r = x.shape.length;
  const D = x.shape[r - 1]!;
  if (x.shape[0] !== B || x.shape[r - 2] !== S) throw new IrError(`rope over [${x.shape.join(', ')}]: the generation graph needs the batch (${B}) first and the sequence (${S}) at axis -2`);
  const { cos, sin } = ropeTables(tableRows, D, base, false);
  const at = (table: Float64Array): Value => b.reshape(b.gather(b.constant(makeTensor('f32', [tableRows, D], table)), positions), [B, ...new Array<number>(r - 3).fill(1), S, D]);
  const half = D / 2;
  const x1 = b.slice(x, [0], [half], [r - 1]);
  const x2 = b.slice(x, [half], [D], [r - 1]);
  const rotated = b.concat([b.neg(x2), x1], r - 1);
  return b.add(b.mul(x, at(cos)), b.mul(rotated, at(sin)));
}
