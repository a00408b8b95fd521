/**
 * Hugging Face checkpoints: `pretrained("DIR")` against the independent torch
 * implementation of test/fixtures/hf/make-fixtures.py (its logits, computed in
 * float32 from the weights as stored), and `deploy ... to hf` against the files
 * it was read from. The fixtures: GPT-2 in both name layouts (no prefix with the
 * attention-mask buffers, f32; `transformer.` prefix with lm_head, f16), LLaMA
 * with grouped-query attention (f32; bf16 in two shards), LLaMA with
 * attention_bias and as many key/value heads as query heads, and Qwen2 (q/k/v
 * biases, one key/value head, tied embeddings).
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkFiles } from '../../src/check/index.js';
import type { ModuleInfo } from '../../src/check/modules.js';
import { optimize } from '../../src/ir/passes/index.js';
import type { PlannedParam } from '../../src/ir/lower/plan.js';
import { makeTensor, type Tensor } from '../../src/ir/tensor.js';
import { PretrainedWeightsError } from '../../src/runtime/hfCheckpoint.js';
import { initialParams } from '../../src/runtime/init.js';
import { runOnce } from '../../src/runtime/ort.js';
import { decodeSafetensors, readSafetensors, toFloat32, type StTensor } from '../../src/runtime/safetensors.js';
import { openStageData, runtimeTokenizer } from '../../src/runtime/datasets.js';
import { planStage } from '../../src/stages/driver.js';
import { deployHf } from '../../targets/hf/deploy.js';
import { emitModel } from '../../targets/onnx/emit.js';

const HF = resolve('test/fixtures/hf');
const FIXTURES = ['gpt2', 'gpt2-f16', 'llama', 'llama-bf16-sharded', 'qwen2', 'llama-attention-bias'] as const;
/** The fixtures' token sequences are 12 long; the data only has to exist (the logits come from the fixture's tokens). */
const LENGTH = 12;

/**
 * Copies checkpoint folders into `folder` (a recipe reads files under its own folder), each
 * under its own name; returns the names, for pretrained("NAME").
 */
function withModels(folder: string, ...dirs: string[]): string[] {
  return dirs.map((dir) => {
    cpSync(dir, join(folder, basename(dir)), { recursive: true });
    return basename(dir);
  });
}

/** A recipe training `pretrained(dir)` (a copy beside it) one step on a small text corpus, checked in a fresh folder; returns its module. */
function recipe(dir: string, options: { block?: number; extra?: string } = {}): ModuleInfo {
  const folder = mkdtempSync(join(tmpdir(), 'ptr-hf-'));
  const [model] = withModels(folder, dir);
  // Eight token ids: fewer than any fixture's vocabulary, so the checker's vocab-mismatch rule holds for all of them.
  writeFileSync(join(folder, 'corpus.txt'), 'a bead. a cab. a dace. a dab. ee bad cab.\n'.repeat(14));
  const text = `import std.losses { next_token }
tokenizer tok = chars("abcde .\\n")
model m = pretrained(${JSON.stringify(model)})
dataset corpus = text("corpus.txt", tokenizer: tok, block: ${options.block ?? LENGTH})
stage s: train m on corpus {
  loss      = next_token(m(batch.tokens), batch.tokens)
  optimizer = adamw(lr: 1e-3)
  steps     = 1
}
${options.extra ?? ''}`;
  writeFileSync(join(folder, 'r.pt-recipe'), text);
  const result = checkFiles([join(folder, 'r.pt-recipe')]);
  const errors = result.diagnostics.filter((d) => d.severity === 'error');
  if (errors.length) throw new Error(errors.map((d) => `${d.code}: ${d.message}`).join('\n'));
  return result.entryModules[0]!;
}

/** The stage's inference graph run on each of `tokens`' rows, with the given weights. */
async function logitsOf(params: readonly PlannedParam[], weights: ReadonlyMap<string, Float32Array>, graph: Uint8Array, tokens: StTensor): Promise<Float32Array[]> {
  const [n, t] = tokens.shape as [number, number];
  const out: Float32Array[] = [];
  for (let i = 0; i < n; i++) {
    const feeds = new Map<string, Tensor>([['tokens', makeTensor('i64', [1, t], Array.from((tokens.data as BigInt64Array).subarray(i * t, (i + 1) * t), Number))]]);
    for (const p of params) feeds.set(p.input, makeTensor('f32', p.shape, weights.get(p.input)!));
    out.push(Float32Array.from((await runOnce(graph, feeds)).get('logits')!.data));
  }
  return out;
}

