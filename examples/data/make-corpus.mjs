#!/usr/bin/env node
// Generates the small English corpora of the examples:
//
//   tiny-corpus.txt   short children's stories, one paragraph each, separated by a
//                     blank line (pretraining text for quickstart, distill, constitutional)
//   requests.jsonl    {"prompt": "Tell me about a fox.", "completion": "..."}
//                     short requests answered in the same style (constitutional)
//
// The stories come from a small probabilistic grammar (a few hundred words):
// each story picks a hero, a pet, a place, a lost object and a helper animal,
// and its sentences keep referring to them (names, he/she, the object found
// at the end), so a character model can learn words, punctuation and some
// longer-range structure. Plain Node, no dependencies, deterministic (seeded
// PRNG): rerun with
//
//   node examples/data/make-corpus.mjs
//
// It prints the characters used; the recipes' chars("...") alphabets list
// exactly these.

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { prng } from './prng.mjs';

// The output folder: the folder of this script, or the first argument (used by the tests).
const OUT = process.argv[2] ?? dirname(fileURLToPath(import.meta.url));
const STORIES = 950;
const REQUESTS = 1500;


let rand = prng(20240601);
const pick = (xs) => xs[Math.floor(rand() * xs.length)];
const chance = (p) => rand() < p;
const cap = (s) => s[0].toUpperCase() + s.slice(1);
const an = (word) => (/^[aeiou]/.test(word) ? `an ${word}` : `a ${word}`);

// ------------------------------------------------------------------ the lexicon

const GIRLS = ['Mia', 'Lily', 'Anna', 'Emma', 'Sara', 'Lucy', 'Rosa', 'Nina', 'Ella', 'Zoe', 'Ruby', 'Ivy'];
const BOYS = ['Tom', 'Ben', 'Sam', 'Max', 'Leo', 'Jack', 'Finn', 'Owen', 'Hugo', 'Noah', 'Kai', 'Paul'];
const PET_NAMES = ['Biscuit', 'Pepper', 'Coco', 'Sunny', 'Patch', 'Button', 'Noodle', 'Pip', 'Rusty', 'Daisy', 'Ziggy', 'Muffin'];
const PETS = ['cat', 'dog', 'puppy', 'kitten', 'rabbit', 'hamster', 'parrot', 'goldfish', 'pony', 'duck'];
const WILD = ['fox', 'owl', 'bear', 'frog', 'squirrel', 'deer', 'turtle', 'mouse', 'hedgehog', 'crow', 'badger', 'goose', 'beaver', 'butterfly'];
const HERO_ADJ = ['little', 'kind', 'brave', 'shy', 'happy', 'curious', 'clever', 'funny', 'quiet', 'busy', 'cheerful', 'gentle'];
const ANIMAL_ADJ = ['big', 'small', 'old', 'young', 'sleepy', 'hungry', 'friendly', 'wise', 'tiny', 'fluffy', 'grumpy', 'fast'];
const COLORS = ['red', 'blue', 'green', 'yellow', 'white', 'brown', 'pink', 'orange', 'purple', 'golden', 'silver', 'striped'];
const OBJECTS = ['ball', 'kite', 'hat', 'book', 'box', 'boat', 'scarf', 'drum', 'key', 'lamp', 'map', 'cup', 'shoe', 'coin', 'shell', 'bell', 'basket', 'ribbon', 'whistle', 'umbrella'];
const PLACES = [
  { name: 'the park', spots: ['a bench', 'the slide', 'a big tree', 'the pond'] },
  { name: 'the forest', spots: ['a log', 'a pile of leaves', 'an old oak', 'a bush'] },
  { name: 'the river', spots: ['a rock', 'the bridge', 'the reeds', 'a little boat'] },
  { name: 'the garden', spots: ['the roses', 'a flower pot', 'the fence', 'the shed'] },
  { name: 'the beach', spots: ['a sand castle', 'a rock', 'the dunes', 'a blue towel'] },
  { name: 'the hill', spots: ['a stone', 'the tall grass', 'an apple tree', 'a windmill'] },
  { name: 'the farm', spots: ['the barn', 'a hay bale', 'the tractor', 'the gate'] },
  { name: 'the market', spots: ['a fruit stand', 'a cart', 'a pile of boxes', 'the fountain'] },
  { name: 'the lake', spots: ['the dock', 'a canoe', 'the tall reeds', 'a wooden sign'] },
  { name: 'the meadow', spots: ['the daisies', 'a hollow log', 'a stone wall', 'a haystack'] },
];
const FAMILY = ['mom', 'dad', 'grandma', 'grandpa', 'big sister', 'big brother', 'aunt', 'uncle'];
const TIMES = ['One day', 'One morning', 'One sunny afternoon', 'Early one morning', 'Late one evening', 'On a cold winter day', 'On a warm summer day', 'One rainy day', 'On a windy morning'];
const WEATHER = ['The sun was shining', 'It was raining a little', 'The wind was blowing', 'Snow was falling softly', 'The sky was blue', 'Big gray clouds filled the sky', 'The birds were singing'];
const FOODS = ['apples', 'bread', 'cookies', 'cheese', 'berries', 'carrots', 'soup', 'cake', 'nuts', 'pancakes'];
const GAMES = ['hide and seek', 'tag', 'catch', 'a game of chase', 'a silly game'];
const FEELINGS_GOOD = ['happy', 'glad', 'proud', 'excited', 'thankful'];
const FEELINGS_BAD = ['sad', 'worried', 'upset', 'scared', 'lonely'];
const WANTS = ['play with', 'show everyone', 'take a picture of', 'paint', 'share'];

