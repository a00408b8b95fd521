/**
 * The settings each stage kind and each deploy format accepts: one table row
 * per setting, with how its value is read and checked. The stage checker
 * (stages.ts) is generic over this table.
 */
import { formatType, describeKind, intConst, isScalarTensor, numberConst, FLOAT_DTYPES, type Ty } from './types.js';

/** How a setting's value is checked; returns a message when it is wrong. */
export type ValueCheck = (t: Ty) => string | null;

export interface SettingSpec {
  readonly check: ValueCheck;
  /** The value is a bare name from this set (`precision = int8`). */
  readonly symbols?: readonly string[];
  /** A list of bare names from this set (`metrics = [perplexity, accuracy]`). */
  readonly symbolList?: readonly string[];
  /** The setting also defines a name usable in the stage's other expressions. */
  readonly binds?: boolean;
  /** Evaluated before the other settings (it defines `batch`). */
  readonly early?: boolean;
  /** The value when the stage does not set it (the one place setting defaults live; lowering reads them here). */
  readonly default?: number;
  /** For a call-valued setting, the call it defaults to; arguments not named here take the built-in's own defaults. */
  readonly defaultCall?: { readonly name: string; readonly args: Readonly<Record<string, number>> };
}

export interface StageKindSpec {
  readonly settings: Readonly<Record<string, SettingSpec>>;
  readonly required: readonly string[];
  /** Whether `on DATASET` is allowed / required. */
  readonly dataset: 'required' | 'optional' | 'none';
  /** Whether the stage updates its target model (so the target must not be frozen). */
  readonly updates: boolean;
  readonly evalEvery: boolean;
  /** The stage runs training steps on batches of its dataset: the data must give one sequence length (JSONL: max_len) and a training example. */
  readonly trainsOnData?: boolean;
  /** Further rules across settings, e.g. "ppo needs a value model". */
  readonly rules?: readonly ((settings: ReadonlyMap<string, Ty>) => { setting: string | null; code: string; message: string } | null)[];
}

const positiveInt: ValueCheck = (t) => {
  const v = intConst(t);
  return v !== null && v >= 1 ? null : `expected a positive integer, got ${describe(t)}`;
};
const nonNegativeInt: ValueCheck = (t) => {
  const v = intConst(t);
  return v !== null && v >= 0 ? null : `expected an integer >= 0, got ${describe(t)}`;
};
const intAtLeast = (min: number): ValueCheck => (t) => {
  const v = intConst(t);
  return v !== null && v >= min ? null : `expected an integer >= ${min}, got ${describe(t)}`;
};
const numberIn = (lo: number, hi: number, open = false): ValueCheck => (t) => {
  const v = numberConst(t);
  if ((t.k !== 'float' && t.k !== 'int') || v === null) return `expected a number, got ${describe(t)}`;
  const ok = open ? v > lo && v < hi : v >= lo && v <= hi;
  return ok ? null : `expected a number ${open ? 'strictly ' : ''}between ${lo} and ${hi}, got ${v}`;
};
const positiveNumber: ValueCheck = (t) => {
  const v = numberConst(t);
  return (t.k === 'float' || t.k === 'int') && v !== null && v > 0 ? null : `expected a number > 0, got ${describe(t)}`;
};
const nonNegativeNumber: ValueCheck = (t) => {
  const v = numberConst(t);
  return (t.k === 'float' || t.k === 'int') && v !== null && v >= 0 ? null : `expected a number >= 0, got ${describe(t)}`;
};
const kind = (k: Ty['k'], what: string): ValueCheck => (t) => (t.k === k ? null : `expected ${what}, got ${describe(t)}`);
const str: ValueCheck = (t) => (t.k === 'str' && t.value !== null ? null : `expected a string, got ${describe(t)}`);
const bool: ValueCheck = (t) => (t.k === 'bool' ? null : `expected true or false, got ${describe(t)}`);
const anySymbol: ValueCheck = () => null;
const strList: ValueCheck = (t) =>
  t.k === 'list' && t.elements.length > 0 && t.elements.every((e) => e.k === 'str') ? null : `expected a non-empty list of strings, got ${describe(t)}`;

