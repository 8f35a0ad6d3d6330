/**
 * What node confinement costs: the time of one `pods/status` write of the agent's own
 * annotation, made with the agent's identity (`deploy/base`'s ServiceAccount, a token bound to
 * a pod on the node) with the ValidatingAdmissionPolicy bound, then with its binding removed,
 * alternating in rounds so that the machine's drift hits both alike. Needs root (the rig).
 *
 * ```sh
 * deno run -A tests/bench/policy.ts [--writes 200]
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Rig } from "../rig/mod.ts";
import { round, summarize } from "./stats.ts";

const NS = "policy-bench";
const BINDING = "dynamic-networks-controller-node-confinement";
const STATUS = "k8s.v1.cni.cncf.io/network-status";

/** The bearer token of the rig's agent kubeconfig (JSON). */
async function agentToken(rig: Rig): Promise<string> {
  const kubeconfig = JSON.parse(await Deno.readTextFile(await rig.agentKubeconfig()));
  const token = kubeconfig.users?.[0]?.user?.token;
  if (typeof token !== "string") throw new Error("the agent kubeconfig holds no token");
  return token;
}

/** Times `count` writes of the pod's network-status as the agent; milliseconds each. */
async function timeWrites(
  rig: Rig,
  token: string,
  client: Deno.HttpClient,
  count: number,
): Promise<number[]> {
  const path = `/api/v1/namespaces/${NS}/pods/target`;
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    // deno-lint-ignore no-explicit-any
    const pod = await rig.api.request<any>("GET", path);
    pod.metadata.annotations = {
      ...pod.metadata.annotations,
      [STATUS]: JSON.stringify([{ name: "bench", interface: "eth0", ips: [`10.0.0.${i % 250}`] }]),
    };
    const started = performance.now();
    const res = await fetch(new URL(`${path}/status`, rig.apiServerUrl), {
      method: "PUT",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify(pod),
      client,
    });
    await res.body?.cancel();
    if (!res.ok) throw new Error(`status write ${i} answered ${res.status}`);
    times.push(performance.now() - started);
  }
  return times;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ args: Deno.args, options: { writes: { type: "string" } } });
  const writes = Number(values.writes ?? "200");
  if (!Number.isInteger(writes) || writes < 10) {
    throw new Error(`--writes ${JSON.stringify(values.writes)}: give a whole number ≥ 10`);
  }
  const rig = await Rig.start();
  // HTTP/2, as the agent's client speaks to the API server (HTTP/1.1 adds delayed-ACK waits).
  const client = Deno.createHttpClient({
    caCerts: [Deno.readTextFileSync(rig.caCertPath)],
    http1: false,
    http2: true,
  });
  try {
    await rig.createNamespace(NS);
    const token = await agentToken(rig);
    await rig.createPod({ name: "target", namespace: NS });
    // deno-lint-ignore no-explicit-any
    const binding = await rig.api.request<any>(
      "GET",
      `/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings/${BINDING}`,
    );
    const on: number[] = [];
    const off: number[] = [];
    const rounds = 10;
    for (let r = 0; r < rounds; r++) {
      on.push(...await timeWrites(rig, token, client, writes / rounds));
      await rig.api.request(
        "DELETE",
        `/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings/${BINDING}`,
      );
      // The API server's admission sees a binding change within about a second.
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      off.push(...await timeWrites(rig, token, client, writes / rounds));
      await rig.api.request(
        "POST",
        "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings",
        { ...binding, metadata: { name: BINDING, labels: binding.metadata.labels } },
      );
      await new Promise((resolve) => setTimeout(resolve, 2_000));
    }
    const show = (what: string, samples: number[]) => {
      const s = summarize(samples);
      console.log(
        `${what.padEnd(28)} n=${s.n}  median ${round(s.median, 2)} ms  p90 ${
          round(s.p90, 2)
        } ms  p99 ${round(s.p99, 2)} ms`,
      );
      return s;
    };
    const a = show("status write, policy bound", on);
    const b = show("status write, policy unbound", off);
    console.log(`the policy adds ${round(a.median - b.median, 2)} ms to the median write`);
  } finally {
    client.close();
    await rig.stop();
  }
}

if (import.meta.main) await main();
