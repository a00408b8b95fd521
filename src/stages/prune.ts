/**
 * `prune` stages. Structured (the default): every feed-forward layer loses a
 * share `sparsity` of its hidden units (src/ir/passes/neuronGroups.ts), the
 * least important ones by `method`:
 *
 * - `magnitude`: the L2 norm of each unit's weights (its column of every
 *   opening weight and bias, its row of the closing weight);
 * - `wanda` (Sun et al., 2023, per unit): the unit's activation norm ‖X_j‖ over
 *   the calibration tokens times the L1 norm of its row of the closing weight —
 *   Σ_i |W_ji|·‖X_j‖, Wanda's |W|·‖X‖ summed over the weights the unit feeds.
 *
 * The model that leaves is smaller: its tensors have the kept units only, and
 * every later stage and deploy lowers it with those shapes (src/ir/lower/pruning.ts).
 * Unstructured (`structured = false`): the smallest weights of every layer that
 * int8 quantization would quantize (src/ir/passes/qdq.ts sites) are set to zero,
 * the share `sparsity` in each output column, by |w| or |w|·‖x‖; shapes stay.
 *
 * Leaves a checkpoint and `<run>/<stage>/pruning.json` (parameters before and
 * after, per layer the units kept or the share of zeros).
 */
import { join } from 'node:path';
import type { ModuleInfo } from '../check/modules.js';
import type { Ty } from '../check/types.js';
import type { StageDecl } from '../language/ast.js';
import type { Graph } from '../ir/graph.js';
import { previousTrainingStage } from '../ir/lower/lineage.js';
import { modelParams, type ModelNode } from '../ir/lower/models.js';
import type { PlannedParam, StagePlan } from '../ir/lower/plan.js';
import { declaredTarget, isStructured, modelAfterPruning, prunedSizes, sparsityOf, withGroupSizes } from '../ir/lower/pruning.js';
import { lowerModelForward } from '../ir/lower/forward.js';
import { planParam } from '../ir/lower/trainStage.js';
import { LoweringError, NotYetSupported, type DatasetSpec } from '../ir/lower/values.js';
import { neuronGroups, type NeuronGroup } from '../ir/passes/neuronGroups.js';
import { quantSites } from '../ir/passes/qdq.js';
import { sizeOf } from '../ir/tensor.js';
import { writeJsonAtomic } from '../runtime/atomic.js';
import { activationOutput } from '../runtime/calibrationRun.js';
import { checkpointTensorLoader, saveCheckpoint } from '../runtime/checkpoint.js';
import { initialParams } from '../runtime/init.js';
import { createSession, ort } from '../runtime/ort.js';
import { calibrationBatches, calibrationData, calibrationInput, datasetRows, intSetting } from './calibrationData.js';
import { compileIntoRun } from './compiled.js';
import type { StageKindModule } from './kind.js';

export type PruneMethod = 'magnitude' | 'wanda';

/** A planned group: which parameter axes run over its units, how many there are and how many stay. */
export interface PlannedGroup {
  readonly name: string;
  readonly size: number;
  readonly kept: number;
  readonly members: NeuronGroup['members'];
  readonly closing: string;
}

export interface PruneSettings {
  readonly method: PruneMethod;
  readonly structured: boolean;
  readonly sparsity: number;
  readonly batchSize: number;
  readonly rows: number | null;
  readonly seed: number;
  readonly steps: 1;
  /** Structured: the groups. */
  readonly groups: readonly PlannedGroup[];
  /** Unstructured: the weights [in, out] whose smallest entries become zero. */
  readonly weights: readonly string[];
  /** The parameters as the stage reads them (before pruning); `params` are what it leaves. */
  readonly sourceParams: readonly PlannedParam[];
}

/**
 * A planned prune stage: `inference` is the pruned model's forward (for deploys);
 * with `method = wanda`, `calibrate` is the forward before pruning with each
 * pruned layer's input activations as outputs (`activation.<name>`).
 */
export type PrunePlan = StagePlan<PruneSettings>;

