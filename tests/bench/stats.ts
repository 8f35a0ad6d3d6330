/**
 * Summary statistics for benchmark samples: median and nearest-rank percentiles.
 *
 * @module
 */

/** Median, p90 and p99 (nearest rank), min, max and mean of a set of samples. */
export interface Summary {
  /** Number of samples. */
  n: number;
  median: number;
  p90: number;
  p99: number;
  min: number;
  max: number;
  mean: number;
}

/**
 * The nearest-rank `p`-th percentile (0 < p ≤ 100) of ascending `sorted` values: the smallest
 * value with at least p % of the samples at or below it. With 20 samples, p99 is the maximum.
 */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1]!;
}

/** Summarises `values` (any order); every field is NaN when there are none. */
export function summarize(values: readonly number[]): Summary {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  const n = sorted.length;
  if (n === 0) return { n, median: NaN, p90: NaN, p99: NaN, min: NaN, max: NaN, mean: NaN };
  const middle = Math.floor(n / 2);
  const median = n % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
  return {
    n,
    median,
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    min: sorted[0]!,
    max: sorted[n - 1]!,
    mean: sorted.reduce((a, b) => a + b, 0) / n,
  };
}

/** Rounds to `digits` decimals (for reports). */
export function round(value: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
