/**
 * Lowers one `train` stage to IR: the train-step graph (forward, loss,
 * gradients, clipping, optimizer update), the eval graph (loss only) and the
 * inference graph (the model's forward), plus everything the runtime needs to
 * drive them (a plan: parameter list, feedback map, data, settings).
 */
import type { StageDecl } from '../../language/ast.js';
import type { ModuleInfo } from '../../check/modules.js';
import { gradients } from '../autodiff.js';
import { GraphBuilder } from '../builder.js';
import type { Graph, Value } from '../graph.js';
import { applyOptimizer, stateSlots, type OptimizerSpec, type ScheduleSpec } from '../passes/optimizer.js';
import type { DType } from '../tensor.js';
import type { BatchField, DataInput, PlannedParam, StagePlan, StatePlan } from './plan.js';
import { BUILTINS } from '../../check/builtins.js';
import { batchInputName, DATASET_FORMATS, fieldShape, graphFields } from '../../check/dataSchema.js';
import { STAGE_KINDS } from '../../check/stageRules.js';
import { Env, Lowerer, tyToLV, type ModuleValues } from './interp.js';
import { settingsLowerer, stageIntSetting } from './settings.js';
import { previousTrainingStage } from './lineage.js';
import { modelAfterPruning } from './pruning.js';
import { isQatStage, qatLowering } from './qat.js';
import { modelContext, planGeneration } from './inferenceStage.js';
import { modelParams, type ParamInfo } from './models.js';
import { asBool, asInt, asNumber, describeLV, LoweringError, NotYetSupported, type DatasetSpec, type LV } from './values.js';

/** A model parameter in a stage plan: trainable ones continue from `continueFrom`'s checkpoint when there is one. */
export function planParam(p: ParamInfo, trainable: boolean, continueFrom: string | null): PlannedParam {
  let init: PlannedParam['init'] = p.init.kind === 'copy' ? { kind: 'copy', from: `${p.init.from.owner}.${p.init.from.name}` } : p.init;
  if (trainable && continueFrom) init = { kind: 'checkpoint', model: p.owner, stage: continueFrom, name: p.name };
  return { input: `${p.owner}.${p.name}`, model: p.owner, name: p.name, dtype: p.dtype, shape: p.shape, init, trainable, decay: trainable && p.decay };
}

/** A train stage's settings, with the stage-kind table's defaults filled in. */
export interface TrainSettings {
  /** Examples per micro-batch; a step reads batchSize × gradAccum examples. */
  readonly batchSize: number;
  readonly gradAccum: number;
  readonly steps: number;
  readonly seed: number;
  readonly evalEvery: number | null;
  readonly optimizer: OptimizerSpec;
  readonly schedule: ScheduleSpec;
}

/**
 * A train stage lowered to IR: `train_step` (forward, loss, gradients, update), `eval` (the loss; with `eval every`),
 * `inference` (the model's forward on [1, T] tokens → logits), and for a language model `prefill` and `decode`
 * (generation with a KV cache, dynamic batch and lengths: plan.generation).
 */
export type TrainPlan = StagePlan<TrainSettings>;

/** What lowering needs from the run that it cannot know on its own. */
export interface StageOptions {
  /** Total steps when the stage says `epochs` instead of `steps` (needs the data's size: late-bound by the run context). */
  readonly stepsForEpochs?: (dataset: DatasetSpec, epochs: number, rowsPerStep: number) => number;
  /** Overrides the stage's `steps` (for smoke tests and benchmarks). */
  readonly steps?: number;
  readonly batchSize?: number;
}

export function findStage(module: ModuleInfo, name: string | null): StageDecl {
  const stages = [...module.stages.values()];
  if (name === null) {
    const first = stages[0];
    if (!first) throw new LoweringError(`${module.path} has no stage`);
    return first;
  }
  const s = module.stages.get(name);
  if (!s) throw new LoweringError(`${module.path} has no stage '${name}' (it has ${stages.map((x) => x.name.name).join(', ') || 'none'})`);
  return s;
}

/** Stage settings and lets, evaluated lazily in order. */
class StageContext {
  readonly settings = new Map<string, Extract<StageDecl['items'][number], { kind: 'Setting' }>>();
  constructor(
    readonly module: ModuleInfo,
    readonly decl: StageDecl,
  ) {
    for (const item of decl.items) if (item.kind === 'Setting') this.settings.set(item.name.name, item);
  }

