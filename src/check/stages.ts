/**
 * Stage and deploy rules: stage kinds and their settings, the `after` graph
 * (a DAG), checkpoints used only after the stage that writes them, frozen
 * models never updated, the loss a scalar, dataset fields that exist.
 */
import type { DeployDecl, Expression, Setting, Span, StageDecl } from '../language/ast.js';
import { closestName, didYouMean } from '../language/diagnostics.js';
import { exprText, type Checker } from './checker.js';
import type { ModuleInfo } from './modules.js';
import { Scope, type StageDependency } from './scope.js';
import { DEPLOY_FORMATS, STAGE_KINDS, type SettingSpec } from './stageRules.js';
import { describeKind, ERROR, intConst, tensor, type Ty } from './types.js';
import { symDim } from './dims.js';

export interface StageSummary {
  readonly decl: StageDecl;
  readonly model: string | null;
  readonly settings: ReadonlyMap<string, Ty>;
}

/** Checks every stage and deploy of a module. */
export function checkStages(cx: Checker, module: ModuleInfo): Map<StageDecl, StageSummary> {
  const stages = module.recipe.declarations.filter((d): d is StageDecl => d.kind === 'StageDecl');
  const byName = new Map(stages.map((s) => [s.name.name, s]));
  const ancestors = checkAfterGraph(cx, stages, byName);
  const summaries = new Map<StageDecl, StageSummary>();
  for (const stage of stages) summaries.set(stage, checkStage(cx, module, stage, byName, ancestors));
  checkAmbiguousStarts(cx, stages, summaries, ancestors);
  for (const d of module.recipe.declarations) if (d.kind === 'DeployDecl') checkDeploy(cx, module, d);
  return summaries;
}

/** Resolves `after` names and reports cycles; returns each stage's transitive ancestors. */
function checkAfterGraph(cx: Checker, stages: readonly StageDecl[], byName: ReadonlyMap<string, StageDecl>): Map<string, Set<string>> {
  const edges = new Map<string, string[]>();
  for (const s of stages) {
    const deps: string[] = [];
    for (const a of s.after) {
      if (!byName.has(a.name)) {
        cx.report('unknown-stage', `'after ${a.name}': there is no stage '${a.name}'`, a.loc, { hint: didYouMean(a.name, byName.keys()) });
      } else if (a.name === s.name.name) {
        cx.report('stage-cycle', `stage '${a.name}' cannot run after itself`, a.loc);
      } else deps.push(a.name);
    }
    edges.set(s.name.name, deps);
  }
  // Depth-first search; a back edge closes a cycle, reported once at the edge that closes it.
  const state = new Map<string, 'active' | 'done'>();
  const path: string[] = [];
  const visit = (name: string): void => {
    state.set(name, 'active');
    path.push(name);
    for (const dep of edges.get(name) ?? []) {
      if (state.get(dep) === 'active') {
        const cycle = [...path.slice(path.indexOf(dep)), dep];
        const stage = byName.get(name)!;
        const edge = stage.after.find((a) => a.name === dep)!;
        cx.report('stage-cycle', `stages form a cycle: ${cycle.reverse().join(' -> ')} (each runs after the next)`, edge.loc, {
          hint: 'the after edges of stages must form a DAG; remove one of them',
        });
        edges.set(name, (edges.get(name) ?? []).filter((d) => d !== dep));
      } else if (!state.has(dep)) visit(dep);
    }
    path.pop();
    state.set(name, 'done');
  };
  for (const s of stages) if (!state.has(s.name.name)) visit(s.name.name);
  const ancestors = new Map<string, Set<string>>();
  const collect = (name: string): Set<string> => {
    const cached = ancestors.get(name);
    if (cached) return cached;
    const out = new Set<string>();
    ancestors.set(name, out);
    for (const dep of edges.get(name) ?? []) {
      out.add(dep);
      for (const a of collect(dep)) out.add(a);
    }
    return out;
  };
  for (const s of stages) collect(s.name.name);
  return ancestors;
}

