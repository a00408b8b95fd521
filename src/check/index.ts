/**
 * Entry point of the checker: parse, resolve imports, infer types and validate
 * stages for a set of recipe files. Never throws on bad input: every problem
 * is a diagnostic, and an internal failure of one check becomes an
 * `internal-error` diagnostic instead of a crash.
 */
import { join, resolve } from 'node:path';
import type { Recipe, Span } from '../language/ast.js';
import { DiagnosticBag, fileStartSpan, type Diagnostic, type SourceFile } from '../language/diagnostics.js';
import { Checker } from './checker.js';
import { displayPath, ModuleLoader, readFromDisk, type ModuleInfo, type ReadFile } from './modules.js';
import { CheckServices } from './services.js';
import { checkStages } from './stages.js';
import { summarizeModule, type DeclarationSummary } from './summary.js';

export type { DeclarationSummary } from './summary.js';
export type { ModuleInfo } from './modules.js';

export interface CheckOptions {
  /** Stop collecting after this many diagnostics (default 200). */
  readonly maxErrors?: number;
  /** Reads files (imports, data files); defaults to the disk. */
  readonly readFile?: ReadFile;
  /** The standard library folder (holding std/); found next to the package by default. */
  readonly stdlibDir?: string;
}

export interface CheckResult {
  /** Sorted by file and position. */
  readonly diagnostics: readonly Diagnostic[];
  readonly truncated: boolean;
  /** Every source file read (entry files, imports, data files with problems), by path as reported in diagnostics. */
  readonly sources: ReadonlyMap<string, SourceFile>;
  readonly recipes: ReadonlyMap<string, Recipe>;
  /** Declarations of the entry files, in source order. */
  readonly declarations: readonly DeclarationSummary[];
  /** The entry files' modules, with their resolved imports (what `ir/` lowers). */
  readonly entryModules: readonly ModuleInfo[];
}

/** Checks recipe text held in memory; `path` names it in diagnostics and anchors relative paths. */
export function checkSource(text: string, path: string, options: CheckOptions = {}): CheckResult {
  return checkEntries([{ text, path }], options);
}

/** Reads and checks recipe files. A file that cannot be read is a diagnostic, not an exception. */
export function checkFiles(paths: readonly string[], options: CheckOptions = {}): CheckResult {
  const read = options.readFile ?? readFromDisk;
  const unreadable: string[] = [];
  const entries: { text: string; path: string }[] = [];
  for (const p of paths) {
    const text = read(resolve(p));
    if (text === null) unreadable.push(p);
    else entries.push({ text, path: p });
  }
  const result = checkEntries(entries, options);
  if (unreadable.length === 0) return result;
  const missing: Diagnostic[] = unreadable.map((p) => ({
    code: 'file-not-found',
    severity: 'error',
    message: `cannot read ${p}`,
    span: fileStartSpan(p),
    related: [],
    hint: null,
  }));
  return { ...result, diagnostics: [...missing, ...result.diagnostics] };
}

function checkEntries(entries: readonly { text: string; path: string }[], options: CheckOptions): CheckResult {
  const bag = new DiagnosticBag(options.maxErrors);
  const read = options.readFile ?? readFromDisk;
  const loader = new ModuleLoader(bag, read, options.stdlibDir);
  const entryModules: ModuleInfo[] = [];
  for (const e of entries) {
    guarded(bag, e.path, () => entryModules.push(loader.loadText(e.text, e.path, resolve(e.path))));
  }
  const extraSources = new Map<string, SourceFile>();
  const services = new CheckServices(bag, read, loader.modules, extraSources);
  const checker = new Checker(bag, services);
  checker.allModules = () => loader.modules.values();
  services.stdlib = {
    load: (name) => {
      const absPath = join(loader.stdlibDir, 'std', `${name}.pt-recipe`);
      const loaded = loader.modules.get(absPath);
      if (loaded) return loaded;
      const text = read(absPath);
      return text === null ? null : loader.loadText(text, displayPath(absPath), absPath);
    },
    instantiate: (decl, module, args, span) => checker.instantiateBlock(decl, module, args, span),
  };

  const declarations: DeclarationSummary[] = [];
  for (const module of loader.modules.values()) {
    const span = module.recipe.loc;
    guarded(bag, module.path, () => {
      for (const decl of module.recipe.declarations) {
        guarded(bag, module.path, () => {
          if (decl.kind === 'BlockDecl') checker.checkBlockGeneric(decl, module);
          else if (decl.kind === 'FnDecl') checker.checkFnGeneric(decl, module);
          else if (decl.kind === 'ModelDecl' || decl.kind === 'TokenizerDecl' || decl.kind === 'DatasetDecl') checker.declType(module, decl);
        }, decl.loc);
      }
      const stages = checkStages(checker, module);
      for (const [decl, summary] of stages) module.facts.stageSettings.set(decl.name.name, summary.settings);
      if (entryModules.includes(module)) declarations.push(...summarizeModule(checker, module, stages));
    }, span);
  }

  for (const m of loader.modules.values()) {
    for (const [path, size] of services.tokenizerVocab) m.facts.tokenizerVocab.set(path, size);
    for (const [dir, facts] of services.pretrainedFacts) m.facts.pretrained.set(dir, facts);
  }
  const sources = new Map<string, SourceFile>();
  const recipes = new Map<string, Recipe>();
  for (const m of loader.modules.values()) {
    sources.set(m.path, m.source);
    recipes.set(m.path, m.recipe);
  }
  for (const [k, v] of extraSources) sources.set(k, v);
  return { diagnostics: bag.sorted(), truncated: bag.truncated, sources, recipes, declarations, entryModules };
}

/** Runs one check; an exception becomes an internal-error diagnostic so that the others still run. */
function guarded(bag: DiagnosticBag, file: string, body: () => void, span?: Span): void {
  try {
    body();
  } catch (e) {
    const where: Span = span ?? fileStartSpan(file);
    const stack = process.env.PTR_DEBUG ? `\n${(e as Error).stack ?? ''}` : '';
    bag.report('internal-error', `internal error in the checker: ${(e as Error).message ?? String(e)}${stack}`, where, {
      hint: 'this is a bug in pt-recipe; please report it with this recipe (PTR_DEBUG=1 shows where it failed)',
    });
  }
}
