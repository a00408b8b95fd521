/**
 * The Hugging Face architectures `pretrained(...)` builds, one table row each:
 * how `config.json` becomes the arguments of a std.nn block (GPT2, Llama,
 * LlamaTied), which tensors a checkpoint of that shape holds, and how each
 * maps to a parameter of the block (its name in the file, its shape there,
 * and whether the file stores it transposed: transformers' nn.Linear keeps
 * [out, in], our Linear [in, out]). The same table reads checkpoints (check
 * time), initialises parameters (run time) and writes them back (targets/hf).
 *
 * Written from transformers' modeling_gpt2.py, modeling_llama.py,
 * modeling_mistral.py and modeling_qwen2.py (v4.39) and their configuration
 * classes' defaults.
 */

/** A config.json value as the block receives it. */
export type BlockArg = number | boolean;

/** What a config.json asks for, in the terms of a std.nn block. */
export interface BlockChoice {
  /** The std.nn block: `GPT2`, `Llama` or `LlamaTied`. */
  readonly block: string;
  /** Every argument of the block, in its declared order (defaults included). */
  readonly args: ReadonlyMap<string, BlockArg>;
}

/** One tensor of a checkpoint and the parameter it initialises. */
export interface TensorRule {
  /** Name in the file, without a prefix the file may add (see HfArchitecture.prefixes). */
  readonly hf: string;
  /** Parameter name inside the block: `blocks.0.attn.qkv.w`. */
  readonly param: string;
  /** Shape in the file. */
  readonly shape: readonly number[];
  /** The file holds the transpose of the parameter ([out, in] for our [in, out]). */
  readonly transposed: boolean;
}

/** One tensor of a checkpoint folder and the parameter it initialises. */
export interface PretrainedTensor extends TensorRule {
  /** Its name in the file, with the file's prefix. */
  readonly name: string;
  /** Absolute path of the safetensors file that holds it. */
  readonly file: string;
  readonly dtype: string;
}

/** Reads typed keys of a config.json, reporting a missing or malformed one (naming the key); null after a report. */
export interface ConfigReader {
  /** A positive integer (or zero when `min` is 0); `fallback` when the key is absent or null. */
  int(key: string, fallback?: number, min?: number): number | null;
  /** A finite number; `fallback` when absent or null. */
  number(key: string, fallback?: number): number | null;
  bool(key: string, fallback: boolean): boolean | null;
  /** A string among `allowed`; `fallback` when absent or null. */
  oneOf(key: string, allowed: readonly string[], fallback: string): string | null;
  /** The key must be absent, null, or one of `allowed` (JSON values compared by text): pt-recipe cannot build anything else. */
  unsupported(key: string, allowed: readonly unknown[], why: string): boolean;
  /** The raw value. */
  raw(key: string): unknown;
  /** Reports a problem with the value of `key` (the message names the keys involved). */
  fail(key: string, message: string): void;
}

export interface HfArchitecture {
  /** The `model_type` values this row reads. */
  readonly modelTypes: readonly string[];
  /** The block and its arguments for a config; null after reporting why not. */
  choose(config: ConfigReader, modelType: string): BlockChoice | null;
  /** Every weight of the model these block arguments describe. */
  tensors(choice: BlockChoice): TensorRule[];
  /** Prefixes a file may put before every name (GPT-2: `transformer.`, as GPT2LMHeadModel saves). */
  readonly prefixes: readonly string[];
  /** Tensors files carry that are not weights of the model (buffers, a tied head): skipped. */
  readonly skipped: RegExp;
  /** The config.json that describes a block with these arguments (for `deploy ... to hf`). */
  config(choice: BlockChoice): Record<string, unknown>;
  /** The prefix written on export. */
  readonly exportPrefix: string;
}

const num = (args: ReadonlyMap<string, BlockArg>, name: string): number => args.get(name) as number;

// ------------------------------------------------------------------ GPT-2

