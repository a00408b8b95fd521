/**
 * A recipe model as the Hugging Face format describes it, for `deploy m @ s to
 * hf`: which std.nn architecture block it is (GPT2, Llama, LlamaTied), with
 * which arguments, and the checkpoint folder it was read from when it is
 * `pretrained("DIR")`. Found by evaluating the model's declaration (no graph).
 */
import type { ModuleInfo, PretrainedFacts } from '../../check/modules.js';
import { architectureOfBlock, type BlockArg, type BlockChoice } from '../../check/pretrainedArchitectures.js';
import { GraphBuilder } from '../builder.js';
import { Lowerer } from './interp.js';
import { pretrainedFacts } from './pretrained.js';
import { describeLV, LoweringError } from './values.js';

/** What `deploy m @ s to hf` needs to know of a recipe model: its Hugging Face architecture and where it came from. */
export interface HfModelSource {
  /** The std.nn block (GPT2, Llama, LlamaTied) and its arguments. */
  readonly choice: BlockChoice;
  /** The checkpoint folder it was read from, when it is `pretrained("DIR")` (its config and tokenizer files are carried over). */
  readonly pretrained: PretrainedFacts | null;
  /** It has LoRA adapters (`lora(...)`), to merge into the weights they adapt. */
  readonly adapted: boolean;
}

/**
 * The Hugging Face architecture of the recipe model `name`, or why it has none: a
 * model must be a std.nn GPT2, Llama or LlamaTied (as pretrained(...) builds them),
 * with or without LoRA adapters.
 */
export function hfModelSource(module: ModuleInfo, name: string): HfModelSource | string {
  const lowerer = new Lowerer(new GraphBuilder(`hf ${name}`), () => {
    throw new LoweringError('describing a model for export reads no weights');
  });
  const value = lowerer.moduleValue(module, name);
  if (value.k !== 'model') throw new LoweringError(`${name} is not a model`);
  const m = value.m;
  const block = m.decl?.name.name ?? 'stack';
  if (!m.module?.isStdlib || !architectureOfBlock(block)) {
    return `${name} is ${block === 'stack' ? 'a stack' : `a ${block}`}; the hf format describes std.nn's GPT2, Llama and LlamaTied (what pretrained(...) builds)`;
  }
  const args = new Map<string, BlockArg>();
  for (const [k, v] of m.args) {
    if (v.k === 'bool') args.set(k, v.b);
    else if (v.k === 'int' || v.k === 'float') args.set(k, v.n);
    else throw new LoweringError(`${name}: argument ${k} of ${block} is ${describeLV(v)}`);
  }
  return { choice: { block, args }, pretrained: m.pretrained ? pretrainedFacts(module, m.pretrained) : null, adapted: m.adapted === true };
}
