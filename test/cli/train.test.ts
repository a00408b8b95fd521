/**
 * The training commands end to end, as a user runs them: `ptr compile`,
 * `ptr ir`, `ptr gradcheck`, `ptr run` (with --resume and --device cuda on a
 * CPU-only install) and `ptr sample`, each spawning the compiled CLI on a
 * copy of the tiny fixtures.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeTensor } from '../../src/ir/tensor.js';
import { runOnce } from '../../src/runtime/ort.js';

const BIN = resolve('bin/ptr.js');
let dir = '';

function ptr(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ptr-cli-train-'));
  cpSync(resolve('test/fixtures/train'), dir, { recursive: true });
});

describe('ptr compile and ptr ir', () => {
  it('writes the three models and the manifest, byte-identical on a second compile', () => {
    const a = ptr('compile', 'tiny.pt-recipe', '-o', 'a');
    expect(a.code, a.stderr).toBe(0);
    expect(a.stdout).toMatch(/^train_step +\d+ IR nodes → +\d+ after cse \d+, const-fold \d+, cse \d+, dce \d+$/m);
    expect(a.stdout).toMatch(/compiled stage pretrain \(7,456 parameters\) to a\/ in \d+ ms: train_step\.onnx, eval\.onnx, inference\.onnx, prefill\.onnx, decode\.onnx, train_loop\.onnx, manifest\.json/);
    expect(ptr('compile', 'tiny.pt-recipe', '-o', 'b').code).toBe(0);
    const files = readdirSync(join(dir, 'a')).sort();
    expect(files).toEqual(['decode.onnx', 'eval.onnx', 'inference.onnx', 'manifest.json', 'prefill.onnx', 'train_loop.onnx', 'train_step.onnx']);
    for (const f of files) expect(readFileSync(join(dir, 'b', f)).equals(readFileSync(join(dir, 'a', f))), f).toBe(true);
    const manifest = JSON.parse(readFileSync(join(dir, 'a', 'manifest.json'), 'utf8'));
    expect(manifest.format).toBe('pt-recipe-manifest/2');
    expect(manifest.feedback['new.lm.head.w']).toBe('lm.head.w');
  });

  it('makes inference.onnx self-contained: the seeded initial weights are initializers, tokens the only input', async () => {
    const manifest = JSON.parse(readFileSync(join(dir, 'a', 'manifest.json'), 'utf8'));
    expect(manifest.graphs.inference.inputs).toEqual([{ name: 'tokens', dtype: 'i64', shape: [1, 16] }]);
    const tokens = makeTensor('i64', [1, 16], Array.from({ length: 16 }, (_, i) => i % 19));
    const out = await runOnce(new Uint8Array(readFileSync(join(dir, 'a', 'inference.onnx'))), new Map([['tokens', tokens]]));
    const logits = out.get('logits')!;
    expect(logits.shape).toEqual([1, 16, 19]);
    // Initial weights are small (normal(0.02)), so the logits are near zero but not all equal.
    expect(Math.max(...Array.from(logits.data, Math.abs))).toBeLessThan(1);
    expect(new Set(Array.from(logits.data)).size).toBeGreaterThan(100);
  });

  it('prints the IR, and the optimised IR with fewer nodes', () => {
    const raw = ptr('ir', 'tiny.pt-recipe', '--graph', 'eval');
    const opt = ptr('ir', 'tiny.pt-recipe', '--graph', 'eval', '--optimized');
    expect(raw.code).toBe(0);
    expect(raw.stdout).toMatch(/^graph eval\(\n {4}%0 lm\.embed\.token\.table: f32\[19, 16\],/);
    expect(raw.stdout).toMatch(/= cross_entropy\(/);
    expect(opt.stdout.split('\n').length).toBeLessThan(raw.stdout.split('\n').length);
  });

  it('refuses a recipe with errors, printing its diagnostics', () => {
    writeFileSync(join(dir, 'broken.pt-recipe'), readFileSync(join(dir, 'tiny.pt-recipe'), 'utf8').replace('dim: 16', 'dim: 15'));
    const r = ptr('compile', 'broken.pt-recipe', '-o', 'c');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/broken\.pt-recipe:\d+:\d+: error\[/);
    expect(existsSync(join(dir, 'c'))).toBe(false);
  });
});

describe('ptr gradcheck', () => {
  it.each(['tiny.pt-recipe', 'llama.pt-recipe'])('%s: every parameter within tolerance of finite differences', (recipe) => {
    const r = ptr('gradcheck', recipe, '--samples', '3');
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const rows = r.stdout.split('\n').filter((l) => /^(ok|FAIL)/.test(l));
    expect(rows.length).toBeGreaterThan(10);
    expect(rows.every((l) => l.startsWith('ok'))).toBe(true);
    expect(r.stdout).toMatch(/worst relative error \d\.\d\de-\d+ \(tolerance 0\.0001\)/);
  });
});

describe('ptr run and ptr sample', () => {
  it('trains, resumes as a no-op when complete, and samples text that starts with the prompt', () => {
    const run = ptr('run', 'tiny.pt-recipe', '--out', 'run1');
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/stage pretrain: steps 1–12 in [\d.]+ s, [\d,]+ tokens\/s; train loss [\d.]+ → [\d.]+ \(mean of last 12\), val loss [\d.]+ at step 12/);
    expect(existsSync(join(dir, 'run1', 'checkpoints', 'pretrain', 'step-000012', 'model.safetensors'))).toBe(true);
    const again = ptr('run', 'tiny.pt-recipe', '--out', 'run1', '--resume');
    expect(again.stdout).toMatch(/stage pretrain: already complete at step 12/);
    const sample = ptr('sample', 'tiny.pt-recipe', '--run', 'run1', '--prompt', 'the cat', '--tokens', '40', '--seed', '1');
    expect(sample.code, sample.stderr).toBe(0);
    const text = sample.stdout.replace(/\n$/, '');
    expect(text.startsWith('the cat')).toBe(true);
    expect([...text].length).toBe('the cat'.length + 40);
    expect(ptr('sample', 'tiny.pt-recipe', '--run', 'run1', '--prompt', 'the cat', '--tokens', '40', '--seed', '1').stdout).toBe(sample.stdout);
  });

  it('fails clearly on --device cuda without the CUDA provider, and on a missing checkpoint', () => {
    const cuda = ptr('run', 'tiny.pt-recipe', '--out', 'run2', '--device', 'cuda');
    expect(cuda.code).toBe(1);
    expect(cuda.stderr).toMatch(/--device cuda: this onnxruntime-node install has no CUDA execution provider .*npm run setup:cuda/);
    const sample = ptr('sample', 'tiny.pt-recipe', '--run', 'nowhere');
    expect(sample.code).toBe(1);
    expect(sample.stderr).toMatch(/no checkpoint of stage pretrain in nowhere\/checkpoints; run 'ptr run tiny\.pt-recipe' first/);
  });
});

describe('ptr ir --provenance', () => {
  it('gives every node its phase and, where it came from recipe text, its line: the loss forward, its gradient backward, the update optimizer', () => {
    const r = ptr('ir', 'tiny.pt-recipe', '--provenance');
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split('\n').filter((l) => l.startsWith('  %'));
    expect(lines.every((l) => / @ (\S+:\d+:\d+ )?(forward|backward|optimizer)$/.test(l))).toBe(true);
    // The loss's nodes come from the body of std.losses' next_token, and name its line.
    expect(lines.some((l) => /std\/losses\.pt-recipe:\d+:\d+ forward$/.test(l))).toBe(true);
    expect(lines.some((l) => l.endsWith('backward'))).toBe(true);
    expect(lines.some((l) => l.endsWith('optimizer'))).toBe(true);
  });
});

describe('npm in the checkout', () => {
  it('prints no "Unknown project config" warning (the CUDA download is skipped through package.json)', () => {
    const r = spawnSync('npm', ['--version'], { cwd: resolve('.'), encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(0);
    expect(r.stderr).not.toMatch(/Unknown project config/);
  });
});