/** GELU variants transformers computes with the tanh approximation, as the `gelu` op does. */
const TANH_GELUS = ['gelu_new', 'gelu_pytorch_tanh', 'gelu_fast'];

const gpt2: HfArchitecture = {
  modelTypes: ['gpt2'],
  choose(c) {
    const dim = c.int('n_embd');
    const heads = c.int('n_head');
    const vocab = c.int('vocab_size');
    const ctx = c.int('n_positions');
    const layers = c.int('n_layer');
    const eps = c.number('layer_norm_epsilon', 1e-5);
    c.oneOf('activation_function', TANH_GELUS, 'gelu_new');
    const unsupported = [
      c.unsupported('scale_attn_weights', [true], 'attention scores are always scaled by 1/sqrt(head_dim)'),
      c.unsupported('scale_attn_by_inverse_layer_idx', [false], 'scores are not scaled per layer'),
      c.unsupported('add_cross_attention', [false], 'a decoder-only model has no cross-attention'),
    ].some((ok) => !ok);
    if (dim === null || heads === null || vocab === null || ctx === null || layers === null || eps === null || unsupported) return null;
    const hidden = c.int('n_inner', 4 * dim);
    if (hidden === null) return null;
    if (dim % heads !== 0) {
      c.fail('n_head', `"n_embd" ${dim} is not divisible by "n_head" ${heads}`);
      return null;
    }
    return { block: 'GPT2', args: new Map<string, BlockArg>([['vocab', vocab], ['ctx', ctx], ['dim', dim], ['layers', layers], ['heads', heads], ['hidden', hidden], ['eps', eps]]) };
  },
  tensors({ args }) {
    const [vocab, ctx, d, hidden] = [num(args, 'vocab'), num(args, 'ctx'), num(args, 'dim'), num(args, 'hidden')];
    const out: TensorRule[] = [
      { hf: 'wte.weight', param: 'embed.token.table', shape: [vocab, d], transposed: false },
      { hf: 'wpe.weight', param: 'embed.pos', shape: [ctx, d], transposed: false },
    ];
    // Conv1D keeps its weight [in, out], as our Linear does: no transposes.
    const layer = (hf: string, param: string, inp: number, outp: number): TensorRule[] => [
      { hf: `${hf}.weight`, param: `${param}.w`, shape: [inp, outp], transposed: false },
      { hf: `${hf}.bias`, param: `${param}.b`, shape: [outp], transposed: false },
    ];
    const norm = (hf: string, param: string): TensorRule[] => [
      { hf: `${hf}.weight`, param: `${param}.w`, shape: [d], transposed: false },
      { hf: `${hf}.bias`, param: `${param}.b`, shape: [d], transposed: false },
    ];
    for (let i = 0; i < num(args, 'layers'); i++) {
      out.push(
        ...norm(`h.${i}.ln_1`, `blocks.${i}.norm1`),
        ...layer(`h.${i}.attn.c_attn`, `blocks.${i}.attn.qkv`, d, 3 * d),
        ...layer(`h.${i}.attn.c_proj`, `blocks.${i}.attn.proj`, d, d),
        ...norm(`h.${i}.ln_2`, `blocks.${i}.norm2`),
        ...layer(`h.${i}.mlp.c_fc`, `blocks.${i}.ff.up`, d, hidden),
        ...layer(`h.${i}.mlp.c_proj`, `blocks.${i}.ff.down`, hidden, d),
      );
    }
    out.push(...norm('ln_f', 'norm'));
    return out;
  },
  prefixes: ['transformer.'],
  // The causal-mask buffers older files carry, and lm_head (tied to wte).
  skipped: /^(?:transformer\.)?h\.\d+\.attn\.(?:bias|masked_bias)$|^lm_head\.weight$/,
  config({ args }) {
    return {
      activation_function: 'gelu_new',
      architectures: ['GPT2LMHeadModel'],
      layer_norm_epsilon: args.get('eps'),
      model_type: 'gpt2',
      n_ctx: args.get('ctx'),
      n_embd: args.get('dim'),
      n_head: args.get('heads'),
      n_inner: args.get('hidden'),
      n_layer: args.get('layers'),
      n_positions: args.get('ctx'),
      scale_attn_weights: true,
      tie_word_embeddings: true,
      vocab_size: args.get('vocab'),
    };
  },
  exportPrefix: 'transformer.',
};

