/**
 * The formatter: golden cases (input → exact output) for each layout rule,
 * then round trips over every recipe in the repository and over random trees.
 *
 * Properties checked everywhere: the output parses without errors to the same
 * tree (locations aside) with the same comments in the same order, and
 * formatting the output again changes nothing.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  stripLocations,
  type Argument,
  type BinaryOp,
  type Declaration,
  type DimNode,
  type Expression,
  type Identifier,
  type Parameter,
  type Recipe,
  type Span,
  type StageItem,
  type Subscript,
  type TypeNode,
} from '../../src/language/ast.js';
import { DiagnosticBag, SourceFile } from '../../src/language/diagnostics.js';
import { KEYWORDS, lexRecipe } from '../../src/language/lexer.js';
import { parseRecipe } from '../../src/language/parser.js';
import { formatRecipe, printExpression, printType } from '../../src/language/printer.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
/** Runs per property: `npm run test:fuzz` raises it, as for the other fuzz tests. */
const RUNS = Number(process.env['FUZZ_RUNS'] ?? 300);

function parse(text: string, file = 'test.pt-recipe'): { recipe: Recipe; bag: DiagnosticBag } {
  const bag = new DiagnosticBag();
  return { recipe: parseRecipe(text, file, bag), bag };
}

/** Formats `text`, which must parse cleanly, and checks the properties every output must have. */
function fmt(text: string): string {
  const { recipe, bag } = parse(text);
  expect(bag.items.map((d) => d.message)).toEqual([]);
  const out = formatRecipe(recipe, text);
  checkOutput(recipe, out);
  return out;
}

function checkOutput(recipe: Recipe, out: string): void {
  const again = parse(out);
  expect(again.bag.items.map((d) => `${d.span.line}:${d.span.column} ${d.message}`), out).toEqual([]);
  expect(stripLocations(again.recipe)).toEqual(stripLocations(recipe));
  expect(again.recipe.comments.map((c) => c.text.trimEnd())).toEqual(recipe.comments.map((c) => c.text.trimEnd()));
  expect(formatRecipe(again.recipe, out)).toBe(out);
}

/** Golden case: `input` formats to exactly `expected`, and `expected` is already formatted. */
function golden(input: string, expected: string): void {
  expect(fmt(input)).toBe(expected);
  expect(fmt(expected)).toBe(expected);
}

/** Multi-line literals with the common indentation removed and one final newline. */
function text(lines: TemplateStringsArray): string {
  const raw = lines.raw.join('').replace(/^\n/, '').replace(/\n[ ]*$/, '\n');
  const indent = Math.min(...raw.split('\n').filter((l) => l.trim()).map((l) => /^ */.exec(l)![0].length));
  return raw
    .split('\n')
    .map((l) => l.slice(indent))
    .join('\n');
}

describe('formatter: preconditions', () => {
  // The formatter places comments and blank lines by node spans; without them every case below fails.
  it('gets real spans from the parser (whole declarations, arguments)', () => {
    const { recipe } = parse('model m = f(a, b: 1)\n');
    const d = recipe.declarations[0]!;
    expect([d.loc.start, d.loc.end]).toEqual([0, 20]);
    if (d.kind === 'ModelDecl' && d.value.kind === 'CallExpr') expect(d.value.args.map((a) => [a.loc.start, a.loc.end])).toEqual([[12, 13], [15, 19]]);
  });
});

