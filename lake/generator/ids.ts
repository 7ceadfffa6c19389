/**
 * Random-looking but collision-free identifiers.
 *
 * Drawing random ids would need a set of every id ever issued to rule out collisions (43 M event ids at S=1000).
 * Instead an id is a keyed permutation (Feistel network) of a sequence number: distinct numbers always give
 * distinct ids, nothing is remembered, and ids still look like the reference's `org_xaji0y6d`.
 */
import type { Rng } from './prng';

const ROUNDS = 4;

function mix(x: number, key: number, mask: number): number {
  let h = Math.imul(x ^ key, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h & mask;
}

const DIGITS = '0123456789abcdefghijklmnopqrstuvwxyz';
/** All 1,296 two-character base-36 strings: encoding by pairs is ~1.6× faster than toString(36) + padStart. */
const PAIRS = Array.from({ length: 36 * 36 }, (_, i) => `${DIGITS[Math.floor(i / 36)]}${DIGITS[i % 36]}`);

/** `value` as exactly `pairs` × 2 base-36 characters (value < 36^(2·pairs)). */
function base36(value: number, pairs: 2 | 3): string {
  const low = PAIRS[value % 1296] as string;
  const mid = PAIRS[Math.floor(value / 1296) % 1296] as string;
  return pairs === 2 ? mid + low : (PAIRS[Math.floor(value / 1679616)] as string) + mid + low;
}

export class IdMinter {
  private readonly keys: number[];
  private readonly mask: number;
  private readonly half: number;

  /**
   * @param prefix e.g. `org_`
   * @param charsPerHalf base-36 characters per Feistel half: 4 → 8-character ids (2^40 ids), 6 → 12 (2^60 ids).
   */
  constructor(
    private readonly prefix: string,
    private readonly charsPerHalf: 4 | 6,
    rng: Rng,
  ) {
    const bits = charsPerHalf === 4 ? 20 : 30;
    this.half = 2 ** bits;
    this.mask = this.half - 1;
    this.keys = Array.from({ length: ROUNDS }, () => rng.uint32() | 0);
  }

  /** The id for sequence number `index` (0 ≤ index < 2^40 resp. 2^53). */
  mint(index: number): string {
    let left = Math.floor(index / this.half) & this.mask;
    let right = index % this.half;
    for (const key of this.keys) {
      const next = left ^ mix(right, key, this.mask);
      left = right;
      right = next;
    }
    const pairs = this.charsPerHalf === 4 ? 2 : 3;
    return this.prefix + base36(left, pairs) + base36(right, pairs);
  }
}

/**
 * Sequence numbers at or above this offset are reserved for ids that must NOT exist in the dimension tables
 * (orphan org/resource ids): being outside [0, rows) they can never equal a real id.
 */
export const ORPHAN_ID_OFFSET = 2 ** 39;
