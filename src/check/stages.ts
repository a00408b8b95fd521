/**
 * Stage and deploy rules: stage kinds and their settings, the `after` graph
 * (a DAG), checkpoints used only after the stage that writes them, frozen
 * models never updated, the loss a scalar, dataset fields that exist.
 */
import { visit, type DeployDecl, type EvalEvery, type Expression, type FnDecl, type Node, type Setting, type Span, type StageDecl } from '../language/ast.js';
import { closestName, didYouMean } from '../language/diagnostics.js';
import { printExpression } from '../language/printer.js';
import { exprText, type Checker } from './checker.js';
import type { ModuleInfo } from './modules.js';
import { Scope, type StageDependency } from './scope.js';
import { DEPLOY_FORMATS, STAGE_KINDS, type SettingSpec, type StageKindSpec } from './stageRules.js';
import { describeKind, ERROR, formatType, intConst, tensor, type DatasetTy, type ModelInstance, type Ty } from './types.js';
import { constValue, formatDim, symDim } from './dims.js';

export interface StageSummary {
  readonly decl: StageDecl;
  readonly model: string | null;
  readonly settings: ReadonlyMap<string, Ty>;
}

/** Checks every stage and deploy of a module. */
export function checkStages(cx: Checker, module: ModuleInfo): Map<StageDecl, StageSummary> {
  const stages = module.recipe.declarations.filter((d): d is StageDecl => d.kind === 'StageDecl');
  const byName = new Map(stages.map((s) => [s.name.name, s]));
  const graph: StageGraph = { byName, ancestors: checkAfterGraph(cx, stages, byName), trained: stageTrainedModels(stages) };
  const summaries = new Map<StageDecl, StageSummary>();
  for (const stage of stages) summaries.set(stage, checkStage(cx, module, stage, graph));
  checkAmbiguousStarts(cx, stages, graph);
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
  return transitiveAncestors(stages, edges);
}

