/**
 * The optimizer update and learning-rate schedule built by passes/optimizer.ts,
 * checked against an independent plain-JS implementation of PyTorch's
 * semantics, several steps in a row (each step's outputs fed back as the next
 * step's inputs), through the float64 reference evaluator and through ONNX
 * (onnxruntime-node, float32).
 *
 * Tolerances: the reference evaluator computes in float64 like the JS model, so
 * it must agree to 1e-12 (relative to max(1, |expected|)). ONNX runs in float32
 * and is fed its own outputs back, so rounding accumulates over the steps; it
 * must agree to 2e-6 (same scale; the observed worst is about 1.7e-7).
 */
import { describe, expect, it } from 'vitest';
import { gradients } from '../../src/ir/autodiff.js';
import { GraphBuilder } from '../../src/ir/builder.js';
import { evaluateGraph } from '../../src/ir/evaluate.js';
import type { Graph, Value } from '../../src/ir/graph.js';
import { applyOptimizer, scheduledLr, stateSlots, type OptimizerSpec, type ScheduleSpec, type TrainableParam } from '../../src/ir/passes/optimizer.js';
import { makeTensor, type Tensor } from '../../src/ir/tensor.js';
import { runOnce } from '../../src/runtime/ort.js';
import { emitModel } from '../../targets/onnx/emit.js';

const EVAL_TOL = 1e-12;
const ORT_TOL = 2e-6;

// ------------------------------------------------------------------ independent reference

/** PyTorch-style schedule: linear warmup from 0, then constant / linear / cosine to minLr at totalSteps. */
function refLr(step: number, lr: number, s: ScheduleSpec): number {
  if (s.warmup > 0 && step < s.warmup) return (lr * step) / s.warmup;
  const span = Math.max(1, s.totalSteps - s.warmup);
  const progress = Math.min(1, Math.max(0, (step - s.warmup) / span));
  switch (s.kind) {
    case 'constant':
      return lr;
    case 'linear':
      return lr + (s.minLr - lr) * progress;
    case 'cosine':
      return s.minLr + ((lr - s.minLr) * (1 + Math.cos(Math.PI * progress))) / 2;
  }
}

interface RefParam {
  readonly decay: boolean;
  value: number[];
  /** adamw: [m, v]; sgd with momentum: [buf]; plain sgd: []. */
  state: number[][];
}

/** One step of torch.nn.utils.clip_grad_norm_ followed by torch.optim.AdamW / torch.optim.SGD. */
function refStep(spec: OptimizerSpec, sched: ScheduleSpec, params: RefParam[], rawGrads: number[][], step: number): { gradNorm: number; lr: number } {
  let sq = 0;
  for (const g of rawGrads) for (const x of g) sq += x * x;
  const gradNorm = Math.sqrt(sq);
  const clip = spec.clipNorm === null ? 1 : Math.min(1, spec.clipNorm / (gradNorm + 1e-6));
  const grads = rawGrads.map((g) => g.map((x) => x * clip));
  const lr = refLr(step, spec.lr, sched);
  params.forEach((p, i) => {
    const g = grads[i]!;
    if (spec.kind === 'adamw') {
      const [m, v] = p.state as [number[], number[]];
      p.value = p.value.map((w, j) => {
        // Decoupled weight decay on the old weights, then the bias-corrected Adam step.
        let next = p.decay ? w - lr * spec.weightDecay * w : w;
        m[j] = spec.beta1 * m[j]! + (1 - spec.beta1) * g[j]!;
        v[j] = spec.beta2 * v[j]! + (1 - spec.beta2) * g[j]! * g[j]!;
        const mHat = m[j]! / (1 - spec.beta1 ** step);
        const vHat = v[j]! / (1 - spec.beta2 ** step);
        next -= (lr * mHat) / (Math.sqrt(vHat) + spec.eps);
        return next;
      });
    } else {
      p.value = p.value.map((w, j) => {
        let d = g[j]!;
        if (p.decay) d += spec.weightDecay * w; // L2: added to the gradient
        if (spec.momentum > 0) {
          const buf = p.state[0]!;
          buf[j] = spec.momentum * buf[j]! + d;
          d = spec.nesterov ? d + spec.momentum * buf[j]! : buf[j]!;
        }
        return w - lr * d;
      });
    }
  });
  return { gradNorm, lr };
}

// ------------------------------------------------------------------ graphs under test

interface ParamSpec {
  readonly name: string;
  readonly shape: readonly number[];
  readonly decay: boolean;
  readonly init: readonly number[];
}