function checkStage(
  cx: Checker,
  module: ModuleInfo,
  stage: StageDecl,
  byName: ReadonlyMap<string, StageDecl>,
  ancestors: ReadonlyMap<string, Set<string>>,
): StageSummary {
  const kindName = stage.stageKind.name;
  const spec = STAGE_KINDS[kindName];
  const dependencies: StageDependency[] = [];
  const scope = new Scope(module, null, dependencies);
  const settings = new Map<string, Ty>();
  // A header the parser could not read (no target) says nothing reliable about its kind or dataset.
  const brokenHeader = stage.target.kind === 'ErrorExpr' || kindName === '';
  if (!spec) {
    if (brokenHeader) return { decl: stage, model: null, settings };
    cx.report('unknown-stage-kind', `unknown stage kind '${kindName}'`, stage.stageKind.loc, {
      hint: didYouMean(kindName, Object.keys(STAGE_KINDS)) ?? `stage kinds are: ${Object.keys(STAGE_KINDS).join(', ')}`,
    });
    return { decl: stage, model: null, settings };
  }

  const target = cx.infer(stage.target, scope);
  const modelName = cx.stageTargetModel(stage);
  if (target.k !== 'model' && target.k !== 'error') {
    cx.report('type-mismatch', `a ${kindName} stage works on a model, but ${exprText(stage.target)} is ${describeKind(target)}`, stage.target.loc);
  } else if (target.k === 'model' && spec.updates && target.model.frozen) {
    cx.report('train-frozen', `stage '${stage.name.name}' would update ${target.model.display}, which is frozen`, stage.target.loc, {
      hint: 'frozen(...) makes a non-trainable copy: train the original model instead',
    });
  }

  // Until a dataset is known, `batch` is an error value, so a missing dataset yields one diagnostic, not one per use.
  scope.define('batch', ERROR);
  if (stage.dataset) {
    if (spec.dataset === 'none') {
      cx.report('unexpected-dataset', `a ${kindName} stage takes no 'on DATASET'; give its prompts with prompts = ...`, stage.dataset.loc);
    } else {
      const data = cx.infer(stage.dataset, scope);
      if (data.k === 'dataset') scope.define('batch', { k: 'record', name: `batch of ${data.display}`, fields: data.fields });
      else if (data.k !== 'error') cx.report('type-mismatch', `'on' needs a dataset, but ${exprText(stage.dataset)} is ${describeKind(data)}`, stage.dataset.loc);
    }
  } else if (spec.dataset === 'required' && !brokenHeader) {
    cx.report('missing-dataset', `a ${kindName} stage needs a dataset: stage ${stage.name.name}: ${kindName} ${exprText(stage.target)} on DATASET`, stage.stageKind.loc);
  }

  const seen = new Map<string, Setting>();
  const misspelt: string[] = [];
  const ordered = [...stage.items].sort((a, b) => rank(a, spec.settings) - rank(b, spec.settings));
  for (const item of ordered) {
    if (item.kind === 'LetStatement') {
      const t = cx.infer(item.value, scope);
      if (item.pattern.kind === 'NamePattern') scope.define(item.pattern.name.name, t);
      else cx.report('pattern-arity', 'a stage let binds a single name', item.pattern.loc);
      continue;
    }
    if (item.kind === 'EvalEvery') {
      if (!spec.evalEvery) {
        cx.report('unknown-setting', `a ${kindName} stage has no periodic eval`, item.loc);
        continue;
      }
      const every = cx.infer(item.every, scope);
      if (every.k !== 'error' && !((intConst(every) ?? 0) > 0)) {
        cx.report('value-out-of-range', `eval every N: N must be a positive integer, got ${exprText(item.every)}`, item.every.loc);
      }
      const data = cx.infer(item.dataset, scope);
      if (data.k !== 'dataset' && data.k !== 'error') cx.report('type-mismatch', `eval every N on DATASET needs a dataset, but ${exprText(item.dataset)} is ${describeKind(data)}`, item.dataset.loc);
      continue;
    }
    const name = item.name.name;
    const setting = spec.settings[name];
    if (!setting) {
      misspelt.push(name);
      cx.report('unknown-setting', `a ${kindName} stage has no setting '${name}'`, item.name.loc, {
        hint: didYouMean(name, Object.keys(spec.settings)) ?? `its settings are: ${Object.keys(spec.settings).join(', ')}`,
      });
      cx.infer(item.value, scope);
      continue;
    }
    const first = seen.get(name);
    if (first) {
      cx.report('duplicate-setting', `'${name}' is set twice`, item.name.loc, { related: [{ message: 'first set here', span: first.name.loc }] });
      continue;
    }
    seen.set(name, item);
    const value = readSetting(cx, setting, item.value, scope, `${kindName} stage`, name);
    settings.set(name, value);
    if (setting.binds) scope.define(name, value);
    if (name === 'prompts' && value.k === 'dataset') {
      scope.define('batch', { k: 'record', name: `batch of ${value.display}`, fields: value.fields });
      if (kindName === 'rl' || kindName === 'generate') scope.define('completion', tensor('str', [symDim('B')]));
    }
  }
  const quiet = cx.hasSyntaxErrorIn(stage.loc);
  for (const r of spec.required) {
    // `losss = ...` was already reported as an unknown setting with a hint; "needs 'loss'" would say it twice.
    const typo = misspelt.some((m) => closestName(m, [r]) === r);
    if (!seen.has(r) && !quiet && !typo) {
      cx.report('missing-setting', `a ${kindName} stage needs '${r} = ...'`, stage.name.loc, { hint: settingHint(kindName, r) });
    }
  }
  for (const rule of spec.rules ?? []) {
    const problem = rule(settings);
    if (problem) cx.report(problem.code, problem.message, (problem.setting && seen.get(problem.setting)?.name.loc) || stage.name.loc);
  }
  checkDependencies(cx, stage, dependencies, byName, ancestors.get(stage.name.name) ?? new Set());
  return { decl: stage, model: modelName, settings };
}

