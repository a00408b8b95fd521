import { describe, expect, it } from 'vitest';
import type * as A from '../../src/language/ast.js';
import { DiagnosticBag } from '../../src/language/diagnostics.js';
import { MAX_EXPRESSION_DEPTH, MAX_NESTING, parseRecipe } from '../../src/language/parser.js';

// ---------------------------------------------------------------- harness

interface Parsed {
  readonly recipe: A.Recipe;
  /** Diagnostics as plain data, sorted by position. */
  readonly errors: { code: string; line: number; column: number }[];
  readonly messages: string[];
}

function parse(text: string): Parsed {
  const bag = new DiagnosticBag();
  const recipe = parseRecipe(text, 't.pt-recipe', bag);
  const sorted = bag.sorted();
  return {
    recipe,
    errors: sorted.map((d) => ({ code: d.code, line: d.span.line, column: d.span.column })),
    messages: sorted.map((d) => d.message),
  };
}

/** Parses text that must be free of errors. */
function ok(text: string): A.Recipe {
  const { recipe, errors, messages } = parse(text);
  expect({ errors, messages }).toEqual({ errors: [], messages: [] });
  return recipe;
}

function decl<K extends A.Declaration['kind']>(text: string, kind: K, index = 0): Extract<A.Declaration, { kind: K }> {
  const d = ok(text).declarations[index]!;
  expect(d.kind).toBe(kind);
  return d as Extract<A.Declaration, { kind: K }>;
}

/** An expression as an S-expression: `(+ a (* b c))`, `(call f x lr:1)`, `(index x : -1)`. */
function sx(e: A.Expression | A.DimNode | null): string {
  if (e === null) return '_';
  switch (e.kind) {
    case 'NumberLiteral':
      return e.raw;
    case 'StringLiteral':
      return JSON.stringify(e.value);
    case 'BoolLiteral':
      return String(e.value);
    case 'NameExpr':
      return e.name;
    case 'BinaryExpr':
      return `(${e.op} ${sx(e.left)} ${sx(e.right)})`;
    case 'UnaryExpr':
      return `(${e.op} ${sx(e.operand)})`;
    case 'CallExpr':
      return `(call ${[e.callee, ...e.args].map((a) => (a.kind === 'Argument' ? (a.label ? `${a.label.name}:${sx(a.value)}` : sx(a.value)) : sx(a))).join(' ')})`;
    case 'MemberExpr':
      return `(. ${sx(e.object)} ${e.member.name})`;
    case 'IndexExpr':
      return `(index ${sx(e.object)} ${e.subscripts
        .map((s) => (s.kind === 'EllipsisSubscript' ? '...' : s.kind === 'IndexSubscript' ? sx(s.index) : `${s.start ? sx(s.start) : ''}:${s.end ? sx(s.end) : ''}`))
        .join(' ')})`;
    case 'TupleExpr':
      return `(tuple${e.elements.map((x) => ` ${sx(x)}`).join('')})`;
    case 'ListExpr':
      return `[${e.elements.map(sx).join(' ')}]`;
    case 'ParenExpr':
      return `(paren ${sx(e.expression)})`;
    case 'ErrorExpr':
      return '<error>';
    case 'EllipsisDim':
      return '...';
  }
}

/** The S-expression of `text` parsed as a function body `fn f() = text`. */
function expr(text: string): string {
  const f = decl(`fn f() = ${text}`, 'FnDecl');
  return sx(f.body.result);
}

function ty(t: A.TypeNode | null): string {
  if (t === null) return '_';
  if (t.kind === 'TupleTypeNode') return `(${t.elements.map(ty).join(', ')})`;
  return t.dims === null ? t.name.name : `${t.name.name}[${t.dims.map(sx).join(', ')}]`;
}

function at(span: A.Span): string {
  return `${span.line}:${span.column}-${span.endLine}:${span.endColumn}`;
}

// ---------------------------------------------------------------- expressions