export const pruneStage: StageKindModule<PrunePlan> = {
  kind: 'prune',
  plan: (module, stage) => planPrune(module, stage),
  run: async (plan, context) => {
    const { compiled, modelDir } = compileIntoRun(plan, context);
    const s = plan.settings;
    context.log(`stage ${plan.stage}: ${s.structured ? `removing ${pct(s.sparsity)} of the hidden units of ${s.groups.length} feed-forward layers` : `zeroing ${pct(s.sparsity)} of the weights of ${s.weights.length} layers`} of ${plan.model} by ${s.method}`);
    const loader = checkpointTensorLoader(context.runDir);
    let source: Map<string, Float32Array>;
    try {
      source = initialParams(s.sourceParams, s.seed, loader);
    } finally {
      loader.close();
    }
    const norms = s.method === 'wanda' ? await activationNorms(plan, join(modelDir, compiled.manifest.graphs['calibrate']!.file), source, context.threads) : null;
    const shapes = new Map(s.sourceParams.map((p) => [p.input, p.shape]));
    const { values, layers } = s.structured ? pruneUnits(s, source, shapes, norms) : zeroWeights(s, source, shapes, norms);
    const before = s.sourceParams.reduce((n, p) => n + sizeOf(p.shape), 0);
    const after = plan.params.reduce((n, p) => n + sizeOf(p.shape), 0);
    const zeros = plan.params.reduce((n, p) => n + values.get(p.input)!.reduce((z, v) => z + (v === 0 ? 1 : 0), 0), 0);
    const report = { stage: plan.stage, model: plan.model, method: s.method, structured: s.structured, sparsity: s.sparsity, parameters: { before, after, zeros }, layers };
    const reportPath = join(context.runDir, plan.stage, 'pruning.json');
    writeJsonAtomic(reportPath, report);
    const trainer = { stage: plan.stage, step: 1, steps: 1, seed: s.seed, rng: { scheme: 'seed-and-step' as const, seed: s.seed }, complete: true, ...(context.identity ? { run: context.identity.run, fingerprint: context.identity.fingerprint } : {}) };
    const checkpoint = saveCheckpoint(context.runDir, trainer, plan.params, values, [], new Map());
    const count = (n: number): string => n.toLocaleString('en-US');
    const summary = s.structured
      ? `stage ${plan.stage}: ${count(before)} → ${count(after)} parameters (${pct(after / before)}); feed-forward units ${s.groups.map((g) => `${g.size} → ${g.kept}`).filter((x, i, all) => all.indexOf(x) === i).join(', ')} per layer`
      : `stage ${plan.stage}: ${count(zeros)} of ${count(after)} parameters are zero (${pct(zeros / after)}); shapes unchanged`;
    return { stage: plan.stage, summary: `${summary}\n  report: ${reportPath}\n  checkpoint: ${checkpoint}`, checkpoint };
  },
};

function pct(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}

// ------------------------------------------------------------------ plan

