/**
 * Next-token logits for a batch of sequences, computed by onnxruntime:
 *
 * - `CachedLogits` runs the prefill graph on the (left-padded) prompts, then one
 *   decode step per token, with a key/value cache per attention block. The cache
 *   is kept here, one Float32Array [B, kv_heads, C, head_dim] per key and value
 *   of each block, fed to the decode graph as its `past.*` inputs (onnxruntime
 *   reads them in place); each step's `present.*` outputs — the new token's keys
 *   and values only — are written into slot S + step: a step copies one token's
 *   keys and values out instead of the whole cache. The cache has C slots and the
 *   decode step attends over all of them (unused ones masked); with a decode graph
 *   of dynamic sizes, C starts at a power of two above the prompt and doubles (one
 *   copy) as the sequences grow, so a step attends over at most twice the slots in
 *   use; with a fixed-size graph C is what the generation needs from the start.
 *   When a sequence reaches the context limit, every sequence is prefilled again
 *   from its head (bos) and its most recent tokens (three quarters of the limit),
 *   and decoding goes on: a prefill every quarter of the context instead of a
 *   full forward at every token.
 * - `RecomputedLogits` runs the full forward on every sequence at every step
 *   (right-padded to a fixed length): the reference the cache must agree with,
 *   and the baseline of the generation benchmark.
 *
 * Graphs come from a `GenerationGraphSource` (the stage's model lowered at the
 * sizes asked for: one prefill graph per prompt length, one decode graph), are
 * optimised and emitted with the weights as initializers.
 */
import type { Graph } from '../ir/graph.js';
import { GENERATION_IO, type CachedGraph } from '../ir/lower/inference.js';
import type { GenerationGraphSource } from '../ir/lower/inferenceStage.js';
import { optimize } from '../ir/passes/index.js';
import type { SymbolicDims } from '../ir/symbolic.js';
import { emitModel, type InitializerData } from '../../targets/onnx/emit.js';
import type { ActiveSequence } from './generate.js';
import { createSession, ort, type Device, type OrtSession, type OrtTensor } from './ort.js';

export interface LogitsOptions {
  /** Most tokens any sequence's context holds (prompt and generated); older ones are dropped past it. */
  readonly contextLimit: number;
  /** Tokens at the start of every sequence that stay when the context is cut (bos). */
  readonly head: number;
  /** The most tokens that will be generated after each prompt (sizes the cache). */
  readonly maxTokens: number;
  /** The token fed at padding and for finished sequences. */
  readonly pad: number;
  readonly device?: Device;
  readonly threads?: number;
  /** Sessions of graphs with dynamic sizes, shared with other runs (batches) of the same generation. */
  readonly pool?: SessionPool;
  /** Size the cache for the whole generation from the start instead of growing it (the benchmark compares the two). */
  readonly fixedCapacity?: boolean;
}

/** Next-token logits for sequences in a batch: rows of `vocab` values, in the order asked. */
export interface LogitsSource {
  readonly vocab: number;
  next(active: readonly ActiveSequence[]): Promise<Float32Array>;
  release(): Promise<void>;
}

/** What the runner did, for benchmarks and the CLI's summary. */
export interface LogitsStats {
  prefills: number;
  steps: number;
  /** Sessions created (one per distinct graph shape). */
  compiled: number;
}

/** `ids` cut to the head plus the most recent tokens, `keep` in all. */
function cutContext(ids: readonly number[], head: number, keep: number): number[] {
  return ids.length <= keep ? [...ids] : [...ids.slice(0, head), ...ids.slice(ids.length - (keep - head))];
}

async function sessionOf(graph: Graph, weights: ReadonlyMap<string, InitializerData>, options: Pick<LogitsOptions, 'device' | 'threads'>, dims?: SymbolicDims): Promise<OrtSession> {
  // A graph with dynamic sizes comes optimised (its symbolic dimensions are those of that graph).
  const model = emitModel(dims ? graph : optimize(graph).graph, { initializers: weights, ...(dims ? { dims } : {}) });
  return createSession(model.bytes, options.device ?? 'cpu', options.threads);
}

const i64 = (values: ArrayLike<number>, dims: readonly number[]): OrtTensor => new ort.Tensor('int64', BigInt64Array.from(Array.from(values), (v) => BigInt(v)), [...dims]);
const bools = (values: Uint8Array, dims: readonly number[]): OrtTensor => new ort.Tensor('bool', values, [...dims]);

/**
 * Sessions of graphs with dynamic sizes, one per graph, shared by every batch of a
 * generation (a graph of fixed sizes gets a session of its own per run).
 */
