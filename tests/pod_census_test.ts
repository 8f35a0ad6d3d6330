import assert from "node:assert/strict";
import { podCensus } from "../lib/core/pod_census.ts";
import type { PodSnapshot } from "../lib/core/pod.ts";

function pod(name: string, networks?: string, status?: string): PodSnapshot {
  const annotations: Record<string, string> = {};
  if (networks !== undefined) annotations["k8s.v1.cni.cncf.io/networks"] = networks;
  if (status !== undefined) annotations["k8s.v1.cni.cncf.io/network-status"] = status;
  return { metadata: { name, namespace: "ns1", uid: name, annotations }, spec: {} };
}

Deno.test("managed pods ask for a network; attachments are non-default entries with an interface", () => {
  const census = podCensus([
    pod(
      "asks-two",
      "a@net1,b@net2",
      JSON.stringify([
        { name: "c", interface: "eth0", default: true },
        { name: "ns1/a", interface: "net1" },
        { name: "ns1/b", interface: "net2" },
      ]),
    ),
    pod("asks-nothing", "[]", JSON.stringify([{ name: "c", interface: "eth0", default: true }])),
    pod("no-annotation"),
    pod("invalid", "{not json"),
    pod("leftover", undefined, JSON.stringify([{ name: "ns1/a", interface: "net9" }])),
    pod("bad-status", "a", "{nope"),
    pod("no-interface", "a", JSON.stringify([{ name: "ns1/a" }])),
  ]);
  assert.deepEqual(census, { managedPods: 4, attachments: 3 });
});
