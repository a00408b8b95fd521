/**
 * What built-ins need from outside the type system: data files named relative
 * to the recipe (read and validated at check time, so a malformed JSONL row is
 * reported before training starts), dataset field tables, and model wrappers
 * (`stack`, `lora`).
 */
import { dirname, resolve } from 'node:path';
import type { Span, StageDecl } from '../language/ast.js';
import { didYouMean, SourceFile, type DiagnosticBag } from '../language/diagnostics.js';
import type { BlockDecl } from '../language/ast.js';
import type { BuiltinServices, CallSite, CharTokenizer, DataFile, EncodablePiece } from './builtins.js';
import { pretrainedRule, type PretrainedServices } from './pretrained.js';
import { formatDim, mulDims, symDim, type Dim } from './dims.js';
import { displayPath, readRefusedHint, type ModuleInfo, type PretrainedFacts, type ReadFile, type ReadSandbox } from './modules.js';
import { DATASET_FORMATS, isDatasetFormat, type BatchDim } from './dataSchema.js';
import { latestTrainers, stageAncestors, stageTrainedModels } from './stages.js';
import type { SplitSizes } from './splits.js';
import { ERROR, formatType, shapesEqual, tensor, type DatasetFormat, type ModelInstance, type Ty } from './types.js';

/** The most JSONL problems reported per file before summarising the rest. */
const MAX_ROW_ERRORS = 5;

/** Batch fields of each dataset format (from the data schema); `B` is the batch size, `T` and `P` sequence lengths. */
export function datasetFields(format: string, seqLen: Dim | null): Map<string, Ty> | null {
  if (!isDatasetFormat(format)) return null;
  const dims: Record<BatchDim, Dim> = { B: symDim('B'), T: seqLen ?? symDim('T'), P: symDim('P') };
  return new Map(DATASET_FORMATS[format].fields.map((f) => [f.name, tensor(f.dtype, f.dims.map((d) => dims[d]))]));
}

/** Every submodule name in a model tree (for LoRA targets). */
function submoduleNames(model: ModelInstance, out = new Set<string>()): Set<string> {
  for (const [name, m] of model.members) {
    if (m.k !== 'submodule') continue;
    out.add(name);
    submoduleNames(m.model, out);
  }
  return out;
}

/** Every submodule called `name` anywhere in a model tree. */
function submodulesNamed(model: ModelInstance, name: string, out: ModelInstance[] = []): ModelInstance[] {
  for (const [member, m] of model.members) {
    if (m.k !== 'submodule') continue;
    if (member === name) out.push(m.model);
    submodulesNamed(m.model, name, out);
  }
  return out;
}

/** Whether a layer has the weight `w: [in, out]` a LoRA adapter is added beside. */
function hasLoraWeight(layer: ModelInstance): boolean {
  const w = layer.members.get('w');
  return w?.k === 'param' && !w.type.shape.ellipsis && w.type.shape.dims.length === 2;
}

/** What the checker lends built-ins that build models from library blocks (pretrained(...)). */
export interface StdlibAccess {
  /** The module std.`name`, loaded if no recipe imports it; null when it cannot be read. */
  load(name: string): ModuleInfo | null;
  instantiate(decl: BlockDecl, module: ModuleInfo, args: ReadonlyMap<string, Ty>, callSpan: Span): ModelInstance | null;
}

export class CheckServices implements BuiltinServices, PretrainedServices {
  constructor(
    private readonly bag: DiagnosticBag,
    private readonly readFile: ReadFile,
    private readonly modules: ReadonlyMap<string, ModuleInfo>,
    /** Data files that had problems, so the renderer can show their lines. */
    readonly extraSources: Map<string, SourceFile>,
  ) {}

  private baseDir(span: Span): string {
    for (const m of this.modules.values()) if (m.path === span.file) return dirname(m.absPath);
    return dirname(resolve(span.file));
  }

