/**
 * The editor grammar (grammar/pt-recipe.tmLanguage.json): structure, regexes,
 * keywords in step with the lexer, and scopes on sample lines.
 *
 * Editors run TextMate grammars with Oniguruma; the grammar keeps to the
 * syntax that JS RegExp shares with it, so the patterns are tested here with a
 * small line tokenizer that follows TextMate's rules: at each position the
 * earliest match wins, ties go to the rule listed first (an open rule's `end`
 * before its `patterns`), and `begin`/`end` rules nest.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { KEYWORDS } from '../../src/language/lexer.js';

interface Capture {
  readonly name?: string;
}

interface Rule {
  readonly name?: string;
  readonly comment?: string;
  readonly match?: string;
  readonly begin?: string;
  readonly end?: string;
  readonly include?: string;
  readonly captures?: Readonly<Record<string, Capture>>;
  readonly beginCaptures?: Readonly<Record<string, Capture>>;
  readonly endCaptures?: Readonly<Record<string, Capture>>;
  readonly patterns?: readonly Rule[];
}

interface Grammar extends Rule {
  readonly scopeName: string;
  readonly fileTypes: readonly string[];
  readonly repository: Readonly<Record<string, Rule>>;
}

const grammarPath = fileURLToPath(new URL('../../grammar/pt-recipe.tmLanguage.json', import.meta.url));
const grammar = JSON.parse(readFileSync(grammarPath, 'utf8')) as Grammar;

/** Every rule object in the grammar, wherever it is nested. */
function allRules(): Rule[] {
  const out: Rule[] = [];
  const walk = (r: Rule): void => {
    out.push(r);
    for (const p of r.patterns ?? []) walk(p);
  };
  for (const p of grammar.patterns ?? []) walk(p);
  for (const r of Object.values(grammar.repository)) walk(r);
  return out;
}

/** Rules with includes replaced by what they name (`#x` → the repository's `x`, or its patterns). */
function expand(rules: readonly Rule[]): Rule[] {
  const out: Rule[] = [];
  for (const r of rules) {
    if (r.include) {
      const target = grammar.repository[r.include.slice(1)];
      if (!target) throw new Error(`unknown include ${r.include}`);
      out.push(...(target.match || target.begin ? [target] : expand(target.patterns ?? [])));
    } else if (r.match || r.begin) out.push(r);
    else out.push(...expand(r.patterns ?? []));
  }
  return out;
}

function compile(source: string): RegExp {
  // `d` gives the capture offsets, `g` lets the search start at a position.
  return new RegExp(source, 'dg');
}

interface Token {
  readonly text: string;
  readonly scopes: readonly string[];
}

interface Frame {
  readonly rule: Rule;
  readonly scopes: readonly string[];
}

/** Tokenizes one line (strings and comments never span lines in pt-recipe). */
function tokenizeLine(line: string): Token[] {
  const tokens: Token[] = [];
  const stack: Frame[] = [];
  const base = ['source.pt-recipe'];
  let pos = 0;
  const push = (text: string, scopes: readonly string[]): void => {
    if (text) tokens.push({ text, scopes });
  };
  /** Splits one match into tokens: captured groups get their capture's scope on top of `scopes`. */
  const emit = (m: RegExpExecArray, scopes: readonly string[], captures: Readonly<Record<string, Capture>> | undefined): void => {
    const start = m.index;
    const marks: { from: number; to: number; name: string }[] = [];
    for (const [key, cap] of Object.entries(captures ?? {})) {
      const span = m.indices?.[Number(key)];
      if (span && cap.name && span[1] > span[0]) marks.push({ from: span[0], to: span[1], name: cap.name });
    }
    marks.sort((a, b) => a.from - b.from || b.to - a.to);
    let at = start;
    for (const mark of marks) {
      if (mark.from < at) continue; // nested captures: the outer one is enough for these tests
      push(line.slice(at, mark.from), scopes);
      push(line.slice(mark.from, mark.to), [...scopes, mark.name]);
      at = mark.to;
    }
    push(line.slice(at, start + m[0].length), scopes);
  };
  while (pos <= line.length) {
    const frame = stack[stack.length - 1];
    const scopes = frame ? frame.scopes : base;
    const candidates: { rule: Rule | 'end'; re: RegExp }[] = [];
    if (frame) candidates.push({ rule: 'end', re: compile(frame.rule.end!) });
    for (const r of expand(frame ? (frame.rule.patterns ?? []) : (grammar.patterns ?? []))) candidates.push({ rule: r, re: compile((r.match ?? r.begin)!) });
    let best: { rule: Rule | 'end'; m: RegExpExecArray } | null = null;
    for (const c of candidates) {
      c.re.lastIndex = pos;
      const m = c.re.exec(line);
      if (m && (best === null || m.index < best.m.index)) best = { rule: c.rule, m };
    }
    if (best === null) {
      push(line.slice(pos), scopes);
      break;
    }
    const { rule, m } = best;
    push(line.slice(pos, m.index), scopes);
    if (rule === 'end') {
      emit(m, scopes, frame!.rule.endCaptures);
      stack.pop();
    } else if (rule.begin) {
      const inner = rule.name ? [...scopes, rule.name] : scopes;
      emit(m, inner, rule.beginCaptures);
      stack.push({ rule, scopes: inner });
    } else {
      emit(m, rule.name ? [...scopes, rule.name] : scopes, rule.captures);
    }
    const next = m.index + m[0].length;
    if (next === pos && rule !== 'end' && !(typeof rule === 'object' && rule.begin)) pos++;
    else if (next === pos && pos === line.length) break;
    else pos = next;
  }
  return tokens;
}