export class SessionPool {
  private readonly sessions = new Map<Graph, Promise<OrtSession>>();
  /** Sessions created. */
  compiled = 0;

  constructor(
    private readonly weights: ReadonlyMap<string, InitializerData>,
    private readonly options: Pick<LogitsOptions, 'device' | 'threads'>,
  ) {}

  session(graph: CachedGraph): Promise<OrtSession> {
    let s = this.sessions.get(graph.graph);
    if (!s) {
      s = sessionOf(graph.graph, this.weights, this.options, graph.dims);
      this.sessions.set(graph.graph, s);
      this.compiled++;
    }
    return s;
  }

  async release(): Promise<void> {
    for (const s of this.sessions.values()) await (await s).release();
    this.sessions.clear();
  }
}

/** One cache tensor: where the prefill and decode graphs read and write it, and its data. */
interface CacheTensor {
  readonly past: string;
  readonly present: string;
  /** [B, heads, C, head_dim] */
  data: Float32Array;
  readonly heads: number;
  readonly width: number;
}

/**
 * Logits from prefill and decode graphs with a KV cache (see the file comment).
 * Sequences are rows of a batch fixed at the first call; a sequence that has
 * finished is still fed (a pad token) until all have.
 */
export class CachedLogits implements LogitsSource {
  readonly stats: LogitsStats = { prefills: 0, steps: 0, compiled: 0 };
  private readonly prefills = new Map<number, { session: OrtSession; graph: CachedGraph }>();
  private decodeGraph: { session: OrtSession; graph: CachedGraph } | null = null;
  private batch = 0;
  /** C: decode-graph cache slots; S + step is the next slot to fill. */
  private capacity = 0;
  /** The most slots the generation needs (or the context limit allows). */
  private maxCapacity = 0;
  private slot = 0;
  private limit = 0;
  private cache: CacheTensor[] = [];
  /** [B, C]: which slots hold a real token. */
  private valid = new Uint8Array(0);
  /** Each row's context length (its next token's position). */
  private lengths: number[] = [];
  vocab = 0;

  constructor(
    private readonly source: GenerationGraphSource,
    private readonly weights: ReadonlyMap<string, InitializerData>,
    private readonly options: LogitsOptions,
  ) {}

  async next(active: readonly ActiveSequence[]): Promise<Float32Array> {
    if (this.batch === 0) return this.start(active);
    const rows = this.rowsOf(active);
    if (this.slot >= this.capacity && this.capacity < this.maxCapacity) this.grow(Math.min(this.maxCapacity, 2 * this.capacity));
    // Past the last slot: keep the head and the most recent three quarters of the context.
    if (this.slot > this.capacity) return this.select(await this.prefill(rows.map((ids) => cutContext(ids, this.options.head, Math.max(this.options.head + 1, this.limit - Math.ceil(this.limit / 4))))), active);
    return this.select(await this.decode(rows), active);
  }

  async release(): Promise<void> {
    for (const s of this.owned) await s.release();
    this.owned.length = 0;
    this.prefills.clear();
    this.decodeGraph = null;
  }

  /** Sessions this run created (not the pool's), released with it. */
  private readonly owned: OrtSession[] = [];

  /** A session for `graph`: the pool's when the graph has dynamic sizes and there is a pool, else a new one. */
  private async sessionFor(graph: CachedGraph): Promise<OrtSession> {
    if (graph.dims && this.options.pool) return this.options.pool.session(graph);
    const session = await sessionOf(graph.graph, this.weights, this.options, graph.dims);
    this.owned.push(session);
    this.stats.compiled++;
    return session;
  }

  /** First call: every sequence is active; size the batch, the limit and the cache. */
  private async start(active: readonly ActiveSequence[]): Promise<Float32Array> {
    this.batch = active.length;
    this.known = active.map((s) => [...s.ids]);
    this.limit = Math.min(this.options.contextLimit, this.source.prefill(1, 1).maxPositions ?? Infinity);
    if (this.limit < 2) throw new Error(`generation needs a context of at least 2 tokens, the model has ${this.limit}`);
    const prompts = active.map((s) => cutContext(s.ids, this.options.head, this.limit - 1));
    const longest = Math.max(...prompts.map((p) => p.length));
    this.maxCapacity = Math.min(this.limit - 1, longest + this.options.maxTokens - 1);
    // A decode graph of dynamic sizes takes any C: start small and grow. A fixed-size one would need a session per C.
    this.capacity = this.source.dynamic && !this.options.fixedCapacity ? Math.min(this.maxCapacity, Math.max(longest, 2 ** Math.ceil(Math.log2(longest + 16)))) : this.maxCapacity;
    return this.select(await this.prefill(prompts), active);
  }

