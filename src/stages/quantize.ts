/**
 * `quantize` stages, `method = ptq` (post-training quantization to int8):
 * the model's forward is calibrated on the recipe's `calibrate` data (its
 * activation ranges by minmax, percentile or entropy), each activation that
 * feeds a quantized matmul gets a per-tensor scale, each weight per-channel
 * int8. The stage leaves a checkpoint (the weights, unchanged, plus the
 * activation scales), a per-layer report (`<run>/<stage>/quantization.json`),
 * and a plan whose `inference` graph is the fake-quantized model, which
 * `deploy m @ stage to onnx { precision = int8 }` exports in the int8 QDQ form
 * (src/ir/passes/qdq.ts). The summary says how far the int8 model's logits are
 * from the float model's on the calibration batches, and how large each file is.
 */
import { join } from 'node:path';
import type { ModuleInfo } from '../check/modules.js';
import { numberConst, type Ty } from '../check/types.js';
import type { Graph } from '../ir/graph.js';
import { declaredTarget, modelAfterPruning } from '../ir/lower/pruning.js';
import { lowerModelForward } from '../ir/lower/forward.js';
import { modelParams } from '../ir/lower/models.js';
import type { PlannedParam, StagePlan } from '../ir/lower/plan.js';
import { previousTrainingStage } from '../ir/lower/lineage.js';
import { planParam, type TrainPlan } from '../ir/lower/trainStage.js';
import { isQatStage } from '../ir/lower/qat.js';
import { LoweringError, NotYetSupported, type DatasetSpec } from '../ir/lower/values.js';
import { activationScaleInput, insertFakeQuant, quantSites } from '../ir/passes/qdq.js';
import { writeJsonAtomic } from '../runtime/atomic.js';
import { DEFAULT_PERCENTILE, symmetricScale, type CalibratedRange, type CalibrationMethod, type CalibrationOptions } from '../runtime/calibration.js';
import { activationErrors, activationOutput, calibrateRanges, compareLogits, floatModel, int8Model, scaleTensor, weightErrors, type LogitError, type WeightQuantization } from '../runtime/calibrationRun.js';
import { createSession } from '../runtime/ort.js';
import { ParamStore } from '../runtime/paramStore.js';
import { calibrationBatches, calibrationData, calibrationInput, intSetting } from './calibrationData.js';
import { compileIntoRun } from './compiled.js';
import type { RunContext, StageKindModule, StageResult } from './kind.js';
import { trainStage } from './train.js';

export interface QuantizeSettings {
  readonly method: 'ptq';
  readonly precision: 'int8';
  readonly calibration: CalibrationOptions;
  /** Weights per output channel (the default) or one scale per weight. */
  readonly perChannel: boolean;
  readonly batchSize: number;
  /** Examples to calibrate on (`calibrate = data[:N]`); null: the whole split. */
  readonly rows: number | null;
  readonly seed: number;
  /** A quantize stage leaves one checkpoint, as step 1 of 1. */
  readonly steps: 1;
  /** The quantized layers (sites), in graph order: name and weight input. */
  readonly sites: readonly { readonly name: string; readonly weight: string }[];
}

/**
 * A planned PTQ stage: graphs `calibrate` (the float forward on a calibration
 * batch, with every site's activation as an output `activation.<site>`),
 * `quantized` (the fake-quantized forward on a calibration batch) and
 * `inference` (the fake-quantized forward on one sequence, for deploys), and
 * `inference_float` (the float forward on one sequence: the size comparison).
 */
export type QuantizePlan = StagePlan<QuantizeSettings>;

export const quantizeStage: StageKindModule<QuantizePlan | TrainPlan> = {
  kind: 'quantize',
  plan: (module, stage, context) => {
    if (!isQatStage(module, stage)) return planQuantize(module, stage);
    if (!module.stages.get(stage)!.dataset) throw new LoweringError(`stage ${stage}: quantization-aware training trains on data: quantize MODEL on DATASET`);
    return trainStage.plan(module, stage, context);
  },
  run: async (plan, context) => (isPtq(plan) ? runPtq(plan, context) : trainStage.run(plan, context)),
};

function isPtq(plan: QuantizePlan | TrainPlan): plan is QuantizePlan {
  return (plan.settings as Partial<QuantizeSettings>).method === 'ptq';
}

