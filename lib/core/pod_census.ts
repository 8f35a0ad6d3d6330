/**
 * Counts for the node's gauges, from the pod cache at scrape time: how many pods ask for
 * secondary networks, and how many secondary attachments their network-status records.
 * Computed only when `/metrics` is read, so it costs nothing between scrapes.
 *
 * @module
 */
import type { PodSnapshot } from "./pod.ts";
import { NETWORK_STATUS_ANNOTATION, NETWORKS_ANNOTATION } from "./annotations.ts";
import { parseNetworkSelection } from "./selection.ts";
import { parseNetworkStatus } from "./status.ts";

/** The node's pod counts. */
export interface PodCensus {
  /** Pods whose networks annotation asks for at least one network (an invalid one counts). */
  managedPods: number;
  /** Non-default network-status entries with an interface, over all pods. */
  attachments: number;
}

/** Counts {@linkcode PodCensus} over `pods`. */
export function podCensus(pods: Iterable<PodSnapshot>): PodCensus {
  let managedPods = 0;
  let attachments = 0;
  for (const pod of pods) {
    const annotations = pod.metadata.annotations ?? {};
    const networks = annotations[NETWORKS_ANNOTATION];
    if (networks !== undefined) {
      try {
        if (parseNetworkSelection(networks, pod.metadata.namespace).length > 0) managedPods++;
      } catch {
        managedPods++;
      }
    }
    try {
      attachments += parseNetworkStatus(annotations[NETWORK_STATUS_ANNOTATION])
        .filter((e) => e.default !== true && typeof e.interface === "string").length;
    } catch {
      // An unreadable network-status records nothing countable; it has its own Event.
    }
  }
  return { managedPods, attachments };
}