  /** Moves the cache into `capacity` slots per row (the slots in use keep their places). */
  private grow(capacity: number): void {
    const B = this.batch;
    const C = this.capacity;
    for (const c of this.cache) {
      const data = new Float32Array(B * c.heads * capacity * c.width);
      for (let r = 0; r < B * c.heads; r++) data.set(c.data.subarray(r * C * c.width, (r + 1) * C * c.width), r * capacity * c.width);
      c.data = data;
    }
    const valid = new Uint8Array(B * capacity);
    for (let b = 0; b < B; b++) valid.set(this.valid.subarray(b * C, (b + 1) * C), b * capacity);
    this.valid = valid;
    this.capacity = capacity;
    if (!this.decodeGraph?.graph.dims) this.decodeGraph = null;
  }

  /** The full token rows of the batch (finished sequences keep their last known ids). */
  private known: number[][] = [];
  private rowsOf(active: readonly ActiveSequence[]): number[][] {
    for (const s of active) this.known[s.index] = [...s.ids];
    return this.known;
  }

  /** The prefill graph for prompts of `length`: one session per length, or one for all when the graph has dynamic sizes. */
  private async prefillGraph(length: number): Promise<{ session: OrtSession; graph: CachedGraph }> {
    let p = this.prefills.get(length) ?? this.prefills.get(-1);
    if (!p) {
      const graph = this.source.prefill(this.batch, length);
      p = { session: await this.sessionFor(graph), graph };
      this.prefills.set(graph.dims ? -1 : length, p);
      this.vocab = graph.graph.outputs[0]!.value.shape[2]!;
    }
    return p;
  }

  /** Runs the prefill on left-padded contexts; fills cache slots 0..S-1; returns the logits after each row's last token. */
  private async prefill(contexts: readonly (readonly number[])[]): Promise<Float32Array> {
    const B = this.batch;
    const S = Math.max(...contexts.map((c) => c.length));
    const { session, graph } = await this.prefillGraph(S);
    const tokens = new Array<number>(B * S).fill(this.options.pad);
    const positions = new Array<number>(B * S).fill(0);
    const mask = new Uint8Array(B * S);
    contexts.forEach((c, b) => {
      const pad = S - c.length;
      c.forEach((id, i) => {
        tokens[b * S + pad + i] = id;
        positions[b * S + pad + i] = i;
        mask[b * S + pad + i] = 1;
      });
    });
    const out = await session.run({ [GENERATION_IO.tokens]: i64(tokens, [B, S]), [GENERATION_IO.positions]: i64(positions, [B, S]), [GENERATION_IO.mask]: bools(mask, [B, S]) });
    this.stats.prefills++;
    this.lengths = contexts.map((c) => c.length);
    this.allocateCache(graph);
    this.valid.fill(0);
    for (let b = 0; b < B; b++) this.valid.set(mask.subarray(b * S, (b + 1) * S), b * this.capacity);
    for (const c of this.cache) {
      const src = (out[c.present] as OrtTensor).data as Float32Array;
      const row = S * c.width;
      for (let r = 0; r < B * c.heads; r++) c.data.set(src.subarray(r * row, (r + 1) * row), r * this.capacity * c.width);
    }
    this.slot = S;
    const logits = (out[GENERATION_IO.logits] as OrtTensor).data as Float32Array;
    const V = this.vocab;
    const last = new Float32Array(B * V);
    for (let b = 0; b < B; b++) last.set(logits.subarray((b * S + S - 1) * V, (b * S + S) * V), b * V);
    return last;
  }

  private allocateCache(graph: CachedGraph): void {
    if (this.cache.length) return;
    const B = this.batch;
    this.valid = new Uint8Array(B * this.capacity);
    this.cache = graph.sites.flatMap((site) =>
      [
        [site.pastKey, site.presentKey, site.keyShape],
        [site.pastValue, site.presentValue, site.valueShape],
      ].map(([past, present, shape]) => {
        const s = shape as readonly number[];
        const heads = s.slice(1, -2).reduce((a, b) => a * b, 1);
        const width = s[s.length - 1]!;
        return { past: past as string, present: present as string, heads, width, data: new Float32Array(B * heads * this.capacity * width) };
      }),
    );
  }

