/**
 * Whether a change a person made to a pod's networks is done, failed or still under way, as
 * `attach --wait` and `detach --wait` decide it from the pod as it is now: its network-status
 * and the agent's condition. Pure.
 *
 * The condition alone cannot say it: right after the edit it still describes the annotation
 * as it was, until the agent's next pass. So the change is done once network-status records
 * it (the interface is there with its network, or is gone) and the condition does not blame
 * the interface; it has failed once the condition is `False` for a reason other than work
 * under way (`Pending`, `Attaching`, `Detaching`) and names the interface, and that verdict
 * is new since the edit (a condition that already said the same before the edit counts only
 * after `staleMs`, the time a pass takes to say it again).
 *
 * @module
 */
import {
  conditionNames,
  inProgress,
  type NetworksCondition,
  sameCondition,
} from "../core/networks_condition.ts";
import type { NetworkStatus } from "../core/status.ts";

/** The change waited for. */
export interface WaitedChange {
  /** `attach` waits for the interface to be there, `detach` for it to be gone. */
  kind: "attach" | "detach";
  /** The interface. */
  interface: string;
  /** Its network, `namespace/name` (for `attach`). */
  network: string;
  /** The condition as it was just before the edit was written. */
  conditionBefore?: NetworksCondition;
}

/** What {@linkcode changeVerdict} found. */
export type ChangeVerdict =
  | { state: "done"; entry?: NetworkStatus; others?: NetworksCondition }
  | { state: "failed"; condition: NetworksCondition }
  | { state: "waiting"; condition?: NetworksCondition };

/** How long an unchanged `False` verdict from before the edit is given to be said again. */
export const STALE_VERDICT_MS = 2_000;

/**
 * The verdict on `change` from the pod's network-status entries and condition, `elapsedMs`
 * after the edit was written.
 */
export function changeVerdict(
  change: WaitedChange,
  status: readonly NetworkStatus[],
  condition: NetworksCondition | undefined,
  elapsedMs: number,
): ChangeVerdict {
  const blames = condition !== undefined && condition.status === "False" &&
    !inProgress(condition) && conditionNames(condition, change.interface);
  if (blames) {
    const fresh = !sameCondition(condition, change.conditionBefore) ||
      elapsedMs >= STALE_VERDICT_MS;
    return fresh ? { state: "failed", condition } : { state: "waiting", condition };
  }
  const entry = status.find((s) => s.interface === change.interface && s.default !== true);
  const recorded = change.kind === "attach"
    ? entry !== undefined && entry.name === change.network
    : entry === undefined;
  if (!recorded || condition === undefined) {
    return condition ? { state: "waiting", condition } : { state: "waiting" };
  }
  const done: ChangeVerdict = { state: "done" };
  if (entry && change.kind === "attach") done.entry = entry;
  if (condition.status === "False") done.others = condition;
  return done;
}