describe('formatter: spacing', () => {
  it('spaces operators, arguments, labels and tuples canonically', () => {
    golden('model   m=f( a,b : 1 , c:[1,2 ,3],d:(1,) ,e:( 1 , 2 ) )\n', 'model m = f(a, b: 1, c: [1, 2, 3], d: (1,), e: (1, 2))\n');
    golden('model m = a+b*(c-d)/e%f@g**-2\n', 'model m = a + b * (c - d) / e % f @ g ** -2\n');
    golden('model m = ! ( a<b ) && c>=d||e!=f\n', 'model m = !(a < b) && c >= d || e != f\n');
    golden('model m = - x . y [ 0 ] ( z )\n', 'model m = -x.y[0](z)\n');
  });

  it('prints subscripts and slices', () => {
    golden('model m = x[ : , -1 ]+x[..., :T]+x[1:n-1]+x[ a : ]+x[:]\n', 'model m = x[:, -1] + x[..., :T] + x[1:n - 1] + x[a:] + x[:]\n');
  });

  it('prints types, parameters and where clauses', () => {
    golden(
      'block B( d : dim , n:dim=4 )where d%n==0{param w:f32[ B,T,3*d ]=zeros()\nforward(x:f32[...,d],y:(f32,i64[]))->f32[...,d]=x}\n',
      text`
        block B(d: dim, n: dim = 4) where d % n == 0 {
          param w: f32[B, T, 3 * d] = zeros()
          forward(x: f32[..., d], y: (f32, i64[])) -> f32[..., d] = x
        }
      `,
    );
  });

  it('keeps numbers as written', () => {
    golden('model m = f(3e-4, 1_000, 0.50, 1E5, 2.0e+3, 007)\n', 'model m = f(3e-4, 1_000, 0.50, 1E5, 2.0e+3, 007)\n');
  });

  it('re-encodes string escapes', () => {
    golden('model m = f("a\\"b\\\\c\\n\\t\\u{41}\\u{7}\\u{1F600}é")\n', 'model m = f("a\\"b\\\\c\\n\\tA\\u{0007}😀é")\n');
  });

  it('keeps the author\'s parentheses and adds none', () => {
    golden('model m = ((a + b)) * (c)\n', 'model m = ((a + b)) * (c)\n');
    golden('model m = (a, b)\nmodel n = ((a, b))\n', 'model m = (a, b)\nmodel n = ((a, b))\n');
  });

  it('prints imports with and without name lists', () => {
    golden('import std.nn{Linear,Embedding as E,}\nimport "./x.pt-recipe"\n', 'import std.nn { Linear, Embedding as E }\nimport "./x.pt-recipe"\n');
  });

  it('prints stage headers and deploy headers', () => {
    golden(
      'stage s :train m@pre on d.val after a,b{batch=1 eval every 10 on d.val let (p,(q,r))=f(x)}\ndeploy m@s to onnx{out="o"}\n',
      text`
        stage s: train m @ pre on d.val after a, b {
          batch = 1
          eval every 10 on d.val
          let (p, (q, r)) = f(x)
        }

        deploy m @ s to onnx {
          out = "o"
        }
      `,
    );
  });

  it('prints empty blocks, stages and deploys as {} (one-liners, so adjacent ones stay together)', () => {
    golden('block E() {\n\n}\nstage s: eval m {\n}\n\n\ndeploy m to onnx { }\n', 'block E() {}\nstage s: eval m {}\n\ndeploy m to onnx {}\n');
  });

  it('prints = bodies and braced bodies', () => {
    golden(
      'fn f(x) = x\nfn g(x) -> f32 {\n  let y = x\n  y\n}\nfn h() -> (f32, f32) { (1, 2) }\n',
      text`
        fn f(x) = x

        fn g(x) -> f32 {
          let y = x
          y
        }

        fn h() -> (f32, f32) {
          (1, 2)
        }
      `,
    );
  });
});

describe('formatter: layout', () => {
  it('indents by two spaces per level', () => {
    golden(
      'block A(d: dim) {\n        x = f(d)\n forward(t: f32) -> f32 {\n let u = x(t)\n             u\n }\n}\n',
      text`
        block A(d: dim) {
          x = f(d)
          forward(t: f32) -> f32 {
            let u = x(t)
            u
          }
        }
      `,
    );
  });

  it('keeps one blank line where the author had one or more inside blocks, none after { or before }', () => {
    golden(
      'stage s: train m {\n\n\n  a = 1\n\n\n\n  b = 2\n  c = 3\n\n}\n',
      text`
        stage s: train m {
          a = 1

          b = 2
          c = 3
        }
      `,
    );
  });

  it('separates top-level declarations by one blank line, keeping adjacent one-liners together', () => {
    golden(
      'import std.nn { A }\nimport std.losses { b }\n\n\n\nmodel m = A()\ndataset d = text("x")\nstage s: train m on d {\n  steps = 1\n}\nmodel n = A()\n',
      text`
        import std.nn     { A }
        import std.losses { b }

        model m = A()
        dataset d = text("x")

        stage s: train m on d {
          steps = 1
        }

        model n = A()
      `,
    );
  });

  it('aligns = in runs of settings, submodules, params and value declarations', () => {
    golden(
      text`
        tokenizer tok = chars("ab")
        model policy = T(vocab: tok.vocab)
        model rm = R(policy)
        import "./layers/attention.pt-recipe" { Attention }
        import std.nn { Linear }
        import std.losses { dpo }

        block B(d: dim) {
          qkv = Linear(d, 3 * d)
          projection = Linear(d, d)
          param w: f32[d] = ones()
          param bias: f32[d, d] = zeros() if true

          out = Linear(d, d)
          forward(x: f32[d]) -> f32[d] = x
        }

        stage s: train policy {
          loss = f(x)
          let y = 1
          # comment lines and lets do not end a run
          optimizer = adamw(lr: 1e-3)

          steps = 1
          eval every 10 on d
        }
      `,
      text`
        tokenizer tok = chars("ab")
        model policy = T(vocab: tok.vocab)
        model rm     = R(policy)
        import "./layers/attention.pt-recipe" { Attention }
        import std.nn     { Linear }
        import std.losses { dpo }

        block B(d: dim) {
          qkv        = Linear(d, 3 * d)
          projection = Linear(d, d)
          param w: f32[d]       = ones()
          param bias: f32[d, d] = zeros() if true

          out = Linear(d, d)
          forward(x: f32[d]) -> f32[d] = x
        }

        stage s: train policy {
          loss      = f(x)
          let y = 1
          # comment lines and lets do not end a run
          optimizer = adamw(lr: 1e-3)

          steps = 1
          eval every 10 on d
        }
      `,
    );
  });

  it('removes the author\'s own alignment where there is nothing to align with', () => {
    golden('stage s: train m {\n  loss      = f(x)\n\n  steps     = 1\n}\n', 'stage s: train m {\n  loss = f(x)\n\n  steps = 1\n}\n');
  });
});

