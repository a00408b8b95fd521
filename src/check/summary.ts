/**
 * One-line descriptions of what the checker inferred for each declaration,
 * printed by `ptr types`.
 */
import type { Declaration, Parameter } from '../language/ast.js';
import { printExpression, printType } from '../language/printer.js';
import type { Checker } from './checker.js';
import { constValue, formatDim } from './dims.js';
import { declWord, type ModuleInfo } from './modules.js';
import type { StageSummary } from './stages.js';
import { formatType, type ModelInstance, type Ty } from './types.js';

export interface DeclarationSummary {
  readonly file: string;
  readonly line: number;
  readonly declKind: string;
  readonly name: string;
  /** One-line description of the inferred type, e.g. `forward(tokens: i64[B, T]) -> f32[B, T, 21]; 812,288 params`. */
  readonly type: string;
}

function count(n: ModelInstance['paramCount']): string {
  const v = constValue(n);
  return v === null ? `${formatDim(n)} params` : `${v.toLocaleString('en-US')} params`;
}

export function describeModel(m: ModelInstance): string {
  const parts = [m.display];
  if (m.forward) parts.push(`forward(${m.forward.params.map((p) => `${p.name}: ${formatType(p.type)}`).join(', ')}) -> ${formatType(m.forward.returns)}`);
  parts.push(count(m.paramCount));
  if (m.frozen) parts.push('frozen');
  if (m.lora) parts.push(`LoRA on ${m.lora.join(', ')}`);
  if (m.origin.checkpoint) parts.push(`from ${m.origin.checkpoint.model} @ ${m.origin.checkpoint.stage}`);
  return parts.join(' · ');
}

function params(ps: readonly Parameter[]): string {
  return ps
    .map((p) => `${p.name.name}${p.type ? `: ${printType(p.type)}` : ''}${p.default ? ` = ${printExpression(p.default)}` : ''}`)
    .join(', ');
}

/** A setting's value: `adamw`, `32`, `f32[]`, `policy @ sft`. */
function settingText(t: Ty): string {
  switch (t.k) {
    case 'int':
      return t.value ? formatDim(t.value) : 'int';
    case 'float':
      return String(t.value ?? 'float');
    case 'optimizer':
    case 'schedule':
      return t.name;
    case 'model':
      return t.model.display;
    case 'dataset':
      return t.display;
    case 'list':
      return `[${t.elements.map(settingText).join(', ')}]`;
    default:
      return formatType(t);
  }
}

function describeValue(t: Ty): string {
  if (t.k === 'model') return describeModel(t.model);
  if (t.k === 'dataset') {
    const fields = [...t.fields].map(([k, v]) => `${k}: ${formatType(v)}`).join(', ');
    return `${t.display} · batch { ${fields} }${t.splits ? ' · splits train/val' : ''}`;
  }
  return formatType(t);
}

function describe(cx: Checker, module: ModuleInfo, d: Declaration, stages: ReadonlyMap<Declaration, StageSummary>): string {
  switch (d.kind) {
    case 'ImportDecl':
      return d.path.kind === 'ModulePath' ? d.path.segments.map((s) => s.name).join('.') : JSON.stringify(d.path.value);
    case 'TokenizerDecl':
    case 'ModelDecl':
    case 'DatasetDecl':
      return describeValue(cx.declType(module, d));
    case 'BlockDecl': {
      const g = cx.genericInstances.get(d);
      const sig = `(${params(d.params)})`;
      if (!g) return `${sig} · checked when instantiated`;
      return `${sig} · ${describeModel(g).split(' · ').slice(1).join(' · ')}`;
    }
    case 'FnDecl':
      return `(${params(d.params)})${d.returnType ? ` -> ${printType(d.returnType)}` : ''}${d.params.some((p) => !p.type) ? ' · generic: checked at each call' : ''}`;
    case 'StageDecl': {
      const s = stages.get(d);
      const head = `${d.stageKind.name} ${printExpression(d.target)}${d.dataset ? ` on ${printExpression(d.dataset)}` : ''}${d.after.length ? ` after ${d.after.map((a) => a.name).join(', ')}` : ''}`;
      const settings = s ? [...s.settings].map(([k, v]) => `${k}: ${settingText(v)}`) : [];
      return [head, ...settings].join(' · ');
    }
    case 'DeployDecl': {
      const settings = d.settings.map((x) => `${x.name.name}: ${printExpression(x.value)}`);
      return [`to ${d.format.name}`, ...settings].join(' · ');
    }
  }
}

export function summarizeModule(cx: Checker, module: ModuleInfo, stages: ReadonlyMap<Declaration, StageSummary>): DeclarationSummary[] {
  return module.recipe.declarations.map((d) => ({
    file: module.path,
    line: d.loc.line,
    declKind: declWord(d),
    name: 'name' in d ? d.name.name : d.kind === 'DeployDecl' ? printExpression(d.target) : '',
    type: describe(cx, module, d, stages),
  }));
}
