/**
 * The base of a status write on the API server: the whole pod object as a GET or the last PUT
 * answered it (a `pods/status` PUT sends the whole object back). The pass carries it from its
 * fresh read (`pods.ts`) to its writes (`status_store.ts`) as an opaque {@linkcode StatusBase}.
 *
 * @module
 */
import type { StatusBase } from "../reconcile/ports.ts";

/** A pod object as the API server sent it, the base of a status write. */
export class PodBase implements StatusBase {
  /** The object, as sent. */
  readonly object: Record<string, unknown>;

  /** The base `object` (a pod as read or written). */
  constructor(object: Record<string, unknown>) {
    this.object = object;
  }

  /** {@inheritDoc StatusBase.resourceVersion} */
  get resourceVersion(): string {
    const metadata = this.object.metadata as { resourceVersion?: string } | undefined;
    return metadata?.resourceVersion ?? "";
  }
}
