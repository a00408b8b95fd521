/**
 * Operator precedence, loosest first: the table the EBNF's Expression comment
 * states, shared by the parser (precedence climbing) and the printer (where
 * parentheses are needed). Unary minus binds tighter than '*' and looser than
 * '**' (-x ** 2 is -(x ** 2)); '!' binds looser than comparisons.
 */
import type { BinaryOp } from './ast.js';

export const PREC_OR = 1;
export const PREC_AND = 2;
export const PREC_NOT = 3;
export const PREC_COMPARE = 4;
export const PREC_ADD = 5;
export const PREC_MUL = 6;
export const PREC_NEG = 7;
export const PREC_POW = 8;
export const PREC_POSTFIX = 9;
export const PREC_PRIMARY = 10;

export const BINARY_PRECEDENCE: Readonly<Record<BinaryOp, number>> = {
  '||': PREC_OR,
  '&&': PREC_AND,
  '==': PREC_COMPARE,
  '!=': PREC_COMPARE,
  '<': PREC_COMPARE,
  '<=': PREC_COMPARE,
  '>': PREC_COMPARE,
  '>=': PREC_COMPARE,
  '+': PREC_ADD,
  '-': PREC_ADD,
  '*': PREC_MUL,
  '/': PREC_MUL,
  '%': PREC_MUL,
  '@': PREC_MUL,
  '**': PREC_POW,
};