  /** Vocabulary sizes of the tokenizer files read, by absolute path (a checker fact lowering reads). */
  readonly tokenizerVocab = new Map<string, number>();

  noteTokenizerVocab(absPath: string, size: number): void {
    this.tokenizerVocab.set(absPath, size);
  }

  /** What pretrained(...) read, by absolute folder (a checker fact lowering and the runtime read). */
  readonly pretrainedFacts = new Map<string, PretrainedFacts>();

  notePretrained(facts: PretrainedFacts): void {
    this.pretrainedFacts.set(facts.dir, facts);
  }

  pretrained(site: CallSite): Ty {
    return pretrainedRule(site, this);
  }

  /** Set by check/index.ts: loading a standard-library module, and the checker's instantiation of blocks. */
  stdlib: StdlibAccess | null = null;

  stdBlock(module: string, block: string, site: CallSite): { decl: BlockDecl; module: ModuleInfo } | null {
    const info = this.stdlib?.load(module) ?? null;
    const decl = info?.decls.get(block);
    if (info && decl?.kind === 'BlockDecl') return { decl, module: info };
    site.report('unknown-module', `${site.name}: the standard library has no block std.${module}.${block}`, site.span);
    return null;
  }

  instantiate(decl: BlockDecl, module: ModuleInfo, args: ReadonlyMap<string, Ty>, site: CallSite): ModelInstance | null {
    if (!this.stdlib) throw new Error('CheckServices.stdlib is not set');
    return this.stdlib.instantiate(decl, module, args, site.span);
  }

  /** The sandbox of the recipe a span is in. */
  private sandbox(span: Span): ReadSandbox | null {
    for (const m of this.modules.values()) if (m.path === span.file) return m.sandbox;
    return null;
  }

  readDataFile(path: string, span: Span, maxBytes = Infinity): DataFile | null {
    const absPath = resolve(this.baseDir(span), path);
    const refused = this.sandbox(span)?.refusal(absPath) ?? null;
    if (refused) {
      this.bag.report('read-refused', `cannot read "${path}": ${refused}`, span, { hint: readRefusedHint(absPath, refused) ?? null });
      return null;
    }
    // One byte more than asked tells whether the file was cut.
    const text = this.readFile(absPath, maxBytes === Infinity ? Infinity : maxBytes + 1);
    if (text === null) {
      this.bag.report('file-not-found', `cannot read "${path}" (looked for ${displayPath(absPath)})`, span, {
        hint: 'paths in a recipe are relative to the recipe file',
      });
      return null;
    }
    // Counted in bytes, as the cap is: a cut file of multi-byte characters can be fewer UTF-16 units than maxBytes.
    const truncated = Buffer.byteLength(text, 'utf8') > maxBytes;
    return { text: truncated ? text.slice(0, maxBytes) : text, absPath, truncated };
  }

  /** A span in a data file; the file becomes a source so the diagnostic shows its line. */
  private dataSpan(file: DataFile, offset: number, length: number): Span {
    const path = displayPath(file.absPath);
    let source = this.extraSources.get(path);
    if (!source) this.extraSources.set(path, (source = new SourceFile(path, file.text)));
    return source.span(offset, offset + Math.max(1, length));
  }

