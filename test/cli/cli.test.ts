/**
 * End-to-end tests of the `ptr` command: each case spawns `node bin/ptr.js`
 * (the compiled CLI in dist/, built by `npm test` before vitest runs) on
 * recipes written to a temporary folder, and checks exit codes and output.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { renderDiagnostics, wantsColor, type Io } from '../../src/cli/io.js';
import { SourceFile, type Diagnostic } from '../../src/language/diagnostics.js';

const BIN = resolve('bin/ptr.js');

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

let dir = '';

function ptr(args: readonly string[], env: NodeJS.ProcessEnv = {}): Run {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  delete childEnv.PTR_DEBUG;
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: dir, env: childEnv, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function write(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return name;
}

const VALID = `# A tiny self-contained recipe.
block Tiny(d: dim) {
  param w: f32[d, d] = normal(0.02)
  forward(x: f32[B, d]) -> f32[B, d] = x @ w
}

fn double(x: f32[B, T]) -> f32[B, T] = x + x

model tiny = Tiny(4)
`;

/** Same meaning as VALID, badly laid out. */
const UNFORMATTED = `# A tiny self-contained recipe.
block   Tiny( d : dim ) {
      param w : f32[ d,d ] = normal( 0.02 )
  forward( x: f32[B,d] )->f32[B,d] = x@w
}
fn double(x:f32[B,T])->f32[B,T]=x+x
model tiny=Tiny(4)
`;

/** A shape error the checker must report on line 4: [B, 128] @ [64, 256]. */
const SHAPE_ERROR = `block Proj(d: dim) {
  param w: f32[64, 256] = normal(0.02)
  forward(x: f32[B, 128]) -> f32[B, 256] =
    x @ w
}
`;

/** Two independent errors. */
const TWO_ERRORS = `fn a(x: f32[B, 4], w: f32[8, 2]) -> f32[B, 2] = x @ w

fn b(x: f32[B, 4]) -> f32[B, 4] = x + unknown_name
`;

const SYNTAX_ERROR = `model tiny = Tiny(4

block Tiny(d: dim) {
  param w: f32[d, d] = normal(0.02)
  forward(x: f32[B, d]) -> f32[B, d] = x @ w
}
`;

