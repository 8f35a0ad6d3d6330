/**
 * The bench's wake-up phase: how soon a pod that waits in a long backoff acts on the event
 * that can change its outcome. Each round puts a fresh pod in a partial state (one element
 * attached, one naming a NAD that does not exist yet), waits until the failed pass backs
 * off (retries wait ten minutes), then either creates the missing NAD or deletes the pod
 * gracefully, and times the event's response to the pod watch showing the result.
 *
 * @module
 */
import { ControllerProcess } from "../support/mod.ts";
import { NETWORK_STATUS_ANNOTATION, NETWORKS_ANNOTATION, type Rig, sleep } from "../rig/mod.ts";
import type { PodWatch, WatchedPod } from "./pod_watch.ts";
import { summarize, type Summary } from "./stats.ts";

/** What the wake-up phase measured, in ms. */
export interface WakeupResult {
  /** NAD created (its POST answered) → the waiting interface in network-status. */
  lateNadMs: Summary;
  /** Graceful DELETE answered → the hot-plugged attachment gone from network-status. */
  deletionReleaseMs: Summary;
  /** host-local addresses of the deleted pods still allocated afterwards (should be 0). */
  leakedAddresses: number;
}

function interfaces(pod: WatchedPod): string[] {
  try {
    const entries = JSON.parse(pod.metadata.annotations?.[NETWORK_STATUS_ANNOTATION] ?? "[]") as {
      interface?: string;
      default?: boolean;
    }[];
    return entries.filter((e) => !e.default && e.interface).map((e) => e.interface!);
  } catch {
    return [];
  }
}

/** Runs `rounds` rounds of each wake-up in `namespace`, with a controller of its own. */
export async function wakeupPhase(
  rig: Rig,
  watch: PodWatch,
  namespace: string,
  rounds: number,
  progress: (message: string) => void,
): Promise<WakeupResult> {
  const ipam = "bench-wakeup";
  await rig.createNad(namespace, "wake-blue", rig.macvlanConfig("10.151.0.0/16", { name: ipam }));
  const ctl = await ControllerProcess.start(rig, {
    args: ["--log-level=info", "--retry-base-delay-ms=600000", "--retry-max-delay-ms=600000"],
  });
  const late: number[] = [];
  const release: number[] = [];
  try {
    for (let round = 0; round < rounds; round++) {
      for (const kind of ["nad", "delete"] as const) {
        progress(
          `wake-up round ${round + 1}/${rounds}: ${kind === "nad" ? "late NAD" : "deletion"}`,
        );
        const name = `wake-${kind}-${round}`;
        const missing = `wake-missing-${kind}-${round}`;
        const pod = await rig.createPod({ name, namespace });
        const partial = watch.until(name, (p) => interfaces(p).includes("w1"), 30_000);
        await watch.annotate(name, {
          [NETWORKS_ANNOTATION]: JSON.stringify([
            { name: "wake-blue", interface: "w1" },
            { name: missing, interface: "w2" },
          ]),
        });
        await partial;
        // The failed pass backs off; the echo of its own status write comes and goes.
        await sleep(1_500);
        if (kind === "nad") {
          const applied = watch.until(name, (p) => interfaces(p).includes("w2"), 60_000);
          await rig.createNad(namespace, missing, rig.macvlanConfig("10.152.0.0/16"));
          const created = performance.now();
          late.push(await applied - created);
          await rig.deletePod(pod);
        } else {
          const released = watch.until(name, (p) => !interfaces(p).includes("w1"), 60_000);
          await rig.api.request("DELETE", `/api/v1/namespaces/${namespace}/pods/${name}`, {
            apiVersion: "v1",
            kind: "DeleteOptions",
            gracePeriodSeconds: 30,
          });
          const deleted = performance.now();
          release.push(await released - deleted);
          await rig.deletePod(pod);
        }
      }
    }
  } finally {
    await ctl.stop();
  }
  return {
    lateNadMs: summarize(late),
    deletionReleaseMs: summarize(release),
    leakedAddresses: (await rig.hostLocalFiles(ipam)).length,
  };
}