/** Each stage's ancestors through `after` edges (stage name → the names it depends on directly). */
function transitiveAncestors(stages: readonly StageDecl[], edges: ReadonlyMap<string, readonly string[]>): Map<string, Set<string>> {
  const ancestors = new Map<string, Set<string>>();
  const collect = (name: string): Set<string> => {
    const cached = ancestors.get(name);
    if (cached) return cached;
    // Cached before the recursion, so a cycle ends instead of looping.
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

/** Each stage's ancestors, reporting nothing (checkStages reports unknown names and cycles). */
export function stageAncestors(stages: readonly StageDecl[]): Map<string, Set<string>> {
  const names = new Set(stages.map((s) => s.name.name));
  const edges = new Map(stages.map((s) => [s.name.name, s.after.map((a) => a.name).filter((a) => names.has(a) && a !== s.name.name)]));
  return transitiveAncestors(stages, edges);
}

/** The model each stage that updates its target trains (`train policy`, `train policy @ sft`: policy), by stage name. */
export function stageTrainedModels(stages: readonly StageDecl[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const s of stages) {
    if (!STAGE_KINDS[s.stageKind.name]?.updates) continue;
    const model = trainedModelName(s);
    if (model !== null) out.set(s.name.name, model);
  }
  return out;
}

/** The recipe-level model named by a stage's target, or null when it names none. */
function trainedModelName(stage: StageDecl): string | null {
  let target = stage.target;
  while (target.kind === 'ParenExpr') target = target.expression;
  if (target.kind === 'NameExpr') return target.name;
  if (target.kind === 'BinaryExpr' && target.op === '@' && target.left.kind === 'NameExpr') return target.left.name;
  return null;
}

/**
 * The latest of a stage's ancestors that train `model`: those no other such
 * ancestor runs after. One when the pipeline is a chain; several when
 * unordered branches each train it.
 */
export function latestTrainers(stage: string, model: string, ancestors: ReadonlyMap<string, ReadonlySet<string>>, trained: ReadonlyMap<string, string>): string[] {
  const writers = [...(ancestors.get(stage) ?? [])].filter((a) => trained.get(a) === model);
  return writers.filter((w) => !writers.some((o) => o !== w && (ancestors.get(o) ?? new Set()).has(w)));
}

/** What every stage check needs to know about the other stages. */
interface StageGraph {
  readonly byName: ReadonlyMap<string, StageDecl>;
  readonly ancestors: ReadonlyMap<string, Set<string>>;
  /** Stage name → the model it trains (stages that update their target). */
  readonly trained: ReadonlyMap<string, string>;
}

function checkStage(cx: Checker, module: ModuleInfo, stage: StageDecl, graph: StageGraph): StageSummary {
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
  let stageData: DatasetTy | null = null;
  if (stage.dataset) {
    if (spec.dataset === 'none') {
      cx.report('unexpected-dataset', `a ${kindName} stage takes no 'on DATASET'; give its prompts with prompts = ...`, stage.dataset.loc);
    } else {
      const data = cx.infer(stage.dataset, scope);
      if (data.k === 'dataset') {
        stageData = data;
        scope.define('batch', { k: 'record', name: `batch of ${data.display}`, fields: data.fields });
        if (target.k === 'model') checkVocabulary(cx, stage, target.model, data);
      } else if (data.k !== 'error') cx.report('type-mismatch', `'on' needs a dataset, but ${exprText(stage.dataset)} is ${describeKind(data)}`, stage.dataset.loc);
    }
  } else if (spec.dataset === 'required' && !brokenHeader) {
    cx.report('missing-dataset', `a ${kindName} stage needs a dataset: stage ${stage.name.name}: ${kindName} ${exprText(stage.target)} on DATASET`, stage.stageKind.loc);
  }

  const seen = new Map<string, Setting>();
  const misspelt: string[] = [];
  const evals: { item: EvalEvery; every: Ty; data: DatasetTy }[] = [];
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
      if (data.k === 'dataset') evals.push({ item, every, data });
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
  checkDependencies(cx, stage, dependencies, graph.byName, graph.ancestors.get(stage.name.name) ?? new Set());
  if (!quiet) {
    const facts: StageFacts = { cx, module, stage, spec, settings, seen, graph };
    if (spec.updates && target.k === 'model' && modelName !== null) {
      checkSomethingToTrain(facts, target.model);
      checkModelSettingsAreNotTarget(facts, target.model, modelName);
      checkLossUsesTarget(facts, modelName);
    }
    if (spec.trainsOnData && stageData) checkTrainingData(facts, stageData);
    for (const e of evals) {
      checkEvalData(facts, e.item, intConst(e.every), e.data);
      if (e.data !== stageData) checkEvalBatches(facts, e.item, e.data, stageData);
    }
  }
  return { decl: stage, model: modelName, settings };
}

/** What the checks of one stage read. */
interface StageFacts {
  readonly cx: Checker;
  readonly module: ModuleInfo;
  readonly stage: StageDecl;
  readonly spec: StageKindSpec;
  readonly settings: ReadonlyMap<string, Ty>;
  readonly seen: ReadonlyMap<string, Setting>;
  readonly graph: StageGraph;
}

/** An integer setting's value when the stage sets it to a constant, else its default from the table. */
function settingInt(f: StageFacts, name: string): number | null {
  const t = f.settings.get(name);
  if (t) return intConst(t);
  return f.spec.settings[name]?.default ?? null;
}

/** A stage that updates a model with no parameters would change nothing. (LoRA models always have adapters: see lora(...).) */
function checkSomethingToTrain(f: StageFacts, target: ModelInstance): void {
  if (target.lora || constValue(target.paramCount) !== 0) return;
  f.cx.report('nothing-to-train', `stage '${f.stage.name.name}' trains ${target.display}, which has no parameters: no step would change anything`, f.stage.target.loc, {
    hint: 'train a model with parameters (param w: ... in one of its blocks)',
  });
}

/**
 * A model setting (`reference`, `teacher`, `value`, `judge`) that is the model the
 * stage trains shares its weights: a DPO reference equal to the policy makes the
 * loss ln 2 at every step, a teacher equal to the student teaches nothing.
 */
function checkModelSettingsAreNotTarget(f: StageFacts, target: ModelInstance, modelName: string): void {
  const stageName = f.stage.name.name;
  const checkpointOf = (m: ModelInstance): string | null => m.origin.checkpoint?.stage ?? null;
  for (const [name, value] of f.settings) {
    if (!f.spec.settings[name]?.binds || value.k !== 'model') continue;
    const m = value.model;
    if (m.origin.model === null || m.origin.model !== target.origin.model || checkpointOf(m) !== checkpointOf(target)) continue;
    // frozen(policy) is already reported by frozen(...) itself, with its own hint.
    if (m.frozen && !m.origin.checkpoint) continue;
    const setting = f.seen.get(name)!;
    const start = checkpointOf(target);
    let hint: string;
    if (start !== null) {
      hint = `a stage on ${modelName} @ ${start} trains that checkpoint's own weights: train ${modelName} instead, and keep ${name} = frozen(${modelName} @ ${start})`;
    } else {
      const latest = latestTrainers(stageName, modelName, f.graph.ancestors, f.graph.trained);
      hint = latest.length
        ? `use a frozen checkpoint: ${latest.map((l) => `${name} = frozen(${modelName} @ ${l})`).join(' or ')}`
        : `use a frozen checkpoint of an earlier stage that trains ${modelName}: ${name} = frozen(${modelName} @ STAGE)`;
    }
    f.cx.report('setting-is-target', `'${name}' is ${exprText(setting.value)}, the model stage '${stageName}' trains, so it would change with every update instead of staying fixed`, setting.value.loc, { hint });
  }
}

/**
 * The loss must depend on the trained model, or its gradient is zero and every
 * step a no-op. Decided on the syntax: the loss, with the stage's lets and model
 * settings expanded (and the bodies of the recipe's own functions it calls), must
 * name the model. `frozen(...)` and another stage's checkpoint `model @ s` are
 * copies, so a name inside them does not count.
 */
function checkLossUsesTarget(f: StageFacts, modelName: string): void {
  const loss = f.seen.get('loss');
  const type = f.settings.get('loss');
  if (!loss || !type || type.k === 'error') return;
  // Lets shadow settings (they are checked after them), so they go in last.
  const locals = new Map<string, Expression>();
  for (const item of f.stage.items) if (item.kind === 'Setting' && f.spec.settings[item.name.name]?.binds) locals.set(item.name.name, item.value);
  for (const item of f.stage.items) if (item.kind === 'LetStatement' && item.pattern.kind === 'NamePattern') locals.set(item.pattern.name.name, item.value);
  let target = f.stage.target;
  while (target.kind === 'ParenExpr') target = target.expression;
  const search: TargetSearch = { model: modelName, isCheckpoint: target.kind === 'BinaryExpr', module: f.module, expanded: new Set() };
  if (mentionsTarget(loss.value, search, locals, new Set())) return;
  f.cx.report('loss-ignores-target', `the loss does not use ${modelName}, the model stage '${f.stage.name.name}' trains: its gradient would be zero and no step would change it`, loss.value.loc, {
    hint: `call ${modelName} in the loss (directly, or through a let or setting bound to it), e.g. loss = next_token(${modelName}(batch.tokens), batch.tokens)`,
  });
}

interface TargetSearch {
  readonly model: string;
  /** The stage trains `model @ s`: then `model @ s` in the loss is the trained model. */
  readonly isCheckpoint: boolean;
  readonly module: ModuleInfo;
  /** Let values and functions already searched (each once; also ends recursion). */
  readonly expanded: Set<Node>;
}

function mentionsTarget(root: Node, search: TargetSearch, locals: ReadonlyMap<string, Expression>, shadowed: ReadonlySet<string>): boolean {
  let found = false;
  visit(root, (node) => {
    if (found) return false;
    if (node.kind === 'CallExpr' && node.callee.kind === 'NameExpr' && node.callee.name === 'frozen') return false;
    if (node.kind === 'BinaryExpr' && node.op === '@' && !search.isCheckpoint && node.left.kind === 'NameExpr' && node.left.name === search.model) return false;
    if (node.kind !== 'NameExpr' || shadowed.has(node.name)) return;
    const local = locals.get(node.name);
    if (local) {
      if (!search.expanded.has(local)) {
        search.expanded.add(local);
        found = mentionsTarget(local, search, locals, shadowed);
      }
      return;
    }
    if (node.name === search.model) {
      found = true;
      return;
    }
    const decl = search.module.decls.get(node.name);
    if (decl?.kind === 'FnDecl' && !search.expanded.has(decl)) {
      search.expanded.add(decl);
      found = mentionsTarget(decl.body, search, new Map(), localNames(decl));
    }
  });
  return found;
}

/** A function's parameters and let-bound names: inside its body they hide recipe-level names. */
function localNames(decl: FnDecl): Set<string> {
  const names = new Set(decl.params.map((p) => p.name.name));
  visit(decl.body, (n) => {
    if (n.kind === 'NamePattern') names.add(n.name.name);
  });
  return names;
}

/** The dataset a stage trains on must give one sequence length and at least one training example. */
function checkTrainingData(f: StageFacts, data: DatasetTy): void {
  const at = f.stage.dataset!.loc;
  const kind = f.stage.stageKind.name;
  if (data.format === 'prompts') {
    const whole = exprText(f.stage.dataset!).replace(/\.prompts$/, '');
    f.cx.report('type-mismatch', `a ${kind} stage trains on whole examples, but ${exprText(f.stage.dataset!)} is a prompts-only view (for rl and generate stages)`, at, {
      hint: `train on ${whole}`,
    });
    return;
  }
  // Generated data (`stage.output`) has no max_len to set yet; its length is the generating stage's business.
  if (data.producedBy === null && sequenceLength(data) === null) {
    const example = withArgument(data, 'max_len: 256') ?? 'jsonl("…", format: …, tokenizer: tok, max_len: 256)';
    f.cx.report('missing-max-len', `dataset ${datasetName(data)} has no max_len: a ${kind} stage needs one (its graphs are built for one sequence length)`, at, {
      hint: `e.g. ${example}`,
    });
  }
  if (data.sizes && data.sizes.train === 0) {
    f.cx.report('split-too-small', `a ${kind} stage on ${exprText(f.stage.dataset!)}: its training split holds no ${exampleUnit(data, 1)}`, at, {
      hint: 'give it more data, or a larger split:',
    });
  }
}

/**
 * `eval every N on D` evaluates whole batches of D's validation split (the graphs have
 * one batch size): D needs a split, and its validation part at least one batch. Sizes
 * are known when the checker read the whole file (see splits.ts, and the cap in
 * builtins.ts); otherwise the runtime reports it.
 */
function checkEvalData(f: StageFacts, item: EvalEvery, every: number | null, data: DatasetTy): void {
  const at = item.dataset.loc;
  const head = `eval every ${exprText(item.every)} on ${exprText(item.dataset)}`;
  if (!data.splits) {
    const example = withArgument(data, 'split: 0.9');
    f.cx.report('eval-without-validation', `${head}: ${datasetName(data)} has no validation split`, at, {
      hint: example ? `give it one: ${example}` : 'evaluate on a dataset declared with split:, e.g. text("…", tokenizer: tok, block: 64, split: 0.9)',
    });
    return;
  }
  const batch = settingInt(f, 'batch');
  const val = data.sizes?.val;
  if (val !== undefined && batch !== null && val < batch) {
    f.cx.report('split-too-small', `${head}: its validation split holds ${val} ${exampleUnit(data, val)}, fewer than one batch of ${batch}`, at, {
      hint: val > 0 ? `set batch = ${val} or less, or give validation more of the data (a smaller split:)` : 'give validation more of the data (a smaller split:)',
    });
  }
  const steps = f.settings.has('epochs') ? null : settingInt(f, 'steps');
  if (every !== null && steps !== null && every > steps) {
    f.cx.report('eval-never-runs', `${head} never runs: the stage stops after ${steps} steps`, item.every.loc, {
      severity: 'warning',
      hint: `evaluate at most every ${steps} steps`,
    });
  }
}

/**
 * The eval graph computes the stage's loss on batches of the eval data, so the loss
 * must type-check with `batch` bound to them: the same fields (and a length its
 * models accept). Checked quietly; one diagnostic names what is missing.
 */
function checkEvalBatches(f: StageFacts, item: EvalEvery, data: DatasetTy, trainData: DatasetTy | null): void {
  const loss = f.seen.get('loss');
  const lossType = f.settings.get('loss');
  if (!loss || !lossType || lossType.k === 'error') return;
  // Batches typed like the training data's need no second look. (Only when they differ is the loss
  // inferred again; a function call the checker memoises with these argument types then stays an
  // error for later uses, which is harmless: this check has reported one already.)
  if (trainData && sameFields(data, trainData)) return;
  const scope = new Scope(f.module);
  for (const [name, t] of f.settings) if (f.spec.settings[name]?.binds) scope.define(name, t);
  scope.define('batch', { k: 'record', name: `batch of ${data.display}`, fields: data.fields });
  const evalType = f.cx.quietly(() => {
    for (const it of f.stage.items) if (it.kind === 'LetStatement' && it.pattern.kind === 'NamePattern') scope.define(it.pattern.name.name, f.cx.infer(it.value, scope));
    return f.cx.infer(loss.value, scope);
  });
  if (evalType.k !== 'error' && f.spec.settings['loss']!.check(evalType) === null) return;
  const read = new Set<string>();
  for (const it of f.stage.items) {
    visit(it, (n) => {
      if (n.kind === 'MemberExpr' && n.object.kind === 'NameExpr' && n.object.name === 'batch') read.add(n.member.name);
    });
  }
  const missing = [...read].filter((field) => !data.fields.has(field));
  const head = `eval every ${exprText(item.every)} on ${exprText(item.dataset)}`;
  const message = missing.length
    ? `${head}: its batches (${data.format} data) have no ${missing.map((m) => `batch.${m}`).join(', ')}, which the loss reads`
    : `${head}: the loss cannot be computed on its batches (${data.format} data)`;
  f.cx.report('eval-data-mismatch', message, item.dataset.loc, {
    hint: trainData ? `evaluate on data like the training data (${trainData.format}), e.g. a validation split of ${exprText(f.stage.dataset!)}` : null,
  });
}

function sameFields(a: DatasetTy, b: DatasetTy): boolean {
  const text = (d: DatasetTy): string => [...d.fields].map(([k, t]) => `${k}: ${formatType(t)}`).join(', ');
  return text(a) === text(b);
}

/** The sequence length T of a dataset's token fields, or null when it is not fixed (JSONL without max_len). */
function sequenceLength(data: DatasetTy): number | null {
  for (const t of data.fields.values()) {
    if (t.k !== 'tensor') continue;
    for (const d of t.shape.dims) if (formatDim(d) === 'T') return null;
  }
  const tokens = data.fields.get('tokens') ?? data.fields.get('chosen');
  const T = tokens?.k === 'tensor' ? tokens.shape.dims[1] : undefined;
  return T ? constValue(T) : null;
}

/** `n` examples of a dataset, in its own unit: rows, or windows of `block` tokens. */
function exampleUnit(data: DatasetTy, n: number): string {
  const block = data.format === 'text' ? sequenceLength(data) : null;
  if (block !== null) return `${n === 1 ? 'window' : 'windows'} of ${block} tokens`;
  return n === 1 ? 'row' : 'rows';
}

function datasetName(data: DatasetTy): string {
  return data.decl?.name.name ?? data.display;
}

/** The dataset's declaration with one more argument, `text("a.txt", ..., split: 0.9)`, for hints. */
function withArgument(data: DatasetTy, argument: string): string | null {
  const value = data.decl?.value;
  if (value?.kind !== 'CallExpr') return null;
  const call = printExpression(value);
  return `${call.slice(0, -1)}, ${argument})`;
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
function checkAmbiguousStarts(cx: Checker, stages: readonly StageDecl[], graph: StageGraph): void {
  for (const s of stages) {
    const model = trainedModelName(s);
    if (!model || !STAGE_KINDS[s.stageKind.name] || s.target.kind !== 'NameExpr') continue;
    const latest = latestTrainers(s.name.name, model, graph.ancestors, graph.trained);
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
  // A quantize stage has calibrated the model already: its deploy needs no data of its own.
  const fromStage = d.target.kind === 'BinaryExpr' && d.target.op === '@' && d.target.right.kind === 'NameExpr' ? module.stages.get(d.target.right.name) : undefined;
  const calibrated = fromStage?.stageKind.name === 'quantize';
  if (precision?.k === 'symbol' && precision.name === 'int8' && !seen.has('calibrate') && !calibrated) {
    cx.report('missing-setting', `int8 deployment needs calibration data: calibrate = DATASET[:N]`, seen.get('precision')!, {
      hint: 'e.g. calibrate = corpus.val[:256]',
    });
  }
  module.facts.deploys.push({ decl: d, format, settings: values });
}

/**
 * A tokenizer whose ids reach past the model's vocabulary (its logits' last axis)
 * feeds the embedding ids it has no row for: onnxruntime would fail mid-run.
 */
function checkVocabulary(cx: Checker, stage: StageDecl, model: ModelInstance, data: DatasetTy): void {
  const out = model.forward?.returns;
  if (!data.tokenizerVocab || out?.k !== 'tensor' || out.shape.ellipsis || out.shape.dims.length !== 3) return;
  const modelVocab = constValue(out.shape.dims[2]!);
  if (modelVocab === null || data.tokenizerVocab <= modelVocab) return;
  cx.report(
    'vocab-mismatch',
    `${data.display} is read with a tokenizer of ${data.tokenizerVocab} ids, but ${model.display} predicts ${modelVocab} (its logits are ${formatType(out)}): ids from ${modelVocab} on have no embedding row`,
    stage.dataset!.loc,
    { hint: "build the model with vocab: tok.vocab, or read the data with the model's own tokenizer (for a pretrained model, hf(\"DIR\"))" },
  );
}
