/**
 * The one seed-mixing scheme: a derived seed is `base · SEED_STRIDE + index`
 * (a prime stride, so nearby bases and indices never collide for any index
 * below it). Used for per-step dropout seeds, per-site dropout offsets and
 * per-epoch data shuffles, so a run resumed at step s draws exactly what an
 * uninterrupted run drew.
 */
export const SEED_STRIDE = 1000003;

/** `base · SEED_STRIDE + index` as a number (exact while below 2^53). */
export function mixSeed(base: number, index: number): number {
  return base * SEED_STRIDE + index;
}

/** The same mix, exact in 64-bit integer arithmetic, truncated to `bits` bits. */
export function mixSeedBits(base: number, index: number, bits: number): number {
  return Number(BigInt.asUintN(bits, BigInt(base) * BigInt(SEED_STRIDE) + BigInt(index)));
}