  /** The stage's scope for expressions: the target model by name, `batch`, lets, model-valued settings. */
  env(lw: Lowerer, batch: LV | null): Env {
    const env = new Env(this.module);
    if (batch) env.set('batch', batch);
    for (const [name, s] of this.settings) {
      if (name === 'reference' || name === 'teacher') env.set(name, lw.eval(s.value, env));
    }
    for (const item of this.decl.items) if (item.kind === 'LetStatement' && item.pattern.kind === 'NamePattern') env.set(item.pattern.name.name, lw.eval(item.value, env));
    return env;
  }

  value(lw: Lowerer, name: string): LV | null {
    const s = this.settings.get(name);
    return s ? lw.eval(s.value, new Env(this.module)) : null;
  }
}

export function lowerTrainStage(module: ModuleInfo, stageName: string | null, options: StageOptions = {}): TrainPlan {
  const decl = findStage(module, stageName);
  // Quantization-aware training lowers as a train stage with fake-quantized matmuls.
  if (decl.stageKind.name !== 'train' && !isQatStage(module, decl.name.name)) {
    throw new NotYetSupported(`stage '${decl.name.name}' is ${decl.stageKind.name === 'rl' ? 'an' : 'a'} ${decl.stageKind.name} stage, not a train stage`);
  }
  const ctx = new StageContext(module, decl);
  const shared: ModuleValues = new Map();
  const probe = settingsLowerer(shared);
  const target = probe.eval(decl.target, new Env(module));
  if (target.k !== 'model') throw new LoweringError(`stage ${decl.name.name}: the target must be a model, got ${describeLV(target)}`);
  const dataLV = probe.eval(decl.dataset!, new Env(module));
  if (dataLV.k !== 'dataset') throw new LoweringError(`stage ${decl.name.name}: expected a dataset`);
  const dataset = dataLV.spec;
  const setting = (name: string): number => stageIntSetting(module, decl, name)!;
  const batchSize = options.batchSize ?? setting('batch');
  const gradAccum = setting('grad_accum');
  const epochs = stageIntSetting(module, decl, 'epochs');
  let steps = setting('steps');
  if (options.steps) steps = options.steps;
  else if (epochs !== null && module.facts.stageSettings.get(decl.name.name)?.has('epochs')) {
    if (!options.stepsForEpochs) throw new NotYetSupported(`stage ${decl.name.name} counts epochs: its number of steps depends on the data, which this command does not read; give --steps N`);
    steps = options.stepsForEpochs(dataset, epochs, batchSize * gradAccum);
  }
  const seed = setting('seed');
  const optimizer = optimizerSpec(ctx.value(probe, 'optimizer') ?? defaultCall(decl, 'optimizer'));
  const schedule = scheduleSpec(ctx.value(probe, 'schedule') ?? defaultCall(decl, 'schedule'), steps);
  const evalItem = decl.items.find((i) => i.kind === 'EvalEvery');
  let evalEvery: number | null = null;
  let evalDataset: DatasetSpec | null = null;
  if (evalItem?.kind === 'EvalEvery') {
    evalEvery = asInt(probe.eval(evalItem.every, new Env(module)), 'eval every');
    const ds = probe.eval(evalItem.dataset, new Env(module));
    if (ds.k !== 'dataset') throw new LoweringError('eval every N on DATASET: expected a dataset');
    evalDataset = ds.spec;
  }

  // The model as earlier stages left it (narrower after structured pruning); the loss's references to it by name see the same.
  const model = modelAfterPruning(module, decl, target.m);
  if (model !== target.m && decl.target.kind === 'NameExpr') probe.setModuleValue(module, decl.target.name, { k: 'model', m: model });
  const seqLen = dataset.seqLen;
  if (seqLen === null) throw new NotYetSupported(`dataset ${dataset.name}: set max_len: this version trains on batches of one fixed length`);
  const qat = isQatStage(module, decl.name.name) ? qatLowering(module, decl.name.name, model) : null;

  // The trained model continues from the stage that last trained it (`after`), unless it names a checkpoint.
  const continueFrom = model.checkpoint === null ? previousTrainingStage(module, decl, model.owner) : null;

  // Keyed by input name: two evaluations of `policy @ sft` are the same parameters.
  const planned = new Map<string, PlannedParam>();
  // A LoRA model trains its adapters only; the weights it adapts stay as they are.
  const trainable = new Set(model.frozen ? [] : modelParams(model).filter((p) => !model.adapted || p.adapter));
  let inputs = new Map<string, Value>();
  /**
   * A builder and lowerer for one graph of the stage. Parameters become graph inputs
   * on first use; every parameter of the trained model is an input (and, in the
   * train step, an output) used or not, so checkpoints are complete.
   */
  const graphLowerer = (name: string): { b: GraphBuilder; lw: Lowerer } => {
    const b = new GraphBuilder(name);
    inputs = new Map();
    const lw = new Lowerer(
      b,
      (p: ParamInfo): Value => {
        const input = `${p.owner}.${p.name}`;
        let v = inputs.get(input);
        if (!v) {
          v = b.input(input, p.dtype, p.shape);
          inputs.set(input, v);
          if (!planned.has(input)) planned.set(input, planParam(p, trainable.has(p), continueFrom));
        }
        return v;
      },
      shared,
    );
    for (const p of modelParams(model)) lw.params(p);
    qat?.attach(lw, b, name);
    return { b, lw };
  };

  // ---- train step
  const { b: tb, lw: tlw } = graphLowerer('train_step');
  const step = tb.input('step', 'i64', []);
  tlw.seed = tb.input('seed', 'i64', []);
  const batch = batchInputs(tb, dataset, batchSize * gradAccum, seqLen);
  const valueOf = (p: ParamInfo): Value => inputs.get(`${p.owner}.${p.name}`)!;
  const wrt = [...trainable].map(valueOf);
  const { loss, grads } = gradAccum === 1 ? wholeBatchLoss(tb, tlw, ctx, batch.record, wrt) : accumulatedLoss(tb, tlw, ctx, batch.record, wrt, batchSize, gradAccum);
  const trainableList = [...trainable].map((p) => ({
    name: `${p.owner}.${p.name}`,
    value: valueOf(p),
    grad: grads.get(valueOf(p)) ?? tb.full(p.shape, 0),
    decay: p.decay,
  }));
  const slots = stateSlots(optimizer);
  const state: StatePlan[] = [];
  const stateInputs = trainableList.map((p) =>
    slots.map((slot) => {
      const input = `opt.${slot}.${p.name}`;
      state.push({ input, param: p.name, slot, shape: p.value.shape });
      return tb.input(input, 'f32', p.value.shape);
    }),
  );
  const stepF = tb.cast(step, 'f32');
  const update = applyOptimizer(tb, optimizer, schedule, trainableList, stateInputs, stepF);
  tb.output('loss', loss);
  tb.output('grad_norm', update.gradNorm);
  tb.output('lr', update.lr);
  const feedback: Record<string, string> = {};
  trainableList.forEach((p, i) => {
    tb.output(`new.${p.name}`, update.params[i]!);
    feedback[`new.${p.name}`] = p.name;
    slots.forEach((slot, j) => {
      tb.output(`new.opt.${slot}.${p.name}`, update.state[i]![j]!);
      feedback[`new.opt.${slot}.${p.name}`] = `opt.${slot}.${p.name}`;
    });
  });
  qat?.finish(tb, feedback, planned);
  const graphs: Record<string, Graph> = { train_step: tb.build() };

  // ---- eval: the same loss, no dropout, no update
  let evalData: DataInput | null = null;
  if (evalDataset) {
    const { b: eb, lw: elw } = graphLowerer('eval');
    const ebatch = batchInputs(eb, evalDataset, batchSize, evalDataset.seqLen ?? seqLen);
    eb.output('loss', lowerLoss(elw, ctx, ebatch.record));
    graphs['eval'] = eb.build();
    evalData = { spec: evalDataset, fields: ebatch.fields };
  }

  // ---- inference: the model's forward on one sequence of the stage's length
  const { b: ib, lw: ilw } = graphLowerer('inference');
  const tokens = ib.input('tokens', 'i64', [1, seqLen]);
  const out = ilw.callModel(model, [{ k: 'tensor', v: tokens }]);
  if (out.k !== 'tensor') throw new LoweringError('the model forward must return a tensor');
  ib.output('logits', out.v);
  graphs['inference'] = ib.build();

  // ---- generation: prefill and decode with a KV cache, any batch and length (a language model's)
  const generation = planGeneration(module, decl.name.name, model, dataset.tokenizer.vocab, modelContext(model, seqLen));
  if (generation) Object.assign(graphs, generation.graphs);

  const data: Record<string, DataInput> = { train: { spec: dataset, fields: batch.fields } };
  if (evalData) data['eval'] = evalData;
  return {
    kind: decl.stageKind.name,
    stage: decl.name.name,
    model: model.owner,
    graphs,
    params: [...planned.values()],
    state,
    feedback,
    data,
    loop: { body: 'train_step', name: 'train_loop', data: 'train', scanOutputs: ['loss', 'grad_norm', 'lr'] },
    ...(generation ? { dims: generation.dims, generation: generation.plan } : { generation: null }),
    settings: { batchSize, gradAccum, steps, seed, evalEvery, optimizer, schedule },
  };
}