describe('expression precedence and associativity', () => {
  it.each([
    ['a + b * c @ d', '(+ a (@ (* b c) d))'],
    ['a @ b * c', '(* (@ a b) c)'],
    ['-x ** 2', '(- (** x 2))'],
    ['2 ** -1', '(** 2 (- 1))'],
    ['a ** b ** c', '(** a (** b c))'],
    ['-a * b', '(* (- a) b)'],
    ['- - a', '(- (- a))'],
    ['a - b - c', '(- (- a b) c)'],
    ['a / b % c', '(% (/ a b) c)'],
    ['a == b + 1', '(== a (+ b 1))'],
    ['a < b && c >= d || !e', '(|| (&& (< a b) (>= c d)) (! e))'],
    ['!a == b', '(! (== a b))'],
    ['!!a', '(! (! a))'],
    ['a || b && c', '(|| a (&& b c))'],
    ['a + b != c * d', '(!= (+ a b) (* c d))'],
    ['x @ w + b', '(+ (@ x w) b)'],
    ['(d / heads) ** -0.5', '(** (paren (/ d heads)) (- 0.5))'],
  ])('%s', (text, expected) => {
    expect(expr(text)).toBe(expected);
  });

  it('parses a checkpoint reference as the binary @ operator', () => {
    const m = decl('model rm = RewardHead(policy @ sft)', 'ModelDecl');
    expect(sx(m.value)).toBe('(call RewardHead (@ policy sft))');
    const arg = (m.value as A.CallExpr).args[0]!.value as A.BinaryExpr;
    expect(arg.op).toBe('@');
    expect(at(arg.opLoc)).toBe('1:30-1:31');
  });

  it('records the span of each binary operator', () => {
    const e = decl('fn f() = a +  b * c', 'FnDecl').body.result as A.BinaryExpr;
    expect(at(e.opLoc)).toBe('1:12-1:13');
    expect(at((e.right as A.BinaryExpr).opLoc)).toBe('1:17-1:18');
    expect(at(e.loc)).toBe('1:10-1:20');
  });

  it("reports '!' where it binds looser than the operator before it", () => {
    const { errors, messages, recipe } = parse('fn f(a, b) = a + !b');
    expect(errors).toEqual([{ code: 'syntax-error', line: 1, column: 18 }]);
    expect(messages[0]).toBe("'!' after '+' needs parentheses: write (!x)");
    expect(sx((recipe.declarations[0] as A.FnDecl).body.result)).toBe('(+ a (! b))');
    expect(parse('fn f(a) = -!a').errors).toEqual([{ code: 'syntax-error', line: 1, column: 12 }]);
    expect(expr('a && !b || !!c')).toBe('(|| (&& a (! b)) (! (! c)))');
    expect(expr('!-a')).toBe('(! (- a))');
  });

  it('reports a chained comparison once and parses on', () => {
    const { errors, messages, recipe } = parse('fn f(a, b, c) = a < b < c');
    expect(errors).toEqual([{ code: 'syntax-error', line: 1, column: 23 }]);
    expect(messages[0]).toMatch(/comparison operators do not chain/);
    expect(sx((recipe.declarations[0] as A.FnDecl).body.result)).toBe('(< (< a b) c)');
  });
});

describe('literals', () => {
  it('keeps the raw text of numbers and marks integers', () => {
    const t = decl('fn f() = (1_000, 64, 3e-4, 0.95, 1e5)', 'FnDecl').body.result as A.TupleExpr;
    expect(t.elements.map((e) => [(e as A.NumberLiteral).raw, (e as A.NumberLiteral).value, (e as A.NumberLiteral).isInteger])).toEqual([
      ['1_000', 1000, true],
      ['64', 64, true],
      ['3e-4', 3e-4, false],
      ['0.95', 0.95, false],
      ['1e5', 1e5, false],
    ]);
  });

  it('decodes strings and reads booleans', () => {
    expect(expr(String.raw`["a\"b", "\u{48}i\n", true, false]`)).toBe('["a\\"b" "Hi\\n" true false]');
  });
});

describe('calls, members and arguments', () => {
  it('tells positional from named arguments', () => {
    const c = decl('model m = adamw(params, lr: 3e-4, betas: (0.9, 0.95))', 'ModelDecl').value as A.CallExpr;
    expect(c.args.map((a) => a.label?.name ?? null)).toEqual([null, 'lr', 'betas']);
    expect(sx(c)).toBe('(call adamw params lr:3e-4 betas:(tuple 0.9 0.95))');
    expect(at(c.args[1]!.loc)).toBe('1:25-1:33');
  });

  it('accepts keywords as argument labels and member names', () => {
    expect(sx(decl('dataset d = text(path, block: 64, tokenizer: tok, split: 0.9)', 'DatasetDecl').value)).toBe(
      '(call text path block:64 tokenizer:tok split:0.9)',
    );
    expect(expr('corpus.val.model.block')).toBe('(. (. (. corpus val) model) block)');
  });

  it('allows a trailing comma and an empty argument list', () => {
    expect(expr('f(a, b,)')).toBe('(call f a b)');
    expect(expr('f()')).toBe('(call f)');
  });

  it('chains calls, members and indexing in source order', () => {
    expect(expr('lm(batch.tokens)[:, -1].sum(axis: 1)')).toBe('(call (. (index (call lm (. batch tokens)) : (- 1)) sum) axis:1)');
  });

  it('reads where(cond, x, y) as a call of the built-in where', () => {
    expect(expr('where(mask, x, -inf)')).toBe('(call where mask x (- inf))');
  });
});

