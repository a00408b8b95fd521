/** Short source text of expressions, for messages. */
import type { Expression } from '../language/ast.js';
import { printExpression } from '../language/printer.js';

/** Shortened source text of an expression for messages. */
export function exprText(e: Expression): string {
  const text = printExpression(e);
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}