beforeAll(() => {
  expect(existsSync('dist/src/cli/main.js'), 'dist/ is missing: run `npm run build` (npm test does it first)').toBe(true);
  dir = mkdtempSync(join(tmpdir(), 'ptr-cli-'));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('ptr: help, version and usage errors', () => {
  it('--version prints the package version', () => {
    const r = ptr(['--version']);
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  it('--help lists the commands', () => {
    const r = ptr(['--help']);
    expect(r.code).toBe(0);
    for (const cmd of ['check', 'fmt', 'ast', 'types']) expect(r.stdout).toContain(cmd);
    expect(r.stdout).toContain('Exit codes');
  });

  for (const cmd of ['check', 'fmt', 'ast', 'types']) {
    it(`${cmd} --help`, () => {
      const r = ptr([cmd, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`Usage: ptr ${cmd}`);
      expect(r.stderr).toBe('');
    });
  }

  it('`ptr help check` shows the command help', () => {
    const r = ptr(['help', 'check']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: ptr check');
  });

  const usageErrors: [string, string[], RegExp][] = [
    ['no command', [], /Usage: ptr/],
    ['unknown command', ['chekc', 'x.pt-recipe'], /unknown command 'chekc'[\s\S]*check/],
    ['unknown option', ['check', '--frobnicate', 'x.pt-recipe'], /unknown option '--frobnicate'/],
    ['missing file argument', ['check'], /missing required argument/],
    ['bad --max-errors', ['check', '--max-errors', 'lots', 'x.pt-recipe'], /--max-errors[\s\S]*positive integer/],
    ['zero --max-errors', ['types', '--max-errors', '0', 'x.pt-recipe'], /positive integer/],
    ['too many arguments to ast', ['ast', 'a.pt-recipe', 'b.pt-recipe'], /too many arguments/],
  ];
  for (const [name, args, message] of usageErrors) {
    it(`${name} exits 2 with a clear message`, () => {
      const r = ptr(args);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toMatch(/^\s+at /m);
    });
  }

  it('a folder without recipes is a usage error', () => {
    mkdirSync(join(dir, 'empty'), { recursive: true });
    const r = ptr(['check', 'empty']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no .pt-recipe files under empty');
  });
});

describe('ptr check', () => {
  it('a valid recipe: exit 0 and an ok summary', () => {
    const f = write('valid.pt-recipe', VALID);
    const r = ptr(['check', f]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('ok: 1 file checked\n');
  });

  it('counts several files', () => {
    write('valid2.pt-recipe', VALID);
    const r = ptr(['check', 'valid.pt-recipe', 'valid2.pt-recipe']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('ok: 2 files checked');
  });

  it('a shape error: exit 1, location, excerpt with caret, summary', () => {
    const f = write('shape.pt-recipe', SHAPE_ERROR);
    const r = ptr(['check', f]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^shape\.pt-recipe:4:\d+: error\[[a-z0-9-]+\]: /m);
    expect(r.stdout).toMatch(/^4 \|     x @ w$/m);
    expect(r.stdout).toMatch(/^\s+\|\s+\^+$/m);
    expect(r.stdout).toMatch(/\n1 error in 1 file\n$/);
  });

  it('reports independent errors together', () => {
    const f = write('two.pt-recipe', TWO_ERRORS);
    const r = ptr(['check', f]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/two\.pt-recipe:1:/);
    expect(r.stdout).toMatch(/two\.pt-recipe:3:/);
    expect(r.stdout).toMatch(/\n2 errors in 1 file\n$/);
  });

  it('a syntax error: exit 1 with a caret, no stack trace', () => {
    const f = write('syntax.pt-recipe', SYNTAX_ERROR);
    const r = ptr(['check', f]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/syntax\.pt-recipe:\d+:\d+: error\[[a-z0-9-]+\]/);
    expect(r.stdout).toContain('^');
    expect(r.stdout + r.stderr).not.toMatch(/^\s+at /m);
  });

  it('--json prints one document with code, line and column', () => {
    write('shape.pt-recipe', SHAPE_ERROR);
    write('valid.pt-recipe', VALID);
    const r = ptr(['check', '--json', 'shape.pt-recipe', 'valid.pt-recipe']);
    expect(r.code).toBe(1);
    const doc = JSON.parse(r.stdout) as {
      ok: boolean;
      errors: number;
      truncated: boolean;
      files: { path: string; errors: number }[];
      diagnostics: { code: string; severity: string; file: string; line: number; column: number; message: string }[];
    };
    expect(doc.ok).toBe(false);
    expect(doc.files).toEqual([
      { path: 'shape.pt-recipe', errors: 1, warnings: 0 },
      { path: 'valid.pt-recipe', errors: 0, warnings: 0 },
    ]);
    expect(doc.diagnostics).toHaveLength(1);
    const d = doc.diagnostics[0]!;
    expect(d.code).toMatch(/^[a-z][a-z0-9]*(-[a-z0-9]+)*$/);
    expect(d).toMatchObject({ severity: 'error', file: 'shape.pt-recipe', line: 4 });
    expect(d.column).toBeGreaterThanOrEqual(1);
  });

  it('--json on a valid file: ok, no diagnostics, exit 0', () => {
    const r = ptr(['check', '--json', 'valid.pt-recipe']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, errors: 0, diagnostics: [] });
  });

  it('--max-errors caps the diagnostics and says so', () => {
    write('two.pt-recipe', TWO_ERRORS);
    const json = JSON.parse(ptr(['check', '--json', '--max-errors', '1', 'two.pt-recipe']).stdout) as { truncated: boolean; diagnostics: unknown[] };
    expect(json.diagnostics).toHaveLength(1);
    expect(json.truncated).toBe(true);
    const r = ptr(['check', '--max-errors', '1', 'two.pt-recipe']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('--max-errors');
  });

  it('a missing file is a diagnostic, not a crash', () => {
    const r = ptr(['check', 'nope.pt-recipe']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^nope\.pt-recipe:1:1: error\[file-not-found\]: /m);
    expect(r.stdout + r.stderr).not.toMatch(/^\s+at /m);
    const json = JSON.parse(ptr(['check', '--json', 'nope.pt-recipe']).stdout) as { diagnostics: { code: string }[] };
    expect(json.diagnostics.map((d) => d.code)).toEqual(['file-not-found']);
  });

  it('a folder is searched for recipes', () => {
    mkdirSync(join(dir, 'tree/sub'), { recursive: true });
    write('tree/a.pt-recipe', VALID);
    write('tree/sub/b.pt-recipe', VALID);
    write('tree/notes.txt', 'not a recipe');
    const r = ptr(['check', 'tree']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('ok: 2 files checked');
  });

  it('no colour when stdout is not a terminal', () => {
    const r = ptr(['check', 'shape.pt-recipe']);
    expect(r.stdout).not.toContain('\u001b[');
  });
});

describe('ptr fmt', () => {
  it('--check lists a file that would change, exits 1 and changes nothing', () => {
    const f = write('messy.pt-recipe', UNFORMATTED);
    const r = ptr(['fmt', '--check', f]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('messy.pt-recipe\n');
    expect(readFileSync(join(dir, f), 'utf8')).toBe(UNFORMATTED);
  });

  it('rewrites in place, atomically, and the result is stable and still valid', () => {
    const f = write('messy.pt-recipe', UNFORMATTED);
    const r = ptr(['fmt', f]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`formatted ${f}`);
    const after = readFileSync(join(dir, f), 'utf8');
    expect(after).not.toBe(UNFORMATTED);
    expect(after).toContain('# A tiny self-contained recipe.');
    // No temp file is left behind.
    expect(readdirSync(dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    expect(ptr(['fmt', '--check', f]).code).toBe(0);
    expect(ptr(['fmt', f]).code).toBe(0);
    expect(readFileSync(join(dir, f), 'utf8')).toBe(after);
    expect(ptr(['check', f]).code).toBe(0);
  });

  it('a formatted file passes --check with no output', () => {
    const f = write('messy2.pt-recipe', UNFORMATTED);
    expect(ptr(['fmt', f]).code).toBe(0);
    const r = ptr(['fmt', '--check', f]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
  });

  it('a file with syntax errors is reported and left untouched', () => {
    const f = write('broken.pt-recipe', SYNTAX_ERROR);
    const r = ptr(['fmt', f]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/broken\.pt-recipe:\d+:\d+: error\[[a-z0-9-]+\]/);
    expect(readFileSync(join(dir, f), 'utf8')).toBe(SYNTAX_ERROR);
    expect(ptr(['fmt', '--check', f]).code).toBe(1);
  });

  it('a missing file is a diagnostic', () => {
    const r = ptr(['fmt', 'missing.pt-recipe']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('error[file-not-found]');
  });
});

describe('ptr ast', () => {
  it('prints the tree as JSON with locations', () => {
    const f = write('valid.pt-recipe', VALID);
    const r = ptr(['ast', f]);
    expect(r.code).toBe(0);
    const tree = JSON.parse(r.stdout) as { kind: string; declarations: { kind: string }[]; loc: { line: number } };
    expect(tree.kind).toBe('Recipe');
    expect(tree.declarations.map((d) => d.kind)).toEqual(['BlockDecl', 'FnDecl', 'ModelDecl']);
    expect(tree.loc.line).toBe(1);
  });

  it('--no-loc drops every span', () => {
    const r = ptr(['ast', '--no-loc', 'valid.pt-recipe']);
    expect(r.code).toBe(0);
    JSON.parse(r.stdout);
    expect(r.stdout).not.toContain('"loc"');
    expect(r.stdout).not.toContain('"opLoc"');
  });

  it('syntax errors: diagnostics on stderr, exit 1, the recovered tree on stdout', () => {
    write('syntax.pt-recipe', SYNTAX_ERROR);
    const r = ptr(['ast', 'syntax.pt-recipe']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error\[[a-z0-9-]+\]/);
    expect((JSON.parse(r.stdout) as { kind: string }).kind).toBe('Recipe');
  });

  it('a missing file is a diagnostic', () => {
    const r = ptr(['ast', 'missing.pt-recipe']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('error[file-not-found]');
    expect(r.stdout).toBe('');
  });
});

describe('ptr types', () => {
  it('prints one line per declaration', () => {
    write('valid.pt-recipe', VALID);
    const r = ptr(['types', 'valid.pt-recipe']);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^2  block Tiny: /);
    expect(lines[1]).toMatch(/^7  fn double: /);
    expect(lines[2]).toMatch(/^9  model tiny: /);
  });

  it('with errors: declarations, then diagnostics, exit 1', () => {
    write('shape.pt-recipe', SHAPE_ERROR);
    const r = ptr(['types', 'shape.pt-recipe']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^1  block Proj: /m);
    expect(r.stdout).toMatch(/shape\.pt-recipe:4:\d+: error/);
  });

  it('--json', () => {
    const r = ptr(['types', '--json', 'valid.pt-recipe']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as { declarations: { name: string; declKind: string; line: number }[] };
    expect(doc.declarations.map((d) => `${d.line} ${d.declKind} ${d.name}`)).toEqual(['2 block Tiny', '7 fn double', '9 model tiny']);
  });
});

describe('in process', () => {
  it('an internal failure exits 70 with a short request to report it, no stack trace', async () => {
    const errors: string[] = [];
    const io: Io = {
      out: () => {
        throw new Error('disk on fire');
      },
      err: (t) => errors.push(t),
      color: false,
    };
    write('valid.pt-recipe', VALID);
    const code = await main(['check', join(dir, 'valid.pt-recipe')], io);
    expect(code).toBe(70);
    const text = errors.join('');
    expect(text).toContain('internal error: disk on fire');
    expect(text).toContain('report');
    expect(text).not.toMatch(/^\s+at /m);
  });

  it('colour only on a terminal without NO_COLOR', () => {
    expect(wantsColor({ isTTY: true }, {})).toBe(true);
    expect(wantsColor({ isTTY: false }, {})).toBe(false);
    expect(wantsColor({}, {})).toBe(false);
    expect(wantsColor({ isTTY: true }, { NO_COLOR: '1' })).toBe(false);
  });

  it('coloured diagnostics keep the text and add ANSI styles', () => {
    const source = new SourceFile('a.pt-recipe', 'model m = x @ w\n');
    const d: Diagnostic = {
      code: 'matmul-shape',
      severity: 'error',
      message: 'matmul: inner dimensions differ',
      span: source.span(12, 13),
      related: [],
      hint: 'transpose w',
    };
    const sources = new Map([['a.pt-recipe', source]]);
    const plain = renderDiagnostics({ out: () => {}, err: () => {}, color: false }, [d], sources);
    const coloured = renderDiagnostics({ out: () => {}, err: () => {}, color: true }, [d], sources);
    expect(plain).not.toContain('\u001b[');
    expect(coloured).toContain('\u001b[');
    // eslint-disable-next-line no-control-regex
    expect(coloured.replace(/\u001b\[[0-9;]*m/g, '')).toBe(plain);
  });
});