describe('indexing and slicing', () => {
  it.each([
    ['x[:, -1]', '(index x : (- 1))'],
    ['val[:256]', '(index val :256)'],
    ['x[..., :T]', '(index x ... :T)'],
    ['x[1:]', '(index x 1:)'],
    ['x[a:b, 0]', '(index x a:b 0)'],
    ['x[:]', '(index x :)'],
    ['x[i + 1,]', '(index x (+ i 1))'],
    ['corpus.val[:256]', '(index (. corpus val) :256)'],
  ])('%s', (text, expected) => {
    expect(expr(text)).toBe(expected);
  });
});

describe('tuples, lists and parentheses', () => {
  it.each([
    ['(a)', '(paren a)'],
    ['((a))', '(paren (paren a))'],
    ['(a,)', '(tuple a)'],
    ['(a, b)', '(tuple a b)'],
    ['(a, b,)', '(tuple a b)'],
    ['[]', '[]'],
    ['[a, (b), [c]]', '[a (paren b) [c]]'],
    ['(a + b) * c', '(* (paren (+ a b)) c)'],
  ])('%s', (text, expected) => {
    expect(expr(text)).toBe(expected);
  });
});

// ---------------------------------------------------------------- declarations

describe('declarations', () => {
  it('parses imports in their three forms', () => {
    const r = ok('import std.nn\nimport std.losses { sft, dpo as direct, }\nimport "./layers.pt-recipe" { Block }');
    const [a, b, c] = r.declarations as A.ImportDecl[];
    expect(a!.path).toMatchObject({ kind: 'ModulePath', segments: [{ name: 'std' }, { name: 'nn' }] });
    expect(a!.names).toBeNull();
    expect(b!.names!.map((n) => [n.name.name, n.alias?.name ?? null])).toEqual([
      ['sft', null],
      ['dpo', 'direct'],
    ]);
    expect(c!.path).toMatchObject({ kind: 'StringLiteral', value: './layers.pt-recipe' });
    expect(at(c!.loc)).toBe('3:1-3:38');
  });

  it('parses tokenizer, model and dataset declarations', () => {
    const r = ok('tokenizer tok = chars("ab", specials: [pad])\nmodel m = T(vocab: tok.vocab)\ndataset d = text("x.txt", tokenizer: tok)');
    expect(r.declarations.map((d) => [d.kind, (d as A.ModelDecl).name.name])).toEqual([
      ['TokenizerDecl', 'tok'],
      ['ModelDecl', 'm'],
      ['DatasetDecl', 'd'],
    ]);
    expect(sx((r.declarations[0] as A.TokenizerDecl).value)).toBe('(call chars "ab" specials:[pad])');
  });

  it('parses a block with params, where, param members with if, submodules and forward', () => {
    const b = decl(
      `block Linear(inp: dim, out: dim, bias: bool = true) where inp > 0 {
  param w: f32[inp, out] = normal(0.02)
  param b: f32[out]      = zeros() if bias
  act = Gelu() if inp > 1
  forward(x: f32[..., inp]) -> f32[..., out] where out > 0 = x @ w + b
}`,
      'BlockDecl',
    );
    expect(b.name.name).toBe('Linear');
    expect(b.params.map((p) => [p.name.name, ty(p.type), p.default ? sx(p.default) : null])).toEqual([
      ['inp', 'dim', null],
      ['out', 'dim', null],
      ['bias', 'bool', 'true'],
    ]);
    expect(b.where.map(sx)).toEqual(['(> inp 0)']);
    const [w, bias, act, fwd] = b.members;
    expect(w).toMatchObject({ kind: 'ParamMember', name: { name: 'w' }, condition: null });
    expect(ty((w as A.ParamMember).type)).toBe('f32[inp, out]');
    expect(sx((bias as A.ParamMember).condition)).toBe('bias');
    expect(sx((bias as A.ParamMember).init)).toBe('(call zeros)');
    expect(act).toMatchObject({ kind: 'SubmoduleMember', name: { name: 'act' } });
    expect(sx((act as A.SubmoduleMember).condition)).toBe('(> inp 1)');
    const f = fwd as A.ForwardMember;
    expect(f.kind).toBe('ForwardMember');
    expect(f.params.map((p) => ty(p.type))).toEqual(['f32[..., inp]']);
    expect(ty(f.returnType)).toBe('f32[..., out]');
    expect(f.where.map(sx)).toEqual(['(> out 0)']);
    expect(f.body).toMatchObject({ braced: false, statements: [] });
    expect(sx(f.body.result)).toBe('(+ (@ x w) b)');
    expect(at(f.loc)).toBe('5:3-5:71');
  });

  it('parses a forward with a braced body, let statements and tuple patterns', () => {
    const b = decl(
      `block A(d: dim) {
  forward(x: f32[B, T, d]) -> f32[B, T, d] {
    let (q, (k, v)) = split3(x)
    let y = q + k
    y * v
  }
}`,
      'BlockDecl',
    );
    const body = (b.members[0] as A.ForwardMember).body;
    expect(body.braced).toBe(true);
    expect(body.statements.map((s) => s.pattern)).toMatchObject([
      { kind: 'TuplePattern', elements: [{ kind: 'NamePattern', name: { name: 'q' } }, { kind: 'TuplePattern', elements: [{ name: { name: 'k' } }, { name: { name: 'v' } }] }] },
      { kind: 'NamePattern', name: { name: 'y' } },
    ]);
    expect(sx(body.result)).toBe('(* y v)');
  });

  it('parses fn with = expr and with a braced body', () => {
    const r = ok(`fn sq(x) = x * x
fn loss(logits: f32[B, T, V], t: float = 1.0) -> f32 where t > 0 {
  let p = softmax(logits / t, axis: -1)
  -mean(p)
}`);
    const [sq, loss] = r.declarations as A.FnDecl[];
    expect(sq!).toMatchObject({ returnType: null, where: [], body: { braced: false } });
    expect(sq!.params.map((p) => [p.name.name, p.type])).toEqual([['x', null]]);
    expect(ty(loss!.returnType)).toBe('f32');
    expect(loss!.where.map(sx)).toEqual(['(> t 0)']);
    expect(loss!.body.statements).toHaveLength(1);
    expect(sx(loss!.body.result)).toBe('(- (call mean p))');
  });

  it('ends a let value before a line starting with -, ( or [ in a braced body', () => {
    const f = decl(
      `fn f(a, b) {
  let r = a - b
  -mean(r)
}`,
      'FnDecl',
    );
    expect(sx(f.body.statements[0]!.value)).toBe('(- a b)');
    expect(sx(f.body.result)).toBe('(- (call mean r))');
    // Inside brackets the line break means nothing.
    const g = decl('fn g(a) {\n  let r = f(a,\n    -a)\n  r\n}', 'FnDecl');
    expect(sx(g.body.statements[0]!.value)).toBe('(call f a (- a))');
    // On the same line '-' continues the expression.
    expect(sx(decl('fn h(a, b) {\n  let r = a\n  r - b\n}', 'FnDecl').body.result)).toBe('(- r b)');
    // After a line ending in an operator or '=', the value goes on.
    const k = decl('fn k(a, b) {\n  let r = a -\n    (b)\n  let s =\n    (a, b)\n  [r, s]\n}', 'FnDecl');
    expect(k.body.statements.map((st) => sx(st.value))).toEqual(['(- a (paren b))', '(tuple a b)']);
    expect(sx(k.body.result)).toBe('[r s]');
    // In a stage, a let is followed by settings, so a leading '-' continues its value.
    const st = decl('stage s: train p on d {\n  let r = a\n    - b\n  steps = 1\n}', 'StageDecl');
    expect(sx((st.items[0] as A.LetStatement).value)).toBe('(- a b)');
  });

  it('parses types: dims, ellipsis, scalars, tuples and the model type', () => {
    const f = decl('fn f(a: f32[B, T, 3 * d], b: f32[], c: f32, d: (i64[B], (bool[T], dim)), m: model, e: f16[..., d / 2,]) = a', 'FnDecl');
    expect(f.params.map((p) => ty(p.type))).toEqual(['f32[B, T, (* 3 d)]', 'f32[]', 'f32', '(i64[B], (bool[T], dim))', 'model', 'f16[..., (/ d 2)]']);
    expect((f.params[1]!.type as A.TensorTypeNode).dims).toEqual([]);
    expect((f.params[2]!.type as A.TensorTypeNode).dims).toBeNull();
  });

  it('parses a stage header with kind, target, dataset and after list', () => {
    const s = decl(
      `stage sft: train policy on chats after pretrain, x {
  loss = sft(policy, batch)
  let r = frozen(policy @ pretrain)
  eval every 200 on chats.val
  batch = 32
}`,
      'StageDecl',
    );
    expect([s.name.name, s.stageKind.name, sx(s.target), sx(s.dataset), s.after.map((a) => a.name)]).toEqual(['sft', 'train', 'policy', 'chats', ['pretrain', 'x']]);
    expect(s.items.map((i) => i.kind)).toEqual(['Setting', 'LetStatement', 'EvalEvery', 'Setting']);
    const ev = s.items[2] as A.EvalEvery;
    expect([sx(ev.every), sx(ev.dataset)]).toEqual(['200', '(. chats val)']);
    expect(at(ev.loc)).toBe('4:3-4:30');
  });

  it('parses stage kinds without dataset or after, and eval as a stage kind', () => {
    const r = ok('stage g: rl policy @ sft {\n  group = 8\n}\nstage e: eval policy on d.val after g {\n  metrics = [perplexity]\n}');
    const [g, e] = r.declarations as A.StageDecl[];
    expect([g!.stageKind.name, sx(g!.target), g!.dataset, g!.after]).toEqual(['rl', '(@ policy sft)', null, []]);
    expect([e!.stageKind.name, sx(e!.dataset)]).toEqual(['eval', '(. d val)']);
  });

  it('accepts keywords as setting names', () => {
    const s = decl('stage s: generate p {\n  model = p\n  to = 3\n}', 'StageDecl');
    expect(s.items.map((i) => (i as A.Setting).name.name)).toEqual(['model', 'to']);
  });

  it('parses deploy', () => {
    const d = decl('deploy policy @ grpo to tensorrt {\n  precision = int8\n  calibrate = corpus.val[:256]\n  out = "out/policy"\n}', 'DeployDecl');
    expect([sx(d.target), d.format.name]).toEqual(['(@ policy grpo)', 'tensorrt']);
    expect(d.settings.map((s) => [s.name.name, sx(s.value)])).toEqual([
      ['precision', 'int8'],
      ['calibrate', '(index (. corpus val) :256)'],
      ['out', '"out/policy"'],
    ]);
  });

  it('parses the empty recipe and a comment-only recipe', () => {
    expect(ok('').declarations).toEqual([]);
    expect(ok('# nothing here\n').comments).toHaveLength(1);
  });
});