/** The scopes of the `nth` token whose text is exactly `text`. */
function scopesOf(line: string, text: string, nth = 0): readonly string[] {
  const found = tokenizeLine(line).filter((t) => t.text === text);
  const token = found[nth];
  if (!token) throw new Error(`no token '${text}' in ${JSON.stringify(tokenizeLine(line).map((t) => t.text))}`);
  return token.scopes;
}

function hasScope(line: string, text: string, scope: string, nth = 0): boolean {
  return scopesOf(line, text, nth).some((s) => s === scope || s.startsWith(`${scope}.`));
}

describe('TextMate grammar structure', () => {
  it('is a TextMate grammar for pt-recipe files', () => {
    expect(grammar.scopeName).toBe('source.pt-recipe');
    expect(grammar.fileTypes).toEqual(['pt-recipe']);
    expect(grammar.name).toBe('pt-recipe');
    expect(Array.isArray(grammar.patterns)).toBe(true);
    expect(typeof grammar.repository).toBe('object');
  });

  it('resolves every include', () => {
    for (const r of allRules()) {
      if (r.include) expect(grammar.repository[r.include.slice(1)], r.include).toBeDefined();
    }
  });

  it('gives every rule a match, a begin/end pair, patterns or an include, and scopes ending in .pt-recipe', () => {
    for (const r of allRules()) {
      const shapes = [r.match !== undefined, r.begin !== undefined, r.include !== undefined, r.match === undefined && r.begin === undefined && r.patterns !== undefined];
      expect(shapes.filter(Boolean).length, JSON.stringify(r).slice(0, 80)).toBe(1);
      if (r.begin !== undefined) expect(r.end, r.begin).toBeDefined();
      const names = [r.name, ...Object.values({ ...r.captures, ...r.beginCaptures, ...r.endCaptures }).map((c) => c.name)];
      for (const n of names) if (n !== undefined) expect(n).toMatch(/^[a-z-]+(\.[a-z0-9-]+)*\.pt-recipe$/);
    }
  });

  it('compiles every regex', () => {
    for (const r of allRules()) {
      for (const src of [r.match, r.begin, r.end]) if (src !== undefined) expect(() => compile(src), src).not.toThrow();
    }
  });

  it('avoids Oniguruma-only syntax', () => {
    for (const r of allRules()) {
      for (const src of [r.match, r.begin, r.end]) {
        if (src === undefined) continue;
        // \h, \A, \z, \G, possessive quantifiers and atomic groups are not JS.
        expect(src, src).not.toMatch(/\\[hHAzZG]|\(\?>|[*+?}]\+/);
      }
    }
  });

  it('lists exactly the lexer keywords in its keyword rule', () => {
    const match = grammar.repository['keyword']!.match!;
    const body = /^\\b\((.*)\)\\b$/.exec(match);
    expect(body, match).not.toBeNull();
    expect(body![1]!.split('|').sort()).toEqual([...KEYWORDS].sort());
  });

  it('names only built-ins that stdlib/README.md documents', () => {
    const readme = readFileSync(fileURLToPath(new URL('../../stdlib/README.md', import.meta.url)), 'utf8');
    const body = /^\\b\((.*)\)\\b/.exec(grammar.repository['builtin-function']!.match!)!;
    for (const name of body[1]!.split('|')) expect(readme, name).toMatch(new RegExp(`\\b${name}\\b`));
  });
});