// ------------------------------------------------------------------ LLaMA, Mistral, Qwen2

const llama: HfArchitecture = {
  modelTypes: ['llama', 'mistral', 'qwen2'],
  choose(c, modelType) {
    const dim = c.int('hidden_size');
    const heads = c.int('num_attention_heads');
    const vocab = c.int('vocab_size');
    const layers = c.int('num_hidden_layers');
    const hidden = c.int('intermediate_size');
    const positions = c.int('max_position_embeddings');
    const eps = c.number('rms_norm_eps', 1e-6);
    const theta = c.number('rope_theta', 10000);
    const tied = c.bool('tie_word_embeddings', false);
    c.oneOf('hidden_act', ['silu'], 'silu');
    const attentionBias = modelType === 'llama' ? c.bool('attention_bias', false) : false;
    const unsupported = [
      c.unsupported('rope_scaling', [], 'only plain rotary embeddings are built (no linear, dynamic, yarn or llama3 scaling)'),
      c.unsupported('mlp_bias', [false], 'the SwiGLU projections have no biases'),
    ].some((ok) => !ok);
    if ([dim, heads, vocab, layers, hidden, positions, eps, theta, tied, attentionBias].some((v) => v === null) || unsupported) return null;
    const kvHeads = c.int('num_key_value_heads', heads!);
    if (kvHeads === null) return null;
    if (dim! % heads! !== 0) {
      c.fail('num_attention_heads', `"hidden_size" ${dim} is not divisible by "num_attention_heads" ${heads}`);
      return null;
    }
    if (heads! % kvHeads !== 0) {
      c.fail('num_key_value_heads', `"num_attention_heads" ${heads} is not a multiple of "num_key_value_heads" ${kvHeads}`);
      return null;
    }
    const headDim = c.raw('head_dim');
    if (headDim !== undefined && headDim !== null && headDim !== dim! / heads!) {
      c.fail('head_dim', `"head_dim" ${JSON.stringify(headDim)} differs from "hidden_size" / "num_attention_heads" = ${dim! / heads!}; pt-recipe builds heads of that width only`);
      return null;
    }
    // Sliding-window attention equals full attention on sequences no longer than the window:
    // the model accepts at most that many positions, so what it computes is exact.
    let ctx = positions!;
    const slides = modelType === 'mistral' || (modelType === 'qwen2' && c.raw('use_sliding_window') === true);
    if (slides) {
      const window = c.int('sliding_window', ctx);
      if (window === null) return null;
      ctx = Math.min(ctx, window);
    }
    const qkvBias = modelType === 'qwen2' || attentionBias!;
    return {
      block: tied ? 'LlamaTied' : 'Llama',
      args: new Map<string, BlockArg>([
        ['vocab', vocab!],
        ['ctx', ctx],
        ['dim', dim!],
        ['layers', layers!],
        ['heads', heads!],
        ['kv_heads', kvHeads],
        ['hidden', hidden!],
        ['eps', eps!],
        ['base', theta!],
        ['qkv_bias', qkvBias],
        ['out_bias', attentionBias!],
      ]),
    };
  },
  tensors({ block, args }) {
    const [vocab, d, hidden] = [num(args, 'vocab'), num(args, 'dim'), num(args, 'hidden')];
    const kv = num(args, 'kv_heads') * (d / num(args, 'heads'));
    // nn.Linear keeps [out, in]: every projection is transposed.
    const linear = (hf: string, param: string, inp: number, outp: number, bias: boolean): TensorRule[] => [
      { hf: `${hf}.weight`, param: `${param}.w`, shape: [outp, inp], transposed: true },
      ...(bias ? [{ hf: `${hf}.bias`, param: `${param}.b`, shape: [outp], transposed: false }] : []),
    ];
    const norm = (hf: string, param: string): TensorRule => ({ hf: `${hf}.weight`, param: `${param}.w`, shape: [d], transposed: false });
    const qkvBias = args.get('qkv_bias') === true;
    const out: TensorRule[] = [{ hf: 'model.embed_tokens.weight', param: 'embed.table', shape: [vocab, d], transposed: false }];
    for (let i = 0; i < num(args, 'layers'); i++) {
      const hf = `model.layers.${i}`;
      const p = `blocks.${i}`;
      out.push(
        norm(`${hf}.input_layernorm`, `${p}.norm1`),
        ...linear(`${hf}.self_attn.q_proj`, `${p}.attn.q`, d, d, qkvBias),
        ...linear(`${hf}.self_attn.k_proj`, `${p}.attn.k`, d, kv, qkvBias),
        ...linear(`${hf}.self_attn.v_proj`, `${p}.attn.v`, d, kv, qkvBias),
        ...linear(`${hf}.self_attn.o_proj`, `${p}.attn.o`, d, d, args.get('out_bias') === true),
        norm(`${hf}.post_attention_layernorm`, `${p}.norm2`),
        ...linear(`${hf}.mlp.gate_proj`, `${p}.ff.gate`, d, hidden, false),
        ...linear(`${hf}.mlp.up_proj`, `${p}.ff.up`, d, hidden, false),
        ...linear(`${hf}.mlp.down_proj`, `${p}.ff.down`, hidden, d, false),
      );
    }
    out.push(norm('model.norm', 'norm'));
    if (block === 'Llama') out.push(...linear('lm_head', 'head', d, vocab, false));
    return out;
  },
  prefixes: [],
  // Older LLaMA files carry each layer's rotary inv_freq buffer; a tied lm_head is the embedding.
  skipped: /^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/,
  config({ block, args }) {
    const qwen = args.get('qkv_bias') === true && args.get('out_bias') !== true;
    const ctx = args.get('ctx');
    return {
      architectures: [qwen ? 'Qwen2ForCausalLM' : 'LlamaForCausalLM'],
      ...(qwen ? {} : { attention_bias: args.get('out_bias'), mlp_bias: false }),
      hidden_act: 'silu',
      hidden_size: args.get('dim'),
      intermediate_size: args.get('hidden'),
      max_position_embeddings: ctx,
      model_type: qwen ? 'qwen2' : 'llama',
      num_attention_heads: args.get('heads'),
      num_hidden_layers: args.get('layers'),
      num_key_value_heads: args.get('kv_heads'),
      rms_norm_eps: args.get('eps'),
      rope_scaling: null,
      rope_theta: args.get('base'),
      tie_word_embeddings: block === 'LlamaTied',
      vocab_size: args.get('vocab'),
      ...(qwen ? { use_sliding_window: false } : {}),
    };
  },
  exportPrefix: '',
};

/** Every architecture, in the order `ptr` lists them. */
export const HF_ARCHITECTURES: readonly HfArchitecture[] = [gpt2, llama];

/** The model_type values pretrained(...) reads. */
export const SUPPORTED_MODEL_TYPES: readonly string[] = HF_ARCHITECTURES.flatMap((a) => a.modelTypes);

export function architectureFor(modelType: string): HfArchitecture | null {
  return HF_ARCHITECTURES.find((a) => a.modelTypes.includes(modelType)) ?? null;
}

/** The architecture whose std.nn block this is (for export of a model built from one); null for other blocks. */
export function architectureOfBlock(block: string): HfArchitecture | null {
  if (block === 'GPT2') return gpt2;
  if (block === 'Llama' || block === 'LlamaTied') return llama;
  return null;
}