describe('comments and spans', () => {
  it('stamps every node with exactly the span SourceFile.span gives', async () => {
    const { readFileSync, readdirSync } = await import('node:fs');
    const { SourceFile } = await import('../../src/language/diagnostics.js');
    const { visit } = await import('../../src/language/ast.js');
    const dir = new URL('../../grammar/examples/', import.meta.url);
    for (const name of readdirSync(dir).filter((n) => n.endsWith('.pt-recipe'))) {
      const text = readFileSync(new URL(name, dir), 'utf8');
      const reference = new SourceFile('t.pt-recipe', text);
      let nodes = 0;
      visit(ok(text), (node) => {
        const loc = (node as { loc: A.Span }).loc;
        expect(loc).toEqual(reference.span(loc.start, loc.end));
        expect(loc.start).toBeLessThanOrEqual(loc.end);
        nodes++;
      });
      expect(nodes).toBeGreaterThan(50);
    }
  });

  it('collects comments with spans, outside the declarations', () => {
    const r = ok('# header\nmodel m = X() # trailing\n\nstage s: train m on d {\n  # inside\n  steps = 1\n}\n');
    expect(r.comments.map((c) => [c.text, c.loc.line, c.loc.column])).toEqual([
      [' header', 1, 1],
      [' trailing', 2, 15],
      [' inside', 5, 3],
    ]);
  });

  it('gives nodes 1-based line and column spans', () => {
    const r = ok('import std.nn { Linear }\n\nmodel policy = Transformer(\n  vocab: 64,\n  ctx: 128)\n');
    const [imp, m] = r.declarations as [A.ImportDecl, A.ModelDecl];
    expect(at(imp.loc)).toBe('1:1-1:25');
    expect(at(imp.names![0]!.loc)).toBe('1:17-1:23');
    expect(at(m.loc)).toBe('3:1-5:12');
    expect(at(m.name.loc)).toBe('3:7-3:13');
    const call = m.value as A.CallExpr;
    expect(at(call.loc)).toBe('3:16-5:12');
    expect(at(call.args[1]!.label!.loc)).toBe('5:3-5:6');
    expect(at(r.loc)).toBe('1:1-6:1');
  });
});

