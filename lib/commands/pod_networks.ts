/**
 * A pod's networks as a person reads them: each interface it asks for or has, with its
 * network, addresses, state and the last error the agent reported about it. Built from the
 * networks annotation, network-status and the agent's condition; pure.
 *
 * @module
 */
import { errorText } from "../base/log.ts";
import { conditionNames, inProgress, type NetworksCondition } from "../core/networks_condition.ts";
import { objectKey } from "../core/names.ts";
import { parseNetworkSelection } from "../core/selection.ts";
import { assignedInterfaces } from "./selection_edit.ts";
import { type NetworkStatus, parseNetworkStatus } from "../core/status.ts";

/** The state of one interface. */
export type InterfaceState =
  /** Asked for and recorded in network-status. */
  | "attached"
  /** Asked for, not recorded yet. */
  | "attaching"
  /** Recorded, no longer asked for. */
  | "detaching"
  /** The agent reported a problem with it (see `error`). */
  | "failed"
  /** The cluster network multus attached at the pod's creation; never touched. */
  | "default";

/** One row of the `networks` table. */
export interface InterfaceRow {
  /** Interface name in the pod (`""` when the agent has not named it yet). */
  interface: string;
  /** The network, `namespace/name`. */
  network: string;
  /** Whether the networks annotation asks for it. */
  desired: boolean;
  /** What became of it. */
  state: InterfaceState;
  /** Its addresses, as network-status records them. */
  ips: string[];
  /** Its MAC address, as network-status records it. */
  mac: string;
  /** The last error the agent reported about it, in the Event's words; `""` for none. */
  error: string;
}

/** The view of a pod's networks. */
export interface PodNetworks {
  /** One row per interface: those asked for, in annotation order, then the others recorded. */
  rows: InterfaceRow[];
  /** The agent's condition, when the pod has it. */
  condition?: NetworksCondition;
  /** Why an annotation could not be read, when one could not. */
  problem?: string;
}

/** The parts of `message` (the condition's, `; ` separated) that name `iface`. */
function errorsAbout(condition: NetworksCondition | undefined, iface: string): string {
  if (!condition || condition.status === "True" || iface === "") return "";
  return condition.message.split("; ").filter((part) =>
    conditionNames({ ...condition, message: part }, iface)
  ).join("; ");
}

/**
 * The rows of pod `namespace/name` from its two annotations (undefined when absent) and its
 * condition.
 */
export function podNetworks(
  namespace: string,
  name: string,
  networks: string | undefined,
  networkStatus: string | undefined,
  condition?: NetworksCondition,
): PodNetworks {
  const view: PodNetworks = { rows: [] };
  if (condition) view.condition = condition;
  let status: NetworkStatus[] = [];
  try {
    status = parseNetworkStatus(networkStatus);
  } catch (err) {
    view.problem = `network-status cannot be read: ${errorText(err)}`;
  }
  const failing = (iface: string) => {
    const error = errorsAbout(condition, iface);
    return error !== "" && !inProgress(condition) ? error : "";
  };
  const used = new Set<NetworkStatus>();
  try {
    const elements = parseNetworkSelection(networks, namespace);
    const names = assignedInterfaces({ namespace, name, status }, elements);
    elements.forEach((element, i) => {
      const iface = element.interface ?? names[i] ?? "";
      const network = objectKey(element.namespace, element.name);
      const entry = status.find((s) =>
        !used.has(s) && s.interface === iface && s.name === network && s.default !== true
      );
      if (entry) used.add(entry);
      const error = failing(iface);
      view.rows.push({
        interface: iface,
        network,
        desired: true,
        state: error !== "" ? "failed" : entry ? "attached" : "attaching",
        ips: entry?.ips ?? [],
        mac: entry?.mac ?? "",
        error,
      });
    });
  } catch (err) {
    view.problem = `the networks annotation cannot be read: ${errorText(err)}`;
  }
  for (const entry of status) {
    if (used.has(entry)) continue;
    const iface = entry.interface ?? "";
    const error = entry.default === true ? "" : failing(iface);
    view.rows.push({
      interface: iface,
      network: entry.name,
      desired: false,
      state: entry.default === true ? "default" : error !== "" ? "failed" : "detaching",
      ips: entry.ips ?? [],
      mac: entry.mac ?? "",
      error,
    });
  }
  return view;
}

/** The rows as a fixed-width text table with a header, as kubectl prints its tables. */
export function networksTable(view: PodNetworks): string {
  const head = ["INTERFACE", "NETWORK", "STATE", "IPS", "MAC", "LAST ERROR"];
  const cells = view.rows.map((r) => [
    r.interface || "<none>",
    r.network,
    r.state,
    r.ips.join(",") || "<none>",
    r.mac || "<none>",
    r.error || "<none>",
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) =>
    c.map((v, i) => i === c.length - 1 ? v : v.padEnd(widths[i]!)).join("   ").trimEnd();
  const out = [line(head), ...cells.map(line)];
  return out.join("\n") + "\n";
}
