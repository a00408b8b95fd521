/**
 * Loading and resolving modules: the entry recipes, `import std.…` from the
 * standard library, relative `import "./x.pt-recipe"`, name tables, duplicate
 * names and import cycles. Produces one `ModuleInfo` per file.
 */
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, realpathSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BlockDecl, Declaration, DeployDecl, Identifier, ImportDecl, Recipe, Span, StageDecl } from '../language/ast.js';
import { didYouMean, SourceFile, type DiagnosticBag } from '../language/diagnostics.js';
import { parseRecipe } from '../language/parser.js';
import { isBuiltinName } from './builtins.js';
import type { BlockChoice, PretrainedTensor } from './pretrainedArchitectures.js';
import type { Ty } from './types.js';

export type NamedDeclaration = Extract<Declaration, { readonly name: Identifier }>;

export type ImportedBinding =
  | { readonly kind: 'name'; readonly module: ModuleInfo; readonly name: string; readonly span: Span }
  | { readonly kind: 'namespace'; readonly module: ModuleInfo; readonly span: Span }
  /** A name whose import failed (already reported): uses of it stay quiet. */
  | { readonly kind: 'unresolved'; readonly span: Span };

export interface ModuleInfo {
  /** Path as shown in diagnostics. */
  readonly path: string;
  readonly absPath: string;
  readonly source: SourceFile;
  readonly recipe: Recipe;
  /** Values: tokenizers, models, datasets, blocks, fns. */
  readonly decls: Map<string, NamedDeclaration>;
  /**
   * Stages have a namespace of their own, so `stage sft` and the loss `sft`
   * coexist: stage names appear only after `after`, right of `model @`, and as `stage.output`.
   */
  readonly stages: Map<string, StageDecl>;
  readonly imports: Map<string, ImportedBinding>;
  readonly isStdlib: boolean;
  /** Where this module's recipe may read files (its entry file's): imports and data files outside it are refused. */
  readonly sandbox: ReadSandbox;
  /** What the checker established, for the phases after it (filled in by check/index.ts). */
  readonly facts: CheckedFacts;
}

/** Checker results that lowering and the stage modules read instead of re-deriving them. */
export interface CheckedFacts {
  /** Each stage's settings by stage name, as typed by the checker (constants carry their values). */
  readonly stageSettings: Map<string, ReadonlyMap<string, Ty>>;
  /** Vocabulary sizes of tokenizer files (`hf("tokenizer.json")`) by absolute path. */
  readonly tokenizerVocab: Map<string, number>;
  /** Each deploy with a known target format, and its settings as typed by the checker. */
  readonly deploys: { readonly decl: DeployDecl; readonly format: string; readonly settings: ReadonlyMap<string, Ty> }[];
  /** What pretrained("DIR") read (config, architecture, where each weight is), by absolute folder. */
  readonly pretrained: Map<string, PretrainedFacts>;
}

/** What the checker read from a checkpoint folder (`pretrained("DIR")`): lowering builds the model from it, the runtime loads its weights. */
export interface PretrainedFacts {
  /** Absolute path of the folder. */
  readonly dir: string;
  readonly modelType: string;
  readonly choice: BlockChoice;
  /** The std.nn block the model is, and the module declaring it. */
  readonly block: { readonly decl: BlockDecl; readonly module: ModuleInfo };
  /** config.json as read. */
  readonly config: Readonly<Record<string, unknown>>;
  /** Each parameter's tensor, by parameter name; null when the folder holds no weights (enough for `ptr check`). */
  readonly tensors: ReadonlyMap<string, PretrainedTensor> | null;
}

/** The folder holding `std/`, found by walking up from this file (works from src/ and from dist/). */
export function findStdlibDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'stdlib');
    if (existsSync(join(candidate, 'std'))) return candidate;
    dir = dirname(dir);
  }
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'stdlib');
}

export function displayPath(absPath: string): string {
  const rel = relative(process.cwd(), absPath);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : absPath;
}

/**
 * Reads a regular file as text — at most `maxBytes` of it — or returns null if
 * it is missing or not a regular file (a recipe naming /dev/zero must not hang the checker).
 */
export type ReadFile = (absPath: string, maxBytes?: number) => string | null;