// ---------------------------------------------------------------- errors

describe('syntax errors: one typo, one diagnostic', () => {
  it.each([
    ['a missing comma between call arguments', 'model p = Transformer(vocab: tok.vocab ctx: 64, dim: 128)', [{ code: 'syntax-error', line: 1, column: 40 }], "expected ',' or ')' but found 'ctx'"],
    ['a missing comma in a list', 'model p = chars("ab", specials: [pad bos, eos])', [{ code: 'syntax-error', line: 1, column: 38 }], "expected ',' or ']' but found 'bos'"],
    [
      'a missing comma in sft(policy batch)',
      'stage s: train p on d {\n  loss = sft(policy batch)\n  steps = 10\n}',
      [{ code: 'syntax-error', line: 2, column: 21 }],
      "expected ',' or ')' but found 'batch'",
    ],
    [
      'a missing }',
      'stage a: train p on d {\n  loss = x\n  steps = 10\nstage b: train p on d after a {\n  steps = 5\n}',
      [{ code: 'syntax-error', line: 3, column: 13 }],
      "expected '}' but found 'stage'",
    ],
    [
      'a missing } of a forward body',
      'block A(d: dim) {\n  forward(x: f32[d]) -> f32[d] {\n    x\n  proj = Linear(d, d)\n}',
      [{ code: 'syntax-error', line: 4, column: 3 }],
      "expected '}' but found 'proj'",
    ],
    [
      'a misspelt keyword at top level',
      'tokenizer tok = chars("abc")\nmodle x = Transformer(vocab: 3)\ndataset d = text("x")',
      [{ code: 'syntax-error', line: 2, column: 1 }],
      "unexpected 'modle' at top level: expected a declaration (import, tokenizer, model, dataset, block, fn, stage, deploy)",
    ],
    [
      'an unclosed parenthesis',
      'stage s: train p on d {\n  loss = f(a, b\n  optimizer = adamw(lr: 1e-4)\n}',
      [{ code: 'syntax-error', line: 3, column: 3 }],
      "expected ')' but found 'optimizer'",
    ],
    ['a missing = in a setting', 'stage s: train p on d {\n  batch 32\n  steps = 10\n}', [{ code: 'syntax-error', line: 2, column: 9 }], "expected '=' after 'batch' but found '32'"],
    [
      'a missing value before the next setting',
      'stage s: train p on d {\n  loss =\n  steps = 10\n}',
      [{ code: 'syntax-error', line: 3, column: 3 }],
      "expected an expression but found 'steps'",
    ],
    ['an expression missing before }', 'deploy m to onnx {\n  out =\n}', [{ code: 'syntax-error', line: 3, column: 1 }], "expected an expression but found '}'"],
    ['a missing declaration name', 'model = Transformer()', [{ code: 'syntax-error', line: 1, column: 7 }], "expected a name but found '='"],
    ['a keyword as a name', 'model block = X()', [{ code: 'syntax-error', line: 1, column: 7 }], "expected a name but found keyword 'block'"],
    ['a missing stage kind separator', 'stage s train p on d {\n  steps = 1\n}', [{ code: 'syntax-error', line: 1, column: 9 }], "expected ':' but found 'train'"],
    ['a misspelt after', 'stage s: train p on d afer a {\n  steps = 1\n}', [{ code: 'syntax-error', line: 1, column: 23 }], "expected '{' but found 'afer'"],
    ['a misspelt every', 'stage s: train p on d {\n  eval evry 200 on d.val\n  steps = 10\n}', [{ code: 'syntax-error', line: 2, column: 8 }], "expected 'every' or '=' after 'eval' but found 'evry'"],
    ['a misspelt param', 'block A(d: dim) {\n  parm w: f32[d] = zeros()\n  forward(x: f32[d]) -> f32[d] = x + w\n}', [{ code: 'syntax-error', line: 2, column: 8 }], "expected '=' but found 'w'"],
    ['an empty body result', 'fn f(x) {\n  let y = x\n}', [{ code: 'syntax-error', line: 3, column: 1 }], "expected an expression but found '}'"],
    ['a missing ) in a block header', 'block A(d: dim {\n  forward(x: f32[d]) -> f32[d] = x\n}', [{ code: 'syntax-error', line: 1, column: 16 }], "expected ')' but found '{'"],
    ['a dangling operator', 'fn f(a) = a +', [{ code: 'syntax-error', line: 1, column: 14 }], 'expected an expression but found end of file'],
  ])('%s', (_what, text, errors, message) => {
    const p = parse(text);
    expect(p.errors).toEqual(errors);
    expect(p.messages[0]).toBe(message);
  });

  it('suggests the keyword a misspelt word was meant to be', () => {
    const bag = new DiagnosticBag();
    parseRecipe('modle x = X()', 't.pt-recipe', bag);
    parseRecipe('stage s: train p on d afer a {\n}', 't.pt-recipe', bag);
    expect(bag.items.map((d) => d.hint)).toEqual(["did you mean 'model'?", "did you mean 'after'?"]);
  });

  it('pins an error at a recovery-inserted token to the end of the previous token', () => {
    // The ')' is missing; the error sits right after `b`, where it should have been.
    const { errors } = parse('model m = f(a, b\n\n\ndataset d = text("x")');
    expect(errors).toEqual([{ code: 'syntax-error', line: 1, column: 17 }]);
  });

  it('keeps the parts of a declaration around an error', () => {
    const { recipe } = parse('stage s: train p on d {\n  loss = f(a b)\n  batch = 32\n  steps = 10\n}');
    const s = recipe.declarations[0] as A.StageDecl;
    expect(s.items.map((i) => (i as A.Setting).name.name)).toEqual(['loss', 'batch', 'steps']);
    expect(sx((s.items[0] as A.Setting).value)).toBe('(call f a b)');
  });

  it('produces ErrorExpr where an expression is missing', () => {
    const { recipe } = parse('model m = \ndataset d = text("x")');
    const [m, d] = recipe.declarations as [A.ModelDecl, A.DatasetDecl];
    expect(m.value.kind).toBe('ErrorExpr');
    expect(at(m.value.loc)).toBe('1:10-1:10');
    expect(d.kind).toBe('DatasetDecl');
  });
});

