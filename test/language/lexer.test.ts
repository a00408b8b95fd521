import { describe, expect, it } from 'vitest';
import { DiagnosticBag, SourceFile } from '../../src/language/diagnostics.js';
import { KEYWORDS, lexRecipe } from '../../src/language/lexer.js';

/** Lexes `text`; returns `[tokenType, image]` pairs, comments, and diagnostics as `{ code, line, column }`. */
function lex(text: string) {
  const bag = new DiagnosticBag();
  const result = lexRecipe(text, new SourceFile('t.pt-recipe', text), bag);
  return {
    tokens: result.tokens.map((t) => [t.tokenType.name, t.image]),
    values: result.tokens.map((t) => t.payload as unknown),
    comments: result.comments,
    diagnostics: bag.sorted().map((d) => ({ code: d.code, line: d.span.line, column: d.span.column })),
    messages: bag.sorted().map((d) => d.message),
  };
}

describe('keywords and names', () => {
  it('lists the keywords of the EBNF Keyword production', () => {
    expect(KEYWORDS).toEqual([
      'import', 'as', 'tokenizer', 'model', 'dataset', 'block', 'fn', 'stage', 'deploy', 'param',
      'forward', 'let', 'where', 'if', 'on', 'after', 'to', 'every', 'true', 'false',
    ]);
  });

  it('lexes every keyword as its own token type', () => {
    const { tokens } = lex(KEYWORDS.join(' '));
    expect(tokens.map(([, image]) => image)).toEqual([...KEYWORDS]);
    for (const [type, image] of tokens) expect(type).toBe(`Kw${image![0]!.toUpperCase()}${image!.slice(1)}`);
  });

  it('keeps identifiers that merely start with a keyword whole', () => {
    expect(lex('imports model_2 tokenizers format to_x iff _private').tokens).toEqual([
      ['Identifier', 'imports'],
      ['Identifier', 'model_2'],
      ['Identifier', 'tokenizers'],
      ['Identifier', 'format'],
      ['Identifier', 'to_x'],
      ['Identifier', 'iff'],
      ['Identifier', '_private'],
    ]);
  });

  it('treats eval as a contextual word, not a keyword', () => {
    expect(lex('eval every evaluate').tokens).toEqual([
      ['EvalWord', 'eval'],
      ['KwEvery', 'every'],
      ['Identifier', 'evaluate'],
    ]);
    expect(KEYWORDS).not.toContain('eval');
  });
});

describe('numbers', () => {
  it('tells integers from floats', () => {
    expect(lex('64 1_000 3e-4 0.95 1e5 2.5E+3 7').tokens).toEqual([
      ['Integer', '64'],
      ['Integer', '1_000'],
      ['Float', '3e-4'],
      ['Float', '0.95'],
      ['Float', '1e5'],
      ['Float', '2.5E+3'],
      ['Integer', '7'],
    ]);
  });

  it('does not read a member access after an integer as a float', () => {
    expect(lex('x[1].y').tokens.map(([t]) => t)).toEqual(['Identifier', 'LBracket', 'Integer', 'RBracket', 'Dot', 'Identifier']);
  });
});

describe('strings', () => {
  it('decodes escapes', () => {
    const { tokens, values, diagnostics } = lex(String.raw`"a\"b\\c\nd\te\u{41}\u{1F600}"`);
    expect(tokens).toEqual([['String', String.raw`"a\"b\\c\nd\te\u{41}\u{1F600}"`]]);
    expect(values).toEqual(['a"b\\c\nd\teA😀']);
    expect(diagnostics).toEqual([]);
  });

  it('reports each invalid escape at its position and keeps lexing', () => {
    const { tokens, diagnostics, messages } = lex(String.raw`x = "ok\q then \u{110000} \u{zz}" y`);
    expect(tokens.map(([t]) => t)).toEqual(['Identifier', 'Equals', 'String', 'Identifier']);
    expect(diagnostics).toEqual([
      { code: 'invalid-escape', line: 1, column: 8 },
      { code: 'invalid-escape', line: 1, column: 16 },
      { code: 'invalid-escape', line: 1, column: 27 },
    ]);
    expect(messages[0]).toBe(String.raw`invalid escape '\q'`);
  });

  it('reports an unterminated string once and ends it at the line break', () => {
    const { tokens, values, diagnostics } = lex('a = "no end\nb = 1');
    expect(tokens).toEqual([
      ['Identifier', 'a'],
      ['Equals', '='],
      ['UnterminatedString', '"no end'],
      ['Identifier', 'b'],
      ['Equals', '='],
      ['Integer', '1'],
    ]);
    expect(values[2]).toBe('no end');
    expect(diagnostics).toEqual([{ code: 'unterminated-string', line: 1, column: 5 }]);
  });

  it('handles an unterminated string ending in a backslash at the end of input', () => {
    expect(lex('"abc\\').diagnostics).toEqual([{ code: 'unterminated-string', line: 1, column: 1 }]);
  });
});

describe('operators and punctuation', () => {
  it('prefers the longer operator', () => {
    const { tokens } = lex('-> ... ** == != <= >= && || - . * = ! < > + / % @ ( ) [ ] { } , :');
    expect(tokens.map(([, image]) => image)).toEqual([
      '->', '...', '**', '==', '!=', '<=', '>=', '&&', '||', '-', '.', '*', '=', '!', '<', '>', '+', '/', '%', '@',
      '(', ')', '[', ']', '{', '}', ',', ':',
    ]);
  });

  it('splits x[...,:T] and a->b without spaces', () => {
    expect(lex('x[...,:T]').tokens.map(([, i]) => i)).toEqual(['x', '[', '...', ',', ':', 'T', ']']);
    expect(lex('a->b').tokens.map(([, i]) => i)).toEqual(['a', '->', 'b']);
  });
});

describe('comments and trivia', () => {
  it('collects comments with their text after # and their spans', () => {
    const text = '# first\nmodel m = X()   # trailing\r\n#\n';
    const { tokens, comments } = lex(text);
    expect(tokens.map(([, i]) => i)).toEqual(['model', 'm', '=', 'X', '(', ')']);
    expect(comments.map((c) => [c.text, c.loc.line, c.loc.column, c.loc.start, c.loc.end])).toEqual([
      [' first', 1, 1, 0, 7],
      [' trailing', 2, 17, 24, 34],
      ['', 3, 1, 36, 37],
    ]);
  });

  it('skips tabs, carriage returns and a byte order mark', () => {
    expect(lex('\uFEFFa\t=\r\n1').tokens.map(([, i]) => i)).toEqual(['a', '=', '1']);
  });
});

describe('invalid characters', () => {
  it('reports one diagnostic per run of invalid characters', () => {
    const { tokens, diagnostics, messages } = lex('a = b $$$ c ; d\n€€');
    expect(tokens.map(([, i]) => i)).toEqual(['a', '=', 'b', 'c', 'd']);
    expect(diagnostics).toEqual([
      { code: 'invalid-character', line: 1, column: 7 },
      { code: 'invalid-character', line: 1, column: 13 },
      { code: 'invalid-character', line: 2, column: 1 },
    ]);
    expect(messages).toEqual(["invalid characters '$$$'", "invalid character ';'", "invalid characters '€€'"]);
  });

  it('shows control characters escaped', () => {
    expect(lex('a\u0000\u0001b').messages).toEqual(["invalid characters '\\u{0}\\u{1}'"]);
  });

  it('lexes arbitrary binary input without throwing', () => {
    let text = '';
    for (let i = 0; i < 5000; i++) text += String.fromCharCode((i * 7919) % 65536);
    expect(() => lex(text)).not.toThrow();
  });
});