interface LossAndGradients {
  readonly loss: Value;
  readonly grads: Map<Value, Value>;
}

function wholeBatchLoss(tb: GraphBuilder, lw: Lowerer, ctx: StageContext, batch: LV, wrt: readonly Value[]): LossAndGradients {
  const loss = lowerLoss(lw, ctx, batch);
  return { loss, grads: gradients(tb, loss, [...wrt]) };
}

/**
 * Gradient accumulation: the step reads k micro-batches at once; forward and
 * backward of one finish before the next begins, so activations are those of
 * one micro-batch. Every batch mean in the loss divides by the FULL batch's
 * count (taken from a lowering of the loss on the whole batch, whose forward
 * is dead code that DCE removes), so the micro-batch losses and gradients add
 * up to exactly those of one batch of k·b — masked losses included, where
 * averaging k micro-batch means would weight tokens unevenly.
 */
function accumulatedLoss(tb: GraphBuilder, lw: Lowerer, ctx: StageContext, batch: LV, wrt: readonly Value[], rows: number, k: number): LossAndGradients {
  const divisors: Value[] = [];
  let replay = -1;
  lw.batchMeans = {
    divisor: (local) => {
      if (replay < 0) {
        divisors.push(local);
        return local;
      }
      const full = divisors[replay++];
      if (!full) throw new LoweringError('gradient accumulation: the loss takes a different number of means per micro-batch');
      return full;
    },
  };
  const sites = lw.dropoutSites;
  tb.scoped('full_batch_counts', () => lowerLoss(lw, ctx, batch));
  lw.dropoutSites = sites;
  let loss: Value | null = null;
  const grads = new Map<Value, Value>();
  for (let i = 0; i < k; i++) {
    replay = 0;
    const micro = microBatch(tb, batch, i * rows, rows);
    const microLoss = tb.scoped(`micro${i}`, () => lowerLoss(lw, ctx, micro));
    for (const [p, g] of gradients(tb, microLoss, [...wrt])) {
      const prev = grads.get(p);
      grads.set(p, prev ? tb.add(prev, g) : g);
    }
    loss = loss ? tb.add(loss, microLoss) : microLoss;
  }
  lw.batchMeans = null;
  return { loss: loss!, grads };
}

