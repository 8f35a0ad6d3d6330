import assert from "node:assert/strict";
import { inputsChanged } from "../lib/core/pod_inputs.ts";
import type { PodSnapshot } from "../lib/core/pod.ts";

const NETWORKS = "k8s.v1.cni.cncf.io/networks";
const STATUS = "k8s.v1.cni.cncf.io/network-status";

function pod(overrides: {
  uid?: string;
  deletionTimestamp?: string;
  phase?: string;
  hostNetwork?: boolean;
  networks?: string;
  status?: string;
  resourceVersion?: string;
} = {}): PodSnapshot {
  const annotations: Record<string, string> = {};
  if (overrides.networks !== undefined) annotations[NETWORKS] = overrides.networks;
  if (overrides.status !== undefined) annotations[STATUS] = overrides.status;
  return {
    metadata: {
      name: "p",
      namespace: "ns1",
      uid: overrides.uid ?? "u1",
      resourceVersion: overrides.resourceVersion ?? "1",
      ...(overrides.deletionTimestamp ? { deletionTimestamp: overrides.deletionTimestamp } : {}),
      annotations,
    },
    spec: overrides.hostNetwork ? { hostNetwork: true } : {},
    status: { phase: overrides.phase ?? "Running" },
  };
}

const base = { networks: '[{"name":"a"}]', status: '[{"name":"c","default":true}]' };

Deno.test("a pod seen for the first time has changed", () => {
  assert.equal(inputsChanged(undefined, pod(base)), true);
});

Deno.test("an update that touches nothing a pass reads is no change", () => {
  assert.equal(inputsChanged(pod(base), pod({ ...base, resourceVersion: "2" })), false);
});

Deno.test("each input a pass reads is a change", () => {
  const before = pod(base);
  const changes = {
    uid: pod({ ...base, uid: "u2" }),
    deletion: pod({ ...base, deletionTimestamp: "2026-12-01T00:00:00Z" }),
    phase: pod({ ...base, phase: "Succeeded" }),
    hostNetwork: pod({ ...base, hostNetwork: true }),
    networks: pod({ ...base, networks: '[{"name":"b"}]' }),
    networksRemoved: pod({ status: base.status }),
    status: pod({ ...base, status: "[]" }),
  };
  for (const [what, after] of Object.entries(changes)) {
    assert.equal(inputsChanged(before, after), true, what);
  }
});

Deno.test("network-status changed to the agent's own last write is its echo, not a change", () => {
  const own = '[{"name":"c","default":true},{"name":"ns1/a","interface":"net1"}]';
  const after = pod({ ...base, status: own });
  assert.equal(inputsChanged(pod(base), after, own), false);
  assert.equal(inputsChanged(pod(base), after, "[]"), true, "someone else's write");
  assert.equal(
    inputsChanged(pod(base), pod({ ...base, status: own, networks: "[]" }), own),
    true,
    "an edit in the same update still counts",
  );
});