  validateJsonl(file: DataFile, format: string, span: Span, tokenizer: CharTokenizer | null): number | null {
    const required = DATASET_FORMATS[format as DatasetFormat]?.requiredKeys;
    if (!required?.length) return null;
    const path = displayPath(file.absPath);
    const at = (offset: number, length: number): Span => this.dataSpan(file, offset, length);
    // The text of valid rows, for the alphabet check (located at the start of their line).
    const texts: EncodablePiece[] = [];
    let problems = 0;
    let rows = 0;
    const fail = (offset: number, length: number, message: string): void => {
      problems++;
      if (problems <= MAX_ROW_ERRORS) {
        this.bag.report('bad-jsonl', message, at(offset, length), { related: [{ message: `read as ${format} data here`, span }] });
      }
    };
    let offset = 0;
    const lines = file.text.split('\n');
    // The last line of a file cut at the size cap is incomplete: leave it out.
    if (file.truncated) lines.pop();
    for (const line of lines) {
      const start = offset;
      offset += line.length + 1;
      const trimmed = line.trim();
      if (trimmed === '') continue;
      rows++;
      let row: unknown;
      try {
        row = JSON.parse(trimmed);
      } catch (e) {
        const position = /position (\d+)/.exec((e as Error).message);
        const column = position ? Number(position[1]) + (line.length - line.trimStart().length) : 0;
        fail(start + column, 1, `not valid JSON: ${(e as Error).message.replace(/^JSON\.parse: /, '')}`);
        continue;
      }
      if (row === null || typeof row !== 'object' || Array.isArray(row)) {
        fail(start, line.length, `each line must be a JSON object with ${required.map((k) => `"${k}"`).join(', ')}`);
        continue;
      }
      const record = row as Record<string, unknown>;
      const missing = required.filter((k) => !(k in record));
      if (missing.length) {
        fail(start, line.length, `a ${format} row needs ${missing.map((k) => `"${k}"`).join(', ')}${didYouMeanKeys(missing, Object.keys(record))}`);
        continue;
      }
      const wrong = required.find((k) => (format === 'chat' ? !Array.isArray(record[k]) : typeof record[k] !== 'string'));
      if (wrong) {
        fail(start, line.length, `"${wrong}" must be ${format === 'chat' ? 'an array of {"role", "content"} messages' : 'a string'}`);
        continue;
      }
      const values = format === 'chat' ? (record['messages'] as { content?: unknown }[]).map((m) => m?.content) : required.map((k) => record[k]);
      texts.push({ text: values.filter((v): v is string => typeof v === 'string').join(''), offset: start, exact: false });
    }
    if (tokenizer) this.checkEncodable(file, texts, tokenizer, span);
    if (problems > MAX_ROW_ERRORS) {
      this.bag.report('bad-jsonl', `${problems - MAX_ROW_ERRORS} more malformed rows in ${path} (${problems} of ${rows})`, span);
    }
    if (rows === 0) this.bag.report('bad-jsonl', `${path} has no rows`, span);
    // Rows are the non-blank lines, as the runtime counts them; a cut file's count says nothing.
    return file.truncated ? null : rows;
  }

  checkEncodable(file: DataFile, pieces: readonly EncodablePiece[], tokenizer: CharTokenizer, span: Span): void {
    const known = new Set(tokenizer.alphabet);
    const missing: string[] = [];
    let first = -1;
    for (const piece of pieces) {
      let index = 0;
      for (const ch of piece.text) {
        if (!known.has(ch) && !missing.includes(ch)) {
          missing.push(ch);
          if (first < 0) first = piece.offset + (piece.exact ? index : 0);
        }
        index += ch.length;
      }
    }
    if (missing.length === 0) return;
    const shown = missing.slice(0, 10).map((c) => JSON.stringify(c)).join(', ');
    const more = missing.length > 10 ? ` and ${missing.length - 10} more` : '';
    this.bag.report(
      'unencodable-text',
      `tokenizer ${tokenizer.name} cannot encode ${missing.length} character${missing.length === 1 ? '' : 's'} of ${displayPath(file.absPath)}: ${shown}${more}`,
      this.dataSpan(file, first, 1),
      { related: [{ message: `read with ${tokenizer.name} here`, span }], hint: 'add them to the chars(...) alphabet, or clean the data' },
    );
  }

  datasetType(format: string, seqLen: Dim | null, split: boolean, display: string, sizes: SplitSizes | null = null): Ty {
    const fields = datasetFields(format, seqLen);
    if (!fields) return ERROR;
    return { k: 'dataset', format: format as DatasetFormat, fields, splits: split, sizes, display, producedBy: null, decl: null };
  }