function lowerLoss(lw: Lowerer, ctx: StageContext, batch: LV): Value {
  const env = ctx.env(lw, batch);
  const loss = ctx.settings.get('loss');
  if (!loss) throw new LoweringError(`stage ${ctx.decl.name.name} has no loss`);
  const v = lw.b.scoped('loss', () => lw.eval(loss.value, env));
  if (v.k !== 'tensor' || v.v.shape.length !== 0) throw new LoweringError(`the loss must be a scalar tensor, got ${describeLV(v)}`);
  return v.v;
}

/** Graph inputs for one batch of a dataset, and the `batch` record the loss reads. */
/** Rows [start, start + rows) of every field of a batch. */
function microBatch(b: GraphBuilder, batch: LV, start: number, rows: number): LV {
  if (batch.k !== 'record') throw new LoweringError('expected a batch record');
  const fields = new Map<string, LV>();
  for (const [name, v] of batch.fields) fields.set(name, v.k === 'tensor' ? { k: 'tensor', v: b.slice(v.v, [start], [start + rows], [0]) } : v);
  return { k: 'record', name: batch.name, fields };
}

function batchInputs(b: GraphBuilder, ds: DatasetSpec, batchSize: number, seqLen: number): { record: LV; fields: BatchField[] } {
  if (!DATASET_FORMATS[ds.format].trainable) throw new LoweringError(`a train stage cannot read ${ds.format} data`);
  const fields: BatchField[] = [];
  const record = new Map<string, LV>();
  for (const f of graphFields(ds.format)) {
    const input = batchInputName(f.name);
    const shape = fieldShape(f, { B: batchSize, T: seqLen, P: seqLen });
    const dtype = f.dtype as DType;
    fields.push({ input, field: f.name, dtype, shape });
    record.set(f.name, { k: 'tensor', v: b.input(input, dtype, shape) });
  }
  return { record: { k: 'record', name: 'batch', fields: record }, fields };
}

