/**
 * The last layer of error recovery: after Chevrotain and the grammar gates
 * have done their best, follow-up errors (the echo of one mistake) and errors
 * the lexer already explained are dropped.
 */
import type { CstNode, IToken } from 'chevrotain';
import type * as A from './ast.js';
import { isRealToken, tokenEnd } from './lexer.js';

/** One syntax error of a segment, positioned, before filtering. */
export interface Problem {
  /** Where the parser stood when it found the problem: decides whether a lexical error explains it. */
  readonly anchor: number;
  /** A misspelt declaration keyword at top level (`modle x = ...`): independent of any earlier error. */
  readonly misspeltDeclaration?: boolean;
  readonly offset: number;
  readonly span: A.Span;
  readonly message: string;
  readonly hint: string | null;
}

/** Start offsets of the real tokens of a CST, for deciding whether the parser made progress between two errors. */
function tokenOffsets(node: CstNode, out: number[]): number[] {
  for (const list of Object.values(node.children)) {
    for (const el of list) {
      if ('tokenType' in el) {
        if (isRealToken(el)) out.push(el.startOffset);
      } else tokenOffsets(el, out);
    }
  }
  return out;
}

/**
 * Drops follow-up errors. The first error of a declaration is always kept; a
 * later one only when the parser has demonstrably got back in step since the
 * previous error: an item (member, setting, let) began a new line after it
 * and at least two of that item's tokens parsed before the new error, or it
 * is a misspelt declaration keyword (`modle`). Errors right after text the
 * lexer already reported are dropped too.
 */
export function filterProblems(problems: Problem[], cst: CstNode, itemStarts: readonly number[], tokens: readonly IToken[], quiet: readonly number[]): Problem[] {
  if (problems.length === 0) return problems;
  const kept: Problem[] = [];
  let consumed: number[] | null = null;
  let previous: Problem | null = null;
  for (const p of problems) {
    if (isQuiet(p.anchor, tokens, quiet)) continue;
    const last = previous;
    previous = p;
    if (last !== null && !p.misspeltDeclaration) {
      // Measured from the previous error, kept or not: a dropped error is still a sign of being out of step.
      const start = lastBefore(itemStarts, p.anchor - 1);
      if (start === null || start <= last.anchor) continue;
      consumed ??= tokenOffsets(cst, []).sort((a, b) => a - b);
      if (countInRange(consumed, start, p.anchor) < 2) continue;
    }
    kept.push(p);
  }
  return kept;
}

/** The largest value of a sorted array that is at most `limit`, or null. */
function lastBefore(sorted: readonly number[], limit: number): number | null {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! <= limit) lo = mid + 1;
    else hi = mid;
  }
  return lo > 0 ? sorted[lo - 1]! : null;
}

/** How many values of a sorted array lie in [from, to). */
function countInRange(sorted: readonly number[], from: number, to: number): number {
  return lowerBound(sorted, to) - lowerBound(sorted, from);
}

function lowerBound(sorted: readonly number[], value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Whether an already-reported lexical problem lies between the error position and the token before it. */
function isQuiet(offset: number, tokens: readonly IToken[], quiet: readonly number[]): boolean {
  if (quiet.length === 0) return false;
  // The previous token ends at or before `offset`; find where it ends.
  let lo = 0;
  let hi = tokens.length - 1;
  let prevEnd = 0;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const t = tokens[mid]!;
    if (t.startOffset < offset) {
      prevEnd = Math.max(prevEnd, tokenEnd(t));
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return anyInRange(quiet, Math.min(prevEnd, offset), offset + 1);
}

/** Whether a sorted array holds a value in [from, to). */
function anyInRange(sorted: readonly number[], from: number, to: number): boolean {
  return countInRange(sorted, from, to) > 0;
}
