/**
 * `pretrained("DIR")` during lowering: the std.nn block the checker chose for
 * DIR's config.json, materialised with the config's sizes, every parameter
 * initialised from its tensor of the checkpoint (`Init` kind `pretrained`).
 * Everything comes from the checker's facts (ModuleInfo.facts.pretrained);
 * lowering reads no files.
 */
import type { ModuleInfo, PretrainedFacts } from '../../check/modules.js';
import type { LV, Member, ModelNode, ModelTemplate } from './types.js';
import { LoweringError } from './values.js';

/** The checker's facts about a checkpoint folder (by absolute path). */
export function pretrainedFacts(module: ModuleInfo, dir: string): PretrainedFacts {
  const facts = module.facts.pretrained.get(dir);
  if (!facts) throw new LoweringError(`the checker did not read the checkpoint folder ${dir}`);
  return facts;
}

/** The block arguments of a checkpoint's model as lowering values. */
function blockArgs(facts: PretrainedFacts): Map<string, LV> {
  const args = new Map<string, LV>();
  for (const [name, v] of facts.choice.args) {
    if (typeof v === 'boolean') args.set(name, { k: 'bool', b: v });
    else args.set(name, { k: Number.isInteger(v) && name !== 'eps' && name !== 'base' ? 'int' : 'float', n: v });
  }
  return args;
}

/**
 * The model of `pretrained(DIR)`: the block materialised (by the interpreter's
 * `materialize`), each parameter starting from its tensor of the checkpoint.
 */
export function pretrainedModel(materialize: (t: ModelTemplate) => ModelNode, module: ModuleInfo, dir: string): ModelNode {
  const facts = pretrainedFacts(module, dir);
  const model = materialize({ k: 'block', decl: facts.block.decl, module: facts.block.module, args: blockArgs(facts) });
  const withWeights = (n: ModelNode): ModelNode => {
    const members = new Map<string, Member>();
    for (const [k, m] of n.members) {
      if (m.k === 'param') {
        const tensor = facts.tensors?.get(m.p.name);
        // Without weights (a folder holding only config.json) the runtime says so when it needs them.
        const init = { kind: 'pretrained', dir: facts.dir, tensor: tensor?.name ?? null, transposed: tensor?.transposed ?? false } as const;
        members.set(k, { k: 'param', p: { ...m.p, init } });
      } else members.set(k, m.k === 'model' ? { k: 'model', m: withWeights(m.m) } : m);
    }
    return { ...n, members, copies: n.copies.map(withWeights) };
  };
  return { ...withWeights(model), pretrained: facts.dir };
}
