/**
 * What the agent remembers of each pod between passes, because the world does not say it:
 * which NADs its last pass needed and missed (their creation queues it), when its networks
 * annotation was seen to change (for the hot-plug latency metric), the network-status text the
 * agent wrote last (to tell the echo of its own write from someone else's), and the
 * network-status its journal was last settled against (to know when to look again), and the
 * attachments the drift check found missing or altered. The triggers read it through
 * {@linkcode TriggerMemory}; the passes and the drift check write it.
 *
 * @module
 */
import type { Drift } from "../core/drift.ts";
import { attachmentKey } from "../core/plan_types.ts";
import { podKey, type PodSnapshot } from "../core/pod.ts";
import { inputsChanged } from "../core/pod_inputs.ts";
import { NadWaiters } from "./nad_waiters.ts";

/** What the triggers (`triggers.ts`) ask of the memory. */
export interface TriggerMemory {
  /** Records that pod `key`'s networks annotation was seen to change. */
  noteAnnotationChange(key: string): void;
  /**
   * True when pod `next` differs from `previous` (its cached state before the event) in
   * something a pass reads; the echo of the agent's own last network-status write is not a
   * change.
   */
  changeMatters(previous: PodSnapshot | undefined, next: PodSnapshot): boolean;
  /** The pods whose last pass needed NAD `nadKey` ("namespace/name") and missed it. */
  podsWaitingFor(nadKey: string): string[];
  /** Pod `pod` (its last known state) has left the API server: forget it. */
  podRemoved(pod: PodSnapshot): void;
}

/** Per-pod memory of the passes, by pod key. */
export class PodMemory implements TriggerMemory {
  readonly #now: () => number;
  readonly #waitingForNad = new NadWaiters();
  /** Pod key → when its networks annotation was seen to change, until the change is applied. */
  readonly #changedAt = new Map<string, number>();
  /** Pod key → the network-status text this agent wrote last. */
  readonly #ownStatus = new Map<string, string>();
  /** Pod key → the network-status text its journal was last settled against. */
  readonly #settledStatus = new Map<string, string>();
  /** Pod key → attachment key → what the drift check found. */
  readonly #drifts = new Map<string, Map<string, Drift>>();

  /** A memory reading the time from `now` (for the latency metric). */
  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** {@inheritDoc TriggerMemory.noteAnnotationChange} */
  noteAnnotationChange(key: string): void {
    if (!this.#changedAt.has(key)) this.#changedAt.set(key, this.#now());
  }

  /** {@inheritDoc TriggerMemory.changeMatters} */
  changeMatters(previous: PodSnapshot | undefined, next: PodSnapshot): boolean {
    return inputsChanged(previous, next, this.#ownStatus.get(podKey(next)));
  }

  /** {@inheritDoc TriggerMemory.podsWaitingFor} */
  podsWaitingFor(nadKey: string): string[] {
    return this.#waitingForNad.podsWaitingFor(nadKey);
  }

  /** {@inheritDoc TriggerMemory.podRemoved} */
  podRemoved(pod: PodSnapshot): void {
    this.forget(podKey(pod));
  }

  /** Forgets everything about pod `key`. */
  forget(key: string): void {
    this.#changedAt.delete(key);
    this.#ownStatus.delete(key);
    this.#settledStatus.delete(key);
    this.#drifts.delete(key);
    this.#waitingForNad.forget(key);
  }

  /** A drift check found `drift` in pod `key`; true when that is news (a pass should run). */
  driftFound(key: string, drift: Drift): boolean {
    const byId = this.#drifts.get(key) ?? new Map<string, Drift>();
    const id = attachmentKey(drift.id);
    const news = byId.get(id)?.found !== drift.found;
    byId.set(id, drift);
    this.#drifts.set(key, byId);
    return news;
  }

  /**
   * Pod `key`'s attachment `id` (an attachment key) is not drifted (any more): a check found it
   * as recorded, or a pass repaired it. True when it was drifted.
   */
  driftCleared(key: string, id: string): boolean {
    const byId = this.#drifts.get(key);
    if (!byId?.delete(id)) return false;
    if (byId.size === 0) this.#drifts.delete(key);
    return true;
  }

  /** The drifted attachments of pod `key`. */
  drifts(key: string): Drift[] {
    return [...(this.#drifts.get(key)?.values() ?? [])];
  }

  /** Pod `key` waits for the NADs `nadKeys` (its latest plan misses them), and no others. */
  waitFor(key: string, nadKeys: readonly string[]): void {
    this.#waitingForNad.await(key, nadKeys);
  }

  /** Pod `key` also waits for the NADs `nadKeys` (its operations found them missing). */
  alsoWaitFor(key: string, nadKeys: readonly string[]): void {
    this.#waitingForNad.alsoAwait(key, nadKeys);
  }

  /** The agent is about to write `text` as pod `key`'s network-status. */
  wrote(key: string, text: string): void {
    this.#ownStatus.set(key, text);
  }

  /** The network-status text pod `key`'s journal was last settled against, if any. */
  settledStatus(key: string): string | undefined {
    return this.#settledStatus.get(key);
  }

  /** Pod `key`'s journal was settled against network-status `text`. */
  settled(key: string, text: string): void {
    this.#settledStatus.set(key, text);
  }

  /**
   * Pod `key`'s annotation change is applied (or there is none to apply): the seconds since it
   * was seen, once; undefined when none was waiting.
   */
  changeApplied(key: string): number | undefined {
    const at = this.#changedAt.get(key);
    this.#changedAt.delete(key);
    return at === undefined ? undefined : (this.#now() - at) / 1000;
  }
}
