#!/usr/bin/env node
// Generates the arithmetic data of examples/arith/pipeline.pt-recipe:
//
//   data/corpus.txt   one problem per line, "12+7=19"          (pretraining text)
//   data/sft.jsonl    {"prompt": "12+7=", "completion": "19"}  (supervised fine-tuning, GRPO prompts)
//   data/prefs.jsonl  {"prompt", "chosen", "rejected"}        (reward model, DPO; rejected is wrong)
//
// Plain Node, no dependencies, deterministic: the same seed gives the same
// bytes. The output is kept in the repository; rerun with
//
//   node examples/arith/make-data.mjs
//
// Problems are additions and subtractions of numbers below 100 (results never
// negative) and multiplications of numbers up to 12. The script prints the
// characters it used: they must all be in the recipe's chars("...") alphabet.

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { prng } from '../data/prng.mjs';

// The output folder: data/ next to this script, or the first argument (used by the tests).
const OUT = process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), 'data');


const int = (rand, lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));

/** One problem: the text before the answer ("12+7=") and the answer ("19"). */
function problem(rand) {
  const op = rand();
  if (op < 0.4) {
    const a = int(rand, 0, 99);
    const b = int(rand, 0, 99);
    return { prompt: `${a}+${b}=`, answer: a + b };
  }
  if (op < 0.75) {
    const a = int(rand, 0, 99);
    const b = int(rand, 0, a);
    return { prompt: `${a}-${b}=`, answer: a - b };
  }
  const a = int(rand, 0, 12);
  const b = int(rand, 0, 12);
  return { prompt: `${a}*${b}=`, answer: a * b };
}

/** A plausible wrong answer: off by one or ten, digits swapped, or a near miss. */
function wrongAnswer(rand, answer) {
  for (;;) {
    const kind = rand();
    let w;
    if (kind < 0.3) w = answer + (rand() < 0.5 ? -1 : 1);
    else if (kind < 0.55) w = answer + (rand() < 0.5 ? -10 : 10);
    else if (kind < 0.75 && answer >= 10) w = Number(String(answer).split('').reverse().join(''));
    else w = answer + int(rand, -5, 5);
    if (w !== answer && w >= 0) return w;
  }
}

function corpus(rand, lines) {
  const out = [];
  for (let i = 0; i < lines; i++) {
    const p = problem(rand);
    out.push(`${p.prompt}${p.answer}\n`);
  }
  return out.join('');
}

function sft(rand, rows) {
  const out = [];
  for (let i = 0; i < rows; i++) {
    const p = problem(rand);
    out.push(JSON.stringify({ prompt: p.prompt, completion: String(p.answer) }) + '\n');
  }
  return out.join('');
}

function prefs(rand, rows) {
  const out = [];
  for (let i = 0; i < rows; i++) {
    const p = problem(rand);
    const chosen = String(p.answer);
    const rejected = String(wrongAnswer(rand, p.answer));
    out.push(JSON.stringify({ prompt: p.prompt, chosen, rejected }) + '\n');
  }
  return out.join('');
}

const files = {
  'corpus.txt': corpus(prng(1), 20000),
  'sft.jsonl': sft(prng(2), 3000),
  'prefs.jsonl': prefs(prng(3), 2000),
};

mkdirSync(OUT, { recursive: true });
const used = new Set();
for (const [name, text] of Object.entries(files)) {
  writeFileSync(join(OUT, name), text);
  console.log(`${name}: ${text.length} bytes, ${text.split('\n').length - 1} lines`);
}
// Characters of the token streams: the corpus text and the prompt/answer strings (not the JSON syntax).
for (const ch of files['corpus.txt']) used.add(ch);
for (const name of ['sft.jsonl', 'prefs.jsonl']) {
  for (const line of files[name].split('\n').filter(Boolean)) {
    for (const value of Object.values(JSON.parse(line))) for (const ch of value) used.add(ch);
  }
}
console.log(`alphabet: ${JSON.stringify([...used].sort().join(''))}`);