describe('formatter: long lines', () => {
  it('breaks a long call one argument per line with a trailing comma', () => {
    golden(
      'model policy = Transformer(vocab: tok.vocab, ctx: 64, dim: 128, layers: 4, heads: 4, dropout: 0.1, extra: 1)\n',
      text`
        model policy = Transformer(
          vocab: tok.vocab,
          ctx: 64,
          dim: 128,
          layers: 4,
          heads: 4,
          dropout: 0.1,
          extra: 1,
        )
      `,
    );
  });

  it('breaks outer lists first, then any element still too long', () => {
    golden(
      'stage s: generate m {\n  principles = [f("Answer the request that was asked, about the animal, person or place it names.", "Use short, simple sentences.", 1), "Be kind."]\n}\n',
      text`
        stage s: generate m {
          principles = [
            f(
              "Answer the request that was asked, about the animal, person or place it names.",
              "Use short, simple sentences.",
              1,
            ),
            "Be kind.",
          ]
        }
      `,
    );
  });

  it('moves a long = body to the next line when that makes it fit', () => {
    golden(
      'fn next_token(logits: f32[B, T, V], tokens: i64[B, T]) -> f32 = cross_entropy(logits[:, :-1], tokens[:, 1:])\n',
      text`
        fn next_token(logits: f32[B, T, V], tokens: i64[B, T]) -> f32 =
          cross_entropy(logits[:, :-1], tokens[:, 1:])
      `,
    );
  });

  it('breaks a long operator chain before its operators', () => {
    golden(
      'stage s: train m {\n  loss = 0.5 * next_token(logits, batch.tokens) + 0.5 * kd(logits, teacher(batch.tokens), temperature: 2.0) - 1 + 2\n}\n',
      text`
        stage s: train m {
          loss = 0.5 * next_token(logits, batch.tokens)
            + 0.5 * kd(logits, teacher(batch.tokens), temperature: 2.0)
            - 1
            + 2
        }
      `,
    );
  });

  it('breaks after a binary - in a let of a braced body, where a line starting with - would end the let', () => {
    golden(
      'fn f(policy, reference, batch) {\n  let chosen = seq_logprob(policy, batch.chosen, batch.chosen_mask) - seq_logprob(reference, batch.chosen, batch.chosen_mask)\n  -chosen\n}\n',
      text`
        fn f(policy, reference, batch) {
          let chosen = seq_logprob(policy, batch.chosen, batch.chosen_mask) -
            seq_logprob(reference, batch.chosen, batch.chosen_mask)
          -chosen
        }
      `,
    );
  });

  it('breaks a long parameter list', () => {
    golden(
      'block Transformer(vocab: dim, ctx: dim, dim: dim, layers: dim, heads: dim, hidden: dim) where dim % heads == 0 {\n  x = 1\n}\n',
      text`
        block Transformer(
          vocab: dim,
          ctx: dim,
          dim: dim,
          layers: dim,
          heads: dim,
          hidden: dim,
        ) where dim % heads == 0 {
          x = 1
        }
      `,
    );
  });

  it('breaks a long import list', () => {
    golden(
      'import std.nn { Linear, Embedding, LayerNorm, RMSNorm, CausalSelfAttention, RotarySelfAttention, MLP }\n',
      text`
        import std.nn {
          Linear,
          Embedding,
          LayerNorm,
          RMSNorm,
          CausalSelfAttention,
          RotarySelfAttention,
          MLP,
        }
      `,
    );
  });
});