/** A setting's default call from the stage-kind table, with the built-in's own argument defaults. */
function defaultCall(decl: StageDecl, setting: string): LV | null {
  const call = STAGE_KINDS[decl.stageKind.name]?.settings[setting]?.defaultCall;
  if (!call) return null;
  const args = new Map<string, LV>();
  for (const p of BUILTINS[call.name]!.params) {
    const given = call.args[p.name];
    if (given !== undefined) args.set(p.name, { k: 'float', n: given });
    else if (p.default) args.set(p.name, tyToLV(p.default));
  }
  return { k: 'call', name: call.name, args };
}

function optimizerSpec(v: LV | null): OptimizerSpec {
  if (!v) throw new LoweringError('a train stage needs an optimizer');
  if (v.k !== 'call') throw new LoweringError('optimizer: expected adamw(...) or sgd(...)');
  const num = (name: string): number => asNumber(v.args.get(name)!, name);
  const clip = v.args.get('clip_norm');
  const clipNorm = clip && clip.k !== 'none' ? asNumber(clip, 'clip_norm') : null;
  if (v.name === 'adamw') {
    const betas = v.args.get('betas')!;
    if (betas.k !== 'tuple') throw new LoweringError('adamw: betas must be a pair');
    return { kind: 'adamw', lr: num('lr'), beta1: asNumber(betas.items[0]!, 'beta1'), beta2: asNumber(betas.items[1]!, 'beta2'), eps: num('eps'), weightDecay: num('weight_decay'), clipNorm };
  }
  if (v.name === 'sgd') {
    return { kind: 'sgd', lr: num('lr'), momentum: num('momentum'), nesterov: asBool(v.args.get('nesterov')!, 'nesterov'), weightDecay: num('weight_decay'), clipNorm };
  }
  throw new LoweringError(`unknown optimizer ${v.name}`);
}

function scheduleSpec(v: LV | null, totalSteps: number): ScheduleSpec {
  if (!v) throw new LoweringError('a train stage needs a schedule');
  if (v.k !== 'call' || !['constant', 'linear', 'cosine'].includes(v.name)) throw new LoweringError('schedule: expected constant(...), linear(...) or cosine(...)');
  const minLr = v.args.get('min_lr');
  return { kind: v.name as ScheduleSpec['kind'], warmup: asInt(v.args.get('warmup')!, 'warmup'), minLr: minLr ? asNumber(minLr, 'min_lr') : 0, totalSteps };
}


export interface LossProblem {
  /** Builds the stage's loss (no optimizer) for gradcheck; parameters of the trained model are `wrt`. */
  readonly build: (b: GraphBuilder) => { loss: Value; wrt: Value[] };
  readonly params: readonly PlannedParam[];
  readonly batch: readonly BatchField[];
  readonly dataset: DatasetSpec;
}

/** The loss of a train stage on a small batch (`batchSize` × `seqLen`), for gradient checking. */
export function stageLossProblem(module: ModuleInfo, stageName: string | null, batchSize: number, seqLen: number): LossProblem {
  const plan = lowerTrainStage(module, stageName, { batchSize, steps: 1 });
  const decl = findStage(module, stageName);
  const ctx = new StageContext(module, decl);
  const shared: ModuleValues = new Map();
  const fields: BatchField[] = [];
  const build = (b: GraphBuilder): { loss: Value; wrt: Value[] } => {
    const target = settingsLowerer(shared).eval(decl.target, new Env(module));
    if (target.k !== 'model') throw new LoweringError('the target must be a model');
    const inputs = new Map<string, Value>();
    const lw = new Lowerer(
      b,
      (p) => {
        const name = `${p.owner}.${p.name}`;
        let v = inputs.get(name);
        if (!v) inputs.set(name, (v = b.input(name, p.dtype, p.shape)));
        return v;
      },
      shared,
    );
    const wrt = target.m.frozen ? [] : modelParams(target.m).filter((p) => !target.m.adapted || p.adapter).map((p) => lw.params(p));
    const batch = batchInputs(b, plan.data['train']!.spec, batchSize, seqLen);
    if (fields.length === 0) fields.push(...batch.fields);
    return { loss: lowerLoss(lw, ctx, batch.record), wrt };
  };
  return { build, params: plan.params, batch: fields, dataset: plan.data['train']!.spec };
}