/** A scalar floating-point loss. */
export const scalarLoss: ValueCheck = (t) => {
  if (t.k === 'tensor' && isScalarTensor(t) && FLOAT_DTYPES.includes(t.dtype)) return null;
  if (t.k === 'tensor') return `a loss must be a scalar (f32[]), but this is ${formatType(t)}; reduce it with mean(...) or sum(...)`;
  return `a loss must be a scalar tensor, but this is ${describeKind(t)}`;
};

/** A reward per sample: f32[B]. */
const perSampleReward: ValueCheck = (t) => {
  if (t.k === 'tensor' && !t.shape.ellipsis && t.shape.dims.length === 1 && FLOAT_DTYPES.includes(t.dtype)) return null;
  return `a reward must be one number per sample (f32[B]), but this is ${t.k === 'tensor' ? formatType(t) : describeKind(t)}`;
};

const prompts: ValueCheck = (t) => {
  if (t.k === 'dataset' && t.fields.has('prompt')) return null;
  const got = t.k === 'dataset' ? `dataset ${t.display}, whose batches have no prompt` : describe(t);
  return `expected prompts, like chats.prompts (a prompt_completion or preference dataset's .prompts), got ${got}`;
};

function describe(t: Ty): string {
  return t.k === 'int' || t.k === 'float' || t.k === 'str' || t.k === 'bool' ? formatType(t).replace(/^\w+ = /, '') : describeKind(t);
}

const optimizer: SettingSpec = { check: kind('optimizer', 'an optimizer such as adamw(lr: 3e-4)'), defaultCall: { name: 'adamw', args: { lr: 3e-4 } } };
const schedule: SettingSpec = { check: kind('schedule', 'a schedule such as cosine(warmup: 100)'), defaultCall: { name: 'constant', args: {} } };
const model: SettingSpec = { check: kind('model', 'a model'), binds: true, early: true };
const dataset: SettingSpec = { check: kind('dataset', 'a dataset') };

const common = {
  batch: { check: positiveInt, default: 8 },
  seed: { check: nonNegativeInt, default: 0 },
};

const trainLike = {
  ...common,
  optimizer,
  schedule,
  steps: { check: positiveInt, default: 1000 },
  epochs: { check: positiveInt },
  grad_accum: { check: positiveInt, default: 1 },
};

function exclusive(a: string, b: string) {
  return (s: ReadonlyMap<string, Ty>) =>
    s.has(a) && s.has(b) ? { setting: b, code: 'conflicting-settings', message: `'${a}' and '${b}' cannot both be set` } : null;
}

function requiredWhen(setting: string, value: string, needs: string) {
  return (s: ReadonlyMap<string, Ty>) => {
    const v = s.get(setting);
    return v && v.k === 'symbol' && v.name === value && !s.has(needs)
      ? { setting, code: 'missing-setting', message: `${setting} = ${value} needs '${needs}'` }
      : null;
  };
}