async function runPtq(plan: QuantizePlan, context: RunContext): Promise<StageResult> {
  const { compiled, modelDir } = compileIntoRun(plan, context);
  const { settings } = plan;
  context.log(`stage ${plan.stage}: int8 post-training quantization of ${plan.model}, ${settings.sites.length} layers, ${settings.calibration.method} calibration on ${datasetName(plan.data['calibrate']!.spec)}`);
  const store = ParamStore.open(compiled.manifest, { runDir: context.runDir, resume: false, seed: settings.seed, ...(context.identity ? { identity: context.identity } : {}) });
  const weights = new Map(plan.params.filter((p) => !isScale(p)).map((p) => [p.input, store.get(p.input)]));
  const batches = calibrationBatches(plan.data['calibrate']!.spec, settings);

  const calibrate = await createSession(join(modelDir, compiled.manifest.graphs['calibrate']!.file), context.device, context.threads);
  const siteNames = settings.sites.map((s) => s.name);
  let ranges: Map<string, CalibratedRange>;
  let errors: Map<string, number>;
  const scales = new Map<string, number>();
  try {
    ranges = await calibrateRanges(calibrate, weights, siteNames, batches, settings.calibration);
    for (const [site, r] of ranges) scales.set(site, symmetricScale(r));
    errors = await activationErrors(calibrate, weights, scales, batches);
  } finally {
    await calibrate.release();
  }
  for (const [site, s] of scales) store.set(activationScaleInput(site), scaleTensor(s));

  const floatWeights = new Map([...weights].map(([k, t]) => [k, t.data as Float32Array]));
  const fp32 = floatModel(forwardOf(plan.graphs['calibrate']!), floatWeights);
  const int8 = int8Model(plan.graphs['quantized']!, floatWeights, scales);
  const logits = await compareLogits(fp32.bytes, int8.bytes, batches, context.threads);
  const weightStats = weightErrors(floatWeights, int8.quantized, settings.sites.map((s) => s.weight));
  // The deployed model's size: one sequence, as `deploy … to onnx` writes it.
  const files = { fp32: floatModel(plan.graphs['inference_float']!, floatWeights).bytes.length, int8: int8Model(plan.graphs['inference']!, floatWeights, scales).bytes.length };

  const report = quantizationReport(plan, batches.length, ranges, scales, errors, weightStats, logits, files);
  const reportPath = join(context.runDir, plan.stage, 'quantization.json');
  writeJsonAtomic(reportPath, report);
  const checkpoint = store.save(1, true);
  return { stage: plan.stage, summary: summarize(plan, report, reportPath, checkpoint), checkpoint };
}

/** `corpus.val`: the dataset and the part calibration reads. */
function datasetName(spec: DatasetSpec): string {
  return spec.part === 'train' ? spec.name : `${spec.name}.${spec.part}`;
}

function isScale(p: PlannedParam): boolean {
  return p.input.endsWith('.input_scale');
}

/** The calibration graph without its activation outputs: the float forward. */
function forwardOf(calibrate: Graph): Graph {
  return { ...calibrate, outputs: calibrate.outputs.filter((o) => o.name === 'logits') };
}

// ------------------------------------------------------------------ plan

function planQuantize(module: ModuleInfo, stage: string): QuantizePlan {
  const decl = module.stages.get(stage)!;
  const typed = module.facts.stageSettings.get(stage) ?? new Map<string, Ty>();
  const symbol = (name: string): string | null => {
    const t = typed.get(name);
    return t?.k === 'symbol' ? t.name : null;
  };
  const precision = symbol('precision');
  if (precision !== 'int8') throw new NotYetSupported(`stage ${stage}: precision ${precision}: this version quantizes to int8 (int4 weight-only, fp16 and fp8 are not implemented yet)`);
  const method = symbol('method') ?? 'ptq';
  if (method !== 'ptq') throw new NotYetSupported(`stage ${stage}: method = ${method}: this version runs post-training quantization (method = ptq); quantization-aware training is not implemented yet`);
  const perChannel = typed.get('per_channel')?.k === 'bool' ? (typed.get('per_channel') as { value: boolean | null }).value !== false : true;
  const calibration: CalibrationOptions = {
    method: (symbol('calibration') ?? 'minmax') as CalibrationMethod,
    percentile: numberSetting(typed, 'percentile') ?? DEFAULT_PERCENTILE,
  };
  const batchSize = intSetting(module, stage, 'batch');
  const seed = intSetting(module, stage, 'seed');

  // The model as earlier stages left it (pruned ones narrower).
  const model = modelAfterPruning(module, decl, declaredTarget(module, decl));
  if (model.adapted) throw new NotYetSupported(`stage ${stage}: ${model.owner} is a LoRA model; this version quantizes models without adapters (merge them first)`);
  const { dataset, rows } = calibrationData(module, decl);
  const seqLen = dataset.seqLen;
  if (seqLen === null) throw new NotYetSupported(`dataset ${dataset.name}: set max_len: calibration runs batches of one fixed length`);

  const forward = (name: string, batch: number): Graph => lowerModelForward(model, batch, seqLen, name);
  const calibrateGraph = forward('calibrate', batchSize);
  const sites = quantSites(calibrateGraph);
  if (sites.length === 0) throw new LoweringError(`stage ${stage}: ${model.owner} has no matmul of an activation by a weight to quantize`);
  const graphs: Record<string, Graph> = {
    calibrate: { ...calibrateGraph, outputs: [...calibrateGraph.outputs, ...sites.map((s) => ({ name: activationOutput(s.name), value: s.activation }))] },
    quantized: insertFakeQuant(forward('quantized', batchSize), undefined, { perChannel }),
    inference: insertFakeQuant(forward('inference', 1), undefined, { perChannel }),
    inference_float: forward('inference_float', 1),
  };

  const continueFrom = model.checkpoint === null ? previousTrainingStage(module, decl, model.owner) : null;
  const params: PlannedParam[] = modelParams(model).map((p) => ({ ...planParam(p, !model.frozen, continueFrom), trainable: false, decay: false }));
  const siteNames = [...new Set(sites.map((s) => s.name))];
  for (const site of siteNames) {
    const input = activationScaleInput(site);
    params.push({ input, model: model.owner, name: input.slice(model.owner.length + 1), dtype: 'f32', shape: [], init: { kind: 'ones' }, trainable: false, decay: false });
  }
  return {
    kind: 'quantize',
    stage,
    model: model.owner,
    graphs,
    params,
    state: [],
    feedback: {},
    data: calibrationInput(dataset, batchSize, seqLen),
    loop: null,
    settings: { method: 'ptq', precision: 'int8', calibration, perChannel, batchSize, rows, seed, steps: 1, sites: sites.map((s) => ({ name: s.name, weight: s.weight })) },
  };
}