describe('formatter: comments', () => {
  it('keeps leading comments, and blank lines between them, before declarations', () => {
    golden(
      '# file header\n\n# about m\nmodel m = A()   \n# about n\n\n\nmodel n = A()\n',
      '# file header\n\n# about m\nmodel m = A()\n# about n\n\nmodel n = A()\n',
    );
  });

  it('keeps trailing comments on the line they end, two spaces after the code', () => {
    golden('model m = A()      #   trailing   \nmodel n = A()#x\n', 'model m = A()  #   trailing\nmodel n = A()  #x\n');
  });

  it('keeps comments inside blocks, stages and bodies, and after the last item', () => {
    golden(
      text`
        block B(d: dim) {   # header
          # lead
          x = f(d)  # trail
          forward(t: f32) -> f32 {  # forward header
            # about u
            let u = x(t)
            # about the result
            u  # the result
            # end of body
          }
          # end of block

          # detached end comment
        }  # after the block
        stage s: train m {
          # only a comment
        }
      `,
      text`
        block B(d: dim) {  # header
          # lead
          x = f(d)  # trail
          forward(t: f32) -> f32 {  # forward header
            # about u
            let u = x(t)
            # about the result
            u  # the result
            # end of body
          }
          # end of block

          # detached end comment
        }  # after the block

        stage s: train m {
          # only a comment
        }
      `,
    );
  });

  it('keeps comments at the end of the file', () => {
    golden('model m = A()\n# the end\n\n\n# really\n', 'model m = A()\n# the end\n\n# really\n');
    golden('# only comments\n#\n', '# only comments\n#\n');
  });

  it('keeps comments between call arguments beside their argument', () => {
    golden(
      text`
        stage s: train m {
          optimizer = adamw(  # the optimizer
            lr: 1e-3,   # the rate
            # betas as in GPT-2
            betas: (0.9, 0.95),
            # nothing else
          )
        }
      `,
      text`
        stage s: train m {
          optimizer = adamw(
            # the optimizer
            lr: 1e-3,  # the rate
            # betas as in GPT-2
            betas: (0.9, 0.95),
            # nothing else
          )
        }
      `,
    );
  });

  it('keeps comments in nested lists, breaking every list around them', () => {
    golden(
      'model m = f(g([1, # one\n2]), 3)\n',
      text`
        model m = f(
          g(
            [
              1,  # one
              2,
            ],
          ),
          3,
        )
      `,
    );
  });

  it('moves comments it cannot place inside an expression before its statement, in order', () => {
    golden(
      'stage s: train m {\n  loss = a +  # one\n    b * # two\n    c\n  steps = 1\n}\n',
      'stage s: train m {\n  # one\n  # two\n  loss  = a + b * c\n  steps = 1\n}\n',
    );
    golden('model m = f(a, x[ # in a subscript\n 0])\n', '# in a subscript\nmodel m = f(a, x[0])\n');
    golden('stage s: # in the header\n train m { steps = 1 }\n', '# in the header\nstage s: train m {\n  steps = 1\n}\n');
  });

  it('keeps comments in parameter lists', () => {
    golden(
      'fn f(a: dim,  # the width\n  b: dim) = a\n',
      text`
        fn f(
          a: dim,  # the width
          b: dim,
        ) = a
      `,
    );
  });

  it('keeps a comment after an item on the same line as the next item with that item', () => {
    golden('stage s: train m { a = 1 b = 2  # about b\n}\n', 'stage s: train m {\n  a = 1\n  b = 2  # about b\n}\n');
  });
});

