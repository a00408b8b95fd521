/**
 * Every kind of train stage the stdlib losses make — SFT, a reward model, DPO
 * against a frozen reference, LoRA — on the tiny fixture pipeline: gradients
 * checked against finite differences, and each stage run from the weights it
 * names.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { latestCheckpointDir } from '../../src/runtime/checkpoint.js';
import { readMetrics } from '../../src/runtime/metrics.js';
import { readSafetensors } from '../../src/runtime/safetensors.js';

let dir = '';
const ptr = (...args: string[]) => spawnSync(process.execPath, [resolve('bin/ptr.js'), ...args], { cwd: dir, encoding: 'utf8', timeout: 120_000 });

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ptr-stages-'));
  cpSync(resolve('test/fixtures/train'), dir, { recursive: true });
});

describe('train stages of every kind', () => {
  it.each(['sft', 'reward', 'align', 'adapt'])('%s: gradients match finite differences', (stage) => {
    const r = ptr('gradcheck', 'pipeline.pt-recipe', '--stage', stage, '--samples', '3');
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).not.toMatch(/^FAIL/m);
  });

  it('runs each stage from the weights it names', () => {
    const r = ptr('run', 'pipeline.pt-recipe', '--out', 'run');
    expect(r.status, r.stderr).toBe(0);
    expect([...r.stdout.matchAll(/^stage (\w+): steps/gm)].map((m) => m[1])).toEqual(['pretrain', 'sft', 'reward', 'align', 'adapt']);
    // LoRA: rank 2 on qkv (16 → 48) and proj (16 → 16) of one layer trains 2·(16+48) + 2·(16+16) parameters.
    expect(r.stderr).toMatch(/stage adapt: 192 trainable parameters \(\+[\d,]+ frozen\)/);
    const first = (stage: string): number => readMetrics(join(dir, 'run', 'metrics.jsonl')).find((m) => m.stage === stage && m.step === 1)!['loss'] as number;
    // DPO starts at ln 2 exactly when the policy and the frozen reference both start from sft.
    expect(first('align')).toBeCloseTo(Math.LN2, 5);

    const tensors = (stage: string) => readSafetensors(join(latestCheckpointDir(join(dir, 'run'), stage)!, 'model.safetensors')).tensors;
    const sft = tensors('sft');
    const adapt = tensors('adapt');
    // The adapted weights are frozen: still exactly sft's. The adapters moved.
    for (const name of ['blocks.0.attn.qkv.w', 'head.w', 'embed.token.table']) {
      expect(Array.from(adapt.get(name)!.data as Float32Array), name).toEqual(Array.from(sft.get(name)!.data as Float32Array));
    }
    expect(adapt.get('blocks.0.attn.qkv.lora_a')!.shape).toEqual([16, 2]);
    expect(Math.max(...Array.from(adapt.get('blocks.0.attn.qkv.lora_b')!.data as Float32Array, Math.abs))).toBeGreaterThan(0);
    // The reward model's trunk starts from sft's weights; after its own training it has moved away from them.
    const rm = tensors('reward');
    expect(rm.get('score.w')!.shape).toEqual([16, 1]);
    expect(Array.from(rm.get('norm.w')!.data as Float32Array)).not.toEqual(Array.from(sft.get('norm.w')!.data as Float32Array));
  });

  it('trains on a Hugging Face tokenizer.json and samples words', () => {
    const run = ptr('run', 'words.pt-recipe', '--out', 'words');
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/stage pretrain: steps 1–30 .* val loss [\d.]+ at step 30/);
    const sample = ptr('sample', 'words.pt-recipe', '--run', 'words', '--prompt', 'the cat', '--tokens', '6');
    expect(sample.status, sample.stderr).toBe(0);
    const words = sample.stdout.trim().split(/[ .]+/).filter(Boolean);
    expect(words.slice(0, 2)).toEqual(['the', 'cat']);
    expect(words.length).toBeGreaterThanOrEqual(7);
    const vocab = ['the', 'cat', 'sat', 'on', 'a', 'mat', 'dog', 'ran', 'to', 'big', 'red', 'sun'];
    for (const w of words) expect(vocab).toContain(w);
  });
});
