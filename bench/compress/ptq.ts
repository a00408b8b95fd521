/**
 * int8 quantization on examples/arith's task: the model of
 * bench/compress/arith.pt-recipe after SFT, in fp32, as the int8 QDQ model its
 * `int8` stage calibrated (PTQ), and as the int8 model of its `qat` stage
 * (one epoch of quantization-aware training from the same SFT weights). Measured in one run: held-out exact match
 * (greedy, questions in neither the corpus nor the SFT data), the size of the
 * exported model file, and the median latency of one forward at batch 1 and 16
 * (fp32 and int8 measured in alternating rounds, single-threaded).
 *
 *   npx ptr run bench/compress/arith.pt-recipe --out runs/bench-compress   # ~8 min on 2 cores
 *   npx tsc -p tsconfig.json && node dist/bench/compress/ptq.js runs/bench-compress
 */
import { join } from 'node:path';
import { checkFiles } from '../../src/check/index.js';
import type { Graph } from '../../src/ir/graph.js';
import { lowerForward } from '../../src/ir/lower/inferenceStage.js';
import { insertFakeQuant } from '../../src/ir/passes/qdq.js';
import { floatModel, int8Model } from '../../src/runtime/calibrationRun.js';
import { latestCheckpointDir, loadCheckpoint } from '../../src/runtime/checkpoint.js';
import { planStage } from '../../src/stages/driver.js';
import type { QuantizePlan } from '../../src/stages/quantize.js';
import { fmt, pct, table } from '../util.js';
import { arithTokenizer, exactMatch, heldOutQuestions, latencyMs, RECIPE, session } from './common.js';

const runDir = process.argv[2] ?? 'runs/bench-compress';
const QUESTIONS = Number(process.env['BENCH_QUESTIONS'] ?? 1000);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);
const SEQ = 16;

const checked = checkFiles([RECIPE]);
const module = checked.entryModules[0]!;
const plan = planStage(module, 'int8') as QuantizePlan;
const ckpt = latestCheckpointDir(runDir, 'int8');
if (!ckpt) throw new Error(`no checkpoint of stage int8 in ${runDir}: run ptr run ${RECIPE} --out ${runDir} first`);
const all = loadCheckpoint(ckpt, plan.params, null).params;
const weights = new Map([...all].filter(([k]) => !k.endsWith('.input_scale')));
const scales = new Map(plan.settings.sites.map((s) => [s.name, all.get(`${s.name}.input_scale`)![0]!]));

// The QAT stage's weights and observed scales, exported the same way.
const qatPlan = planStage(module, 'qat', { steps: 1 });
const qatAll = loadCheckpoint(latestCheckpointDir(runDir, 'qat')!, qatPlan.params, null).params;
const qatWeights = new Map([...qatAll].filter(([k]) => !k.endsWith('.input_scale')));
const qatScales = new Map(plan.settings.sites.map((s) => [s.name, qatAll.get(`${s.name}.input_scale`)![0]!]));

const forward = (batch: number): Graph => lowerForward(module, 'int8', batch, SEQ);
const models = new Map<string, Uint8Array>();
for (const batch of [1, 16]) {
  models.set(`fp32/${batch}`, floatModel(forward(batch), weights).bytes);
  models.set(`int8/${batch}`, int8Model(insertFakeQuant(forward(batch)), weights, scales).bytes);
  models.set(`qat-int8/${batch}`, int8Model(insertFakeQuant(forward(batch)), qatWeights, qatScales).bytes);
}

const tok = arithTokenizer();
const questions = heldOutQuestions(QUESTIONS);
const sessions = new Map<string, Awaited<ReturnType<typeof session>>>();
for (const [k, bytes] of models) sessions.set(k, await session(bytes));
const accuracy = new Map<string, number>();
for (const p of ['fp32', 'int8', 'qat-int8']) accuracy.set(p, await exactMatch(sessions.get(`${p}/16`)!, tok, questions, 16, SEQ));

const times = new Map<string, number[]>();
for (let r = 0; r < ROUNDS; r++) {
  for (const k of models.keys()) {
    const batch = Number(k.split('/')[1]);
    (times.get(k) ?? times.set(k, []).get(k)!).push(await latencyMs(sessions.get(k)!, batch, SEQ, tok.vocab));
  }
}
const ms = (k: string): number => [...times.get(k)!].sort((a, b) => a - b)[Math.floor(times.get(k)!.length / 2)]!;

console.log(`held-out questions: ${questions.length}; run folder ${runDir}; checkpoint ${ckpt}`);
console.log(
  table(
    ['model', 'exact match', 'file (batch 1)', 'size vs fp32', 'latency b=1 (ms)', 'b=1 vs fp32', 'latency b=16 (ms)', 'b=16 vs fp32'],
    ['fp32', 'int8', 'qat-int8'].map((p) => [
      p,
      pct(accuracy.get(p)!),
      `${fmt(models.get(`${p}/1`)!.length / 1024, 0)} KiB`,
      pct(models.get(`${p}/1`)!.length / models.get('fp32/1')!.length),
      fmt(ms(`${p}/1`), 2),
      `${fmt(ms(`${p}/1`) / ms('fp32/1'), 2)}×`,
      fmt(ms(`${p}/16`), 2),
      `${fmt(ms(`${p}/16`) / ms('fp32/16'), 2)}×`,
    ]),
  ),
);
console.log(`report of the quantize stage: ${join(runDir, 'int8', 'quantization.json')}`);
for (const s of sessions.values()) await s.release();
