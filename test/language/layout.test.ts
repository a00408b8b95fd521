/** The recipes the project ships are kept in `ptr fmt` layout, so the formatter's output is what users see in examples. */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DiagnosticBag } from '../../src/language/diagnostics.js';
import { parseRecipe } from '../../src/language/parser.js';
import { formatRecipe } from '../../src/language/printer.js';

function recipes(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return recipes(path);
    return name.endsWith('.pt-recipe') ? [path] : [];
  });
}

describe('shipped recipes are formatted', () => {
  for (const path of ['stdlib', 'examples', 'grammar/examples'].flatMap(recipes)) {
    it(path, () => {
      const text = readFileSync(path, 'utf8');
      const bag = new DiagnosticBag();
      const recipe = parseRecipe(text, path, bag);
      expect(bag.items).toEqual([]);
      expect(formatRecipe(recipe, text)).toBe(text);
    });
  }
});
