/**
 * How a dataset is cut into its training and validation parts, and how many
 * examples each part yields. The runtime (runtime/data.ts) batches data with
 * these functions and the checker sizes datasets with them, so that a split
 * the checker accepts is one the runtime can read.
 */

/**
 * The training part of `count` units (tokens of a text corpus, rows of a JSONL
 * file) split at `fraction` (the `split:` argument, in (0, 1]): the first
 * floor(count · fraction) units; the rest is validation data.
 */
export function trainPart(count: number, fraction: number): number {
  return Math.floor(count * fraction);
}

/** Non-overlapping windows of `block` tokens in `tokens` tokens (a text corpus's examples). */
export function windowsIn(tokens: number, block: number): number {
  return Math.floor(tokens / block);
}

/** Training and validation examples of a dataset. */
export interface SplitSizes {
  /** Examples in the training part (text: windows of `block` tokens; JSONL: rows). */
  readonly train: number;
  /** Examples in the validation part; the runtime evaluates only whole batches of them. */
  readonly val: number;
}

/** Sizes of a text corpus of `tokens` tokens cut into windows of `block`, split at `fraction`. */
export function textSplitSizes(tokens: number, block: number, fraction: number): SplitSizes {
  const train = trainPart(tokens, fraction);
  return { train: windowsIn(train, block), val: windowsIn(tokens - train, block) };
}

/** Sizes of a JSONL dataset of `rows` rows, split at `fraction`. */
export function rowSplitSizes(rows: number, fraction: number): SplitSizes {
  const train = trainPart(rows, fraction);
  return { train, val: rows - train };
}