/** Params, their gradients and optimizer state all graph inputs; new values, grad norm and lr outputs. */
function buildStepGraph(spec: OptimizerSpec, sched: ScheduleSpec, params: readonly ParamSpec[]): Graph {
  const b = new GraphBuilder('opt_step');
  const slots = stateSlots(spec);
  const trainable: TrainableParam[] = params.map((p) => ({
    name: p.name,
    value: b.input(`p.${p.name}`, 'f32', p.shape),
    grad: b.input(`g.${p.name}`, 'f32', p.shape),
    decay: p.decay,
  }));
  const state = params.map((p) => slots.map((s) => b.input(`s.${s}.${p.name}`, 'f32', p.shape)));
  const step = b.input('step', 'f32', []);
  const r = applyOptimizer(b, spec, sched, trainable, state, step);
  params.forEach((p, i) => {
    b.output(`new.p.${p.name}`, r.params[i]!);
    slots.forEach((s, j) => b.output(`new.s.${s}.${p.name}`, r.state[i]![j]!));
  });
  b.output('grad_norm', r.gradNorm);
  b.output('lr', r.lr);
  return b.build();
}

/** Deterministic gradients: a fixed pattern per step, scaled so some steps clip and some do not. */
function gradFor(step: number, p: ParamSpec, scale: number): number[] {
  const n = p.init.length;
  return Array.from({ length: n }, (_, j) => scale * Math.sin(1.3 * step + 0.7 * j + p.name.length) * (j % 2 ? 1 : -0.5));
}

function closeness(actual: ArrayLike<number>, expected: readonly number[]): number {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!) / Math.max(1, Math.abs(expected[i]!)));
  return worst;
}

interface RunResult {
  readonly norms: number[];
  readonly lrs: number[];
  readonly worstEval: number;
  readonly worstOrt: number;
  readonly finalParams: number[][];
}

/** Runs `steps` steps through the JS reference, the evaluator and ONNX, each fed its own outputs. */
async function runAll(spec: OptimizerSpec, sched: ScheduleSpec, params: readonly ParamSpec[], steps: number, gradScale: (step: number) => number): Promise<RunResult> {
  const graph = buildStepGraph(spec, sched, params);
  const model = emitModel(graph).bytes;
  const slots = stateSlots(spec);
  const ref: RefParam[] = params.map((p) => ({ decay: p.decay, value: [...p.init], state: slots.map(() => p.init.map(() => 0)) }));
  const initial = new Map<string, Tensor>();
  for (const p of params) {
    initial.set(`p.${p.name}`, makeTensor('f32', p.shape, p.init));
    for (const s of slots) initial.set(`s.${s}.${p.name}`, makeTensor('f32', p.shape, p.init.map(() => 0)));
  }
  let evalState = new Map(initial);
  let ortState = new Map(initial);
  const norms: number[] = [];
  const lrs: number[] = [];
  let worstEval = 0;
  let worstOrt = 0;
  for (let step = 1; step <= steps; step++) {
    const grads = params.map((p) => gradFor(step, p, gradScale(step)));
    const { gradNorm, lr } = refStep(spec, sched, ref, grads, step);
    norms.push(gradNorm);
    lrs.push(lr);
    const feeds = (st: Map<string, Tensor>): Map<string, Tensor> => {
      const f = new Map(st);
      params.forEach((p, i) => f.set(`g.${p.name}`, makeTensor('f32', p.shape, grads[i]!)));
      f.set('step', makeTensor('f32', [], [step]));
      return f;
    };
    const ev = evaluateGraph(graph, feeds(evalState));
    const ox = await runOnce(model, feeds(ortState));
    const check = (out: Map<string, Tensor>, name: string, expected: number[]): number => {
      const t = out.get(name);
      expect(t, `output ${name}`).toBeDefined();
      return closeness(t!.data, expected);
    };
    for (const [out, isOrt] of [
      [ev, false],
      [ox, true],
    ] as const) {
      let worst = Math.max(check(out, 'grad_norm', [gradNorm]), check(out, 'lr', [lr]));
      params.forEach((p, i) => {
        worst = Math.max(worst, check(out, `new.p.${p.name}`, ref[i]!.value));
        slots.forEach((s, j) => (worst = Math.max(worst, check(out, `new.s.${s}.${p.name}`, ref[i]!.state[j]!))));
      });
      if (isOrt) worstOrt = Math.max(worstOrt, worst);
      else worstEval = Math.max(worstEval, worst);
    }
    // Feed each path's own outputs back.
    const next = (out: Map<string, Tensor>): Map<string, Tensor> => {
      const st = new Map<string, Tensor>();
      for (const p of params) {
        st.set(`p.${p.name}`, out.get(`new.p.${p.name}`)!);
        for (const s of slots) st.set(`s.${s}.${p.name}`, out.get(`new.s.${s}.${p.name}`)!);
      }
      return st;
    };
    evalState = next(ev);
    ortState = next(ox);
  }
  return { norms, lrs, worstEval, worstOrt, finalParams: ref.map((p) => p.value) };
}

