/**
 * What queues a pod: the rules that turn cache events into work-queue calls, in one place.
 *
 * - A pod added or updated is queued with {@linkcode WorkQueue.add} (due now, even while it
 *   backs off) when the update changed something a pass reads (`core/pod_inputs.ts`), and
 *   with {@linkcode WorkQueue.resync} (folded into a pending retry) when it did not: the echo
 *   of the agent's own status write, the kubelet's condition updates.
 * - A pod deleted is forgotten and queued: the pass for a pod gone from the cache releases
 *   whatever ADDs the journal still holds for it, and forgets it again.
 * - A NAD added or changed queues the pods whose last pass waited for it.
 *
 * The periodic resync and the start-up pass over every pod are the controller's
 * (`lib/controller.ts`).
 *
 * @module
 */
import { NETWORKS_ANNOTATION } from "../core/annotations.ts";
import { nadKey } from "../core/nad.ts";
import { podKey, type PodSnapshot } from "../core/pod.ts";
import type { TriggerMemory } from "./pod_memory.ts";

/** A cache whose changes queue work: an informer, or a test's stand-in. */
export interface WatchedCache<T> {
  /** Calls `handler` for every object added or changed; `old` is its previous version. */
  on(event: "upsert", handler: (object: T, old: T | undefined) => void): () => void;
  /** Calls `handler` with the last known state of every object deleted. */
  on(event: "delete", handler: (object: T) => void): () => void;
}

/** The queue calls the triggers make. */
export interface QueueCalls {
  /** Queues `key` because something it reads changed. */
  add(key: string): void;
  /** Queues `key` for another look, nothing it reads being known to have changed. */
  resync(key: string): void;
}

/** The caches that feed the triggers. */
export interface TriggerSources {
  /** The node's pods. */
  pods: WatchedCache<PodSnapshot>;
  /** The cluster's NADs. */
  nads: WatchedCache<{ namespace: string; name: string }>;
}

/** Connects `sources` to `queue` through the passes' `memory`; returns a disconnect function. */
export function connectTriggers(
  sources: TriggerSources,
  memory: TriggerMemory,
  queue: QueueCalls,
): () => void {
  const off = [
    sources.pods.on("upsert", (pod, old) => {
      const key = podKey(pod);
      const networks = pod.metadata.annotations?.[NETWORKS_ANNOTATION];
      if (old !== undefined && networks !== old.metadata.annotations?.[NETWORKS_ANNOTATION]) {
        memory.noteAnnotationChange(key);
      }
      // A change may be the fix (or the deletion to act on): due now, whatever the backoff.
      if (memory.changeMatters(old, pod)) queue.add(key);
      else queue.resync(key);
    }),
    sources.pods.on("delete", (pod) => {
      memory.podRemoved(pod);
      queue.add(podKey(pod));
    }),
    sources.nads.on("upsert", (nad) => {
      for (const key of memory.podsWaitingFor(nadKey(nad))) queue.add(key);
    }),
  ];
  return () => {
    for (const f of off) f();
  };
}
