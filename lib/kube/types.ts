/**
 * Wire shapes shared by the Kubernetes adapters: watch events, list results and the
 * API server's `Status` object. Only the fields the controller reads are declared.
 *
 * @module
 */

/** The `metav1.Status` body the API server sends with errors and in watch `ERROR` events. */
export interface KubeStatus {
  /** `Status`. */
  kind?: string;
  /** `v1`. */
  apiVersion?: string;
  /** `Failure` or `Success`. */
  status?: string;
  /** What went wrong, for people. */
  message?: string;
  /** Machine-readable reason, e.g. `Conflict`, `NotFound`, `Expired`, `Gone`. */
  reason?: string;
  /** The HTTP status code the error maps to (410 for an expired resourceVersion). */
  code?: number;
}

/** One event of a watch stream, after the controller's own ingestion transform. */
export type WatchEvent<T> =
  | { type: "ADDED" | "MODIFIED" | "DELETED"; object: T }
  | { type: "BOOKMARK"; object: { metadata: { resourceVersion: string } } }
  | { type: "ERROR"; object: KubeStatus };

/** The type names a watch stream may carry. */
export type WatchEventType = WatchEvent<unknown>["type"];

/** A list response reduced to what a watcher needs: the items and the list's resourceVersion. */
export interface ListResult<T> {
  /** The listed objects, after the ingestion transform. */
  items: T[];
  /** The list's resourceVersion, to watch from. */
  resourceVersion: string;
}

/** Query parameters of a list or watch request; `undefined` values are left out. */
export type Query = Record<string, string | number | boolean | undefined>;

/** What a list-then-watch loop tells its consumer (see `Watcher` in `watcher.ts`). */
export type WatcherEvent<T> =
  /** A (re-)list: the whole collection as of `resourceVersion`. */
  | { type: "restarted"; objects: T[]; resourceVersion: string }
  /** An object was added or changed. */
  | { type: "applied"; object: T }
  /** An object was deleted. */
  | { type: "deleted"; object: T };
