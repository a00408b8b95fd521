/**
 * Shared by the compression benchmarks: held-out arithmetic questions (the
 * generator of examples/arith, minus every problem its corpus and SFT data
 * contain), greedy exact match with any ONNX model taking `tokens` [B, T] and
 * giving `logits` [B, T, V], and latency of a model in onnxruntime-node.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createSession, ort, type OrtSession } from '../../src/runtime/ort.js';
import { promptIds } from '../../src/runtime/prompt.js';
import { chars, type Tokenizer } from '../../src/runtime/tokenizer.js';
import { median } from '../util.js';

export const ARITH = resolve(import.meta.dirname, '..', '..', '..', 'examples', 'arith', 'data');
export const RECIPE = resolve(import.meta.dirname, '..', '..', '..', 'bench', 'compress', 'arith.pt-recipe');

export function arithTokenizer(): Tokenizer {
  return chars('0123456789+-*=\n', ['pad', 'bos', 'eos']);
}

export interface Question {
  readonly prompt: string;
  readonly answer: string;
}

/** Every problem of the arithmetic generator's space, less those in the corpus and SFT data, `n` of them in a fixed shuffled order. */
export function heldOutQuestions(n: number, seed = 1): Question[] {
  const seen = new Set<string>();
  for (const line of readFileSync(resolve(ARITH, 'corpus.txt'), 'utf8').split('\n')) if (line) seen.add(line.slice(0, line.indexOf('=') + 1));
  for (const line of readFileSync(resolve(ARITH, 'sft.jsonl'), 'utf8').split('\n')) if (line) seen.add((JSON.parse(line) as { prompt: string }).prompt);
  const all: Question[] = [];
  for (let a = 0; a <= 99; a++) for (let b = 0; b <= 99; b++) all.push({ prompt: `${a}+${b}=`, answer: String(a + b) });
  for (let a = 0; a <= 99; a++) for (let b = 0; b <= a; b++) all.push({ prompt: `${a}-${b}=`, answer: String(a - b) });
  for (let a = 0; a <= 12; a++) for (let b = 0; b <= 12; b++) all.push({ prompt: `${a}*${b}=`, answer: String(a * b) });
  const fresh = all.filter((q) => !seen.has(q.prompt));
  // A seeded Fisher–Yates shuffle (xorshift), so every run asks the same questions.
  let s = seed * 2654435761 || 1;
  const rand = (): number => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
  for (let i = fresh.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [fresh[i], fresh[j]] = [fresh[j]!, fresh[i]!];
  }
  return fresh.slice(0, n);
}

/**
 * Greedy answers from a model with input `tokens` i64[B, T]: every question's prompt
 * (bos + prompt, as SFT trained it) left-aligned in a row, padded; each step reads the
 * logits at the last real position of each row (the model is causal, so padding after
 * it changes nothing) and appends the argmax, until eos or `maxTokens`.
 */
export async function exactMatch(session: OrtSession, tok: Tokenizer, questions: readonly Question[], batch: number, seq: number, maxTokens = 4): Promise<number> {
  const eos = tok.special('eos')!;
  const pad = tok.special('pad')!;
  let correct = 0;
  for (let start = 0; start < questions.length; start += batch) {
    const group = questions.slice(start, start + batch);
    const rows = group.map((q) => Array.from(promptIds(tok, { format: 'prompt_completion', prompt: q.prompt })));
    const answers = group.map(() => [] as number[]);
    const done = group.map(() => false);
    for (let step = 0; step < maxTokens && done.some((d) => !d); step++) {
      const data = new BigInt64Array(batch * seq).fill(BigInt(pad));
      rows.forEach((r, i) => r.forEach((t, j) => (data[i * seq + j] = BigInt(t))));
      const out = await session.run({ tokens: new ort.Tensor('int64', data, [batch, seq]) });
      const logits = out['logits']!.data as Float32Array;
      const vocab = logits.length / (batch * seq);
      rows.forEach((r, i) => {
        if (done[i]) return;
        const at = (i * seq + r.length - 1) * vocab;
        let best = 0;
        for (let v = 1; v < vocab; v++) if (logits[at + v]! > logits[at + best]!) best = v;
        if (best === eos || r.length >= seq) done[i] = true;
        else {
          r.push(best);
          answers[i]!.push(best);
        }
      });
    }
    group.forEach((q, i) => {
      if (tok.decode(answers[i]!) === q.answer) correct++;
    });
  }
  return correct / questions.length;
}

/** Median milliseconds per run of `session` on random tokens [batch, seq], after warm-up. */
export async function latencyMs(session: OrtSession, batch: number, seq: number, vocab: number, runs = 30): Promise<number> {
  const data = BigInt64Array.from({ length: batch * seq }, (_, i) => BigInt((i * 7) % vocab));
  const feeds = { tokens: new ort.Tensor('int64', data, [batch, seq]) };
  for (let i = 0; i < 5; i++) await session.run(feeds);
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await session.run(feeds);
    times.push(performance.now() - t0);
  }
  return median(times);
}

export async function session(bytes: Uint8Array, threads = 1): Promise<OrtSession> {
  return createSession(bytes, 'cpu', threads);
}