const PARAMS: readonly ParamSpec[] = [
  { name: 'w', shape: [2, 3], decay: true, init: [0.5, -1.2, 0.3, 2.0, -0.7, 1.1] },
  { name: 'bias', shape: [3], decay: false, init: [0.1, -0.2, 0.05] },
  { name: 'scale', shape: [], decay: false, init: [1.5] },
];

const COSINE: ScheduleSpec = { kind: 'cosine', warmup: 2, minLr: 1e-3, totalSteps: 6 };
const LINEAR: ScheduleSpec = { kind: 'linear', warmup: 2, minLr: 0, totalSteps: 5 };
const CONSTANT: ScheduleSpec = { kind: 'constant', warmup: 0, minLr: 0, totalSteps: 6 };

/** Steps 2 and 5 get large gradients (norm well above 1), the others small ones. */
const mixedScale = (step: number): number => (step === 2 || step === 5 ? 4 : 0.2);

describe('applyOptimizer: AdamW', () => {
  const adamw: OptimizerSpec = { kind: 'adamw', lr: 0.05, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1, clipNorm: 1.0 };

  it('matches PyTorch AdamW (bias correction, decoupled decay, clipping) over 7 steps, evaluator and ONNX', async () => {
    const r = await runAll(adamw, COSINE, PARAMS, 7, mixedScale);
    // The test exercises both sides of the clip: steps 2 and 5 clip, the others do not.
    expect(r.norms[1]!).toBeGreaterThan(1.5);
    expect(r.norms[4]!).toBeGreaterThan(1.5);
    expect(r.norms[0]!).toBeLessThan(1);
    expect(r.norms[2]!).toBeLessThan(1);
    expect(r.worstEval).toBeLessThanOrEqual(EVAL_TOL);
    expect(r.worstOrt).toBeLessThanOrEqual(ORT_TOL);
    // The parameters actually moved.
    expect(Math.abs(r.finalParams[0]![0]! - 0.5)).toBeGreaterThan(1e-3);
  });

  it('without clipping and with a constant schedule', async () => {
    const r = await runAll({ ...adamw, clipNorm: null, weightDecay: 0.3 }, CONSTANT, PARAMS, 5, () => 3);
    expect(Math.min(...r.norms)).toBeGreaterThan(1); // would have been clipped
    expect(r.worstEval).toBeLessThanOrEqual(EVAL_TOL);
    expect(r.worstOrt).toBeLessThanOrEqual(ORT_TOL);
  });

  it('decays only decay=true params: with zero gradients a decay=false param stays put, a decayed one shrinks by (1 - lr·wd) per step', async () => {
    const graph = buildStepGraph({ ...adamw, clipNorm: null }, CONSTANT, PARAMS);
    const model = emitModel(graph).bytes;
    const feeds = new Map<string, Tensor>();
    for (const p of PARAMS) {
      const zero = p.init.map(() => 0);
      feeds.set(`p.${p.name}`, makeTensor('f32', p.shape, p.init));
      feeds.set(`g.${p.name}`, makeTensor('f32', p.shape, zero));
      feeds.set(`s.m.${p.name}`, makeTensor('f32', p.shape, zero));
      feeds.set(`s.v.${p.name}`, makeTensor('f32', p.shape, zero));
    }
    feeds.set('step', makeTensor('f32', [], [1]));
    for (const out of [evaluateGraph(graph, feeds), await runOnce(model, feeds)]) {
      const factor = 1 - 0.05 * 0.1;
      expect(closeness(out.get('new.p.w')!.data, PARAMS[0]!.init.map((x) => x * factor))).toBeLessThanOrEqual(1e-7);
      // Bit for bit (at float32 precision for the ONNX run): no update at all.
      expect(Array.from(out.get('new.p.bias')!.data, Math.fround)).toEqual(PARAMS[1]!.init.map(Math.fround));
      expect(Array.from(out.get('new.p.scale')!.data)).toEqual([1.5]);
    }
  });
});

