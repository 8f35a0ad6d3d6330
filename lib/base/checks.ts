/**
 * Small value checks in the shape of a schema library's `safeParse` (`{ success, data }`), for
 * the few places that check untrusted values: written out rather than taken from a library
 * because what a process loads stays loaded for its whole life, and these need a few dozen
 * lines, not megabytes.
 *
 * @module
 */

/** The result of a check: the value, or that it failed. */
export type Checked<T> = { success: true; data: T } | { success: false };

/** A check of one value. */
export interface Check<T> {
  /** Checks `value`; the data is the value as the caller should keep it. */
  safeParse(value: unknown): Checked<T>;
}

/** A check that passes the values `ok` accepts, unchanged. */
export function check<T>(ok: (value: unknown) => boolean): Check<T> {
  return {
    safeParse: (value) => ok(value) ? { success: true, data: value as T } : { success: false },
  };
}

/** A string that `ok` accepts. */
export function text(ok: (s: string) => boolean = () => true): Check<string> {
  return check((v) => typeof v === "string" && ok(v));
}

/** A safe integer from `min` to `max`. */
export function integer(min: number, max: number): Check<number> {
  return check((v) => Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= max);
}

/** One of `values`. */
export function oneOf<T extends string>(values: readonly T[]): Check<T> {
  return check((v) => typeof v === "string" && (values as readonly string[]).includes(v));
}

/** A boolean. */
export const boolean: Check<boolean> = check((v) => typeof v === "boolean");

/** An array of strings that `ok` accepts; the data is a copy. */
export function listOf(ok: (s: string) => boolean): Check<string[]> {
  return {
    safeParse: (v) =>
      Array.isArray(v) && v.every((s) => typeof s === "string" && ok(s))
        ? { success: true, data: [...v] }
        : { success: false },
  };
}

/** A check of an object with exactly the keys of its shape, each checked by its own check. */
export interface ObjectCheck<T> extends Check<T> {
  /** The check of each key. */
  shape: { readonly [K in keyof T]: Check<T[K]> };
  /** Checks `value`; throws an Error naming the first key that fails. */
  parse(value: unknown): T;
}

/** An object with every key of `shape` and no other (a missing key fails its own check). */
export function strictObject<T>(shape: { readonly [K in keyof T]: Check<T[K]> }): ObjectCheck<T> {
  const run = (value: unknown): { data?: T; problem?: string } => {
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      return { problem: "not an object" };
    }
    const doc = value as Record<string, unknown>;
    for (const key of Object.keys(doc)) {
      if (!Object.hasOwn(shape, key)) return { problem: `unknown key ${JSON.stringify(key)}` };
    }
    const data: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(shape) as [string, Check<unknown>][]) {
      const checked = item.safeParse(doc[key]);
      if (!checked.success) return { problem: `key ${key} is not valid` };
      data[key] = checked.data;
    }
    return { data: data as T };
  };
  return {
    shape,
    safeParse(value) {
      const { data } = run(value);
      return data === undefined ? { success: false } : { success: true, data };
    },
    parse(value) {
      const { data, problem } = run(value);
      if (data === undefined) throw new Error(problem);
      return data;
    },
  };
}