  checkpointStages(model: string, at: Span): readonly string[] {
    const module = [...this.modules.values()].find((m) => m.path === at.file);
    if (!module) return [];
    const stages = module.recipe.declarations.filter((d): d is StageDecl => d.kind === 'StageDecl');
    const trained = stageTrainedModels(stages);
    const ancestors = stageAncestors(stages);
    const inside = stages.find((s) => s.loc.start <= at.start && at.end <= s.loc.end);
    if (inside) return latestTrainers(inside.name.name, model, ancestors, trained);
    // Outside a stage: the last stages that train it, those no other stage training it runs after.
    const writers = stages.filter((s) => trained.get(s.name.name) === model).map((s) => s.name.name);
    return writers.filter((w) => !writers.some((o) => ancestors.get(o)?.has(w)));
  }

  stackModel(n: Dim, inner: ModelInstance, site: CallSite): ModelInstance | null {
    const f = inner.forward;
    if (!f) return null;
    const input = f.params[0]?.type;
    if (f.params.length !== 1 || !input || input.k !== 'tensor' || f.returns.k !== 'tensor' || input.dtype !== f.returns.dtype || !shapesEqual(input.shape, f.returns.shape)) {
      site.report(
        'stack-shape',
        `stack: ${inner.display} maps ${f.params.map((p) => formatType(p.type)).join(', ')} to ${formatType(f.returns)}; stacking needs one input of the same type as the output`,
        site.args.get('block')?.span ?? site.span,
      );
      return null;
    }
    return {
      display: `stack(${formatDim(n)}, ${inner.display})`,
      forward: f,
      // The copies share one structure: their members are the inner block's (for lora targets, member access).
      members: inner.members,
      args: new Map([['n', { k: 'int', value: n }]]),
      paramCount: mulDims(n, inner.paramCount),
      frozen: false,
      origin: { model: null, checkpoint: null },
      checkpoints: inner.checkpoints,
      lora: null,
    };
  }

  loraModel(base: ModelInstance, targets: readonly string[], rank: number, site: CallSite): ModelInstance | null {
    const names = submoduleNames(base);
    const unknown = targets.filter((t) => !names.has(t));
    if (unknown.length) {
      site.report('unknown-member', `lora: ${base.display} has no submodule named ${unknown.map((u) => `'${u}'`).join(', ')}`, site.args.get('targets')?.span ?? site.span, {
        hint: didYouMean(unknown[0]!, names) ?? `its submodules are: ${[...names].join(', ')}`,
      });
      return null;
    }
    if (targets.length === 0) {
      site.report('missing-argument', 'lora: name the submodules to adapt, e.g. targets: [qkv, proj]', site.span);
      return null;
    }
    // An adapter sits beside a layer's weight w: [in, out]; a target without one would get no adapter,
    // and a LoRA model without adapters has nothing to train.
    const adaptable = [...names].filter((n) => submodulesNamed(base, n).every(hasLoraWeight));
    const bad = targets.filter((t) => !adaptable.includes(t));
    if (bad.length) {
      site.report('bad-lora-target', `lora: ${bad.map((b) => `'${b}'`).join(', ')} of ${base.display} ${bad.length === 1 ? 'has' : 'have'} no weight w: [in, out] to put an adapter beside`, site.args.get('targets')?.span ?? site.span, {
        hint: adaptable.length ? `submodules with such a weight: ${adaptable.join(', ')}` : `${base.display} has no submodule with a weight w: [in, out]`,
      });
      return null;
    }
    return { ...base, display: `lora(${base.display}, rank: ${rank})`, lora: targets, frozen: false };
  }
}

function didYouMeanKeys(missing: readonly string[], present: readonly string[]): string {
  const hint = didYouMean(missing[0]!, present);
  return hint ? ` (${hint})` : ` (found ${present.map((k) => `"${k}"`).join(', ') || 'no keys'})`;
}
