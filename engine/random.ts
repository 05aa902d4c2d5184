/**
 * The one seeded PRNG of the project (mulberry32): splits, training, samples, cluster maps and GAN noise
 * must be reproducible from a seed, and must all mean the same thing by "seed 42".
 */

/** A small, fast, seedable PRNG returning floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