describe('applyOptimizer: SGD', () => {
  const base = { kind: 'sgd' as const, lr: 0.1, weightDecay: 0.05, clipNorm: 1.0 };
  const cases: [string, OptimizerSpec, ScheduleSpec][] = [
    ['momentum', { ...base, momentum: 0.9, nesterov: false }, LINEAR],
    ['Nesterov momentum', { ...base, momentum: 0.9, nesterov: true }, COSINE],
    ['no momentum (no state)', { ...base, momentum: 0, nesterov: false }, LINEAR],
    ['no weight decay, no clipping', { ...base, weightDecay: 0, clipNorm: null, momentum: 0.5, nesterov: true }, CONSTANT],
  ];
  for (const [what, spec, sched] of cases) {
    it(`${what}: matches PyTorch SGD over 6 steps (evaluator and ONNX)`, async () => {
      const r = await runAll(spec, sched, PARAMS, 6, mixedScale);
      expect(r.worstEval).toBeLessThanOrEqual(EVAL_TOL);
      expect(r.worstOrt).toBeLessThanOrEqual(ORT_TOL);
    });
  }

  it('keeps one momentum slot per parameter, none without momentum', () => {
    expect(stateSlots({ ...base, momentum: 0.9, nesterov: false })).toEqual(['momentum']);
    expect(stateSlots({ ...base, momentum: 0, nesterov: false })).toEqual([]);
    expect(stateSlots({ kind: 'adamw', lr: 1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, clipNorm: null })).toEqual(['m', 'v']);
  });

  it('hand-computed: one Nesterov step with L2 decay on a decay=true param and none on a decay=false one', async () => {
    // w = 2, g = 0.5, wd = 0.1, mu = 0.9, lr = 0.1, buf0 = 1:
    //   d = 0.5 + 0.1·2 = 0.7; buf = 0.9·1 + 0.7 = 1.6; update = 0.7 + 0.9·1.6 = 2.14; w' = 2 − 0.214 = 1.786
    // b = 2, same gradient, no decay:
    //   d = 0.5; buf = 0.9 + 0.5 = 1.4; update = 0.5 + 1.26 = 1.76; b' = 2 − 0.176 = 1.824
    const spec: OptimizerSpec = { kind: 'sgd', lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 0.1, clipNorm: null };
    const params: ParamSpec[] = [
      { name: 'w', shape: [1], decay: true, init: [2] },
      { name: 'b', shape: [1], decay: false, init: [2] },
    ];
    const graph = buildStepGraph(spec, CONSTANT, params);
    const feeds = new Map<string, Tensor>([
      ['p.w', makeTensor('f32', [1], [2])],
      ['p.b', makeTensor('f32', [1], [2])],
      ['g.w', makeTensor('f32', [1], [0.5])],
      ['g.b', makeTensor('f32', [1], [0.5])],
      ['s.momentum.w', makeTensor('f32', [1], [1])],
      ['s.momentum.b', makeTensor('f32', [1], [1])],
      ['step', makeTensor('f32', [], [3])],
    ]);
    for (const [out, digits] of [
      [evaluateGraph(graph, feeds), 12],
      [await runOnce(emitModel(graph).bytes, feeds), 6],
    ] as const) {
      expect(out.get('new.p.w')!.data[0]).toBeCloseTo(1.786, digits);
      expect(out.get('new.s.momentum.w')!.data[0]).toBeCloseTo(1.6, digits);
      expect(out.get('new.p.b')!.data[0]).toBeCloseTo(1.824, digits);
      expect(out.get('new.s.momentum.b')!.data[0]).toBeCloseTo(1.4, digits);
      // sqrt(0.5² + 0.5²)
      expect(out.get('grad_norm')!.data[0]).toBeCloseTo(Math.SQRT1_2, 6);
    }
  });

  it('with a gradient from autodiff: loss = ½·Σp² gives p ← (1 − lr)·p per step', async () => {
    const b = new GraphBuilder('sgd_autodiff');
    const p = b.input('p', 'f32', [4]);
    const step = b.input('step', 'f32', []);
    const loss = b.mul(b.scalar(0.5), b.reduceSum(b.mul(p, p), [0]));
    const grad = gradients(b, loss, [p]).get(p)!;
    const spec: OptimizerSpec = { kind: 'sgd', lr: 0.25, momentum: 0, nesterov: false, weightDecay: 0.5, clipNorm: null };
    const r = applyOptimizer(b, spec, CONSTANT, [{ name: 'p', value: p, grad, decay: false }], [[]], step);
    b.output('loss', loss);
    b.output('new.p', r.params[0]!);
    const graph = b.build();
    const model = emitModel(graph).bytes;
    const init = [1, -2, 0.5, 4];
    let ev = makeTensor('f32', [4], init);
    let ox = ev;
    for (let s = 1; s <= 4; s++) {
      const f = (t: Tensor): Map<string, Tensor> => new Map([['p', t], ['step', makeTensor('f32', [], [s])]]);
      const e = evaluateGraph(graph, f(ev));
      const o = await runOnce(model, f(ox));
      const expected = init.map((x) => x * 0.75 ** s);
      const expectedLoss = 0.5 * init.reduce((a, x) => a + (x * 0.75 ** (s - 1)) ** 2, 0);
      expect(closeness(e.get('new.p')!.data, expected)).toBeLessThanOrEqual(1e-14);
      expect(closeness(o.get('new.p')!.data, expected)).toBeLessThanOrEqual(1e-6);
      expect(e.get('loss')!.data[0]).toBeCloseTo(expectedLoss, 12);
      expect(o.get('loss')!.data[0]).toBeCloseTo(expectedLoss, 4);
      ev = e.get('new.p')!;
      ox = o.get('new.p')!;
    }
  });
});

