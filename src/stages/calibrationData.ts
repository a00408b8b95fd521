/**
 * What prune and quantize stages share: the data they calibrate on (the
 * `calibrate` setting: a dataset, or its first N examples, `corpus.val[:256]`)
 * and its batches of tokens as the model's forward reads them, and their
 * integer settings.
 */
import type { ModuleInfo } from '../check/modules.js';
import { batchInputName } from '../check/dataSchema.js';
import type { Expression, StageDecl } from '../language/ast.js';
import { Env } from '../ir/lower/interp.js';
import { settingsLowerer, stageIntSetting } from '../ir/lower/settings.js';
import type { DataInput } from '../ir/lower/plan.js';
import { describeLV, LoweringError, NotYetSupported, type DatasetSpec } from '../ir/lower/values.js';
import type { CalibrationBatch } from '../runtime/calibrationRun.js';
import { DataError, openStageData } from '../runtime/datasets.js';
import type { OrtTensor } from '../runtime/ort.js';

/** A dataset and how many of its examples to use (null: all of its part). */
export interface DataRows {
  readonly dataset: DatasetSpec;
  readonly rows: number | null;
}

/** The value of `data` or `data[:N]`. */
export function datasetRows(module: ModuleInfo, decl: StageDecl, e: Expression): DataRows {
  const probe = settingsLowerer();
  let expr = e;
  let rows: number | null = null;
  if (expr.kind === 'IndexExpr' && expr.subscripts.length === 1 && expr.subscripts[0]!.kind === 'SliceSubscript') {
    const slice = expr.subscripts[0]!;
    const start = slice.start ? probe.eval(slice.start, new Env(module)) : null;
    const end = slice.end ? probe.eval(slice.end, new Env(module)) : null;
    if ((start && !(start.k === 'int' && start.n === 0)) || !end || end.k !== 'int' || end.n < 1) {
      throw new NotYetSupported(`stage ${decl.name.name}: data for calibration is a dataset or its first N examples (data[:N])`);
    }
    rows = end.n;
    expr = expr.object;
  }
  const data = probe.eval(expr, new Env(module));
  if (data.k !== 'dataset') throw new LoweringError(`stage ${decl.name.name}: expected a dataset, got ${describeLV(data)}`);
  return { dataset: data.spec, rows };
}

/** The stage's `calibrate` setting. */
export function calibrationData(module: ModuleInfo, decl: StageDecl): DataRows {
  const setting = decl.items.find((i) => i.kind === 'Setting' && i.name.name === 'calibrate');
  if (setting?.kind !== 'Setting') throw new LoweringError(`stage ${decl.name.name} needs 'calibrate'`);
  return datasetRows(module, decl, setting.value);
}

/** The plan's `calibrate` data: the model's forward reads its tokens, [batch, seq]. */
export function calibrationInput(spec: DatasetSpec, batchSize: number, seqLen: number): Record<string, DataInput> {
  return { calibrate: { spec, fields: [{ input: 'tokens', field: 'tokens', dtype: 'i64', shape: [batchSize, seqLen] }] } };
}

/** The calibration batches: the first `rows` examples (whole batches) of the dataset's part, or all of it. */
export function calibrationBatches(spec: DatasetSpec, options: { readonly batchSize: number; readonly rows: number | null; readonly seed: number }): CalibrationBatch[] {
  const { batchSize, rows, seed } = options;
  const data = openStageData(spec, seed);
  const tokens = batchInputName('tokens');
  let batches: Record<string, OrtTensor>[];
  if (spec.part === 'val') batches = data.valBatches(batchSize);
  else {
    const count = Math.ceil((rows ?? data.examplesPerEpoch) / batchSize);
    batches = Array.from({ length: count }, (_, i) => data.trainBatch(i, batchSize));
  }
  if (rows !== null) batches = batches.slice(0, Math.ceil(rows / batchSize));
  if (batches.length === 0) throw new DataError(`dataset ${spec.name}: its ${spec.part} split holds less than one batch of ${batchSize}; calibration needs at least one`);
  return batches.map((b) => {
    const t = b[tokens];
    if (!t) throw new DataError(`dataset ${spec.name}: calibration feeds the model its ${spec.format} batches' tokens, and these have none`);
    return { tokens: t };
  });
}

/** An integer setting of a stage as the checker typed it, else the stage-kind table's default. */
export function intSetting(module: ModuleInfo, stage: string, name: string): number {
  const v = stageIntSetting(module, module.stages.get(stage)!, name);
  if (v === null) throw new LoweringError(`stage ${stage}: ${name} must be an integer`);
  return v;
}