// ------------------------------------------------------------------ one story

function story() {
  const girl = chance(0.5);
  const hero = pick(girl ? GIRLS : BOYS);
  const he = girl ? 'she' : 'he';
  const his = girl ? 'her' : 'his';
  const him = girl ? 'her' : 'him';
  const kid = girl ? 'girl' : 'boy';
  const pet = pick(PETS);
  const petName = pick(PET_NAMES);
  const place = pick(PLACES);
  const spot = pick(place.spots);
  const thing = pick(OBJECTS);
  const color = pick(COLORS);
  const helper = pick(WILD);
  const helperAdj = pick(ANIMAL_ADJ);
  const relative = pick(FAMILY);
  const food = pick(FOODS);
  const s = [];

  // Opening: who the hero is.
  s.push(
    pick([
      `Once upon a time, there was ${an(pick(HERO_ADJ))} ${kid} named ${hero}.`,
      `${hero} was ${an(pick(HERO_ADJ))} ${kid} who lived near ${place.name}.`,
      `There once was ${an(pick(HERO_ADJ))} ${kid} called ${hero}.`,
      `In a small village, there lived ${an(pick(HERO_ADJ))} ${kid} named ${hero}.`,
    ]),
  );
  // The pet and the object.
  s.push(
    pick([
      `${cap(he)} had ${an(pick(ANIMAL_ADJ))} ${pet} named ${petName}.`,
      `${hero} lived with ${his} ${relative} and ${his} ${pet}, ${petName}.`,
      `${hero} and ${his} ${pet} ${petName} did everything together.`,
    ]),
  );
  s.push(
    pick([
      `${hero} loved ${his} ${color} ${thing} more than anything.`,
      `${cap(his)} ${relative} had given ${him} ${an(color)} ${thing}.`,
      `${cap(he)} had ${an(color)} ${thing} that ${he} carried everywhere.`,
    ]),
  );
  // Going out.
  s.push(
    pick([
      `${pick(TIMES)}, ${hero} went to ${place.name} with ${petName}.`,
      `${pick(TIMES)}, ${hero} and ${petName} walked to ${place.name}.`,
      `${pick(TIMES)}, ${hero} took ${his} ${thing} to ${place.name}.`,
    ]),
  );
  if (chance(0.6)) s.push(`${pick(WEATHER)}.`);
  if (chance(0.5)) s.push(`${cap(he)} wanted to ${pick(WANTS)} the ${thing}.`);
  // The problem.
  s.push(
    pick([
      `But when ${he} looked in ${his} bag, the ${thing} was gone!`,
      `Suddenly, ${petName} ran off with the ${thing}!`,
      `But the wind took the ${thing} away!`,
      `Then ${hero} could not find the ${thing} anywhere.`,
    ]),
  );
  s.push(pick([`${hero} felt very ${pick(FEELINGS_BAD)}.`, `${hero} began to cry.`, `${cap(he)} did not know what to do.`]));
  // The helper.
  s.push(
    pick([
      `Just then, ${an(helperAdj)} ${helper} came out from behind ${spot}.`,
      `Near ${spot}, ${he} saw ${an(helperAdj)} ${helper}.`,
      `${cap(an(helperAdj))} ${helper} was sitting on ${spot}.`,
    ]),
  );
  s.push(
    pick([
      `Why are you sad? asked the ${helper}.`,
      `The ${helper} asked, what is wrong?`,
      `What is the matter? asked the ${helper}.`,
    ]),
  );
  s.push(
    pick([
      `${hero} said, I lost my ${color} ${thing}.`,
      `I cannot find my ${thing}, said ${hero}.`,
      `${hero} told the ${helper} about the ${color} ${thing}.`,
    ]),
  );
  s.push(pick([`I will help you, said the ${helper}.`, `The ${helper} said, do not worry, I can help.`, `The ${helper} wanted to help.`]));
  // The search and the resolution.
  s.push(
    pick([
      `They looked under ${spot} and behind every tree.`,
      `Together they searched all over ${place.name}.`,
      `The ${helper} sniffed the ground and ran ahead.`,
      `They walked and walked until the sun was low.`,
    ]),
  );
  s.push(
    pick([
      `At last, they found the ${thing} next to ${spot}!`,
      `Soon the ${helper} found the ${color} ${thing} in the grass.`,
      `Then ${petName} ${pet === 'dog' || pet === 'puppy' ? 'barked' : 'jumped'}, and there was the ${thing}!`,
      `Finally, ${hero} saw something ${color} near ${spot}. It was the ${thing}!`,
    ]),
  );
  s.push(pick([`${hero} was so ${pick(FEELINGS_GOOD)}.`, `${hero} hugged the ${helper}.`, `${hero} smiled and said thank you.`]));
  if (chance(0.5)) s.push(`They played ${pick(GAMES)} until it was time to go home.`);
  if (chance(0.5)) s.push(`At home, ${his} ${relative} made ${food} for everyone.`);
  s.push(
    pick([
      `From that day on, ${hero} and the ${helper} were best friends.`,
      `${hero} never lost the ${thing} again.`,
      `That night, ${hero} fell asleep with the ${thing} next to ${him}.`,
      `And ${petName} never ran off with anything again.`,
      `The end.`,
    ]),
  );
  return s.join(' ');
}