describe('syntax errors: independent errors are all reported', () => {
  it('reports three errors in three declarations at their positions', () => {
    const { errors, recipe } = parse(`model a = Foo(1 2)
dataset d = text("x" tokenizer: t)
stage s: train a on d {
  loss = f(x)
  steps 3
}
deploy a to onnx {
  out = "x"
}`);
    expect(errors).toEqual([
      { code: 'syntax-error', line: 1, column: 17 },
      { code: 'syntax-error', line: 2, column: 22 },
      { code: 'syntax-error', line: 5, column: 9 },
    ]);
    expect(recipe.declarations.map((d) => d.kind)).toEqual(['ModelDecl', 'DatasetDecl', 'StageDecl', 'DeployDecl']);
  });

  it('reports a misspelt keyword after an error in the declaration before it', () => {
    const { errors } = parse('model a = Linear(4 8)\n\nmodle b = Linear(4, 8)\n\nmodel c = Linear(4, 8\n\nmodel d = Linear(4, 8)');
    expect(errors).toEqual([
      { code: 'syntax-error', line: 1, column: 20 },
      { code: 'syntax-error', line: 3, column: 1 },
      { code: 'syntax-error', line: 5, column: 22 },
    ]);
  });

  it('reports errors in different members of one block', () => {
    const { errors } = parse(`block A(d: dim) {
  up = Linear(d 4 * d)
  down = Linear(4 * d, d
  forward(x: f32[d]) -> f32[d] = down(up(x))
}`);
    expect(errors).toEqual([
      { code: 'syntax-error', line: 2, column: 17 },
      { code: 'syntax-error', line: 4, column: 3 },
    ]);
  });

  it('resynchronises at every top-level declaration keyword', () => {
    const { errors, recipe } = parse('model a = (\nmodel b = ]\nmodel c = X()\nstage s: train c on d {\n  x = )\n}\nmodel e = Y()');
    expect(errors.map((e) => e.line)).toEqual([1, 2, 5]);
    expect(recipe.declarations.map((d) => (d as A.ModelDecl).name?.name)).toEqual(['a', 'b', 'c', 's', 'e']);
  });
});

