import assert from "node:assert/strict";
import { FreshPodReads } from "../lib/kube/fresh_reads.ts";
import { KubeApiError, type KubeClient } from "../lib/kube/client.ts";
import { updateNetworkStatus } from "../lib/kube/status_store.ts";
import { NETWORK_STATUS_ANNOTATION } from "../lib/core/annotations.ts";

Deno.test("fresh reads: a read is taken once, only while young, and only the latest are kept", () => {
  let now = 0;
  const reads = new FreshPodReads({ max: 2, maxAgeMs: 100, now: () => now });
  reads.put("ns", "a", { n: 1 });
  reads.put("ns", "a", { n: 2 });
  assert.deepEqual(reads.take("ns", "a"), { n: 2 });
  assert.equal(reads.take("ns", "a"), undefined, "taken once");
  reads.put("ns", "old", {});
  now = 101;
  assert.equal(reads.take("ns", "old"), undefined, "too old");
  reads.put("ns", "x", {});
  reads.put("ns", "y", {});
  reads.put("ns", "z", {});
  assert.equal(reads.size, 2);
  assert.equal(reads.take("ns", "x"), undefined, "evicted");
  reads.forget("ns", "y");
  assert.equal(reads.take("ns", "y"), undefined);
});

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

Deno.test("status write: starts from the pass's fresh read; a changed pod is read again on 409", async () => {
  const pod = { uid: "u", rv: 1 };
  const api = fakeApi(pod);
  const reads = new FreshPodReads();
  reads.put("ns", "p", api.read());
  const first = await updateNetworkStatus(api.client, "ns", "p", "u", write("[1]"), { reads });
  assert.equal(first.result, "written");
  assert.deepEqual(api.calls, ["PUT"], "no second read");

  reads.put("ns", "p", api.read());
  pod.rv++; // someone else wrote after the pass read the pod
  api.calls.length = 0;
  const conflicts: number[] = [];
  const second = await updateNetworkStatus(api.client, "ns", "p", "u", write("[2]"), {
    reads,
    retryDelayMs: 0,
    onConflict: () => conflicts.push(1),
  });
  assert.equal(second.result, "written");
  assert.deepEqual(api.calls, ["PUT", "GET", "PUT"]);
  assert.equal(conflicts.length, 1);
});

Deno.test("status write: a kept read that finds nothing to write, or another uid, is made again", async () => {
  const pod = { uid: "u", rv: 1, status: "[same]" };
  const api = fakeApi(pod);
  const reads = new FreshPodReads();
  reads.put("ns", "p", api.read());
  const same = await updateNetworkStatus(api.client, "ns", "p", "u", write("[same]"), { reads });
  assert.equal(same.result, "unchanged");
  assert.deepEqual(api.calls, ["GET"], "unchanged is decided on a read of the pod as it is now");

  api.calls.length = 0;
  reads.put("ns", "p", { metadata: { uid: "earlier", resourceVersion: "1" } });
  const other = await updateNetworkStatus(api.client, "ns", "p", "u", write("[x]"), { reads });
  assert.equal(other.result, "written");
  assert.deepEqual(api.calls, ["GET", "PUT"]);
});

Deno.test("status write: the pod a PUT answers is the base of the next write, with no read between", async () => {
  const pod: { uid: string; rv: number; status?: string } = { uid: "u", rv: 1 };
  const api = fakeApi(pod);
  const reads = new FreshPodReads();
  reads.put("ns", "p", api.read());
  // An announcement, then the record of what was done: two writes on one read.
  await updateNetworkStatus(api.client, "ns", "p", "u", write("[]"), { reads });
  const record = await updateNetworkStatus(api.client, "ns", "p", "u", write("[1]"), { reads });
  assert.equal(record.result, "written");
  assert.deepEqual(api.calls, ["PUT", "PUT"]);
  assert.equal(pod.status, "[1]");
});