// ------------------------------------------------------------------ requests

function request() {
  const kind = rand();
  if (kind < 0.35) {
    const animal = pick([...WILD, ...PETS]);
    const adj = pick(ANIMAL_ADJ);
    const place = pick(PLACES);
    return {
      prompt: `Tell me about ${an(adj)} ${animal}.`,
      completion: `The ${animal} was ${adj}. It lived near ${place.name}. Every day it looked for ${pick(FOODS)} near ${pick(place.spots)}.`,
    };
  }
  if (kind < 0.7) {
    const girl = chance(0.5);
    const hero = pick(girl ? GIRLS : BOYS);
    const he = girl ? 'she' : 'he';
    const thing = pick(OBJECTS);
    const place = pick(PLACES);
    return {
      prompt: `Write a sentence about ${hero} and a ${thing}.`,
      completion: `${hero} took ${girl ? 'her' : 'his'} ${pick(COLORS)} ${thing} to ${place.name}, and ${he} was ${pick(FEELINGS_GOOD)}.`,
    };
  }
  const place = pick(PLACES);
  return {
    prompt: `What can you find at ${place.name}?`,
    completion: `At ${place.name} you can find ${pick(place.spots)} and ${an(pick(ANIMAL_ADJ))} ${pick(WILD)}.`,
  };
}

// ------------------------------------------------------------------ output

const stories = [];
for (let i = 0; i < STORIES; i++) stories.push(story());
const corpus = stories.join('\n\n') + '\n';

rand = prng(7);
const rows = [];
for (let i = 0; i < REQUESTS; i++) rows.push(JSON.stringify(request()));
const requests = rows.join('\n') + '\n';

mkdirSync(OUT, { recursive: true });
writeFileSync(join(OUT, 'tiny-corpus.txt'), corpus);
writeFileSync(join(OUT, 'requests.jsonl'), requests);

const used = new Set(corpus);
for (const line of rows) for (const value of Object.values(JSON.parse(line))) for (const ch of value) used.add(ch);
const words = new Set(corpus.toLowerCase().match(/[a-z]+/g));

// Unigram character entropy: what a model that ignores context would reach.
const counts = new Map();
for (const ch of corpus) counts.set(ch, (counts.get(ch) ?? 0) + 1);
let entropy = 0;
for (const n of counts.values()) entropy -= (n / corpus.length) * Math.log2(n / corpus.length);

console.log(`tiny-corpus.txt: ${corpus.length} bytes, ${STORIES} stories, ${words.size} distinct words, unigram entropy ${entropy.toFixed(2)} bits/char`);
console.log(`requests.jsonl: ${requests.length} bytes, ${REQUESTS} rows`);
console.log(`alphabet (${used.size}): ${JSON.stringify([...used].sort().join(''))}`);