describe('printExpression and printType', () => {
  const expr = (src: string): Expression => {
    const { recipe, bag } = parse(`model m = ${src}`);
    expect(bag.items).toEqual([]);
    const d = recipe.declarations[0]!;
    if (d.kind !== 'ModelDecl') throw new Error('not a model');
    return d.value;
  };

  it('prints expressions on one line, however long', () => {
    const long = `f(${Array.from({ length: 40 }, (_, i) => `a${i}`).join(', ')})`;
    expect(printExpression(expr(long))).toBe(long);
    expect(printExpression(expr('x   @  w'))).toBe('x @ w');
  });

  it('adds parentheses where a tree built by code needs them', () => {
    const loc = expr('a').loc;
    const name = (n: string): Expression => ({ kind: 'NameExpr', name: n, loc });
    const bin = (op: BinaryOp, left: Expression, right: Expression): Expression => ({ kind: 'BinaryExpr', op, left, right, opLoc: loc, loc });
    expect(printExpression(bin('*', bin('+', name('a'), name('b')), name('c')))).toBe('(a + b) * c');
    expect(printExpression(bin('-', name('a'), bin('-', name('b'), name('c'))))).toBe('a - (b - c)');
    expect(printExpression(bin('**', bin('**', name('a'), name('b')), name('c')))).toBe('(a ** b) ** c');
    expect(printExpression(bin('**', name('a'), bin('**', name('b'), name('c'))))).toBe('a ** b ** c');
    expect(printExpression(bin('<', bin('<', name('a'), name('b')), name('c')))).toBe('(a < b) < c');
    expect(printExpression({ kind: 'UnaryExpr', op: '-', operand: bin('*', name('a'), name('b')), loc })).toBe('-(a * b)');
    expect(printExpression(bin('+', name('a'), { kind: 'UnaryExpr', op: '!', operand: name('b'), loc }))).toBe('a + (!b)');
    expect(printExpression({ kind: 'MemberExpr', object: bin('@', name('a'), name('b')), member: { kind: 'Identifier', name: 'c', loc }, loc })).toBe('(a @ b).c');
  });

  it('prints types', () => {
    const { recipe } = parse('fn f(a: f32[..., B, 3 * d], b: (f32, i64[]), c: dim) = a');
    const d = recipe.declarations[0]!;
    if (d.kind !== 'FnDecl') throw new Error('not a fn');
    expect(d.params.map((p) => printType(p.type!))).toEqual(['f32[..., B, 3 * d]', '(f32, i64[])', 'dim']);
  });
});

// ---------------------------------------------------------------- every recipe in the repository

function recipeFiles(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const name of names.sort()) {
    const path = join(dir, name);
    if (name === 'node_modules' || name.startsWith('.')) continue;
    if (statSync(path).isDirectory()) out.push(...recipeFiles(path));
    else if (name.endsWith('.pt-recipe')) out.push(path);
  }
  return out;
}

describe('formatter: repository recipes', () => {
  const files = ['grammar/examples', 'stdlib', 'examples', 'test/fixtures'].flatMap((d) => recipeFiles(join(root, d)));

  it('finds recipes to format', () => {
    expect(files.length).toBeGreaterThan(0);
  });

  for (const file of files) {
    it(`round-trips ${relative(root, file)}`, (ctx) => {
      const source = readFileSync(file, 'utf8');
      const { recipe, bag } = parse(source, file);
      // Fixtures for syntax errors (and files still being written) cannot be formatted.
      if (bag.hasErrors) ctx.skip();
      checkOutput(recipe, formatRecipe(recipe, source));
    });
  }
});

describe('formatter: comments anywhere', () => {
  // Real recipes with comments inserted after random tokens: wherever a comment
  // lands, the formatter must keep all of them, in order, and be idempotent.
  const sources = ['stdlib', 'examples']
    .flatMap((d) => recipeFiles(join(root, d)))
    .map((f) => readFileSync(f, 'utf8'))
    .filter((t) => !parse(t).bag.hasErrors);

  it('keeps every comment, in order, wherever it is', () => {
    if (sources.length === 0) return;
    fc.assert(
      fc.property(
        fc.nat(sources.length - 1),
        fc.array(fc.nat(), { minLength: 1, maxLength: 6 }),
        fc.boolean(),
        (which, picks, ownLine) => {
          const source = sources[which]!;
          const tokens = lexRecipe(source, new SourceFile('x', source), new DiagnosticBag()).tokens;
          const offsets = [...new Set(picks.map((p) => tokens[p % tokens.length]!.startOffset + tokens[p % tokens.length]!.image.length))].sort((a, b) => b - a);
          let mutated = source;
          offsets.forEach((at, i) => {
            mutated = `${mutated.slice(0, at)}${ownLine ? '\n' : ' '}# c${i} \n${mutated.slice(at)}`;
          });
          const original = parse(source).recipe;
          const { recipe, bag } = parse(mutated);
          // A line break can change the parse (a line starting with '-' ends a let); such inputs say nothing here.
          fc.pre(!bag.hasErrors && JSON.stringify(stripLocations(recipe)) === JSON.stringify(stripLocations(original)));
          checkOutput(recipe, formatRecipe(recipe, mutated));
        },
      ),
      // Each run parses and formats whole files, so it gets a fraction of the runs.
      { numRuns: Math.max(20, Math.floor(RUNS / 3)), seed: Number(process.env['FUZZ_SEED'] ?? 42) },
    );
  }, 600_000);
});