/** Settings that define names (`reference`, `prompts`) are evaluated first, so their order in the stage does not matter. */
function rank(item: StageDecl['items'][number], settings: Readonly<Record<string, SettingSpec>>): number {
  if (item.kind === 'Setting') return settings[item.name.name]?.early ? 0 : 2;
  return item.kind === 'LetStatement' ? 1 : 2;
}

function readSetting(cx: Checker, spec: SettingSpec, value: Expression, scope: Scope, where: string, name: string): Ty {
  let t: Ty;
  if (spec.symbols || spec.symbolList) {
    t = readSymbols(cx, spec, value, where, name);
    if (t.k === 'error') return t;
  } else {
    t = cx.infer(value, scope);
  }
  if (t.k === 'error') return t;
  const problem = spec.check(t);
  if (problem) {
    cx.report(name === 'loss' ? 'loss-not-scalar' : name === 'reward' ? 'reward-shape' : 'setting-type', `'${name}': ${problem}`, value.loc);
    return ERROR;
  }
  return t;
}

function readSymbols(cx: Checker, spec: SettingSpec, value: Expression, where: string, name: string): Ty {
  const one = (x: Expression, allowed: readonly string[]): Ty => {
    if (x.kind === 'NameExpr' && allowed.includes(x.name)) return { k: 'symbol', name: x.name };
    const got = x.kind === 'NameExpr' ? `'${x.name}'` : exprText(x);
    cx.report('unknown-value', `${where}: ${got} is not a valid ${name}; expected one of ${allowed.join(', ')}`, x.loc, {
      hint: x.kind === 'NameExpr' ? didYouMean(x.name, allowed) : null,
    });
    return ERROR;
  };
  if (spec.symbols) return one(value, spec.symbols);
  if (value.kind !== 'ListExpr') {
    cx.report('setting-type', `'${name}' takes a list, like [${spec.symbolList![0]}]`, value.loc);
    return ERROR;
  }
  const elements = value.elements.map((e) => one(e, spec.symbolList!));
  return elements.some((e) => e.k === 'error') ? ERROR : { k: 'list', elements };
}

function settingHint(kind: string, setting: string): string | null {
  const examples: Record<string, string> = {
    loss: 'e.g. loss = next_token(policy(batch.tokens), batch.tokens)',
    prompts: 'e.g. prompts = chats.prompts',
    reward: 'e.g. reward = exact_match(completion, batch.answer)',
    sparsity: 'e.g. sparsity = 0.5',
    precision: 'e.g. precision = int8',
    metrics: 'e.g. metrics = [perplexity]',
    out: 'e.g. out = "out/policy"',
  };
  return examples[setting] ?? `${kind} stages need it`;
}

