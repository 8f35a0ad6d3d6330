/**
 * A client that lets a test change the pod between a writer's read and its write: the first
 * write request (any method but GET) through it waits for `stage` to run first, so the write
 * meets a newer version of the pod (409 Conflict) exactly once.
 *
 * @module
 */
import type { KubeClient } from "../../lib/kube/client.ts";

/** `client`, with `stage` run just before its first write request is sent. */
export function beforeFirstWrite(client: KubeClient, stage: () => Promise<void>): KubeClient {
  let staged = false;
  return new Proxy(client, {
    get(target, property) {
      const value = Reflect.get(target, property, target);
      if (property !== "json") return typeof value === "function" ? value.bind(target) : value;
      return async (...args: Parameters<KubeClient["json"]>) => {
        if (!staged && args[0] !== "GET") {
          staged = true;
          await stage();
        }
        return await target.json(...args);
      };
    },
  });
}
