/**
 * Small helpers for parsed JSON values, shared by every reader of user-written JSON (the
 * annotations, the config file, the runtime's sandbox info).
 *
 * @module
 */

/** True for a JSON object: not null, not a list. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Names a JSON value's type the way a user would: "null", "a list", "an object", "a number". */
export function jsonType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

/**
 * The nesting depth of a parsed JSON value (a scalar is 0, `[]` is 1), computed without
 * recursion so hostile input cannot exhaust the stack. Stops counting once past `limit`.
 */
export function jsonDepth(root: unknown, limit: number): number {
  let deepest = 0;
  const stack: [unknown, number][] = [[root, 1]];
  while (stack.length > 0) {
    const [value, depth] = stack.pop()!;
    if (value === null || typeof value !== "object") continue;
    deepest = Math.max(deepest, depth);
    if (deepest > limit) return deepest;
    for (const child of Object.values(value)) stack.push([child, depth + 1]);
  }
  return deepest;
}