describe('lexical errors in the parser', () => {
  it('reports an unterminated string once', () => {
    const { errors } = parse('dataset d = text("data/x.txt, tokenizer: tok)\nmodel m = X()');
    expect(errors).toEqual([{ code: 'unterminated-string', line: 1, column: 18 }]);
  });

  it('reports a run of invalid characters once, without a follow-up syntax error', () => {
    const { errors, recipe } = parse('stage s: train p on d {\n  loss = a $$ b\n  steps = 10 ;\n}');
    expect(errors).toEqual([
      { code: 'invalid-character', line: 2, column: 12 },
      { code: 'invalid-character', line: 3, column: 14 },
    ]);
    expect((recipe.declarations[0] as A.StageDecl).items.map((i) => (i as A.Setting).name.name)).toContain('steps');
  });

  it('reports invalid escapes with the string still parsed', () => {
    const { errors, recipe } = parse(String.raw`dataset d = text("a\qb")`);
    expect(errors).toEqual([{ code: 'invalid-escape', line: 1, column: 20 }]);
    expect(sx((recipe.declarations[0] as A.DatasetDecl).value)).toBe('(call text "aqb")');
  });
});

describe('robustness', () => {
  const garbage = [
    '',
    '}}}}))))]]]]',
    '((((((((',
    '\u0000\u0001\u0002 model \u0000 = \uFFFF',
    'stage stage stage : : : { { {',
    'import import { { as as , , }',
    'model m = f(a: b: c: d)',
    'block B( { forward( -> -> = = }',
    'fn f() = x[...:...,::]',
    '"\\u{',
    'deploy to to to { = }',
    'let x = 1',
    '@@@@ ** ** -> ...',
    'stage a: train b on c after , , {',
  ];
  it.each(garbage)('never throws on %j', (text) => {
    const bag = new DiagnosticBag();
    expect(() => parseRecipe(text, 't.pt-recipe', bag)).not.toThrow();
    for (const d of bag.items) {
      expect(d.span.line).toBeGreaterThanOrEqual(1);
      expect(d.span.column).toBeGreaterThanOrEqual(1);
      expect(d.code).not.toBe('internal-error');
    }
  });

  it('never throws on pseudo-random bytes and token soup', () => {
    let seed = 42;
    const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    const words = ['model', 'stage', 'x', '(', ')', '[', ']', '{', '}', ',', ':', '=', '->', '...', '@', '-', '1', '"s"', 'let', 'eval', 'every', 'on', 'after', '\n'];
    for (let n = 0; n < 200; n++) {
      let text = '';
      const len = Math.floor(rand() * 200);
      for (let i = 0; i < len; i++) text += n % 2 ? String.fromCharCode(Math.floor(rand() * 0x3000)) : `${words[Math.floor(rand() * words.length)]} `;
      const bag = new DiagnosticBag();
      expect(() => parseRecipe(text, 't.pt-recipe', bag)).not.toThrow();
      expect(bag.items.every((d) => d.code !== 'internal-error')).toBe(true);
    }
  });

  it('cuts brackets nested too deeply, with one diagnostic', () => {
    const depth = MAX_NESTING + 50;
    const text = `model m = ${'('.repeat(depth)}x${')'.repeat(depth)}\nmodel n = Y()`;
    const { errors, recipe } = parse(text);
    expect(errors).toEqual([{ code: 'syntax-error', line: 1, column: 11 + MAX_NESTING }]);
    expect(recipe.declarations).toHaveLength(2);
  });

  it('survives extreme nesting and long operator chains', () => {
    const deep = `fn f() = ${'['.repeat(100_000)}`;
    expect(() => parse(deep)).not.toThrow();
    const chain = `fn f() = ${Array.from({ length: 5000 }, (_, i) => `a${i}`).join(' + ')}`;
    const { errors } = parse(chain);
    expect(errors).toEqual([{ code: 'syntax-error', line: 1, column: 10 }]);
    const minus = `fn f() = ${'-'.repeat(50_000)}x ** ${'!'.repeat(50_000)}y`;
    expect(() => parse(minus)).not.toThrow();
    expect(MAX_EXPRESSION_DEPTH).toBeGreaterThan(100);
  });

  // Speed is measured in bench/, not asserted here.
  it('parses a large input', () => {
    const unit = 'stage s: train p on d after a, b {\n  loss = f(x[:, -1] @ w + b, lr: 3e-4)\n  steps = 10\n}\n';
    const { errors, recipe } = parse(unit.repeat(2500));
    expect(errors).toEqual([]);
    expect(recipe.declarations).toHaveLength(2500);
  });
});
