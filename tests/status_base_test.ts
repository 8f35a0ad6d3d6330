/**
 * The base of a status write (`lib/kube/pod_base.ts`): the pass's fresh read, or the pod its
 * last write answered, from which `updateNetworkStatus` writes without reading the pod again;
 * a pod changed since is read again on 409 Conflict.
 */
import assert from "node:assert/strict";
import { PodBase } from "../lib/kube/pod_base.ts";
import { KubeApiError, type KubeClient } from "../lib/kube/client.ts";
import { updateNetworkStatus } from "../lib/kube/status_store.ts";
import { NETWORK_STATUS_ANNOTATION } from "../lib/core/annotations.ts";

/** An API server of one pod with resourceVersion preconditions, counting requests. */
function fakeApi(pod: { uid: string; rv: number; status?: string }) {
  const calls: string[] = [];
  const object = () => ({
    metadata: {
      uid: pod.uid,
      resourceVersion: String(pod.rv),
      annotations: pod.status === undefined ? {} : { [NETWORK_STATUS_ANNOTATION]: pod.status },
    },
  });
  const client = {
    json(method: string, path: string, options: { body?: unknown }) {
      calls.push(method);
      if (method === "GET") return Promise.resolve(object());
      // deno-lint-ignore no-explicit-any
      const body = options.body as any;
      if (body.metadata.resourceVersion !== String(pod.rv) || body.metadata.uid !== pod.uid) {
        return Promise.reject(new KubeApiError("PUT", path, 409, { reason: "Conflict" }));
      }
      pod.rv++;
      pod.status = body.metadata.annotations[NETWORK_STATUS_ANNOTATION];
      return Promise.resolve(object());
    },
  } as unknown as KubeClient;
  return { client, calls, read: object };
}

const write = (text: string) => (c: { finalizer: boolean }) => ({ ...c, networkStatus: text });

Deno.test("status write: starts from the base the pass gives; a changed pod is read again on 409", async () => {
  const pod = { uid: "u", rv: 1 };
  const api = fakeApi(pod);
  const read = new PodBase(api.read());
  const first = await updateNetworkStatus(api.client, "ns", "p", "u", write("[1]"), {}, read);
  assert.equal(first.result, "written");
  assert.deepEqual(api.calls, ["PUT"], "no second read");

  const stale = new PodBase(api.read());
  pod.rv++; // someone else wrote after the pass read the pod
  api.calls.length = 0;
  const conflicts: number[] = [];
  const second = await updateNetworkStatus(api.client, "ns", "p", "u", write("[2]"), {
    retryDelayMs: 0,
    onConflict: () => conflicts.push(1),
  }, stale);
  assert.equal(second.result, "written");
  assert.deepEqual(api.calls, ["PUT", "GET", "PUT"]);
  assert.equal(conflicts.length, 1);
});

Deno.test("status write: a base that finds nothing to write, or another uid, is read again", async () => {
  const pod = { uid: "u", rv: 1, status: "[same]" };
  const api = fakeApi(pod);
  const read = new PodBase(api.read());
  const same = await updateNetworkStatus(api.client, "ns", "p", "u", write("[same]"), {}, read);
  assert.equal(same.result, "unchanged");
  assert.deepEqual(api.calls, ["GET"], "unchanged is decided on a read of the pod as it is now");

  api.calls.length = 0;
  const earlier = new PodBase({ metadata: { uid: "earlier", resourceVersion: "1" } });
  const other = await updateNetworkStatus(api.client, "ns", "p", "u", write("[x]"), {}, earlier);
  assert.equal(other.result, "written");
  assert.deepEqual(api.calls, ["GET", "PUT"]);
});

Deno.test("status write: the pod a PUT answers is the base of the next write, with no read between", async () => {
  const pod: { uid: string; rv: number; status?: string } = { uid: "u", rv: 1 };
  const api = fakeApi(pod);
  const read = new PodBase(api.read());
  // An announcement, then the record of what was done: two writes on one read.
  const announced = await updateNetworkStatus(api.client, "ns", "p", "u", write("[]"), {}, read);
  const record = await updateNetworkStatus(
    api.client,
    "ns",
    "p",
    "u",
    write("[1]"),
    {},
    announced.base,
  );
  assert.equal(record.result, "written");
  assert.deepEqual(api.calls, ["PUT", "PUT"]);
  assert.equal(pod.status, "[1]");
});