export const readFromDisk: ReadFile = (absPath, maxBytes = Infinity) => {
  try {
    const stat = statSync(absPath);
    if (!stat.isFile()) return null;
    if (stat.size <= maxBytes) return readFileSync(absPath, 'utf8');
    const fd = openSync(absPath, 'r');
    try {
      const buffer = Buffer.alloc(maxBytes);
      return buffer.subarray(0, readSync(fd, buffer, 0, maxBytes, 0)).toString('utf8');
    } finally {
      closeSync(fd);
    }
  } catch {
    return null;
  }
};

/**
 * Folders outside the recipe's that the command line allows reading
 * (`--allow-read PATH`, repeatable); set by the CLI before checking.
 */
let allowedReads: readonly string[] = [];

/** Lets recipes read files under `paths` too (the CLI's `--allow-read`); replaces the previous list. */
export function allowReadsUnder(paths: readonly string[]): void {
  allowedReads = paths.map((p) => resolve(p));
}

/** The folder a recipe's project is rooted in: the nearest folder at or above `dir` with a package.json, else `dir`. */
export function projectFolder(dir: string): string {
  for (let d = resolve(dir); ; d = dirname(d)) {
    if (existsSync(join(d, 'package.json'))) return d;
    if (dirname(d) === d) return resolve(dir);
  }
}

/** File systems of the kernel's own state, never data (`/proc/self/environ` holds the environment's secrets). */
const KERNEL_FOLDERS = ['/proc', '/sys', '/dev'];

/**
 * Where a recipe may read files: under its own folder, its project's (the
 * nearest folder with a package.json, as a project that installs pt-recipe
 * has), the standard library, and what `--allow-read` names. Paths are compared
 * after following symbolic links, so a link cannot lead out. Devices, FIFOs,
 * sockets and the kernel's /proc, /sys and /dev are refused wherever they are.
 * So `ptr check` of a recipe someone else wrote cannot print /etc/passwd or the
 * environment into a log.
 */
export class ReadSandbox {
  private constructor(readonly roots: readonly string[]) {}

  /** The sandbox of an entry recipe at `absPath`. */
  static forRecipe(absPath: string, stdlibDir: string, allowed: readonly string[] = allowedReads): ReadSandbox {
    const dir = dirname(absPath);
    return new ReadSandbox([...new Set([dir, projectFolder(dir), stdlibDir, ...allowed].map(realPath))]);
  }

  /** A sandbox that allows everything but special files (for checks of text held in memory by a library user). */
  static open(): ReadSandbox {
    return new ReadSandbox([sep]);
  }

  /** Null when `absPath` may be read; otherwise why not, in words ("it is a character device, not a regular file"). */
  refusal(absPath: string): string | null {
    const real = realPath(absPath);
    for (const k of KERNEL_FOLDERS) {
      if (within(absPath, k) || within(real, k)) return `${k} holds the system's state, not data`;
    }
    let kind: string | null = null;
    try {
      const st = statSync(real);
      kind = st.isFile() || st.isDirectory() ? null : st.isCharacterDevice() ? 'a character device' : st.isBlockDevice() ? 'a block device' : st.isFIFO() ? 'a FIFO (named pipe)' : st.isSocket() ? 'a socket' : 'not a regular file';
    } catch {
      // Missing: the reader reports it as not found.
    }
    if (kind) return `it is ${kind}, not a regular file`;
    if (this.roots.some((root) => within(real, root))) return null;
    return 'it is outside the folders this recipe may read';
  }
}

/** `absPath` with symbolic links followed, as far as it exists. */
function realPath(absPath: string): string {
  try {
    return realpathSync(absPath);
  } catch {
    const parent = dirname(absPath);
    return parent === absPath ? absPath : join(realPath(parent), relative(parent, absPath));
  }
}

