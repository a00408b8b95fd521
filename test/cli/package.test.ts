/**
 * Using ptr from a user's own folder, as README describes: the files `npm pack`
 * would publish (package.json "files") are copied into a node_modules/pt-recipe
 * outside the repository, and that copy checks and trains a recipe in another
 * folder. `import std.nn` must resolve to the copy's stdlib, not the checkout's.
 * Needs dist/ (built by `npm test` before vitest); no network.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, appendFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const REPO = resolve('.');

interface PackedFile {
  readonly path: string;
}

/** The paths `npm pack` would put in the tarball, without running any lifecycle script. */
function packedFiles(): string[] {
  const json = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const [pack] = JSON.parse(json) as { files: PackedFile[] }[];
  return pack!.files.map((f) => f.path).sort();
}

const RECIPE = `import std.nn     { Transformer, OnlyInTheInstalledCopy }
import std.losses { next_token }

tokenizer tok = chars("\\n abcdefghijklmnopqrstuvwxyz", specials: [pad, bos, eos])
model lm = Transformer(vocab: tok.vocab, ctx: 16, dim: 16, layers: 1, heads: 2)
dataset corpus = text("data/corpus.txt", tokenizer: tok, block: 16, split: 0.9)

stage pretrain: train lm on corpus {
  loss  = next_token(lm(batch.tokens), batch.tokens)
  batch = 2
  steps = 5
}

deploy lm @ pretrain to onnx {
  out = "out/tiny"
}
`;

/** A block only the installed copy's std.nn has: importing it proves which stdlib was read. */
const MARKER_BLOCK = `
# A block added by test/cli/package.test.ts to the installed copy only.
block OnlyInTheInstalledCopy(d: dim) {
  param w: f32[d] = ones()
  forward(x: f32[..., d]) -> f32[..., d] = x * w
}
`;

describe('the packed package, installed outside the repository', () => {
  let files: string[] = [];
  let root = '';
  let project = '';
  let bin = '';

  beforeAll(() => {
    files = packedFiles();
    root = mkdtempSync(join(tmpdir(), 'ptr-package-'));
    const installed = join(root, 'node_modules', 'pt-recipe');
    for (const f of files) {
      mkdirSync(dirname(join(installed, f)), { recursive: true });
      cpSync(join(REPO, f), join(installed, f));
    }
    // The dependencies npm would install next to it.
    symlinkSync(join(REPO, 'node_modules'), join(installed, 'node_modules'), 'dir');
    appendFileSync(join(installed, 'stdlib', 'std', 'nn.pt-recipe'), MARKER_BLOCK);
    bin = join(installed, 'bin', 'ptr.js');
    project = join(root, 'project');
    mkdirSync(join(project, 'data'), { recursive: true });
    writeFileSync(join(project, 'tiny.pt-recipe'), RECIPE);
    const words = ['the', 'cat', 'sat', 'on', 'a', 'mat', 'and', 'ran'];
    const lines = Array.from({ length: 80 }, (_, i) => Array.from({ length: 6 }, (_, j) => words[(i * 7 + j * 3) % words.length]).join(' '));
    writeFileSync(join(project, 'data', 'corpus.txt'), `${lines.join('\n')}\n`);
  });

  afterAll(() => {
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('holds what a run needs and nothing of the development tree', () => {
    for (const needed of ['package.json', 'bin/ptr.js', 'dist/src/cli/main.js', 'dist/src/check/modules.js', 'stdlib/std/nn.pt-recipe', 'stdlib/std/losses.pt-recipe']) {
      expect(files).toContain(needed);
    }
    expect(files.filter((f) => f.endsWith('.map') || f.endsWith('.ts') || /^(src|test|bench|dist\/bench|examples|node_modules)\//.test(f))).toEqual([]);
  });

  it('checks and runs a recipe in the user folder with the installed stdlib', async () => {
    const ptr = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { cwd: project, encoding: 'utf8', timeout: 60_000 });
    const check = ptr('check', 'tiny.pt-recipe');
    expect(check.stdout + check.stderr).toContain('ok: 1 file checked');
    expect(check.status).toBe(0);

    const run = ptr('run', 'tiny.pt-recipe');
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/stage pretrain: steps 1–5 /);
    const model = join(project, 'out', 'tiny', 'model.onnx');
    expect(existsSync(model)).toBe(true);
    expect(existsSync(join(project, 'runs', 'tiny', 'metrics.jsonl'))).toBe(true);

    const session = await ort.InferenceSession.create(model);
    const input = session.inputNames[0]!;
    const tokens = new ort.Tensor('int64', BigInt64Array.from({ length: 16 }, (_, i) => BigInt(i % 10)), [1, 16]);
    const out = await session.run({ [input]: tokens });
    const logits = out[session.outputNames[0]!]!;
    expect(logits.dims).toEqual([1, 16, 31]); // 28 characters + pad, bos, eos
    expect(Array.from(logits.data as Float32Array).every(Number.isFinite)).toBe(true);
  });
});
