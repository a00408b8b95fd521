/**
 * Keeps grammar/pt-recipe.ebnf, the parser and grammar/examples/ in step:
 * every EBNF production is a parser rule and vice versa, every production is
 * used by some example, every example parses cleanly, and the lexer's
 * keywords are the EBNF Keyword production.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DiagnosticBag, formatDiagnostics, SourceFile } from '../../src/language/diagnostics.js';
import { KEYWORDS } from '../../src/language/lexer.js';
import { exercisedRules, parseRecipe, parserRuleNames } from '../../src/language/parser.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const ebnf = readFileSync(join(root, 'grammar', 'pt-recipe.ebnf'), 'utf8');
const examplesDir = join(root, 'grammar', 'examples');
const examples = readdirSync(examplesDir)
  .filter((f) => f.endsWith('.pt-recipe'))
  .sort()
  .map((f) => ({ name: f, text: readFileSync(join(examplesDir, f), 'utf8') }));

/** Lexical productions and token classes: implemented by the lexer, not by parser rules. */
const LEXICAL = new Set(['Identifier', 'Integer', 'Float', 'Exponent', 'String', 'Comment', 'Name', 'Keyword', 'BinaryOp']);

/** The grammar text without `(* ... *)` comments. */
const grammar = ebnf.replace(/\(\*[\s\S]*?\*\)/g, ' ');

/** Production name → right-hand side, in file order. */
const productions = new Map<string, string>();
for (const m of grammar.matchAll(/^([A-Z][A-Za-z]*)\s*=([\s\S]*?);\s*$/gm)) productions.set(m[1]!, m[2]!);

const syntactic = [...productions.keys()].filter((p) => !LEXICAL.has(p));

describe('grammar/pt-recipe.ebnf', () => {
  it('has the productions the tests expect to find', () => {
    expect(syntactic.length).toBeGreaterThan(35);
    for (const p of LEXICAL) expect(productions.has(p), p).toBe(true);
    expect(syntactic[0]).toBe('Recipe');
  });

  it('has a parser rule named like every production, and no other rules', () => {
    const rules = new Set(parserRuleNames());
    expect(syntactic.filter((p) => !rules.has(p))).toEqual([]);
    expect([...rules].filter((r) => !productions.has(r))).toEqual([]);
  });

  it('refers only to productions it defines', () => {
    const referenced = new Set<string>();
    for (const rhs of productions.values()) {
      for (const m of rhs.replace(/"[^"]*"|'[^']*'/g, ' ').matchAll(/\b[A-Z][A-Za-z]*\b/g)) referenced.add(m[0]);
    }
    // Letter, Digit, StringChar, Escape, AnyCharButNewline are described in words, not produced.
    const described = new Set(['Letter', 'Digit', 'StringChar', 'Escape', 'AnyCharButNewline']);
    expect([...referenced].filter((r) => !productions.has(r) && !described.has(r))).toEqual([]);
  });

  it('lists the same keywords as the lexer', () => {
    const words = [...productions.get('Keyword')!.matchAll(/"([^"]+)"/g)].map((m) => m[1]);
    expect(words).toEqual([...KEYWORDS]);
  });
});

describe('grammar/examples', () => {
  it('exist', () => {
    expect(examples.length).toBeGreaterThanOrEqual(8);
  });

  it.each(examples.map((e) => [e.name, e.text]))('%s parses without diagnostics', (name, text) => {
    const bag = new DiagnosticBag();
    parseRecipe(text, name, bag);
    const rendered = formatDiagnostics(bag.sorted(), new Map([[name, new SourceFile(name, text)]]));
    expect(rendered).toBe('');
  });

  it('together exercise every production', () => {
    const used = new Set<string>();
    for (const e of examples) for (const r of exercisedRules(e.text)) used.add(r);
    expect(syntactic.filter((p) => !used.has(p))).toEqual([]);
  });

  it('include a kitchen sink that exercises every production on its own', () => {
    const sink = examples.find((e) => e.name === 'kitchen-sink.pt-recipe');
    expect(sink).toBeDefined();
    const used = exercisedRules(sink!.text);
    expect(syntactic.filter((p) => !used.has(p))).toEqual([]);
  });
});
