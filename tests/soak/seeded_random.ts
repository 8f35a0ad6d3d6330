/**
 * A small seeded pseudo-random generator (mulberry32), so that a chaos run's every decision
 * follows from its seed and a run can be replayed.
 *
 * @module
 */

/** Uniform choices drawn from one 32-bit seed. */
export class SeededRandom {
  #state: number;

  /** Starts the sequence of `seed` (any integer; only its low 32 bits count). */
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** The next number in [0, 1). */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** An integer in [low, high]. */
  between(low: number, high: number): number {
    return low + this.int(high - low + 1);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** One element of a non-empty list. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error("pick from an empty list");
    return items[this.int(items.length)]!;
  }

  /** A shuffled copy (Fisher–Yates). */
  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }
}

/**
 * Deals items in random order, every item once before any comes again, so that each kind
 * of a long run's faults is drawn as often as the others (within one).
 */
export class ShuffleBag<T> {
  readonly #items: readonly T[];
  readonly #random: SeededRandom;
  #bag: T[] = [];

  /** A bag of `items` shuffled by `random`. */
  constructor(items: readonly T[], random: SeededRandom) {
    this.#items = items;
    this.#random = random;
  }

  /** `count` distinct items (count at most the number of items): the next ones not yet dealt in this call. */
  deal(count: number): T[] {
    if (count > this.#items.length) {
      throw new Error(`cannot deal ${count} distinct items from ${this.#items.length}`);
    }
    const dealt: T[] = [];
    while (dealt.length < count) {
      if (this.#bag.length === 0) this.#bag = this.#random.shuffle(this.#items);
      const index = this.#bag.findIndex((item) => !dealt.includes(item));
      if (index < 0) {
        // Only items dealt in this call are left: refill behind them.
        this.#bag.push(...this.#random.shuffle(this.#items));
        continue;
      }
      dealt.push(this.#bag.splice(index, 1)[0]!);
    }
    return dealt;
  }
}