/** Every checkpoint and generated dataset a stage uses must come from a stage it runs after. */
function checkDependencies(
  cx: Checker,
  stage: StageDecl,
  deps: readonly StageDependency[],
  byName: ReadonlyMap<string, StageDecl>,
  ancestors: ReadonlySet<string>,
): void {
  const reported = new Set<string>();
  for (const d of deps) {
    if (d.stage === stage.name.name) {
      cx.report('checkpoint-order', `stage '${stage.name.name}' ${d.why}, which it produces itself`, d.span);
      continue;
    }
    if (ancestors.has(d.stage) || !byName.has(d.stage) || reported.has(d.stage)) continue;
    reported.add(d.stage);
    cx.report('checkpoint-order', `stage '${stage.name.name}' ${d.why} but does not run after '${d.stage}'`, d.span, {
      hint: `add 'after ${d.stage}' to the stage header`,
      related: [{ message: `stage '${d.stage}' is declared here`, span: byName.get(d.stage)!.name.loc }],
    });
  }
}

/**
 * A stage that updates a plain model (not `model @ stage`) starts from that
 * model's latest checkpoint among its ancestors; two unordered ancestors that
 * both update it make "latest" ambiguous.
 */
function checkAmbiguousStarts(
  cx: Checker,
  stages: readonly StageDecl[],
  summaries: ReadonlyMap<StageDecl, StageSummary>,
  ancestors: ReadonlyMap<string, Set<string>>,
): void {
  const updates = new Map<string, string | null>();
  for (const s of stages) if (STAGE_KINDS[s.stageKind.name]?.updates) updates.set(s.name.name, summaries.get(s)?.model ?? null);
  for (const s of stages) {
    const model = summaries.get(s)?.model;
    const spec = STAGE_KINDS[s.stageKind.name];
    if (!model || !spec || s.target.kind !== 'NameExpr') continue;
    const mine = ancestors.get(s.name.name) ?? new Set<string>();
    const writers = [...mine].filter((a) => updates.get(a) === model);
    const latest = writers.filter((w) => !writers.some((o) => o !== w && (ancestors.get(o) ?? new Set()).has(w)));
    if (latest.length > 1) {
      cx.report('ambiguous-checkpoint', `stage '${s.name.name}' runs after ${latest.map((l) => `'${l}'`).join(' and ')}, which each update '${model}': it is not clear which weights it starts from`, s.target.loc, {
        hint: `name the checkpoint: ${s.stageKind.name} ${model} @ ${latest[0]}`,
      });
    }
  }
}

function checkDeploy(cx: Checker, module: ModuleInfo, d: DeployDecl): void {
  const format = d.format.name;
  const spec = DEPLOY_FORMATS[format];
  const scope = new Scope(module);
  const target = cx.infer(d.target, scope);
  if (target.k !== 'model' && target.k !== 'error') {
    cx.report('type-mismatch', `deploy needs a model or a checkpoint (model @ stage), but ${exprText(d.target)} is ${describeKind(target)}`, d.target.loc);
  }
  if (!spec) {
    if (format === '') return;
    cx.report('unknown-deploy-target', `unknown deploy target '${format}'`, d.format.loc, {
      hint: didYouMean(format, Object.keys(DEPLOY_FORMATS)) ?? `targets are: ${Object.keys(DEPLOY_FORMATS).join(', ')}`,
    });
    return;
  }
  const values = new Map<string, Ty>();
  const seen = new Map<string, Span>();
  for (const s of d.settings) {
    const name = s.name.name;
    const setting = spec.settings[name];
    if (!setting) {
      cx.report('unknown-setting', `deploy to ${format} has no setting '${name}'`, s.name.loc, {
        hint: didYouMean(name, Object.keys(spec.settings)) ?? `its settings are: ${Object.keys(spec.settings).join(', ')}`,
      });
      continue;
    }
    if (seen.has(name)) {
      cx.report('duplicate-setting', `'${name}' is set twice`, s.name.loc, { related: [{ message: 'first set here', span: seen.get(name)! }] });
      continue;
    }
    seen.set(name, s.name.loc);
    values.set(name, readSetting(cx, setting, s.value, scope, `deploy to ${format}`, name));
  }
  for (const r of spec.required) if (!seen.has(r) && !cx.hasSyntaxErrorIn(d.loc)) cx.report('missing-setting', `deploy to ${format} needs '${r} = ...'`, d.format.loc, { hint: settingHint('deploy', r) });
  const precision = values.get('precision');
  if (precision?.k === 'symbol' && precision.name === 'int8' && !seen.has('calibrate')) {
    cx.report('missing-setting', `int8 deployment needs calibration data: calibrate = DATASET[:N]`, seen.get('precision')!, {
      hint: 'e.g. calibrate = corpus.val[:256]',
    });
  }
}