export const STAGE_KINDS: Readonly<Record<string, StageKindSpec>> = {
  train: {
    settings: { ...trainLike, loss: { check: scalarLoss }, reference: model, teacher: model },
    required: ['loss'],
    dataset: 'required',
    updates: true,
    evalEvery: true,
    trainsOnData: true,
    rules: [exclusive('steps', 'epochs')],
  },
  rl: {
    settings: {
      ...trainLike,
      prompts: { check: prompts, early: true },
      reward: { check: perSampleReward },
      algorithm: { check: anySymbol, symbols: ['grpo', 'ppo'] },
      group: { check: intAtLeast(2) },
      kl: { check: nonNegativeNumber },
      clip: { check: numberIn(0, 1, true) },
      reference: model,
      value: model,
      max_tokens: { check: positiveInt },
      temperature: { check: positiveNumber },
    },
    required: ['prompts', 'reward'],
    dataset: 'none',
    updates: true,
    evalEvery: true,
    rules: [requiredWhen('algorithm', 'ppo', 'value'), exclusive('steps', 'epochs')],
  },
  generate: {
    settings: {
      ...common,
      prompts: { check: prompts, early: true },
      method: { check: anySymbol, symbols: ['sample', 'self_critique', 'rlaif'] },
      principles: { check: strList },
      samples: { check: positiveInt },
      judge: model,
      out: { check: str },
      format: { check: anySymbol, symbols: ['preference', 'prompt_completion'] },
      max_tokens: { check: positiveInt },
      temperature: { check: positiveNumber },
    },
    required: ['prompts'],
    dataset: 'none',
    updates: false,
    evalEvery: false,
    rules: [requiredWhen('method', 'self_critique', 'principles'), requiredWhen('method', 'rlaif', 'judge')],
  },
  prune: {
    settings: {
      ...common,
      sparsity: { check: numberIn(0, 1, true) },
      method: { check: anySymbol, symbols: ['magnitude', 'wanda', 'sparsegpt'] },
      structured: { check: bool },
      calibrate: dataset,
    },
    required: ['sparsity'],
    dataset: 'optional',
    updates: true,
    evalEvery: false,
    rules: [requiredWhen('method', 'wanda', 'calibrate'), requiredWhen('method', 'sparsegpt', 'calibrate')],
  },
  quantize: {
    settings: {
      ...trainLike,
      precision: { check: anySymbol, symbols: ['int8', 'int4', 'fp16', 'fp8'] },
      method: { check: anySymbol, symbols: ['ptq', 'qat'] },
      calibrate: dataset,
      calibration: { check: anySymbol, symbols: ['minmax', 'percentile', 'entropy'] },
      percentile: { check: numberIn(0, 100, true) },
      loss: { check: scalarLoss },
      per_channel: { check: bool },
    },
    required: ['precision'],
    dataset: 'optional',
    updates: true,
    evalEvery: true,
    rules: [requiredWhen('method', 'qat', 'loss'), requiredWhen('method', 'ptq', 'calibrate')],
  },
  eval: {
    settings: {
      ...common,
      metrics: { check: anySymbol, symbolList: ['perplexity', 'loss', 'accuracy', 'exact_match', 'reward'] },
      loss: { check: scalarLoss },
      judge: model,
      max_tokens: { check: positiveInt },
    },
    required: ['metrics'],
    dataset: 'required',
    updates: false,
    evalEvery: false,
    rules: [
      (s) => {
        const m = s.get('metrics');
        const wantsReward = m?.k === 'list' && m.elements.some((e) => e.k === 'symbol' && e.name === 'reward');
        return wantsReward && !s.has('judge') ? { setting: 'metrics', code: 'missing-setting', message: `the reward metric needs a 'judge' model` } : null;
      },
    ],
  },
};

export const DEPLOY_FORMATS: Readonly<Record<string, { readonly settings: Readonly<Record<string, SettingSpec>>; readonly required: readonly string[] }>> = {
  onnx: {
    settings: {
      precision: { check: anySymbol, symbols: ['fp32', 'fp16', 'int8'] },
      calibrate: dataset,
      out: { check: str },
      opset: { check: intAtLeast(17) },
      max_batch: { check: positiveInt },
      dynamic_batch: { check: bool },
      kv_cache: { check: bool },
    },
    required: ['out'],
  },
  tensorrt: {
    settings: {
      precision: { check: anySymbol, symbols: ['fp32', 'fp16', 'int8'] },
      calibrate: dataset,
      out: { check: str },
      max_batch: { check: positiveInt },
      dynamic_batch: { check: bool },
      workspace_mb: { check: positiveInt },
      kv_cache: { check: bool },
    },
    required: ['out'],
  },
  triton: {
    settings: {
      precision: { check: anySymbol, symbols: ['fp32', 'fp16', 'int8'] },
      calibrate: dataset,
      out: { check: str },
      backend: { check: anySymbol, symbols: ['onnxruntime', 'tensorrt'] },
      max_batch: { check: positiveInt },
      dynamic_batch: { check: bool },
      instances: { check: positiveInt },
      kv_cache: { check: bool },
    },
    required: ['out'],
  },
  hf: {
    settings: {
      precision: { check: anySymbol, symbols: ['fp32', 'fp16', 'bf16'] },
      out: { check: str },
    },
    required: ['out'],
  },
};
