/**
 * The {@linkcode ListWatchTransport} of a real API server: list at `resourceVersion=0`
 * (served from the API server's watch cache), then watch with bookmarks and a server-side
 * timeout. Objects go through an ingestion transform that keeps only what the controller
 * reads, so the cache holds small objects.
 *
 * @module
 */
import type { KubeClient } from "./client.ts";
import type { ListWatchTransport } from "./watcher.ts";
import type { ListResult, WatchEvent } from "./types.ts";

/** Settings of {@linkcode kubeListWatch}. */
export interface KubeListWatchOptions<T> {
  /** Field selector, e.g. `spec.nodeName=node-1`. */
  fieldSelector?: string;
  /** Label selector. */
  labelSelector?: string;
  /** Reduces a raw object to the cached shape; returns undefined to skip a malformed one. */
  transform: (raw: unknown) => T | undefined;
  /** Server-side watch timeout: a random value in [min, 2·min) seconds (default min 300, as client-go). */
  minWatchTimeoutSeconds?: number;
  /** Random source in [0, 1); injectable for tests. */
  random?: () => number;
}

/** A transport for the collection at `path` (e.g. `/api/v1/pods`). */
export function kubeListWatch<T>(
  client: KubeClient,
  path: string,
  options: KubeListWatchOptions<T>,
): ListWatchTransport<T> {
  const { fieldSelector, labelSelector, transform } = options;
  const minTimeout = options.minWatchTimeoutSeconds ?? 300;
  const random = options.random ?? Math.random;
  return {
    async list(signal: AbortSignal): Promise<ListResult<T>> {
      const body = await client.json<
        { metadata?: { resourceVersion?: string }; items?: unknown[] }
      >(
        "GET",
        path,
        { query: { resourceVersion: "0", fieldSelector, labelSelector }, signal },
      );
      const items: T[] = [];
      for (const raw of body.items ?? []) {
        const object = transform(raw);
        if (object !== undefined) items.push(object);
      }
      const resourceVersion = body.metadata?.resourceVersion;
      if (!resourceVersion) {
        throw new Error(`list ${path}: the response has no metadata.resourceVersion`);
      }
      return { items, resourceVersion };
    },
    async *watch(resourceVersion: string, signal: AbortSignal): AsyncIterable<WatchEvent<T>> {
      const timeoutSeconds = Math.floor(minTimeout * (1 + random()));
      const stream = client.watch(path, {
        resourceVersion,
        allowWatchBookmarks: true,
        timeoutSeconds,
        fieldSelector,
        labelSelector,
      }, signal);
      for await (const event of stream) {
        if (event.type === "BOOKMARK" || event.type === "ERROR") {
          yield event;
          continue;
        }
        const object = transform(event.object);
        if (object !== undefined) yield { type: event.type, object };
      }
    },
  };
}
