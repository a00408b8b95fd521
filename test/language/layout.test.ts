/** The recipes the project ships are kept in `ptr fmt` layout, so the formatter's output is what users see in examples. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DiagnosticBag } from '../../src/language/diagnostics.js';
import { parseRecipe } from '../../src/language/parser.js';
import { formatRecipe } from '../../src/language/printer.js';
import { recipesUnder } from '../../src/cli/io.js';

describe('shipped recipes are formatted', () => {
  for (const path of ['stdlib', 'examples', 'grammar/examples'].flatMap(recipesUnder)) {
    it(path, () => {
      const text = readFileSync(path, 'utf8');
      const bag = new DiagnosticBag();
      const recipe = parseRecipe(text, path, bag);
      expect(bag.items).toEqual([]);
      expect(formatRecipe(recipe, text)).toBe(text);
    });
  }
});
