/**
 * The optimizer update, lowered into the step graph: learning-rate schedule,
 * global-norm gradient clipping, then AdamW (bias-corrected, decoupled weight
 * decay) or SGD (momentum, Nesterov, L2 weight decay as in PyTorch).
 */
import type { GraphBuilder } from '../builder.js';
import type { Value } from '../graph.js';

export type OptimizerSpec =
  | { readonly kind: 'adamw'; readonly lr: number; readonly beta1: number; readonly beta2: number; readonly eps: number; readonly weightDecay: number; readonly clipNorm: number | null }
  | { readonly kind: 'sgd'; readonly lr: number; readonly momentum: number; readonly nesterov: boolean; readonly weightDecay: number; readonly clipNorm: number | null };

export interface ScheduleSpec {
  readonly kind: 'constant' | 'linear' | 'cosine';
  readonly warmup: number;
  readonly minLr: number;
  readonly totalSteps: number;
}

export interface TrainableParam {
  readonly name: string;
  readonly value: Value;
  readonly grad: Value;
  /** Whether weight decay applies (not to norms, biases and embeddings by default). */
  readonly decay: boolean;
}

/** Per-parameter optimizer state: names (suffixes) of the slots each optimizer keeps. */
export function stateSlots(spec: OptimizerSpec): readonly string[] {
  if (spec.kind === 'adamw') return ['m', 'v'];
  return spec.momentum > 0 ? ['momentum'] : [];
}

/**
 * The learning rate at `step` (f32 scalar, 1-based): linear warmup from 0 to lr over
 * `warmup` steps, then constant, linear or cosine decay to minLr at totalSteps.
 */
export function scheduledLr(b: GraphBuilder, step: Value, lr: number, s: ScheduleSpec): Value {
  const c = (v: number): Value => b.scalar(v);
  const span = Math.max(1, s.totalSteps - s.warmup);
  const progress = b.minimum(b.maximum(b.div(b.sub(step, c(s.warmup)), c(span)), c(0)), c(1));
  let decayed: Value;
  if (s.kind === 'constant') decayed = c(lr);
  else if (s.kind === 'linear') decayed = b.sub(c(lr), b.mul(c(lr - s.minLr), progress));
  else decayed = b.add(c(s.minLr), b.mul(c((lr - s.minLr) * 0.5), b.add(c(1), b.cos(b.mul(progress, c(Math.PI))))));
  if (s.warmup <= 0) return decayed;
  const warm = b.mul(c(lr / s.warmup), step);
  return b.where(b.less(step, c(s.warmup)), warm, decayed);
}

export interface OptimizerResult {
  /** New parameter values, in the order given. */
  readonly params: readonly Value[];
  /** New state, per parameter, per slot (stateSlots order). */
  readonly state: readonly (readonly Value[])[];
  readonly gradNorm: Value;
  readonly lr: Value;
}

/**
 * Builds the update. `state[i][j]` is slot j of parameter i (graph inputs);
 * `step` is the 1-based step number as an f32 scalar.
 */
export function applyOptimizer(
  b: GraphBuilder,
  spec: OptimizerSpec,
  schedule: ScheduleSpec,
  params: readonly TrainableParam[],
  state: readonly (readonly Value[])[],
  step: Value,
): OptimizerResult {
  // Optimizer nodes belong to no recipe expression: no span, phase optimizer.
  return b.withProvenance({ span: null, phase: 'optimizer' }, () =>
    b.scoped('optimizer', () => {
      const c = (v: number): Value => b.scalar(v);
      const all = (v: Value): number[] => v.shape.map((_, i) => i);
      const sumSq = (g: Value): Value => (g.shape.length ? b.reduceSum(b.mul(g, g), all(g)) : b.mul(g, g));
      let total: Value | null = null;
      for (const p of params) total = total ? b.add(total, sumSq(p.grad)) : sumSq(p.grad);
      const gradNorm = b.sqrt(total ?? c(0));
      let grads = params.map((p) => p.grad);
      if (spec.clipNorm !== null) {
        // Scale every gradient by min(1, clip / norm): the direction is kept, the length capped.
        const scale = b.minimum(c(1), b.div(c(spec.clipNorm), b.add(gradNorm, c(1e-6))));
        grads = grads.map((g) => b.mul(g, scale));
      }
      const lr = scheduledLr(b, step, spec.lr, schedule);
      const newParams: Value[] = [];
      const newState: Value[][] = [];
      if (spec.kind === 'adamw') {
        const bc1 = b.sub(c(1), b.pow(c(spec.beta1), step));
        const bc2 = b.sub(c(1), b.pow(c(spec.beta2), step));
        // lr / (1 - beta1^t) folded once, and sqrt(1 - beta2^t) applied to v-hat's root.
        const stepSize = b.div(lr, bc1);
        const rootBc2 = b.sqrt(bc2);
        params.forEach((p, i) => {
          const [m, v] = state[i]!;
          const g = grads[i]!;
          const m2 = b.add(b.mul(c(spec.beta1), m!), b.mul(c(1 - spec.beta1), g));
          const v2 = b.add(b.mul(c(spec.beta2), v!), b.mul(c(1 - spec.beta2), b.mul(g, g)));
          const denom = b.add(b.div(b.sqrt(v2), rootBc2), c(spec.eps));
          let next = b.sub(p.value, b.mul(stepSize, b.div(m2, denom)));
          if (p.decay && spec.weightDecay > 0) next = b.sub(next, b.mul(b.mul(lr, c(spec.weightDecay)), p.value));
          newParams.push(next);
          newState.push([m2, v2]);
        });
      } else {
        params.forEach((p, i) => {
          let g = grads[i]!;
          if (p.decay && spec.weightDecay > 0) g = b.add(g, b.mul(c(spec.weightDecay), p.value));
          if (spec.momentum > 0) {
            const buf = b.add(b.mul(c(spec.momentum), state[i]![0]!), g);
            const update = spec.nesterov ? b.add(g, b.mul(c(spec.momentum), buf)) : buf;
            newParams.push(b.sub(p.value, b.mul(lr, update)));
            newState.push([buf]);
          } else {
            newParams.push(b.sub(p.value, b.mul(lr, g)));
            newState.push([]);
          }
        });
      }
      return { params: newParams, state: newState, gradNorm, lr };
    }),
  );
}