// ---------------------------------------------------------------- random trees

const LOC: Span = { file: 'gen', start: 0, end: 0, line: 1, column: 1, endLine: 1, endColumn: 1 };
// Two long names make long lines, so the line breaking is exercised too.
const NAMES = ['a', 'b', 'x1', '_y', 'Foo', 'tok', 'batch', 'relu', 'dim', 'a_rather_long_name_for_a_tensor', 'AnotherQuiteLongBlockName'];
const LABELS = [...NAMES, 'block', 'model', 'to', 'true', 'every'];
const NUMBERS = ['0', '1', '42', '1_000', '007', '3.5', '3e-4', '1E5', '2.0e+3', '0.50'];
const OPS: BinaryOp[] = ['||', '&&', '==', '!=', '<', '<=', '>', '>=', '+', '-', '*', '/', '%', '@', '**'];

const ident = (names: readonly string[]) => fc.constantFrom(...names).map((name) => ({ kind: 'Identifier' as const, name, loc: LOC }));

const leaf: fc.Arbitrary<Expression> = fc.oneof(
  fc.constantFrom(...NUMBERS).map((raw): Expression => ({ kind: 'NumberLiteral', value: Number(raw.replace(/_/g, '')), isInteger: /^\d[\d_]*$/.test(raw), raw, loc: LOC })),
  fc
    .oneof(fc.string({ unit: 'binary', maxLength: 12 }), fc.constantFrom('"', '\\', '\n\t', '\u0000\u007f\u2028', '\ud800', 'é😀', '\\u{41}'))
    .map((value): Expression => ({ kind: 'StringLiteral', value, loc: LOC })),
  fc.boolean().map((value): Expression => ({ kind: 'BoolLiteral', value, loc: LOC })),
  fc.constantFrom(...NAMES).map((name): Expression => ({ kind: 'NameExpr', name, loc: LOC })),
);

/** Random expression trees of every form; precedence is not respected (the printer must add parentheses). */
const { tree } = fc.letrec<{ tree: Expression; node: Expression }>((tie) => ({
  tree: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaf, tie('node')),
  node: fc.oneof(
    fc.record({ op: fc.constantFrom(...OPS), left: tie('tree'), right: tie('tree') }).map(({ op, left, right }): Expression => ({ kind: 'BinaryExpr', op, left, right, opLoc: LOC, loc: LOC })),
    fc.record({ op: fc.constantFrom<'-' | '!'>('-', '!'), operand: tie('tree') }).map(({ op, operand }): Expression => ({ kind: 'UnaryExpr', op, operand, loc: LOC })),
    fc
      .record({
        callee: tie('tree'),
        args: fc.array(fc.record({ label: fc.option(ident(LABELS), { nil: null }), value: tie('tree') }), { maxLength: 4 }),
      })
      .map(({ callee, args }): Expression => ({ kind: 'CallExpr', callee, args: args.map((a): Argument => ({ kind: 'Argument', ...a, loc: LOC })), loc: LOC })),
    fc.record({ object: tie('tree'), member: ident(LABELS) }).map(({ object, member }): Expression => ({ kind: 'MemberExpr', object, member, loc: LOC })),
    fc
      .record({
        object: tie('tree'),
        subscripts: fc.array(
          fc.oneof(
            tie('tree').map((index): Subscript => ({ kind: 'IndexSubscript', index, loc: LOC })),
            fc.record({ start: fc.option(tie('tree'), { nil: null }), end: fc.option(tie('tree'), { nil: null }) }).map((s): Subscript => ({ kind: 'SliceSubscript', ...s, loc: LOC })),
            fc.constant<Subscript>({ kind: 'EllipsisSubscript', loc: LOC }),
          ),
          { minLength: 1, maxLength: 3 },
        ),
      })
      .map(({ object, subscripts }): Expression => ({ kind: 'IndexExpr', object, subscripts, loc: LOC })),
    fc.array(tie('tree'), { minLength: 1, maxLength: 4 }).map((elements): Expression => ({ kind: 'TupleExpr', elements, loc: LOC })),
    fc.array(tie('tree'), { maxLength: 4 }).map((elements): Expression => ({ kind: 'ListExpr', elements, loc: LOC })),
    tie('tree').map((expression): Expression => ({ kind: 'ParenExpr', expression, loc: LOC })),
  ),
}));

