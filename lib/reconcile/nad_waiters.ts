/**
 * Which pods wait for which NetworkAttachmentDefinitions: a pod whose last pass needed a NAD
 * and did not find it (or found its config unusable) is queued again when that NAD is
 * created or changes.
 *
 * @module
 */

/** NAD key `"namespace/name"` → the pod keys waiting for it. */
export class NadWaiters {
  readonly #pods = new Map<string, Set<string>>();

  /** The pods waiting for NAD `nadKey`. */
  podsWaitingFor(nadKey: string): string[] {
    return [...(this.#pods.get(nadKey) ?? [])];
  }

  /** Pod `podKey` waits for the NADs `nadKeys`, instead of those it waited for before. */
  await(podKey: string, nadKeys: readonly string[]): void {
    this.forget(podKey);
    this.alsoAwait(podKey, nadKeys);
  }

  /** Pod `podKey` also waits for the NADs `nadKeys`. */
  alsoAwait(podKey: string, nadKeys: readonly string[]): void {
    for (const nad of nadKeys) {
      let pods = this.#pods.get(nad);
      if (!pods) this.#pods.set(nad, pods = new Set());
      pods.add(podKey);
    }
  }

  /** Pod `podKey` waits for no NAD. */
  forget(podKey: string): void {
    for (const [nad, pods] of this.#pods) {
      if (pods.delete(podKey) && pods.size === 0) this.#pods.delete(nad);
    }
  }
}
