/**
 * `--dry-run --once`: one line per pod of the node with the plan a pass would carry out.
 *
 * @module
 */
import { attachmentKey, type Plan } from "../core/plan_types.ts";

/** One readable line per planned operation, for logs and `--dry-run`. */
export function describeOperations(plan: Plan): string[] {
  return plan.operations.map((op) => `${op.kind} ${attachmentKey(op.id)} (${op.reason})`);
}

/**
 * The dry run's output: for each of `keys` in order, `<key>: <operations and refusals>`,
 * `<key>: nothing to do`, or `<key>: <why it cannot be planned>` (`planFor` says).
 */
export function dryRunLines(
  keys: readonly string[],
  planFor: (key: string) => Plan | string,
): string[] {
  return keys.map((key) => {
    const plan = planFor(key);
    if (typeof plan === "string") return `${key}: ${plan}`;
    const lines = [
      ...describeOperations(plan),
      ...plan.refusals.map((r) => `refused: ${r.message}`),
    ];
    return `${key}: ${lines.length === 0 ? "nothing to do" : lines.join("; ")}`;
  });
}
