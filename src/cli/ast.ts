/**
 * `ptr ast FILE`: the parsed tree as JSON, for tooling and for debugging the
 * parser. Parse errors go to stderr; the (recovered) tree is still printed.
 */
import { stripLocations } from '../language/ast.js';
import { DiagnosticBag, SourceFile } from '../language/diagnostics.js';
import { parseRecipe } from '../language/parser.js';
import { readSource, renderDiagnostics, type Io } from './io.js';

/** Options of `ptr ast`, as commander parses them (`--no-loc` sets `loc` to false). */
export interface AstCommandOptions {
  readonly loc?: boolean;
}

/** Runs `ptr ast`; returns the exit code (0 ok, 1 unreadable file or syntax errors). */
export function runAst(io: Io, path: string, options: AstCommandOptions): number {
  const read = readSource(path);
  if ('diagnostic' in read) {
    io.err(renderDiagnostics(io, [read.diagnostic], new Map()));
    return 1;
  }
  const bag = new DiagnosticBag();
  const recipe = parseRecipe(read.text, path, bag);
  const tree = options.loc === false ? stripLocations(recipe) : recipe;
  io.out(`${JSON.stringify(tree, null, 2)}\n`);
  if (bag.items.length > 0) io.err(renderDiagnostics(io, bag.sorted(), new Map([[path, new SourceFile(path, read.text)]])));
  return bag.hasErrors ? 1 : 0;
}