describe('scheduledLr', () => {
  const LR = 0.1;
  const MIN = 0.01;
  const sched = (kind: ScheduleSpec['kind'], warmup = 4): ScheduleSpec => ({ kind, warmup, minLr: MIN, totalSteps: 20 });

  function scheduleGraph(warmup: number): Graph {
    const b = new GraphBuilder('lr');
    const step: Value = b.input('step', 'f32', []);
    for (const kind of ['constant', 'linear', 'cosine'] as const) b.output(kind, scheduledLr(b, step, LR, sched(kind, warmup)));
    return b.build();
  }

  // lr 0.1, warmup 4, min_lr 0.01, total 20 (decay span 16), by hand:
  //   step 1: 0.1·1/4; step 2: 0.1·2/4; step 4 = warmup: progress 0, so lr;
  //   step 5: progress 1/16: linear 0.1 − 0.09/16 = 0.094375, cosine 0.01 + 0.045·(1 + cos(π/16)) = 0.0991353376…;
  //   step 12: progress 1/2: both 0.055; step 20: both 0.01; step 30: clamped, 0.01.
  const table: [number, number, number, number][] = [
    //  step  constant  linear    cosine
    [1, 0.025, 0.025, 0.025],
    [2, 0.05, 0.05, 0.05],
    [4, 0.1, 0.1, 0.1],
    [5, 0.1, 0.094375, 0.0991353376181453],
    [12, 0.1, 0.055, 0.055],
    [20, 0.1, 0.01, 0.01],
    [30, 0.1, 0.01, 0.01],
  ];

  it('gives hand-computed values at step 1, in warmup, at warmup, warmup+1, middle, total and beyond (evaluator and ONNX)', async () => {
    const graph = scheduleGraph(4);
    const model = emitModel(graph).bytes;
    for (const [step, ...expected] of table) {
      const feeds = new Map([['step', makeTensor('f32', [], [step])]]);
      const ev = evaluateGraph(graph, feeds);
      const ox = await runOnce(model, feeds);
      (['constant', 'linear', 'cosine'] as const).forEach((kind, i) => {
        expect(ev.get(kind)!.data[0], `${kind} at step ${step} (evaluator)`).toBeCloseTo(expected[i]!, 12);
        expect(ev.get(kind)!.data[0], `${kind} at step ${step} vs refLr`).toBeCloseTo(refLr(step, LR, sched(kind)), 12);
        expect(Math.abs(ox.get(kind)!.data[0]! - expected[i]!), `${kind} at step ${step} (ONNX)`).toBeLessThanOrEqual(1e-7);
      });
    }
  });

  it('without warmup starts decaying at step 1 and matches the reference at every step 0..25', async () => {
    const graph = scheduleGraph(0);
    const model = emitModel(graph).bytes;
    for (let step = 0; step <= 25; step++) {
      const feeds = new Map([['step', makeTensor('f32', [], [step])]]);
      const ev = evaluateGraph(graph, feeds);
      const ox = await runOnce(model, feeds);
      for (const kind of ['constant', 'linear', 'cosine'] as const) {
        const expected = refLr(step, LR, sched(kind, 0));
        expect(ev.get(kind)!.data[0]).toBeCloseTo(expected, 12);
        expect(Math.abs(ox.get(kind)!.data[0]! - expected)).toBeLessThanOrEqual(1e-7);
      }
    }
    // Step 1 with no warmup: progress 1/20, linear 0.1 − 0.09·0.05.
    expect(refLr(1, LR, sched('linear', 0))).toBeCloseTo(0.0955, 12);
  });
});