describe('TextMate grammar scopes', () => {
  const header = 'stage sft: train policy on chats after pretrain {  # fine-tune "x" 3';
  const setting = '  optimizer = adamw(lr: 3e-4, betas: (0.9, 0.95), block: 64, steps: 1_000) # trailing';
  const str = '  out = "out/\\"x\\"\\n\\u{41}\\q" + 12';
  const block = 'block Linear(inp: dim, out: dim, bias: bool = true) where inp % 2 == 0 {';
  const param = '  param w: f32[..., 3 * out] = normal(0.02) if !bias && true';

  it('scopes comments, including what looks like code inside them', () => {
    expect(hasScope(header, '#', 'punctuation.definition.comment.pt-recipe')).toBe(true);
    expect(hasScope(header, ' fine-tune "x" 3', 'comment.line.number-sign.pt-recipe')).toBe(true);
    expect(hasScope(setting, ' trailing', 'comment.line.number-sign.pt-recipe')).toBe(true);
  });

  it('scopes strings and their escapes', () => {
    expect(hasScope(str, 'out/', 'string.quoted.double.pt-recipe')).toBe(true);
    expect(hasScope(str, '\\"', 'constant.character.escape.pt-recipe')).toBe(true);
    expect(hasScope(str, '\\n', 'constant.character.escape.pt-recipe')).toBe(true);
    expect(hasScope(str, '\\u{41}', 'constant.character.escape.pt-recipe')).toBe(true);
    expect(hasScope(str, '\\q', 'invalid.illegal.escape.pt-recipe')).toBe(true);
    // The string ends at its closing quote: what follows is code again.
    expect(hasScope(str, '+', 'keyword.operator.arithmetic.pt-recipe')).toBe(true);
    expect(hasScope(str, '12', 'constant.numeric.integer.pt-recipe')).toBe(true);
  });

  it('scopes numbers', () => {
    expect(hasScope(setting, '3e-4', 'constant.numeric.float.pt-recipe')).toBe(true);
    expect(hasScope(setting, '0.95', 'constant.numeric.float.pt-recipe')).toBe(true);
    expect(hasScope(setting, '64', 'constant.numeric.integer.pt-recipe')).toBe(true);
    expect(hasScope(setting, '1_000', 'constant.numeric.integer.pt-recipe')).toBe(true);
    expect(hasScope(param, '0.02', 'constant.numeric.float.pt-recipe')).toBe(true);
  });

  it('scopes keywords, and keywords used as labels or members as names', () => {
    expect(hasScope(header, 'stage', 'storage.type.stage.pt-recipe')).toBe(true);
    expect(hasScope(header, 'on', 'keyword.other.pt-recipe')).toBe(true);
    expect(hasScope(header, 'after', 'keyword.other.pt-recipe')).toBe(true);
    expect(hasScope(block, 'where', 'keyword.other.pt-recipe')).toBe(true);
    expect(hasScope(param, 'if', 'keyword.other.pt-recipe')).toBe(true);
    expect(hasScope(param, 'true', 'constant.language.boolean.pt-recipe')).toBe(true);
    expect(hasScope(setting, 'block', 'variable.parameter.pt-recipe')).toBe(true);
    expect(hasScope('  x = corpus.block', 'block', 'variable.other.member.pt-recipe')).toBe(true);
    expect(hasScope('import std.nn { Linear as L }', 'import', 'keyword.control.import.pt-recipe')).toBe(true);
    expect(hasScope('import std.nn { Linear as L }', 'std.nn', 'entity.name.namespace.pt-recipe')).toBe(true);
    expect(hasScope('import std.nn { Linear as L }', 'as', 'keyword.other.pt-recipe')).toBe(true);
    expect(hasScope('  eval every 200 on corpus.val', 'every', 'keyword.control.eval.pt-recipe')).toBe(true);
    expect(hasScope('deploy policy @ grpo to tensorrt {', 'tensorrt', 'support.constant.deploy-target.pt-recipe')).toBe(true);
  });

  it('scopes declared names and stage kinds', () => {
    expect(hasScope(header, 'sft', 'entity.name.function.stage.pt-recipe')).toBe(true);
    expect(hasScope(header, 'train', 'support.type.stage-kind.pt-recipe')).toBe(true);
    for (const kind of ['train', 'rl', 'generate', 'prune', 'quantize', 'eval']) {
      expect(hasScope(`stage s: ${kind} m {`, kind, 'support.type.stage-kind.pt-recipe'), kind).toBe(true);
    }
    expect(hasScope(block, 'Linear', 'entity.name.type.block.pt-recipe')).toBe(true);
    expect(hasScope('fn dpo(policy, beta: float = 0.1) -> f32 {', 'dpo', 'entity.name.function.pt-recipe')).toBe(true);
    expect(hasScope('model policy = Transformer(vocab: tok.vocab)', 'policy', 'entity.name.variable.pt-recipe')).toBe(true);
    expect(hasScope('model policy = Transformer(vocab: tok.vocab)', 'Transformer', 'variable.function.pt-recipe')).toBe(true);
    expect(hasScope(param, 'w', 'variable.other.member.pt-recipe')).toBe(true);
  });

  it('scopes dtypes, tensor types and types', () => {
    expect(hasScope(param, 'f32', 'support.type.dtype.pt-recipe')).toBe(true);
    expect(hasScope(param, '...', 'keyword.operator.ellipsis.pt-recipe')).toBe(true);
    expect(hasScope(param, '3', 'meta.type.tensor.pt-recipe')).toBe(true);
    expect(hasScope(param, '[', 'punctuation.definition.shape.begin.pt-recipe')).toBe(true);
    expect(hasScope(block, 'dim', 'support.type.primitive.pt-recipe')).toBe(true);
    expect(hasScope(block, 'bool', 'support.type.dtype.pt-recipe')).toBe(true);
    expect(hasScope('  forward(x: bf16[B, T]) -> i64[B] = x', 'i64', 'support.type.dtype.pt-recipe')).toBe(true);
  });

  it('scopes built-in functions and constants', () => {
    expect(hasScope(setting, 'adamw', 'support.function.builtin.pt-recipe')).toBe(true);
    expect(hasScope(param, 'normal', 'support.function.builtin.pt-recipe')).toBe(true);
    const att = '    let att = softmax(where(causal_mask(T), scores, -inf), axis: -1)';
    expect(hasScope(att, 'where', 'support.function.builtin.pt-recipe')).toBe(true);
    expect(hasScope(att, 'causal_mask', 'support.function.builtin.pt-recipe')).toBe(true);
    expect(hasScope(att, 'inf', 'support.constant.builtin.pt-recipe')).toBe(true);
    expect(hasScope(att, 'att', 'variable.other.readwrite.pt-recipe')).toBe(true);
  });

  it('scopes operators', () => {
    const ops = '  y = a @ w ** 2 - b / c >= d || !e -> f';
    expect(hasScope(ops, '@', 'keyword.operator.matmul.pt-recipe')).toBe(true);
    expect(hasScope(ops, '**', 'keyword.operator.arithmetic.power.pt-recipe')).toBe(true);
    expect(hasScope(ops, '-', 'keyword.operator.arithmetic.pt-recipe')).toBe(true);
    expect(hasScope(ops, '>=', 'keyword.operator.comparison.pt-recipe')).toBe(true);
    expect(hasScope(ops, '||', 'keyword.operator.logical.pt-recipe')).toBe(true);
    expect(hasScope(ops, '!', 'keyword.operator.logical.pt-recipe')).toBe(true);
    expect(hasScope(ops, '->', 'keyword.operator.arrow.pt-recipe')).toBe(true);
    expect(hasScope(ops, '=', 'keyword.operator.assignment.pt-recipe')).toBe(true);
  });
});
