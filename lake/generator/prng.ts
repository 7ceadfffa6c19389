/**
 * Seeded pseudo-random numbers for the generator.
 *
 * Math.random cannot be seeded, so every random choice goes through `Rng` (sfc32: 128-bit state, fast, passes
 * PractRand for our volumes). Independent streams are derived from (seed, label) so that adding a draw to one
 * table never shifts the values of another table.
 */

/** cyrb128: turns a string into four well-mixed 32-bit words (the sfc32 state). */
function cyrb128(input: string): [number, number, number, number] {
  let h1 = 1779033703;
  let h2 = 3144134277;
  let h3 = 1013904242;
  let h4 = 2773480762;
  for (let i = 0; i < input.length; i++) {
    const k = input.charCodeAt(i);
    h1 = h2 ^ Math.imul(h1 ^ k, 597399067);
    h2 = h3 ^ Math.imul(h2 ^ k, 2869860233);
    h3 = h4 ^ Math.imul(h3 ^ k, 951274213);
    h4 = h1 ^ Math.imul(h4 ^ k, 2716044179);
  }
  h1 = Math.imul(h3 ^ (h1 >>> 18), 597399067);
  h2 = Math.imul(h4 ^ (h2 >>> 22), 2869860233);
  h3 = Math.imul(h1 ^ (h3 >>> 17), 951274213);
  h4 = Math.imul(h2 ^ (h4 >>> 19), 2716044179);
  h1 ^= h2 ^ h3 ^ h4;
  h2 ^= h1;
  h3 ^= h1;
  h4 ^= h1;
  return [h1 >>> 0, h2 >>> 0, h3 >>> 0, h4 >>> 0];
}

/** A weighted categorical distribution, precomputed once so a draw is a short linear scan. */
export interface Weighted<T> {
  readonly values: readonly T[];
  readonly cumulative: readonly number[];
}

/** Builds a categorical distribution; weights need not sum to 1. */
export function weighted<T>(entries: ReadonlyArray<readonly [T, number]>): Weighted<T> {
  const total = entries.reduce((sum, [, w]) => sum + w, 0);
  let acc = 0;
  return {
    values: entries.map(([v]) => v),
    cumulative: entries.map(([, w]) => (acc += w / total)),
  };
}

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spareNormal: number | undefined;

  /** A stream fully determined by (seed, label). */
  constructor(seed: number, label: string) {
    [this.a, this.b, this.c, this.d] = cyrb128(`${seed}|${label}`);
    // The first outputs of sfc32 still correlate with the seed words; discard them.
    for (let i = 0; i < 15; i++) this.uint32();
  }

  uint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.uint32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Uniform integer in [lo, hi] (inclusive). */
  intBetween(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  /** Uniform in [lo, hi). */
  between(lo: number, hi: number): number {
    return lo + this.next() * (hi - lo);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  /** Standard normal (Box–Muller; V8's Math.log/cos are fdlibm ports, so results are platform independent). */
  normal(): number {
    if (this.spareNormal !== undefined) {
      const spare = this.spareNormal;
      this.spareNormal = undefined;
      return spare;
    }
    const u = 1 - this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spareNormal = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Exponential with the given mean. */
  exponential(mean: number): number {
    return -Math.log(1 - this.next()) * mean;
  }

  pick<T>(values: readonly T[]): T {
    const value = values[this.int(values.length)];
    if (value === undefined) throw new Error('pick from an empty list');
    return value;
  }

  draw<T>(dist: Weighted<T>): T {
    const r = this.next();
    const { cumulative, values } = dist;
    for (let i = 0; i < cumulative.length - 1; i++) {
      if (r < (cumulative[i] as number)) return values[i] as T;
    }
    return values[values.length - 1] as T;
  }

  /** In-place Fisher–Yates shuffle. */
  shuffle<T>(values: T[]): T[] {
    for (let i = values.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = values[i] as T;
      values[i] = values[j] as T;
      values[j] = tmp;
    }
    return values;
  }

  /**
   * `k` distinct indices of [0, n) (Floyd's algorithm: O(k) memory, so it works for the 800k-row tables of S=1000),
   * returned in draw order so callers can split them into disjoint groups.
   */
  sampleIndices(n: number, k: number): number[] {
    const chosen = new Set<number>();
    const order: number[] = [];
    for (let j = n - Math.min(k, n); j < n; j++) {
      const t = this.int(j + 1);
      const pickIndex = chosen.has(t) ? j : t;
      chosen.add(pickIndex);
      order.push(pickIndex);
    }
    return order;
  }
}