/** Every tensor of a checkpoint folder: model.safetensors, or each shard of a sharded one. */
function checkpointTensors(dir: string): Map<string, StTensor> {
  const files = existsSync(join(dir, 'model.safetensors')) ? ['model.safetensors'] : readdirSync(dir).filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f));
  expect(files.length).toBeGreaterThan(0);
  return new Map(files.flatMap((f) => [...readSafetensors(join(dir, f)).tensors]));
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

describe('pretrained("DIR")', () => {
  for (const fixture of FIXTURES) {
    it(`${fixture}: logits equal the torch reference within 1e-4`, async () => {
      const plan = planStage(recipe(join(HF, fixture)), 's');
      const weights = initialParams(plan.params, 0);
      const reference = readSafetensors(join(HF, fixture, 'logits.safetensors')).tensors;
      const expected = toFloat32(reference.get('logits')!);
      const graph = emitModel(optimize(plan.graphs['inference']!).graph).bytes;
      const got = await logitsOf(plan.params, weights, graph, reference.get('tokens')!);
      const perRow = expected.length / got.length;
      const worst = Math.max(...got.map((row, i) => maxAbsDiff(row, expected.subarray(i * perRow, (i + 1) * perRow))));
      expect(worst).toBeLessThanOrEqual(1e-4);
      // Not trivially small: the logits spread over several units.
      expect(Math.max(...Array.from(expected, Math.abs))).toBeGreaterThan(2);
    });
  }

  it('builds the std.nn block config.json describes, and checks a 7B-shaped config without weights', () => {
    const folder = mkdtempSync(join(tmpdir(), 'ptr-hf-types-'));
    const names = ['gpt2', 'gpt2-f16', 'qwen2', 'llama-7b-config'];
    withModels(folder, ...names.map((n) => join(HF, n)));
    writeFileSync(join(folder, 'r.pt-recipe'), names.map((n, i) => `model m${i} = pretrained(${JSON.stringify(n)})`).join('\n'));
    const result = checkFiles([join(folder, 'r.pt-recipe')]);
    expect(result.diagnostics.map((d) => [d.severity, d.code])).toEqual([['warning', 'pretrained-no-weights']]);
    expect(result.declarations.map((d) => d.type)).toEqual([
      expect.stringMatching(/^GPT2\(vocab: 48, ctx: 16, dim: 32, layers: 2, heads: 4, hidden: 128, eps: 0\.00001\) .* 27,520 params$/),
      expect.stringMatching(/^GPT2\(vocab: 48, ctx: 16, dim: 32, layers: 2, heads: 4, hidden: 128, eps: 0\.00001\) /),
      expect.stringMatching(/^LlamaTied\(vocab: 40, ctx: 16, dim: 32, layers: 2, heads: 4, kv_heads: 1, hidden: 40, eps: 0\.000001, base: 1000000, qkv_bias: true, out_bias: false\) /),
      // LLaMA-2 7B has 6,738,415,616 parameters.
      expect.stringMatching(/^Llama\(vocab: 32000, ctx: 4096, dim: 4096, layers: 32, heads: 32, kv_heads: 32, hidden: 11008, .*\) .* 6,738,415,616 params$/),
    ]);
  });

  it('reads weights exactly: f32 as stored, bf16 decoded, [out, in] transposed to [in, out]', () => {
    const f32 = initialParams(planStage(recipe(join(HF, 'llama')), 's').params, 0);
    const bf16 = initialParams(planStage(recipe(join(HF, 'llama-bf16-sharded')), 's').params, 0);
    const file = readSafetensors(join(HF, 'llama', 'model.safetensors')).tensors.get('model.layers.1.self_attn.k_proj.weight')!;
    const [out, inp] = file.shape as [number, number];
    const ours = f32.get('m.blocks.1.attn.k.w')!;
    for (let o = 0; o < out; o++) for (let i = 0; i < inp; i++) expect(ours[i * out + o]).toBe((file.data as Float32Array)[o * inp + i]);
    // bf16 keeps the top 16 bits of each f32: the decoded value is the f32 cut to them (rounded to nearest even).
    const rounded = bf16.get('m.blocks.1.attn.k.w')!;
    expect(maxAbsDiff(rounded, ours)).toBeLessThan(0.01);
    expect(maxAbsDiff(rounded, ours)).toBeGreaterThan(0);
    expect(new Uint32Array(rounded.buffer).every((bits) => (bits & 0xffff) === 0)).toBe(true);
  });

  it('mistral: attention is exact up to the sliding window, which caps the context', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ptr-hf-mistral-'));
    cpSync(join(HF, 'llama'), dir, { recursive: true });
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, model_type: 'mistral', architectures: ['MistralForCausalLM'], sliding_window: 8 }));
    expect(() => recipe(dir)).toThrow(/where-violated: .*T <= ctx.*12.*8/);
    const plan = planStage(recipe(dir, { block: 8 }), 's');
    const reference = readSafetensors(join(HF, 'llama', 'logits.safetensors')).tensors;
    const tokens = reference.get('tokens')!;
    const first8: StTensor = { dtype: 'I64', shape: [3, 8], data: BigInt64Array.from({ length: 24 }, (_, k) => (tokens.data as BigInt64Array)[Math.floor(k / 8) * LENGTH + (k % 8)]!) };
    const got = await logitsOf(plan.params, initialParams(plan.params, 0), emitModel(optimize(plan.graphs['inference']!).graph).bytes, first8);
    const expected = toFloat32(reference.get('logits')!);
    const vocab = 40;
    // Causal: the first 8 positions of the 12-token reference are what an 8-token window computes.
    got.forEach((row, i) => expect(maxAbsDiff(row, expected.subarray(i * LENGTH * vocab, (i * LENGTH + 8) * vocab))).toBeLessThanOrEqual(1e-4));
  });

  it('a folder with config.json only checks, but running it is a user error naming the folder', () => {
    const plan = planStage(recipe(join(HF, 'llama-7b-config'), { block: 4 }), 's');
    // Only the embedding: reading it fails before anything large is allocated.
    const embedding = plan.params.filter((p) => p.name === 'embed.table');
    expect(() => initialParams(embedding, 0)).toThrow(PretrainedWeightsError);
    expect(() => initialParams(embedding, 0)).toThrow(/m\.embed\.table starts from the checkpoint in .*llama-7b-config, which has no weights/);
  });
});

