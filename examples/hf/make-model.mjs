// Writes tiny-llama/: a small LLaMA-architecture checkpoint in the Hugging Face layout
// (config.json, model.safetensors in bfloat16, tokenizer.json and tokenizer_config.json
// naming its bos and eos), with seeded random
// weights, for finetune.pt-recipe to import. A stand-in for a real model: point the
// recipe's pretrained("...") at any LLaMA, Mistral, Qwen2 or GPT-2 folder instead.
//
//   node examples/hf/make-model.mjs [OUT_DIR]     (default: examples/hf/tiny-llama)
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { prng } from '../data/prng.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2] ?? join(here, 'tiny-llama');
mkdirSync(out, { recursive: true });

// The characters of the arithmetic data (examples/arith), one token each, then <unk>, <s> and </s>.
const chars = [...'0123456789+-*=\n'];
const specials = ['<unk>', '<s>', '</s>'];
const vocab = chars.length + specials.length;
const [dim, layers, heads, kvHeads, hidden, ctx] = [64, 2, 4, 2, 128, 32];

const config = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  bos_token_id: chars.length + 1,
  eos_token_id: chars.length + 2,
  hidden_act: 'silu',
  hidden_size: dim,
  intermediate_size: hidden,
  max_position_embeddings: ctx,
  mlp_bias: false,
  model_type: 'llama',
  num_attention_heads: heads,
  num_hidden_layers: layers,
  num_key_value_heads: kvHeads,
  rms_norm_eps: 1e-6,
  rope_scaling: null,
  rope_theta: 10000.0,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  vocab_size: vocab,
};

// Weights: N(0, 0.02) like transformers' initializer_range, norms at 1; stored [out, in] as nn.Linear keeps them.
const random = prng(2024);
const normal = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
const tensors = {};
const add = (name, shape, fill) => (tensors[name] = { shape, values: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, fill) });
const weight = (name, rows, cols) => add(name, [rows, cols], () => 0.02 * normal());
const ones = (name, n) => add(name, [n], () => 1);
const kv = kvHeads * (dim / heads);
weight('model.embed_tokens.weight', vocab, dim);
for (let i = 0; i < layers; i++) {
  const p = `model.layers.${i}`;
  ones(`${p}.input_layernorm.weight`, dim);
  weight(`${p}.self_attn.q_proj.weight`, dim, dim);
  weight(`${p}.self_attn.k_proj.weight`, kv, dim);
  weight(`${p}.self_attn.v_proj.weight`, kv, dim);
  weight(`${p}.self_attn.o_proj.weight`, dim, dim);
  ones(`${p}.post_attention_layernorm.weight`, dim);
  weight(`${p}.mlp.gate_proj.weight`, hidden, dim);
  weight(`${p}.mlp.up_proj.weight`, hidden, dim);
  weight(`${p}.mlp.down_proj.weight`, dim, hidden);
}
ones('model.norm.weight', dim);
weight('lm_head.weight', vocab, dim);

/** bfloat16: the top 16 bits of the float32, rounded to nearest even. */
function bf16(values) {
  const bits = new Uint32Array(Float32Array.from(values).buffer);
  return Uint16Array.from(bits, (b) => (b + 0x7fff + ((b >>> 16) & 1)) >>> 16);
}

// safetensors: 8-byte little-endian header length, the JSON header (names sorted), the data.
const names = Object.keys(tensors).sort();
const header = { __metadata__: { format: 'pt' } };
let offset = 0;
const blobs = names.map((name) => {
  const data = bf16(tensors[name].values);
  header[name] = { dtype: 'BF16', shape: tensors[name].shape, data_offsets: [offset, offset + data.byteLength] };
  offset += data.byteLength;
  return new Uint8Array(data.buffer);
});
let json = Buffer.from(JSON.stringify(header));
json = Buffer.concat([json, Buffer.alloc((8 - ((8 + json.length) % 8)) % 8, 0x20)]);
const length = Buffer.alloc(8);
length.writeBigUInt64LE(BigInt(json.length));
writeFileSync(join(out, 'model.safetensors'), Buffer.concat([length, json, ...blobs]));
writeFileSync(join(out, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);

// A character-level BPE tokenizer (no merges): each character is one token.
const tokenizer = {
  version: '1.0',
  added_tokens: specials.map((content, i) => ({ id: chars.length + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
  normalizer: null,
  pre_tokenizer: null,
  post_processor: null,
  // Fuse: decoded tokens are joined without the spaces a decoder-less tokenizer puts between them.
  decoder: { type: 'Fuse' },
  model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, vocab: Object.fromEntries([...chars, ...specials].map((c, i) => [c, i])), merges: [] },
};
writeFileSync(join(out, 'tokenizer.json'), `${JSON.stringify(tokenizer, null, 2)}\n`);
// The special tokens, as transformers' tokenizer_config.json names them: hf("tiny-llama") frames rows with them.
const tokenizerConfig = { add_bos_token: true, add_eos_token: false, bos_token: '<s>', eos_token: '</s>', model_max_length: ctx, tokenizer_class: 'PreTrainedTokenizerFast', unk_token: '<unk>' };
writeFileSync(join(out, 'tokenizer_config.json'), `${JSON.stringify(tokenizerConfig, null, 2)}\n`);