function planPrune(module: ModuleInfo, stage: string): PrunePlan {
  const decl = module.stages.get(stage)!;
  const typed = module.facts.stageSettings.get(stage) ?? new Map<string, Ty>();
  const method = (typed.get('method')?.k === 'symbol' ? (typed.get('method') as { name: string }).name : 'magnitude') as PruneMethod | 'sparsegpt';
  if (method === 'sparsegpt') throw new NotYetSupported(`stage ${stage}: method = sparsegpt is not implemented yet (magnitude and wanda are)`);
  const structured = isStructured(module, stage);
  const sparsity = sparsityOf(module, stage);
  const batchSize = intSetting(module, stage, 'batch');
  const seed = intSetting(module, stage, 'seed');

  const declared = declaredTarget(module, decl);
  if (declared.adapted) throw new NotYetSupported(`stage ${stage}: ${declared.owner} is a LoRA model; this version prunes models without adapters`);
  // The model as earlier prune stages left it.
  const model = modelAfterPruning(module, decl, declared);
  const continueFrom = model.checkpoint === null ? previousTrainingStage(module, decl, model.owner) : null;
  const sourceParams = modelParams(model).map((p) => ({ ...planParam(p, !model.frozen, continueFrom), trainable: false, decay: false }));

  const data = method === 'wanda' ? calibrationData(module, decl) : null;
  const seqLen = data?.dataset.seqLen ?? inferenceLength(module, decl);
  if (seqLen === null) throw new NotYetSupported(`dataset ${data!.dataset.name}: set max_len: calibration runs batches of one fixed length`);
  const forward = lowerModelForward(model, batchSize, seqLen, 'calibrate');

  let groups: PlannedGroup[] = [];
  let weights: string[] = [];
  let pruned: ModelNode = model;
  const graphs: Record<string, Graph> = {};
  if (structured) {
    const found = neuronGroups(forward);
    if (found.length === 0) throw new LoweringError(`stage ${stage}: ${model.owner} has no feed-forward layers to remove units from (x @ w_in, elementwise functions, @ w_out)`);
    const sizes = prunedSizes(found, [sparsity]);
    groups = found.map((g) => ({ name: g.name, size: g.size, kept: sizes.get(g.name)!, members: g.members, closing: g.closing }));
    pruned = withGroupSizes(model, found, sizes);
    if (method === 'wanda') graphs['calibrate'] = withOutputs(forward, found.map((g) => [g.name, g.activation] as const));
  } else {
    const sites = quantSites(forward);
    weights = [...new Set(sites.map((s) => s.weight))];
    if (method === 'wanda') graphs['calibrate'] = withOutputs(forward, sites.map((s) => [s.weight, s.activation] as const));
  }
  graphs['inference'] = lowerModelForward(pruned, 1, seqLen, 'inference');
  const params = modelParams(pruned).map((p) => ({ ...planParam(p, false, null), trainable: false, decay: false }));
  return {
    kind: 'prune',
    stage,
    model: model.owner,
    graphs,
    params,
    state: [],
    feedback: {},
    data: data ? calibrationInput(data.dataset, batchSize, seqLen) : {},
    loop: null,
    settings: { method, structured, sparsity, batchSize, rows: data?.rows ?? null, seed, steps: 1, groups, weights, sourceParams },
  };
}

function withOutputs(g: Graph, outputs: readonly (readonly [string, Graph['inputs'][number]])[]): Graph {
  const seen = new Set<string>();
  const extra = outputs.filter(([name]) => !seen.has(name) && seen.add(name)).map(([name, value]) => ({ name: activationOutput(name), value }));
  return { ...g, outputs: [...g.outputs, ...extra] };
}

/** The sequence length of the model's inference graph: the data of the stage that trained it last. */
function inferenceLength(module: ModuleInfo, decl: StageDecl): number | null {
  const own = decl.dataset ? datasetOf(module, decl) : null;
  if (own) return own.seqLen;
  let at: StageDecl | undefined = decl;
  const target = decl.target.kind === 'NameExpr' ? decl.target.name : null;
  while (at && target) {
    const prev = previousTrainingStage(module, at, target);
    at = prev ? module.stages.get(prev) : undefined;
    const ds = at?.dataset ? datasetOf(module, at) : null;
    if (ds?.seqLen) return ds.seqLen;
  }
  throw new NotYetSupported(`stage ${decl.name.name}: give it data (prune … on DATASET) for the length of its inference graph`);
}

function datasetOf(module: ModuleInfo, decl: StageDecl): DatasetSpec | null {
  return decl.dataset ? datasetRows(module, decl, decl.dataset).dataset : null;
}

// ------------------------------------------------------------------ run