describe('deploy ... to hf', () => {
  /** The tensors of the folder files a deploy wrote (single file or shards). */
  function written(files: readonly { name: string; bytes: Uint8Array }[]): Map<string, StTensor> {
    const out = new Map<string, StTensor>();
    for (const f of files.filter((x) => x.name.endsWith('.safetensors'))) for (const [k, v] of decodeSafetensors(f.bytes, f.name).tensors) out.set(k, v);
    return out;
  }

  const cases = [
    // [fixture, precision it is stored in, names the source file has that the export leaves out]
    ['gpt2', 'fp32', /\.attn\.(masked_)?bias$/],
    ['gpt2-f16', 'fp16', /^lm_head\.weight$/],
    ['llama', 'fp32', null],
    ['llama-bf16-sharded', 'bf16', null],
    ['qwen2', 'fp32', null],
    ['llama-attention-bias', 'fp32', null],
  ] as const;
  for (const [fixture, precision, dropped] of cases) {
    it(`${fixture}: import → export in ${precision} gives back every tensor bit for bit`, () => {
      const module = recipe(join(HF, fixture));
      const plan = planStage(module, 's');
      const weights = initialParams(plan.params, 0);
      const output = deployHf({ format: 'hf', model: 'm', stage: 's', precision, graphs: plan.graphs, weights, module });
      expect(output.notDone).toBeNull();
      const source = checkpointTensors(join(HF, fixture));
      const exported = written(output.files);
      // GPT-2 is written as GPT2LMHeadModel saves it, with the `transformer.` prefix.
      const unprefixed = new Map([...exported].map(([k, v]) => [k.replace(/^transformer\./, ''), v]));
      const kept = [...source.keys()].filter((k) => !dropped || !dropped.test(k)).map((k) => k.replace(/^transformer\./, ''));
      expect([...unprefixed.keys()].sort()).toEqual(kept.sort());
      for (const [name, t] of source) {
        const mine = unprefixed.get(name.replace(/^transformer\./, ''));
        if (!mine) continue;
        expect([mine.dtype, mine.shape]).toEqual([t.dtype, t.shape]);
        expect(Buffer.from(mine.data.buffer, mine.data.byteOffset, mine.data.byteLength).equals(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)), name).toBe(true);
      }
      const config = JSON.parse(new TextDecoder().decode(output.files.find((f) => f.name === 'config.json')!.bytes)) as Record<string, unknown>;
      const original = JSON.parse(readFileSync(join(HF, fixture, 'config.json'), 'utf8')) as Record<string, unknown>;
      expect(config).toEqual({ ...original, torch_dtype: { fp32: 'float32', fp16: 'float16', bf16: 'bfloat16' }[precision] });
      // The folder's tokenizer files travel with the weights, byte for byte.
      for (const f of ['tokenizer.json', 'tokenizer_config.json'].filter((x) => existsSync(join(HF, fixture, x)))) {
        expect(Buffer.from(output.files.find((x) => x.name === f)!.bytes).equals(readFileSync(join(HF, fixture, f))), f).toBe(true);
      }
      expect(output.files.some((f) => f.name === 'tokenizer.json')).toBe(fixture === 'llama');
    });
  }

  it('shards above the shard size as save_pretrained does, with an index of every tensor', () => {
    const module = recipe(join(HF, 'llama'));
    const plan = planStage(module, 's');
    const weights = initialParams(plan.params, 0);
    const output = deployHf({ format: 'hf', model: 'm', stage: 's', precision: 'fp32', graphs: plan.graphs, weights, module }, 20_000);
    const names = output.files.map((f) => f.name);
    const shards = names.filter((n) => n.endsWith('.safetensors'));
    expect(shards.length).toBeGreaterThan(2);
    expect(shards.every((n, i) => n === `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`)).toBe(true);
    const index = JSON.parse(new TextDecoder().decode(output.files.find((f) => f.name === 'model.safetensors.index.json')!.bytes)) as { metadata: { total_size: number }; weight_map: Record<string, string> };
    const tensors = written(output.files);
    expect(Object.keys(index.weight_map).sort()).toEqual([...tensors.keys()].sort());
    expect(index.metadata.total_size).toBe([...tensors.values()].reduce((n, t) => n + t.data.byteLength, 0));
    for (const f of output.files.filter((x) => x.name.endsWith('.safetensors'))) {
      for (const name of decodeSafetensors(f.bytes, f.name).tensors.keys()) expect(index.weight_map[name]).toBe(f.name);
    }
  });

  it('a model that is not an HF architecture is not written, and says why', () => {
    const folder = mkdtempSync(join(tmpdir(), 'ptr-hf-not-'));
    copyFileSync(join(HF, '..', 'train', 'corpus.txt'), join(folder, 'corpus.txt'));
    writeFileSync(
      join(folder, 'r.pt-recipe'),
      `import std.nn { Transformer }
import std.losses { next_token }
tokenizer tok = bytes()
model gpt = Transformer(vocab: tok.vocab, ctx: 8, dim: 8, layers: 1, heads: 2)
dataset corpus = text("corpus.txt", tokenizer: tok, block: 8)
stage a: train gpt on corpus { loss = next_token(gpt(batch.tokens), batch.tokens)
 steps = 1 }
`,
    );
    const module = checkFiles([join(folder, 'r.pt-recipe')]).entryModules[0]!;
    const plan = planStage(module, 'a');
    const output = deployHf({ format: 'hf', model: 'gpt', stage: 'a', precision: 'fp32', graphs: plan.graphs, weights: new Map(), module });
    expect(output.files).toEqual([]);
    expect(output.notDone).toMatch(/gpt is a Transformer; the hf format describes std\.nn's GPT2, Llama and LlamaTied/);
  });

  it('a LoRA model is written with its adapters merged: the folder computes what the adapted model does', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'ptr-hf-lora-'));
    writeFileSync(join(folder, 'corpus.txt'), 'a small corpus of plain words, long enough for a few blocks of text.\n'.repeat(8));
    withModels(folder, join(HF, 'llama'));
    writeFileSync(
      join(folder, 'r.pt-recipe'),
      `import std.losses { next_token }
tokenizer tok = chars("abcdefghijklmnopqrstuvwxyz ,.\\n")
model tuned = lora(pretrained("llama"), rank: 2, alpha: 4, targets: [q, v, down])
dataset corpus = text("corpus.txt", tokenizer: tok, block: ${LENGTH})
stage s: train tuned on corpus { loss = next_token(tuned(batch.tokens), batch.tokens)
 steps = 1 }
`,
    );
    const result = checkFiles([join(folder, 'r.pt-recipe')]);
    expect(result.diagnostics).toEqual([]);
    const plan = planStage(result.entryModules[0]!, 's');
    const weights = initialParams(plan.params, 0);
    // Trained-looking adapters: B is zero at initialisation, which would merge to the base weights.
    let seed = 7;
    const adapters = plan.params.filter((p) => p.name.endsWith('.lora_b'));
    expect(adapters.length).toBe(6);
    for (const p of adapters) weights.set(p.input, Float32Array.from(weights.get(p.input)!, () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648 - 0.5) * 0.2));
    const output = deployHf({ format: 'hf', model: 'tuned', stage: 's', precision: 'fp32', graphs: plan.graphs, weights, module: result.entryModules[0]! });
    expect(output.notDone).toBeNull();
    expect(output.description).toMatch(/^Llama as llama \(LoRA adapters merged\), 21 tensors in float32/);
    mkdirSync(join(folder, 'merged'));
    for (const f of output.files) writeFileSync(join(folder, 'merged', f.name), f.bytes);
    const mergedPlan = planStage(recipe(join(folder, 'merged')), 's');
    const tokens = readSafetensors(join(HF, 'llama', 'logits.safetensors')).tensors.get('tokens')!;
    const adapted = await logitsOf(plan.params, weights, emitModel(optimize(plan.graphs['inference']!).graph).bytes, tokens);
    const merged = await logitsOf(mergedPlan.params, initialParams(mergedPlan.params, 0), emitModel(optimize(mergedPlan.graphs['inference']!).graph).bytes, tokens);
    const base = await logitsOf(mergedPlan.params, initialParams(planStage(recipe(join(HF, 'llama')), 's').params, 0), emitModel(optimize(mergedPlan.graphs['inference']!).graph).bytes, tokens);
    adapted.forEach((row, i) => {
      expect(maxAbsDiff(row, merged[i]!)).toBeLessThanOrEqual(1e-5);
      // ... and the adapters changed what the model computes.
      expect(maxAbsDiff(row, base[i]!)).toBeGreaterThan(1e-2);
    });
  });

  it('ptr run: one training step, deploy to hf, and the folder re-imports with the trained weights', () => {
    const module = recipe(join(HF, 'qwen2'), { extra: 'deploy m @ s to hf { out = "exported" }\n' });
    const folder = resolve(module.absPath, '..');
    const r = spawnSync(process.execPath, [resolve('bin/ptr.js'), 'run', 'r.pt-recipe', '--out', 'run'], { cwd: folder, encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toMatch(/deploy m @ s to hf → exported\/config\.json — LlamaTied as qwen2, \d+ tensors in float32/);
    const trained = readSafetensors(join(folder, 'run', 'checkpoints', 's', 'step-000001', 'model.safetensors')).tensors;
    const again = initialParams(planStage(recipe(join(folder, 'exported')), 's').params, 0);
    expect([...again.keys()].map((k) => k.replace(/^m\./, '')).sort()).toEqual([...trained.keys()].sort());
    let changed = 0;
    const original = initialParams(planStage(recipe(join(HF, 'qwen2')), 's').params, 0);
    for (const [name, t] of trained) {
      expect(Buffer.from(again.get(`m.${name}`)!.buffer).equals(Buffer.from((t.data as Float32Array).buffer)), name).toBe(true);
      if (maxAbsDiff(original.get(`m.${name}`)!, t.data as Float32Array) > 0) changed++;
    }
    // The step trained (almost) every tensor: what came back is the trained model, not the original.
    expect(changed).toBeGreaterThan(trained.size / 2);
  });

  it('examples/hf/finetune.pt-recipe: SFT and DPO of an imported model, exported to hf (with its tokenizer) and onnx', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ptr-hf-example-'));
    cpSync(resolve('examples/hf'), join(dir, 'hf'), { recursive: true });
    cpSync(resolve('examples/arith/data'), join(dir, 'arith', 'data'), { recursive: true });
    // The project folder (nearest package.json): the recipe in hf/ may read ../arith/data.
    writeFileSync(join(dir, 'package.json'), '{}\n');
    const cwd = join(dir, 'hf');
    const r = spawnSync(process.execPath, [resolve('bin/ptr.js'), 'run', 'finetune.pt-recipe', '--steps', '3', '--allow-read', '../arith'], { cwd, encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toMatch(/deploy policy @ align to hf → out\/tiny-llama-aligned\/config\.json — Llama as llama, 21 tensors in float32; tokenizer\.json, tokenizer_config\.json from /);
    expect(readdirSync(join(cwd, 'out', 'tiny-llama-aligned')).sort()).toEqual(['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    expect(readFileSync(join(cwd, 'out', 'tiny-llama-aligned', 'tokenizer.json'))).toEqual(readFileSync(join(cwd, 'tiny-llama', 'tokenizer.json')));
    expect(existsSync(join(cwd, 'out', 'tiny-llama-aligned-onnx', 'model.onnx'))).toBe(true);
    // The exported folder is itself a checkpoint pretrained(...) reads, with the aligned weights.
    const aligned = readSafetensors(join(cwd, 'runs', 'finetune', 'checkpoints', 'align', 'step-000003', 'model.safetensors')).tensors;
    const again = initialParams(planStage(recipe(join(cwd, 'out', 'tiny-llama-aligned')), 's').params, 0);
    for (const [name, t] of aligned) expect(maxAbsDiff(again.get(`m.${name}`)!, t.data as Float32Array), name).toBe(0);
  });
});

describe('hf("DIR"): the tokenizer of a model folder', () => {
  it('reads tokenizer.json and tokenizer_config.json: the model\'s own bos and eos frame SFT rows, with their ids (no new ones)', () => {
    const folder = mkdtempSync(join(tmpdir(), 'ptr-hf-tok-'));
    withModels(folder, join(HF, 'llama'));
    writeFileSync(join(folder, 'sft.jsonl'), '{"prompt": "ab", "completion": "cd"}\n{"prompt": "hello ", "completion": "world"}\n');
    writeFileSync(
      join(folder, 'r.pt-recipe'),
      `import std.losses { sft }
tokenizer tok = hf("llama")
model m = pretrained("llama")
dataset rows = jsonl("sft.jsonl", format: prompt_completion, tokenizer: tok, max_len: 16)
stage s: train m on rows { loss = sft(m, batch)
 batch = 2
 steps = 1 }
`,
    );
    const result = checkFiles([join(folder, 'r.pt-recipe')]);
    expect(result.diagnostics).toEqual([]);
    expect(result.declarations.find((d) => d.name === 'tok')!.type).toMatch(/vocab 40\b|\b40\b/);
    const plan = planStage(result.entryModules[0]!, 's');
    const tok = runtimeTokenizer(plan.data['train']!.spec.tokenizer);
    expect([tok.vocab, tok.special('unk'), tok.special('bos'), tok.special('eos'), tok.special('pad')]).toEqual([40, 0, 1, 2, null]);
    expect(Array.from(tok.encode('ab'))).toEqual([3, 4]);
    // A row: bos, prompt, completion, eos, then padding to max_len (the batch's order is the stage's shuffle).
    const batch = openStageData(plan.data['train']!.spec, 0).trainBatch(0, 2);
    const tokens = Array.from(batch['batch.tokens']!.data as BigInt64Array, Number);
    const rows = [tokens.slice(0, 16), tokens.slice(16)];
    for (const [prompt, completion] of [['ab', 'cd'], ['hello ', 'world']] as const) {
      const row = [1, ...tok.encode(prompt), ...tok.encode(completion), 2];
      expect(rows.some((r) => r.slice(0, row.length).join() === row.join()), `${row} in ${JSON.stringify(rows)}`).toBe(true);
    }
  });
});