  /** One decode step: each row's last token goes into slot `slot`. */
  private async decode(rows: readonly (readonly number[])[]): Promise<Float32Array> {
    const B = this.batch;
    const C = this.capacity;
    if (!this.decodeGraph) {
      const graph = this.source.decode(B, C);
      this.decodeGraph = { session: await this.sessionFor(graph), graph };
    }
    const tokens = rows.map((ids) => ids[ids.length - 1] ?? this.options.pad);
    const positions = this.lengths.map((n) => n);
    const mask = new Uint8Array(B * (C + 1));
    for (let b = 0; b < B; b++) {
      mask.set(this.valid.subarray(b * C, (b + 1) * C), b * (C + 1));
      mask[b * (C + 1) + C] = 1;
    }
    const feeds: Record<string, OrtTensor> = {
      [GENERATION_IO.tokens]: i64(tokens, [B, 1]),
      [GENERATION_IO.positions]: i64(positions, [B, 1]),
      [GENERATION_IO.mask]: bools(mask, [B, C + 1]),
    };
    for (const c of this.cache) feeds[c.past] = new ort.Tensor('float32', c.data, [B, c.heads, C, c.width]);
    const out = await this.decodeGraph.session.run(feeds);
    this.stats.steps++;
    const slot = this.slot++;
    // At slot C the token saw every slot and itself: the cache is full, the next step prefills again.
    if (slot < C) {
      for (const c of this.cache) {
        const src = (out[c.present] as OrtTensor).data as Float32Array;
        for (let r = 0; r < B * c.heads; r++) c.data.set(src.subarray(r * c.width, (r + 1) * c.width), (r * C + slot) * c.width);
      }
      for (let b = 0; b < B; b++) this.valid[b * C + slot] = 1;
    }
    for (let b = 0; b < B; b++) this.lengths[b]!++;
    return (out[GENERATION_IO.logits] as OrtTensor).data as Float32Array;
  }

  /** The rows of `logits` [B, V] of the active sequences, in their order. */
  private select(logits: Float32Array, active: readonly ActiveSequence[]): Float32Array {
    const V = this.vocab;
    if (active.length === this.batch && active.every((s, i) => s.index === i)) return logits;
    const out = new Float32Array(active.length * V);
    active.forEach((s, i) => out.set(logits.subarray(s.index * V, (s.index + 1) * V), i * V));
    return out;
  }
}

/**
 * Logits from the full forward at every step, each sequence right-padded to one
 * fixed length (the model is causal: what follows a token never changes its
 * logits). The context is cut as CachedLogits cuts it for a prompt.
 */
export class RecomputedLogits implements LogitsSource {
  readonly stats: LogitsStats = { prefills: 0, steps: 0, compiled: 0 };
  private session: OrtSession | null = null;
  private batch = 0;
  private length = 0;
  vocab = 0;

  constructor(
    private readonly source: GenerationGraphSource,
    private readonly weights: ReadonlyMap<string, InitializerData>,
    private readonly options: LogitsOptions & { readonly batch?: number },
  ) {}

  async next(active: readonly ActiveSequence[]): Promise<Float32Array> {
    if (!this.session) {
      this.batch = this.options.batch ?? active.length;
      const longest = Math.max(...active.map((s) => s.ids.length));
      this.length = Math.min(this.options.contextLimit, longest + this.options.maxTokens - 1);
      const graph = this.source.forward(this.batch, this.length);
      this.vocab = graph.outputs[0]!.value.shape[2]!;
      this.session = await sessionOf(graph, this.weights, this.options);
      this.stats.compiled++;
    }
    const T = this.length;
    const V = this.vocab;
    const out = new Float32Array(active.length * V);
    for (let first = 0; first < active.length; first += this.batch) {
      const group = active.slice(first, first + this.batch);
      const contexts = group.map((s) => cutContext(s.ids, this.options.head, T));
      const tokens = new Array<number>(this.batch * T).fill(this.options.pad);
      contexts.forEach((c, b) => c.forEach((id, i) => (tokens[b * T + i] = id)));
      const r = await this.session.run({ [GENERATION_IO.tokens]: i64(tokens, [this.batch, T]) });
      const logits = (r[GENERATION_IO.logits] as OrtTensor).data as Float32Array;
      contexts.forEach((c, b) => out.set(logits.subarray((b * T + c.length - 1) * V, (b * T + c.length) * V), (first + b) * V));
    }
    this.stats.steps++;
    return out;
  }

  async release(): Promise<void> {
    await this.session?.release();
    this.session = null;
  }
}
