/**
 * The generated reference of the standard library (`stdlib/REFERENCE.md`):
 * every block and fn of each module under `stdlib/std/`, with its signature as
 * the checker summarises it (`ptr types`) and the first sentence of the comment
 * above it. Reads the stdlib through the checker and writes nothing;
 * `npm run docs` (src/cli/docs.ts) writes the file, and
 * test/stdlib/reference.test.ts fails when the committed file is stale.
 */
import { readdirSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import type { BlockDecl, Comment, Declaration, FnDecl, ForwardMember, ParamMember } from '../language/ast.js';
import { formatDiagnostics } from '../language/diagnostics.js';
import { printExpression, printParameter, printType } from '../language/printer.js';
import { checkFiles, type DeclarationSummary, type ModuleInfo } from './index.js';
import { findStdlibDir } from './modules.js';

export interface StdlibReferenceOptions {
  /** The folder holding `std/`; found next to the package by default. */
  readonly stdlibDir?: string;
}

/** What the summary of `ptr types` says about one block or fn, taken apart. */
interface CheckedSignature {
  /** `(inp: dim, out: dim, bias: bool = true)`, plus ` -> f32` for a fn. */
  readonly head: string;
  /** `forward(x: f32[..., inp]) -> f32[..., out]` when the checker inferred it generically. */
  readonly forward: string | null;
  /** `inp * out + out` when the checker counted the learned parameters. */
  readonly paramCount: string | null;
  /** The checker checks the body per call or instantiation (untyped or `model` parameters). */
  readonly perUse: boolean;
}

const SUMMARY_SEPARATOR = ' · ';
const PARAMS_SUFFIX = ' params';

/**
 * Returns the Markdown reference of every module under `stdlibDir/std/`.
 * Throws if the standard library has diagnostics, since a reference of code
 * that does not check would describe nothing the checker accepts.
 */
export function stdlibReference(options: StdlibReferenceOptions = {}): string {
  const stdlibDir = options.stdlibDir ?? findStdlibDir();
  const stdDir = join(stdlibDir, 'std');
  const files = readdirSync(stdDir)
    .filter((f) => f.endsWith('.pt-recipe'))
    .sort()
    .map((f) => join(stdDir, f));
  const result = checkFiles(files, { stdlibDir });
  if (result.diagnostics.length > 0) {
    throw new Error(`the standard library has diagnostics:\n${formatDiagnostics(result.diagnostics, result.sources)}`);
  }
  const out: string[] = [
    '# Standard library reference',
    '',
    '<!-- Generated from stdlib/std/*.pt-recipe by `npm run docs` (src/check/stdlibReference.ts); do not edit. -->',
    '',
    'Every block and function of the standard library, with its signature as the checker',
    'sees it (what `ptr types` prints) and the first sentence of the comment above it in the',
    'source. Types, built-ins and stage settings are described in [README.md](README.md).',
    'A parameter without a type is generic: the body is checked at each call with the',
    "argument's actual type. `B`, `T` and other symbols in a `forward` signature are bound",
    'by the arguments.',
  ];
  for (const module of result.entryModules) {
    const summaries = result.declarations.filter((d) => d.file === module.path);
    out.push('', ...moduleSection(module, relative(stdlibDir, module.absPath), summaries));
  }
  return `${out.join('\n')}\n`;
}

function moduleSection(module: ModuleInfo, relPath: string, summaries: readonly DeclarationSummary[]): string[] {
  const name = `std.${basename(relPath, '.pt-recipe')}`;
  const decls = module.recipe.declarations.filter((d): d is BlockDecl | FnDecl => d.kind === 'BlockDecl' || d.kind === 'FnDecl');
  const lines = [`## ${name}`, ''];
  const tagline = moduleTagline(module.recipe.comments, name);
  if (tagline) lines.push(`${tagline} Source: [${relPath}](${relPath}).`, '');
  lines.push('```', `import ${name} { ${decls.map((d) => d.name.name).join(', ')} }`, '```', '');
  lines.push('| name | what it is |', '|---|---|');
  const entries = decls.map((d) => ({ decl: d, summary: docSentence(module.recipe.comments, d), checked: checkedSignature(d, summaries) }));
  for (const { decl, summary } of entries) {
    lines.push(`| [\`${decl.name.name}\`](#${anchor(decl.name.name)}) | ${tableCell(summary)} |`);
  }
  for (const { decl, summary, checked } of entries) {
    lines.push('', `### ${decl.name.name}`, '', '```', ...signatureLines(decl, checked), '```', '', summary);
    const notes = entryNotes(decl, checked);
    if (notes.length > 0) lines.push('', ...notes);
  }
  return lines;
}

/** `neural-network layers, written in pt-recipe itself.` from the file's first line `# std.nn — …`. */
function moduleTagline(comments: readonly Comment[], name: string): string | null {
  const first = comments[0];
  if (!first || first.loc.line !== 1) return null;
  const text = first.text.replace(/^#?\s*/, '');
  const prefix = `${name} — `;
  if (!text.startsWith(prefix)) return null;
  const rest = text.slice(prefix.length);
  return rest.charAt(0).toUpperCase() + rest.slice(1);
}

/** The comment lines directly above a declaration (no blank line between), joined. */
function docComment(comments: readonly Comment[], decl: Declaration): string {
  const byLine = new Map(comments.filter((c) => c.loc.column === 1).map((c) => [c.loc.line, c]));
  const texts: string[] = [];
  for (let line = decl.loc.line - 1; byLine.has(line); line--) texts.unshift(byLine.get(line)!.text.replace(/^#\s?/, '').trim());
  return texts.join(' ').trim();
}

/** The first sentence of the doc comment ("e.g." and "i.e." do not end one). */
function docSentence(comments: readonly Comment[], decl: BlockDecl | FnDecl): string {
  const doc = docComment(comments, decl);
  if (!doc) throw new Error(`${decl.loc.file}:${decl.loc.line}: '${decl.name.name}' has no comment above it to describe it in the reference`);
  const end = /\.(\s|$)/g;
  for (let m = end.exec(doc); m; m = end.exec(doc)) {
    const upTo = doc.slice(0, m.index);
    if (!/\b(e\.g|i\.e)$/.test(upTo)) return `${upTo}.`;
  }
  return doc;
}

function checkedSignature(decl: BlockDecl | FnDecl, summaries: readonly DeclarationSummary[]): CheckedSignature {
  const summary = summaries.find((s) => s.name === decl.name.name && s.line === decl.loc.line);
  const parts = summary?.type.split(SUMMARY_SEPARATOR) ?? [];
  const head = parts[0];
  if (!head?.startsWith('(')) {
    throw new Error(`no checker summary of the form '(params) · …' for ${decl.name.name} (got ${JSON.stringify(summary?.type)})`);
  }
  const count = parts.find((p) => p.endsWith(PARAMS_SUFFIX));
  return {
    head,
    forward: parts.find((p) => p.startsWith('forward(')) ?? null,
    paramCount: count ? count.slice(0, -PARAMS_SUFFIX.length) : null,
    perUse: parts.some((p) => p.startsWith('checked when instantiated') || p.startsWith('generic:')),
  };
}

function whereClause(conditions: BlockDecl['where']): string {
  return conditions.length > 0 ? ` where ${conditions.map(printExpression).join(', ')}` : '';
}

function signatureLines(decl: BlockDecl | FnDecl, checked: CheckedSignature): string[] {
  if (decl.kind === 'FnDecl') return [`fn ${decl.name.name}${checked.head}${whereClause(decl.where)}`];
  const lines = [`block ${decl.name.name}${checked.head}${whereClause(decl.where)}`];
  const forward = decl.members.find((m): m is ForwardMember => m.kind === 'ForwardMember');
  if (forward) {
    // A block checked only when instantiated has no inferred forward; its declared one is what callers see.
    const signature = checked.forward ?? `forward(${forward.params.map(printParameter).join(', ')}) -> ${printType(forward.returnType)}`;
    lines.push(`  ${signature}${whereClause(forward.where)}`);
  }
  return lines;
}

function entryNotes(decl: BlockDecl | FnDecl, checked: CheckedSignature): string[] {
  const notes: string[] = [];
  if (checked.paramCount) notes.push(`Learned parameters: \`${checked.paramCount}\`.`);
  // Its own tensors with their initialisers, which is where per-parameter options such as weight decay are written.
  const own = decl.kind === 'BlockDecl' ? decl.members.filter((m): m is ParamMember => m.kind === 'ParamMember') : [];
  if (own.length > 0) notes.push(`Own tensors: ${own.map((p) => `\`${paramText(p)}\``).join(', ')}.`);
  if (checked.perUse) {
    const generic = decl.params.filter((p) => !p.type || (p.type.kind === 'TensorTypeNode' && p.type.dims === null && p.type.name.name === 'model'));
    const names = generic.map((p) => `\`${p.name.name}\``).join(', ');
    notes.push(
      decl.kind === 'BlockDecl'
        ? `Checked when instantiated, with the model${generic.length === 1 ? '' : 's'} passed as ${names}.`
        : `Generic in ${names}: checked at each call with the arguments' types.`,
    );
  }
  return notes;
}

/** `b: f32[out] = zeros() if bias`, as written in the block. */
function paramText(p: ParamMember): string {
  return `${p.name.name}: ${printType(p.type)} = ${printExpression(p.init)}${p.condition ? ` if ${printExpression(p.condition)}` : ''}`;
}

/** GitHub's heading anchor for a plain identifier heading. */
function anchor(name: string): string {
  return name.toLowerCase();
}

function tableCell(text: string): string {
  return text.replace(/\|/g, '\\|');
}