/** Precedence as the EBNF defines it, written independently of the printer's table. */
function prec(e: Expression): number {
  if (e.kind === 'BinaryExpr') {
    if (e.op === '||') return 1;
    if (e.op === '&&') return 2;
    if (['==', '!=', '<', '<=', '>', '>='].includes(e.op)) return 4;
    if (e.op === '+' || e.op === '-') return 5;
    if (e.op === '**') return 8;
    return 6;
  }
  if (e.kind === 'UnaryExpr') return e.op === '!' ? 3 : 7;
  if (e.kind === 'CallExpr' || e.kind === 'MemberExpr' || e.kind === 'IndexExpr') return 9;
  return 10;
}

/** The tree the parser builds from the printed text: parentheses wherever the grammar needs them. */
function withParens(e: Expression): Expression {
  const wrap = (x: Expression, floor: number): Expression => {
    const y = withParens(x);
    return prec(y) >= floor ? y : { kind: 'ParenExpr', expression: y, loc: LOC };
  };
  switch (e.kind) {
    case 'BinaryExpr': {
      const p = prec(e);
      const [l, r] = p === 4 ? [5, 5] : p === 8 ? [9, 7] : [p, p + 1];
      return { ...e, left: wrap(e.left, l), right: wrap(e.right, r) };
    }
    case 'UnaryExpr':
      return { ...e, operand: wrap(e.operand, e.op === '!' ? 3 : 7) };
    case 'CallExpr':
      return { ...e, callee: wrap(e.callee, 9), args: e.args.map((a) => ({ ...a, value: withParens(a.value) })) };
    case 'MemberExpr':
      return { ...e, object: wrap(e.object, 9) };
    case 'IndexExpr':
      return {
        ...e,
        object: wrap(e.object, 9),
        subscripts: e.subscripts.map((s) =>
          s.kind === 'IndexSubscript' ? { ...s, index: withParens(s.index) } : s.kind === 'SliceSubscript' ? { ...s, start: s.start && withParens(s.start), end: s.end && withParens(s.end) } : s,
        ),
      };
    case 'TupleExpr':
    case 'ListExpr':
      return { ...e, elements: e.elements.map(withParens) };
    case 'ParenExpr':
      return { ...e, expression: withParens(e.expression) };
    default:
      return e;
  }
}

const id = (name: string): Identifier => ({ kind: 'Identifier', name, loc: LOC });

/** Random types: dtypes with dims (`...`, names, numbers, dim arithmetic) or without, and tuples of them. */
const dimExpr: fc.Arbitrary<Expression> = fc.letrec<{ dim: Expression }>((tie) => ({
  dim: fc.oneof(
    { depthSize: 'small' },
    fc.constantFrom('B', 'T', 'd').map((name): Expression => ({ kind: 'NameExpr', name, loc: LOC })),
    fc.constantFrom('1', '64').map((raw): Expression => ({ kind: 'NumberLiteral', value: Number(raw), isInteger: true, raw, loc: LOC })),
    fc
      .record({ op: fc.constantFrom<BinaryOp>('+', '-', '*', '/'), left: tie('dim'), right: tie('dim') })
      .map((b): Expression => withParens({ kind: 'BinaryExpr', ...b, opLoc: LOC, loc: LOC })),
  ),
})).dim;
const { type } = fc.letrec<{ type: TypeNode }>((tie) => ({
  type: fc.oneof(
    { depthSize: 'small' },
    fc
      .record({
        name: fc.constantFrom('f32', 'bf16', 'i64', 'bool', 'dim', 'model'),
        dims: fc.option(fc.array(fc.oneof(dimExpr, fc.constant<DimNode>({ kind: 'EllipsisDim', loc: LOC })), { maxLength: 3 }), { nil: null }),
      })
      .map(({ name, dims }): TypeNode => ({ kind: 'TensorTypeNode', name: id(name), dims, loc: LOC })),
    fc.array(tie('type'), { minLength: 1, maxLength: 3 }).map((elements): TypeNode => ({ kind: 'TupleTypeNode', elements, loc: LOC })),
  ),
}));

const param = fc
  .record({ name: fc.constantFrom(...NAMES), type: fc.option(type, { nil: null }), default: fc.option(tree.map(withParens), { nil: null }) })
  .map((p): Parameter => ({ kind: 'Parameter', name: id(p.name), type: p.type, default: p.default, loc: LOC }));

