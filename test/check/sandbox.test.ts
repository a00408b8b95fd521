/**
 * Recipes are safe to check: a recipe reads only under its folder, its project's
 * and the standard library (plus what --allow-read names); symbolic links are
 * followed before deciding, devices, FIFOs and /proc are refused (without
 * blocking on them), `ptr check` never prints what it refused to read, and an
 * excerpt of a data file is bounded and shows control characters as escapes.
 * Deploys write only inside the project unless --allow-write says otherwise.
 * (The diagnostics themselves are golden: test/fixtures/diagnostics/sandbox.*.)
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Io } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';
import { checkFiles } from '../../src/check/index.js';
import { allowReadsUnder, projectFolder, ReadSandbox } from '../../src/check/modules.js';
import { escapeControl, formatDiagnostics, SourceFile, type Diagnostic } from '../../src/language/diagnostics.js';

const RECIPE = (data: string): string => `tokenizer tok = chars("abc \\n", specials: [pad])\ndataset d = text("${data}", tokenizer: tok, block: 4)\n`;

/** A temp folder (no package.json above it) with files; returns its path. */
function folder(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'ptr-sandbox-'));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

const codes = (file: string): string[] => checkFiles([file]).diagnostics.map((d) => `${d.code}: ${d.message}`);

afterEach(() => allowReadsUnder([]));

describe('what a recipe may read', () => {
  it('reads under its own folder; a file beside the folder is refused, and allowed by --allow-read', () => {
    const dir = folder({ 'r/x.pt-recipe': RECIPE('../secret.txt'), 'secret.txt': 'abc\n', 'r/ok.pt-recipe': RECIPE('data/a.txt'), 'r/data/a.txt': 'abc\n' });
    expect(codes(join(dir, 'r/ok.pt-recipe'))).toEqual([]);
    expect(codes(join(dir, 'r/x.pt-recipe'))).toEqual(['read-refused: cannot read "../secret.txt": it is outside the folders this recipe may read']);
    const hint = checkFiles([join(dir, 'r/x.pt-recipe')]).diagnostics[0]!.hint;
    expect(hint).toMatch(/ptr --allow-read .*secret\.txt allows this one$/);
    allowReadsUnder([dir]);
    expect(codes(join(dir, 'r/x.pt-recipe'))).toEqual([]);
  });

  it('reads under its project folder, the nearest with a package.json', () => {
    const dir = folder({ 'package.json': '{}', 'recipes/x.pt-recipe': RECIPE('../data/a.txt'), 'data/a.txt': 'abc\n' });
    expect(projectFolder(join(dir, 'recipes'))).toBe(dir);
    expect(codes(join(dir, 'recipes/x.pt-recipe'))).toEqual([]);
  });

  it('follows symbolic links before deciding: a link inside the folder to a file outside is refused', () => {
    const outside = folder({ 'secret.txt': 'abc\n' });
    const dir = folder({ 'x.pt-recipe': RECIPE('link.txt') });
    symlinkSync(join(outside, 'secret.txt'), join(dir, 'link.txt'));
    expect(codes(join(dir, 'x.pt-recipe'))).toEqual(['read-refused: cannot read "link.txt": it is outside the folders this recipe may read']);
  });

  it.skipIf(spawnSync('mkfifo', ['--version']).status !== 0)('refuses a FIFO without opening it (which would block)', () => {
    const dir = folder({ 'x.pt-recipe': RECIPE('pipe') });
    expect(spawnSync('mkfifo', [join(dir, 'pipe')]).status).toBe(0);
    expect(codes(join(dir, 'x.pt-recipe'))).toEqual(['read-refused: cannot read "pipe": it is a FIFO (named pipe), not a regular file']);
  });

  it('refuses /proc, /sys and /dev even when --allow-read names them, and through a link', () => {
    allowReadsUnder(['/']);
    const sandbox = ReadSandbox.forRecipe('/work/x.pt-recipe', '/std');
    expect(sandbox.refusal('/proc/self/environ')).toBe("/proc holds the system's state, not data");
    expect(sandbox.refusal('/sys/kernel/hostname')).toBe("/sys holds the system's state, not data");
    expect(sandbox.refusal('/dev/zero')).toBe("/dev holds the system's state, not data");
    const dir = folder({});
    symlinkSync('/proc/self/environ', join(dir, 'env'));
    expect(ReadSandbox.forRecipe(join(dir, 'x.pt-recipe'), '/std').refusal(join(dir, 'env'))).toBe("/proc holds the system's state, not data");
  });

  it('ptr check of a recipe that names /etc/passwd exits 1 and prints nothing of the file', async () => {
    const dir = folder({ 'x.pt-recipe': `${RECIPE('/etc/passwd')}dataset e = text("/proc/self/environ", tokenizer: tok, block: 4)\n` });
    const out: string[] = [];
    const io: Io = { out: (t) => void out.push(t), err: (t) => void out.push(t), color: false };
    expect(await main(['check', join(dir, 'x.pt-recipe')], io)).toBe(1);
    const text = out.join('');
    expect(text).toMatch(/error\[read-refused\]: cannot read "\/etc\/passwd"/);
    expect(text).toMatch(/error\[read-refused\]: cannot read "\/proc\/self\/environ"/);
    const passwd = readFileSync('/etc/passwd', 'utf8').split('\n')[0]!;
    expect(text).not.toContain(passwd);
    // --allow-read is an option of every command.
    expect(await main(['check', '--allow-read', '/etc', join(dir, 'x.pt-recipe')], io)).toBe(1);
  });
});