function numberSetting(typed: ReadonlyMap<string, Ty>, name: string): number | null {
  const t = typed.get(name);
  return t ? numberConst(t) : null;
}


// ------------------------------------------------------------------ run

/** The per-layer report written to `<run>/<stage>/quantization.json`. */
export interface QuantizationReport {
  readonly stage: string;
  readonly model: string;
  readonly method: string;
  readonly calibration: CalibrationOptions & { readonly dataset: string; readonly batches: number; readonly rows: number };
  readonly layers: readonly {
    readonly name: string;
    readonly activation: { readonly min: number; readonly max: number; readonly lo: number; readonly hi: number; readonly scale: number; readonly relativeError: number };
    readonly weight: WeightQuantization & { readonly name: string };
  }[];
  readonly logits: LogitError;
  /** Sizes of the exported inference model, in bytes. */
  readonly files: { readonly fp32: number; readonly int8: number };
}

function quantizationReport(
  plan: QuantizePlan,
  batches: number,
  ranges: ReadonlyMap<string, CalibratedRange>,
  scales: ReadonlyMap<string, number>,
  errors: ReadonlyMap<string, number>,
  weights: ReadonlyMap<string, WeightQuantization>,
  logits: LogitError,
  files: { fp32: number; int8: number },
): QuantizationReport {
  const { settings } = plan;
  return {
    stage: plan.stage,
    model: plan.model,
    method: settings.method,
    calibration: { ...settings.calibration, dataset: datasetName(plan.data['calibrate']!.spec), batches, rows: batches * settings.batchSize },
    layers: settings.sites.map((s) => ({
      name: s.name,
      activation: { ...ranges.get(s.name)!, scale: scales.get(s.name)!, relativeError: errors.get(s.name)! },
      weight: { name: s.weight, ...weights.get(s.weight)! },
    })),
    logits,
    files,
  };
}

function summarize(plan: QuantizePlan, r: QuantizationReport, reportPath: string, checkpoint: string): string {
  const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
  const worst = [...r.layers].sort((a, b) => b.activation.relativeError - a.activation.relativeError)[0]!;
  return (
    `stage ${plan.stage}: ${r.layers.length} layers quantized to int8 (${r.calibration.method} calibration on ${r.calibration.rows} examples); ` +
    `logits vs fp32 on them: max |Δ| ${r.logits.maxAbs.toPrecision(3)} (largest logit ${r.logits.floatMaxAbs.toPrecision(3)}), top-1 agreement ${pct(r.logits.top1Agreement)}; ` +
    `inference model ${(r.files.int8 / 1024).toFixed(0)} KiB int8 vs ${(r.files.fp32 / 1024).toFixed(0)} KiB fp32 (${pct(r.files.int8 / r.files.fp32)}); ` +
    `largest activation rounding error ${pct(worst.activation.relativeError)} (${worst.name})` +
    `\n  report: ${reportPath}\n  checkpoint: ${checkpoint}`
  );
}