/** One of every declaration form, around the generated expressions and types. */
function recipeOf(values: readonly Expression[], types: readonly TypeNode[], params: readonly Parameter[]): Recipe {
  const v = (i: number): Expression => values[i % values.length]!;
  const t = (i: number): TypeNode => types[i % types.length]!;
  const name = (n: string): Expression => ({ kind: 'NameExpr', name: n, loc: LOC });
  const declarations: Declaration[] = [
    { kind: 'ImportDecl', path: { kind: 'ModulePath', segments: [id('std'), id('nn')], loc: LOC }, names: [{ kind: 'ImportName', name: id('A'), alias: id('B'), loc: LOC }], loc: LOC },
    { kind: 'ModelDecl', name: id('m'), value: v(0), loc: LOC },
    {
      kind: 'BlockDecl',
      name: id('Blk'),
      params,
      where: [v(1)],
      members: [
        { kind: 'ParamMember', name: id('w'), type: t(0), init: v(2), condition: v(3), loc: LOC },
        { kind: 'SubmoduleMember', name: id('sub'), value: v(1), condition: null, loc: LOC },
        {
          kind: 'ForwardMember',
          params,
          returnType: t(1),
          where: [],
          body: { kind: 'Body', braced: false, statements: [], result: v(0), loc: LOC },
          loc: LOC,
        },
      ],
      loc: LOC,
    },
    {
      kind: 'FnDecl',
      name: id('fun'),
      params,
      returnType: t(2),
      where: [],
      body: {
        kind: 'Body',
        braced: true,
        // Let values are where a line starting with '-' would end the let: the printer must avoid that.
        statements: values.map((value, i) => ({ kind: 'LetStatement', pattern: { kind: 'NamePattern', name: id(`l${i}`), loc: LOC }, value, loc: LOC })),
        // The result starts with a name: a result starting with '(' , '[' or '-' after a let is a different program.
        result: name('r'),
        loc: LOC,
      },
      loc: LOC,
    },
    {
      kind: 'StageDecl',
      name: id('s'),
      stageKind: id('train'),
      target: name('m'),
      dataset: name('d'),
      after: [id('p'), id('q')],
      items: [
        ...values.map((value, i): StageItem => ({ kind: 'Setting', name: id(`k${i}`), value, loc: LOC })),
        { kind: 'LetStatement', pattern: { kind: 'TuplePattern', elements: [{ kind: 'NamePattern', name: id('x'), loc: LOC }], loc: LOC }, value: v(1), loc: LOC },
        { kind: 'EvalEvery', every: v(2), dataset: v(0), loc: LOC },
      ],
      loc: LOC,
    },
    { kind: 'DeployDecl', target: v(1), format: id('onnx'), settings: [{ kind: 'Setting', name: id('out'), value: v(2), loc: LOC }], loc: LOC },
  ];
  return { kind: 'Recipe', declarations, comments: [], loc: LOC };
}

describe('formatter: random trees', () => {
  it('prints trees that parse back to themselves, and formats idempotently', () => {
    fc.assert(
      fc.property(fc.array(tree, { minLength: 1, maxLength: 3 }), fc.array(type, { minLength: 1, maxLength: 3 }), fc.array(param, { maxLength: 3 }), (values, types, params) => {
        const recipe = recipeOf(values.map(withParens), types, params);
        const out = formatRecipe(recipe, '');
        const again = parse(out);
        expect(again.bag.items.map((d) => d.message), out).toEqual([]);
        expect(stripLocations(again.recipe)).toEqual(stripLocations(recipe));
        expect(formatRecipe(again.recipe, out)).toBe(out);
      }),
      { numRuns: RUNS, seed: Number(process.env['FUZZ_SEED'] ?? 42) },
    );
  }, 600_000);

  it('prints every expression with the parentheses its precedence needs', () => {
    fc.assert(
      fc.property(tree, (e) => {
        const { recipe, bag } = parse(`model m = ${printExpression(e)}`);
        expect(bag.items.map((d) => d.message)).toEqual([]);
        const d = recipe.declarations[0]!;
        expect(d.kind).toBe('ModelDecl');
        if (d.kind === 'ModelDecl') expect(stripLocations(d.value)).toEqual(stripLocations(withParens(e)));
      }),
      { numRuns: RUNS, seed: Number(process.env['FUZZ_SEED'] ?? 42) },
    );
  }, 600_000);
});

// The keyword list is the lexer's: names the generator uses must not be reserved.
it('random-tree names are not keywords', () => {
  for (const n of NAMES) expect(KEYWORDS).not.toContain(n);
});