describe('excerpts of data files', () => {
  const diagnostic = (source: SourceFile, start: number, end: number): Diagnostic => ({ code: 'bad-jsonl', severity: 'error', message: 'not valid JSON: \x1b]0;pwned\x07', span: source.span(start, end), related: [], hint: null });

  it('show control characters and bidirectional overrides as escapes, the caret still under its character', () => {
    const source = new SourceFile('data.jsonl', '{"prompt": "\x1b[31mred\x1b[0m\u202e", oops}\n');
    const at = source.text.indexOf('oops');
    const text = formatDiagnostics([diagnostic(source, at, at + 4)], new Map([['data.jsonl', source]]));
    expect(text).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f\u202e]/);
    const lines = text.split('\n');
    expect(lines[0]).toBe('data.jsonl:1:29: error[bad-jsonl]: not valid JSON: \\x1b]0;pwned\\x07');
    expect(lines[2]).toBe('1 | {"prompt": "\\x1b[31mred\\x1b[0m\\u202e", oops}');
    expect(lines[3]!.indexOf('^^^^')).toBe(lines[2]!.indexOf('oops'));
  });

  it('show a bounded window of a long line around the caret', () => {
    const row = `${'x'.repeat(50_000)}BAD${'y'.repeat(50_000)}`;
    const source = new SourceFile('big.jsonl', `${row}\n`);
    const text = formatDiagnostics([diagnostic(source, 50_000, 50_003)], new Map([['big.jsonl', source]]));
    const lines = text.split('\n');
    expect(Math.max(...lines.map((l) => l.length))).toBeLessThan(140);
    expect(lines[2]).toMatch(/^1 \| …x+BADy+…$/);
    expect(lines[3]!.indexOf('^^^')).toBe(lines[2]!.indexOf('BAD'));
  });

  it('escapeControl keeps tabs and newlines and ordinary text', () => {
    expect(escapeControl('a\tb\nc é 日本 \u0000\u007f\u0085')).toBe('a\tb\nc é 日本 \\x00\\x7f\\x85');
  });
});

describe('where deploys may write', () => {
  const ptr = (cwd: string, ...args: string[]) => spawnSync(process.execPath, [resolve('bin/ptr.js'), ...args], { cwd, encoding: 'utf8', timeout: 120_000 });
  const withOut = (out: string): string => {
    const dir = mkdtempSync(join(tmpdir(), 'ptr-deploy-out-'));
    cpSync(resolve('test/fixtures/train'), join(dir, 'project'), { recursive: true });
    const file = join(dir, 'project', 'tiny.pt-recipe');
    writeFileSync(file, `${readFileSync(file, 'utf8')}\ndeploy lm @ pretrain to onnx {\n  out = "${out}"\n}\n`);
    return join(dir, 'project');
  };

  it('refuses a deploy to / or outside the project before training, and writes there with --allow-write', () => {
    const root = withOut('/');
    const refused = ptr(root, 'run', 'tiny.pt-recipe', '--steps', '1');
    expect(refused.status, refused.stderr).toBe(1);
    expect(refused.stderr).toMatch(/^error: tiny\.pt-recipe:\d+: the deploy writes to "\/" \(\/\), outside the recipe's project folder .*project; give --allow-write \/ to allow it\n$/);
    expect(readdirSync(root)).not.toContain('runs');

    const beside = withOut('../exported');
    expect(ptr(beside, 'run', 'tiny.pt-recipe', '--steps', '1').status).toBe(1);
    const allowed = ptr(beside, 'run', 'tiny.pt-recipe', '--steps', '1', '--allow-write', '../exported');
    expect(allowed.status, allowed.stderr).toBe(0);
    expect(readdirSync(join(beside, '..', 'exported'))).toContain('model.onnx');
  });

  it('resolves a deploy’s out against the recipe’s folder, not the working directory', () => {
    const project = withOut('out/lm');
    const r = ptr(join(project, '..'), 'run', join('project', 'tiny.pt-recipe'), '--steps', '1', '--out', 'project/runs/tiny');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/deploy lm @ pretrain to onnx → project\/out\/lm\/model\.onnx/);
    expect(readdirSync(join(project, 'out', 'lm'))).toContain('model.onnx');
  });
});
