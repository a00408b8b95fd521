/**
 * Quantization-aware training (`quantize` stages with `method = qat`): the
 * stage trains like a train stage, but every quantization site (src/ir/passes/
 * qdq.ts: a matmul of an activation by a weight, the logits excepted) multiplies
 * fake-quantized operands, so the model learns weights that survive int8:
 *
 * - weights: `fake_quant(w, absmax_scale(w), axis 1)`, symmetric per output
 *   channel from the current weights (an observer: no gradient through the scale),
 *   the gradient of w straight through inside the range;
 * - activations: `fake_quant(x, s)` with a per-tensor scale `<site>.input_scale`
 *   observed as PyTorch's moving-average min/max observer does: each step
 *   s ← s + c·(max|x|/127 − s), c = 0.01, starting from the first batch's own
 *   max|x|/127. The scale is a parameter of the stage (fed back step to step,
 *   checkpointed, never trained by the optimizer).
 *
 * The stage's inference graph is the same fake-quantized form PTQ leaves, so
 * `deploy m @ stage to onnx { precision = int8 }` exports it in the int8 QDQ form.
 */
import type { GraphBuilder } from '../builder.js';
import type { Value } from '../graph.js';
import { activationScaleInput, quantSites } from '../passes/qdq.js';
import type { Lowerer } from './interp.js';
import type { ModuleInfo } from '../../check/modules.js';
import type { ModelNode } from './models.js';
import type { PlannedParam } from './plan.js';
import { lowerModelForward } from './forward.js';
import { NotYetSupported } from './values.js';

/** PyTorch's MovingAverageMinMaxObserver default averaging constant. */
export const OBSERVER_AVERAGING = 0.01;

export class QatLowering {
  /** Weight input → its site's name. */
  private readonly sites: ReadonlyMap<string, string>;
  /** The train step's observed scales: output name → the scale input it feeds next step. */
  private readonly updates = new Map<string, Value>();

  constructor(
    readonly stage: string,
    private readonly model: ModelNode,
  ) {
    if (model.adapted) throw new NotYetSupported(`stage ${stage}: ${model.owner} is a LoRA model; this version trains quantization-aware models without adapters`);
    this.sites = new Map(quantSites(lowerModelForward(model, 1, 1, 'sites')).map((s) => [s.weight, s.name]));
  }

  /** Makes `lw` (lowering graph `graph` into `b`) multiply fake-quantized operands at every site; the train step also observes activation scales. */
  attach(lw: Lowerer, b: GraphBuilder, graph: string): void {
    const observes = graph === 'train_step';
    const scales = new Map<string, Value>();
    const weights = new Map<Value, Value>();
    lw.weightMatmul = (x, w) => {
      const site = this.sites.get(w.inputName ?? '');
      if (!site) return b.matmul(x, w);
      let s = scales.get(site);
      if (!s) {
        const input = b.input(activationScaleInput(site), 'f32', []);
        s = input;
        if (observes) {
          // The first step starts from the batch's own range; then a moving average.
          const seen = b.one('absmax_scale', [x]);
          s = b.where(b.greater(input, b.scalar(0)), b.add(input, b.mul(b.sub(seen, input), b.scalar(OBSERVER_AVERAGING))), seen);
          this.updates.set(`new.${activationScaleInput(site)}`, s);
        }
        scales.set(site, s);
      }
      let wq = weights.get(w);
      if (!wq) weights.set(w, (wq = b.one('fake_quant', [w, b.one('absmax_scale', [w], { axis: 1 })], { axis: 1 })));
      return b.matmul(b.one('fake_quant', [x, s]), wq);
    };
  }

  /** Adds the observed scales to the train step's outputs and feedback, and the scale parameters to the plan's. */
  finish(tb: GraphBuilder, feedback: Record<string, string>, planned: Map<string, PlannedParam>): void {
    for (const [output, value] of this.updates) {
      const input = output.slice('new.'.length);
      tb.output(output, value);
      feedback[output] = input;
      planned.set(input, { input, model: this.model.owner, name: input.slice(this.model.owner.length + 1), dtype: 'f32', shape: [], init: { kind: 'zeros' }, trainable: false, decay: false });
    }
  }
}

/** Whether a stage is quantization-aware training (a quantize stage with method = qat), which lowers as a train stage. */
export function isQatStage(module: ModuleInfo, stage: string): boolean {
  const settings = module.facts.stageSettings.get(stage);
  const method = settings?.get('method');
  return module.stages.get(stage)?.stageKind.name === 'quantize' && method?.k === 'symbol' && method.name === 'qat';
}

/** The QAT lowering of a quantize stage (method = qat) on `model`; refuses what it cannot do yet. */
export function qatLowering(module: ModuleInfo, stage: string, model: ModelNode): QatLowering {
  const precision = module.facts.stageSettings.get(stage)?.get('precision');
  if (precision?.k !== 'symbol' || precision.name !== 'int8') throw new NotYetSupported(`stage ${stage}: quantization-aware training to ${precision?.k === 'symbol' ? precision.name : '?'} is not implemented yet (int8 is)`);
  return new QatLowering(stage, model);
}