function within(path: string, folder: string): boolean {
  const rel = relative(folder, path);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/** The hint of a read-refused diagnostic. */
export function readRefusedHint(absPath: string, reason: string): string | undefined {
  if (!reason.startsWith('it is outside')) return undefined;
  return `a recipe reads files under its own folder and its project's (the nearest folder with a package.json); ptr --allow-read ${displayPath(absPath)} allows this one`;
}

export class ModuleLoader {
  readonly modules = new Map<string, ModuleInfo>();
  private readonly loading: string[] = [];
  readonly stdlibDir: string;

  constructor(
    private readonly bag: DiagnosticBag,
    private readonly readFile: ReadFile,
    stdlibDir?: string,
  ) {
    this.stdlibDir = stdlibDir ?? findStdlibDir();
  }

  /** Loads a module from text already in memory (an entry file). */
  loadText(text: string, path: string, absPath: string): ModuleInfo {
    const existing = this.modules.get(absPath);
    if (existing) return existing;
    const source = new SourceFile(path, text);
    const recipe = parseRecipe(text, path, this.bag);
    // An entry file gets its own sandbox; an imported one reads under its importer's.
    const importer = this.loading.length ? this.modules.get(this.loading[this.loading.length - 1]!) : undefined;
    const info: ModuleInfo = {
      path,
      absPath,
      source,
      recipe,
      sandbox: importer?.sandbox ?? ReadSandbox.forRecipe(absPath, this.stdlibDir),
      decls: new Map(),
      stages: new Map(),
      imports: new Map(),
      isStdlib: absPath.startsWith(this.stdlibDir),
      facts: { stageSettings: new Map(), tokenizerVocab: new Map(), deploys: [], pretrained: new Map() },
    };
    this.modules.set(absPath, info);
    this.collectDeclarations(info);
    this.loading.push(absPath);
    for (const decl of recipe.declarations) if (decl.kind === 'ImportDecl') this.resolveImport(info, decl);
    this.loading.pop();
    return info;
  }

  private collectDeclarations(info: ModuleInfo): void {
    for (const decl of info.recipe.declarations) {
      if (!('name' in decl)) continue;
      const name = decl.name.name;
      if (decl.kind === 'StageDecl') {
        const previous = info.stages.get(name);
        if (previous) {
          this.bag.report('duplicate-name', `stage '${name}' is declared twice`, decl.name.loc, {
            related: [{ message: 'first declared here', span: previous.name.loc }],
          });
        } else info.stages.set(name, decl);
        continue;
      }
      if (isBuiltinName(name)) {
        this.bag.report('shadows-builtin', `'${name}' is a built-in and cannot be redefined`, decl.name.loc, {
          hint: `choose another name for this ${declWord(decl)}`,
        });
        continue;
      }
      const previous = info.decls.get(name);
      if (previous) {
        this.bag.report('duplicate-name', `'${name}' is declared twice`, decl.name.loc, {
          related: [{ message: `first declared here as a ${declWord(previous)}`, span: previous.name.loc }],
        });
        continue;
      }
      info.decls.set(name, decl);
    }
  }

  /** Binds the names a failed import would have brought, so that their uses are not reported again. */
  private bindUnresolved(info: ModuleInfo, decl: ImportDecl): void {
    if (decl.names) {
      for (const item of decl.names) this.bind(info, (item.alias ?? item.name).name, { kind: 'unresolved', span: item.loc });
    } else if (decl.path.kind === 'ModulePath' && decl.path.segments.length > 0) {
      this.bind(info, decl.path.segments[decl.path.segments.length - 1]!.name, { kind: 'unresolved', span: decl.path.loc });
    }
  }

  private resolveImport(info: ModuleInfo, decl: ImportDecl): void {
    const target = this.locate(info, decl);
    if (!target) {
      this.bindUnresolved(info, decl);
      return;
    }
    const { absPath, label } = target;
    const cycleStart = this.loading.indexOf(absPath);
    if (cycleStart >= 0) {
      const chain = [...this.loading.slice(cycleStart), absPath].map((p) => displayPath(p)).join(' -> ');
      this.bag.report('import-cycle', `import cycle: ${chain}`, decl.path.loc, {
        hint: 'move the shared declarations into a module that both can import',
      });
      this.bindUnresolved(info, decl);
      return;
    }
    let module = this.modules.get(absPath);
    const refused = module ? null : info.sandbox.refusal(absPath);
    if (refused) {
      this.bag.report('read-refused', `cannot read module ${label} (${displayPath(absPath)}): ${refused}`, decl.path.loc, { hint: readRefusedHint(absPath, refused) ?? null });
      this.bindUnresolved(info, decl);
      return;
    }
    if (!module) {
      const text = this.readFile(absPath);
      if (text === null) {
        this.bag.report('unknown-module', `cannot read module ${label} (${displayPath(absPath)})`, decl.path.loc);
        this.bindUnresolved(info, decl);
        return;
      }
      module = this.loadText(text, displayPath(absPath), absPath);
    }
    if (decl.names === null) {
      const alias = decl.path.kind === 'ModulePath' ? decl.path.segments[decl.path.segments.length - 1]!.name : null;
      if (!alias) {
        this.bag.report('syntax-error', `a file import needs a list of names: import "…" { Name }`, decl.path.loc);
        return;
      }
      this.bind(info, alias, { kind: 'namespace', module, span: decl.path.loc });
      return;
    }
    for (const item of decl.names) {
      const name = item.name.name;
      if (!module.decls.has(name)) {
        this.bag.report('unknown-import', `module ${label} has no declaration '${name}'`, item.name.loc, {
          hint: didYouMean(name, module.decls.keys()),
        });
        this.bind(info, (item.alias ?? item.name).name, { kind: 'unresolved', span: item.loc });
        continue;
      }
      const local = item.alias ?? item.name;
      this.bind(info, local.name, { kind: 'name', module, name, span: local.loc });
    }
  }

  private bind(info: ModuleInfo, name: string, binding: ImportedBinding): void {
    if (name === '') return;
    // A failed import (already reported) neither clashes nor is clashed with.
    if (binding.kind === 'unresolved' && (info.decls.has(name) || info.imports.has(name))) return;
    if (info.imports.get(name)?.kind === 'unresolved') info.imports.delete(name);
    const clash = info.decls.get(name)?.name.loc ?? info.imports.get(name)?.span;
    if (clash) {
      this.bag.report('duplicate-name', `'${name}' is imported but already defined in this file`, binding.span, {
        related: [{ message: 'defined here', span: clash }],
        hint: `import it under another name: { ${name} as other_name }`,
      });
      return;
    }
    if (isBuiltinName(name)) {
      this.bag.report('shadows-builtin', `'${name}' is a built-in and cannot be imported under that name`, binding.span);
      return;
    }
    info.imports.set(name, binding);
  }

  private locate(info: ModuleInfo, decl: ImportDecl): { absPath: string; label: string } | null {
    if (decl.path.kind === 'StringLiteral') {
      const p = decl.path.value;
      if (!p.startsWith('./') && !p.startsWith('../')) {
        this.bag.report('unknown-module', `a file import must be relative ("./${p}"); library modules are written std.name`, decl.path.loc);
        return null;
      }
      return { absPath: resolve(dirname(info.absPath), p), label: `"${p}"` };
    }
    const segments = decl.path.segments.map((s) => s.name);
    const label = segments.join('.');
    if (segments[0] !== 'std' || segments.length < 2) {
      this.bag.report('unknown-module', `unknown module '${label}': library modules live under std (e.g. std.nn)`, decl.path.loc, {
        hint: 'import a file of your own with a relative path: import "./layers.pt-recipe" { Name }',
      });
      return null;
    }
    const absPath = join(this.stdlibDir, ...segments) + '.pt-recipe';
    if (!existsSync(absPath) && this.readFile(absPath) === null) {
      const available = this.stdlibModules();
      this.bag.report('unknown-module', `unknown module '${label}'`, decl.path.loc, {
        hint: didYouMean(label, available) ?? `the standard library has: ${available.join(', ')}`,
      });
      return null;
    }
    return { absPath, label };
  }

  private stdlibModules(): string[] {
    try {
      return readdirNames(join(this.stdlibDir, 'std')).map((f) => `std.${f.replace(/\.pt-recipe$/, '')}`);
    } catch {
      return [];
    }
  }
}

function readdirNames(dir: string): string[] {
  return readdirSync(dir).filter((f) => f.endsWith('.pt-recipe')).sort();
}

export function declWord(decl: Declaration): string {
  switch (decl.kind) {
    case 'TokenizerDecl':
      return 'tokenizer';
    case 'ModelDecl':
      return 'model';
    case 'DatasetDecl':
      return 'dataset';
    case 'BlockDecl':
      return 'block';
    case 'FnDecl':
      return 'fn';
    case 'StageDecl':
      return 'stage';
    case 'DeployDecl':
      return 'deploy';
    case 'ImportDecl':
      return 'import';
  }
}