/** ‖X_j‖ over every calibration token, for each pruned layer's input channel j. */
async function activationNorms(plan: PrunePlan, file: string, weights: ReadonlyMap<string, Float32Array>, threads?: number): Promise<Map<string, Float64Array>> {
  const session = await createSession(file, 'cpu', threads);
  const sums = new Map<string, Float64Array>();
  try {
    const feeds: Record<string, InstanceType<typeof ort.Tensor>> = {};
    for (const p of plan.settings.sourceParams) feeds[p.input] = new ort.Tensor('float32', weights.get(p.input)!, [...p.shape]);
    for (const batch of calibrationBatches(plan.data['calibrate']!.spec, plan.settings)) {
      const out = await session.run({ ...feeds, ...batch });
      for (const name of session.outputNames) {
        if (name === 'logits') continue;
        const x = out[name]!.data as Float32Array;
        const h = out[name]!.dims[out[name]!.dims.length - 1]!;
        const acc = sums.get(name) ?? sums.set(name, new Float64Array(h)).get(name)!;
        for (let i = 0; i < x.length; i++) acc[i % h]! += x[i]! * x[i]!;
      }
    }
  } finally {
    await session.release();
  }
  return new Map([...sums].map(([k, v]) => [k.slice('activation.'.length), v.map(Math.sqrt)]));
}

type Shapes = ReadonlyMap<string, readonly number[]>;

/** Indices along `axis` of a row-major tensor: for each element, its coordinate on the axis. */
function axisIndex(shape: readonly number[], axis: number): (flat: number) => number {
  const stride = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  return (flat) => Math.floor(flat / stride) % shape[axis]!;
}

/** Keeps `kept` (sorted indices) along `axis`. */
function sliceAxis(data: Float32Array, shape: readonly number[], axis: number, kept: readonly number[]): Float32Array {
  const stride = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const outer = shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const out = new Float32Array(outer * kept.length * stride);
  let o = 0;
  for (let i = 0; i < outer; i++) for (const k of kept) for (let j = 0; j < stride; j++) out[o++] = data[(i * shape[axis]! + k) * stride + j]!;
  return out;
}

function pruneUnits(s: PruneSettings, source: Map<string, Float32Array>, shapes: Shapes, norms: ReadonlyMap<string, Float64Array> | null) {
  const values = new Map(source);
  const layers = s.groups.map((g) => {
    const score = new Float64Array(g.size);
    if (norms) {
      // Wanda: ‖X_j‖ · Σ_i |W_out[j, i]|.
      const w = source.get(g.closing)!;
      const unit = axisIndex(shapes.get(g.closing)!, 0);
      for (let i = 0; i < w.length; i++) score[unit(i)]! += Math.abs(w[i]!);
      const x = norms.get(g.name)!;
      for (let j = 0; j < g.size; j++) score[j]! *= x[j]!;
    } else {
      // Magnitude: the L2 norm of everything the unit owns.
      for (const m of g.members) {
        const w = source.get(m.param)!;
        const unit = axisIndex(shapes.get(m.param)!, m.axis);
        for (let i = 0; i < w.length; i++) score[unit(i)]! += w[i]! * w[i]!;
      }
    }
    const kept = [...score.keys()].sort((a, b) => score[b]! - score[a]! || a - b).slice(0, g.kept).sort((a, b) => a - b);
    for (const m of g.members) values.set(m.param, sliceAxis(source.get(m.param)!, shapes.get(m.param)!, m.axis, kept));
    return { name: g.name, units: g.size, kept: g.kept, keptUnits: kept };
  });
  return { values, layers };
}

function zeroWeights(s: PruneSettings, source: Map<string, Float32Array>, shapes: Shapes, norms: ReadonlyMap<string, Float64Array> | null) {
  const values = new Map(source);
  const layers = s.weights.map((name) => {
    const [inp, out] = shapes.get(name) as [number, number];
    const w = Float32Array.from(source.get(name)!);
    const x = norms?.get(name);
    const remove = Math.round(inp * s.sparsity);
    // Per output column, as Wanda compares: the `remove` smallest |w_ij| (· ‖x_i‖) of column j become 0.
    for (let j = 0; j < out; j++) {
      const rows = [...Array(inp).keys()].sort((a, b) => Math.abs(w[a * out + j]!) * (x?.[a] ?? 1) - Math.abs(w[b * out + j]!) * (x?.[b] ?? 1) || a - b);
      for (const i of rows.slice(0, remove)) w[i * out + j] = 0;
    }
    values.set(name, w);
    return { name, zeros: w.reduce((n, v) => n + (v === 0 ? 1 : 0), 0) / w.length };
  });
  return { values, layers };
}
