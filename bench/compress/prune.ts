/**
 * Structured pruning on examples/arith's task: the SFT model of
 * bench/compress/arith.pt-recipe with 25% and 50% of its feed-forward units
 * removed (Wanda), before and after a short recovery fine-tune (and the unpruned
 * model after the same fine-tune, recover0, as the control). Measured in one
 * run: parameters, held-out exact match (greedy; questions in neither the
 * corpus nor the SFT data) and the median latency of one forward at batch 1
 * and 16 (all models measured in alternating rounds, single-threaded).
 *
 *   npx ptr run bench/compress/arith.pt-recipe --out runs/bench-compress
 *   npx tsc -p tsconfig.json && node dist/bench/compress/prune.js runs/bench-compress
 */
import { checkFiles } from '../../src/check/index.js';
import { declaredTarget, modelAfterPruning } from '../../src/ir/lower/pruning.js';
import { lowerModelForward } from '../../src/ir/lower/forward.js';
import { sizeOf } from '../../src/ir/tensor.js';
import { floatModel } from '../../src/runtime/calibrationRun.js';
import { latestCheckpointDir, loadCheckpoint } from '../../src/runtime/checkpoint.js';
import { planStage } from '../../src/stages/driver.js';
import { fmt, pct, table } from '../util.js';
import { arithTokenizer, exactMatch, heldOutQuestions, latencyMs, RECIPE, session } from './common.js';

const runDir = process.argv[2] ?? 'runs/bench-compress';
const QUESTIONS = Number(process.env['BENCH_QUESTIONS'] ?? 1000);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);
const SEQ = 16;
const STAGES = ['sft', 'recover0', 'slim25', 'recover25', 'slim50', 'recover50'];

const module = checkFiles([RECIPE]).entryModules[0]!;
const tok = arithTokenizer();
const questions = heldOutQuestions(QUESTIONS);
const rows: { stage: string; params: number; accuracy: number; sessions: Map<number, Awaited<ReturnType<typeof session>>> }[] = [];
for (const stage of STAGES) {
  const decl = module.stages.get(stage)!;
  // The model as the stage leaves it: a later stage's view of it (a prune stage's own plan holds its result).
  const plan = planStage(module, stage, { steps: 1 });
  const model = decl.stageKind.name === 'prune' ? prunedOf(stage) : modelAfterPruning(module, decl, declaredTarget(module, decl));
  const ckpt = latestCheckpointDir(runDir, stage);
  if (!ckpt) throw new Error(`no checkpoint of stage ${stage} in ${runDir}: run ptr run ${RECIPE} --out ${runDir} first`);
  const params = plan.params.filter((p) => p.model === plan.model);
  const weights = loadCheckpoint(ckpt, params, null).params;
  const sessions = new Map<number, Awaited<ReturnType<typeof session>>>();
  for (const batch of [1, 16]) {
    sessions.set(batch, await session(floatModel(lowerModelForward(model, batch, SEQ, 'forward'), weights).bytes));
  }
  rows.push({ stage, params: params.reduce((n, p) => n + sizeOf(p.shape), 0), accuracy: await exactMatch(sessions.get(16)!, tok, questions, 16, SEQ), sessions });
}

/** A prune stage's result: the model a stage right after it sees. */
function prunedOf(stage: string): ReturnType<typeof declaredTarget> {
  const next = [...module.stages.values()].find((s) => s.after.some((a) => a.name === stage))!;
  return modelAfterPruning(module, next, declaredTarget(module, next));
}

const times = new Map<string, number[]>();
for (let r = 0; r < ROUNDS; r++) {
  for (const row of rows) {
    for (const [batch, s] of row.sessions) {
      const key = `${row.stage}/${batch}`;
      (times.get(key) ?? times.set(key, []).get(key)!).push(await latencyMs(s, batch, SEQ, tok.vocab));
    }
  }
}
const ms = (k: string): number => [...times.get(k)!].sort((a, b) => a - b)[Math.floor(times.get(k)!.length / 2)]!;
const base = rows[0]!;
console.log(`held-out questions: ${questions.length}; run folder ${runDir}`);
console.log(
  table(
    ['stage', 'parameters', 'vs sft', 'exact match', 'vs sft', 'latency b=1 (ms)', 'vs sft', 'latency b=16 (ms)', 'vs sft'],
    rows.map((r) => [
      r.stage,
      r.params.toLocaleString('en-US'),
      pct(r.params / base.params),
      pct(r.accuracy),
      pct(r.accuracy / base.accuracy),
      fmt(ms(`${r.stage}/1`), 2),
      `${fmt(ms(`${r.stage}/1`) / ms(`${base.stage}/1`), 2)}×`,
      fmt(ms(`${r.stage}/16`), 2),
      `${fmt(ms(`${r.stage}/16`) / ms(`${base.stage}/16`), 2)}×`,
    ]),
  ),
);
for (const r of rows) for (const s of r.sessions.values()) await s.release();
