/**
 * The agent with a crash armed at one instant, for the crash tests: `main.ts` as it ships, with
 * the multus client and the status store wrapped, here in the tests, so that the process exits
 * with code 137 (as after SIGKILL) the first time an operation of the armed kind reaches the
 * armed point. Nothing of this is in the shipped program: it is another entry point, run with
 * the agent's own permission flags plus the one variable it reads, {@linkcode CRASH_AT_ENV}
 * (`<point>:<add|remove>`; see {@linkcode CRASH_POINTS}).
 *
 * - `before-delegate`, `after-delegate`: around the operation's `/delegate` call (an ADD for
 *   `add`, a DEL for `remove`);
 * - `before-status-write`, `after-status-write`: around the write that records the pass's
 *   operations in network-status (one that adds or changes an entry for `add`, one that drops
 *   an entry for `remove`); the write that announces them, which leaves network-status as it
 *   is, is not one.
 * - `rollback` (with `before-delegate` or `after-delegate` only): around the ADD that puts an
 *   attachment back after a change's new ADD failed, the first ADD sent after a failed one.
 *
 * @module
 */
import { MultusClient } from "../../lib/multus/client.ts";
import { KubeStatusStore } from "../../lib/kube/status_store.ts";
import type { OwnedStatus } from "../../lib/reconcile/ports.ts";
import { main } from "../../main.ts";

/** The variable that arms the crash; outside `DNC_*`, so the shipped agent cannot read it. */
export const CRASH_AT_ENV = "CRASH_AT";

/** The instants a crash can be armed at. */
export const CRASH_POINTS = [
  "before-delegate",
  "after-delegate",
  "before-status-write",
  "after-status-write",
] as const;

/** One of {@linkcode CRASH_POINTS}. */
export type CrashPoint = typeof CRASH_POINTS[number];

/** The kinds of operation a crash point is armed for. */
export type CrashOperation = "add" | "remove" | "rollback";

/** This file: the entry point the crash tests run instead of `main.ts`. */
export const CRASHING_AGENT = new URL(import.meta.url).pathname;

function crash(point: CrashPoint, operation: CrashOperation): never {
  console.error(`crash armed: exiting at ${point} of ${operation}`);
  Deno.exit(137);
}

/** The entries of a network-status text, by `name interface`. */
function entries(text: string | undefined): Map<string, string> {
  const list = text ? JSON.parse(text) as Record<string, unknown>[] : [];
  return new Map(list.map((e) => [`${e.name} ${e.interface}`, JSON.stringify(e)]));
}

/** The kinds of operation a status write records: entries added or changed, entries dropped. */
function recorded(before: OwnedStatus, after: OwnedStatus): Set<CrashOperation> {
  const kinds = new Set<CrashOperation>();
  if (before.networkStatus === after.networkStatus) return kinds;
  const was = entries(before.networkStatus);
  const is = entries(after.networkStatus);
  for (const [key, entry] of is) if (was.get(key) !== entry) kinds.add("add");
  for (const key of was.keys()) if (!is.has(key)) kinds.add("remove");
  return kinds;
}

/** Wraps the multus client and the status store so that the armed instant exits the process. */
function arm(point: CrashPoint, operation: CrashOperation): void {
  const command = operation === "remove" ? "DEL" : "ADD";
  const delegate = MultusClient.prototype.delegate;
  let afterFailedAdd = false;
  MultusClient.prototype.delegate = async function (req, signal) {
    const armed = req.command === command && (operation !== "rollback" || afterFailedAdd);
    if (armed && point === "before-delegate") crash(point, operation);
    let result;
    try {
      result = await delegate.call(this, req, signal);
    } catch (err) {
      if (req.command === "ADD") afterFailedAdd = true;
      throw err;
    }
    if (armed && point === "after-delegate") crash(point, operation);
    return result;
  };
  const update = KubeStatusStore.prototype.update;
  KubeStatusStore.prototype.update = async function (namespace, name, uid, mutate) {
    let records = false;
    const written = await update.call(this, namespace, name, uid, (current) => {
      const next = mutate(current);
      records = recorded(current, next).has(operation);
      if (records && point === "before-status-write") crash(point, operation);
      return next;
    });
    if (records && point === "after-status-write" && written.result === "written") {
      crash(point, operation);
    }
    return written;
  };
}

if (import.meta.main) {
  const text = Deno.env.get(CRASH_AT_ENV) ?? "";
  const [point, operation] = text.split(":") as [CrashPoint, CrashOperation];
  const delegatePoint = point === "before-delegate" || point === "after-delegate";
  const known = operation === "add" || operation === "remove" ||
    (operation === "rollback" && delegatePoint);
  if (!CRASH_POINTS.includes(point) || !known) {
    console.error(
      `${CRASH_AT_ENV}=${JSON.stringify(text)}: give <point>:<add|remove>, the point one of ${
        CRASH_POINTS.join(", ")
      }, or before-delegate:rollback or after-delegate:rollback`,
    );
    Deno.exit(2);
  }
  arm(point, operation);
  Deno.exit(await main(Deno.args));
}
