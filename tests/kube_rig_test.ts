/**
 * The Kubernetes adapters against the rig's real kube-apiserver: the node-scoped pod
 * informer (add/update/delete, other nodes invisible, survives an API server restart), the
 * NAD informer, the status writer (fresh read, real 409 conflicts, other annotations kept,
 * re-created pods refused) and the event recorder (create, then count repeats). The
 * controller's components run with the ServiceAccount token bound to the ClusterRole in
 * deploy/base/cluster_role.yaml, so the tests also prove that RBAC is enough.
 */
import assert from "node:assert/strict";
import { load as loadYaml } from "js-yaml";
import { Logger, type LogLevel } from "../lib/base/log.ts";
import { KubeApiError, KubeClient } from "../lib/kube/client.ts";
import { KubeEventRecorder } from "../lib/kube/events.ts";
import { addedInterfaceMessage } from "../lib/core/event_messages.ts";
import { nadInformer } from "../lib/kube/nads.ts";
import { NETWORK_STATUS_ANNOTATION, RELEASE_FINALIZER } from "../lib/core/annotations.ts";
import type { OwnedStatus } from "../lib/reconcile/ports.ts";
import { getPod, type Pod, podInformer, slimPod } from "../lib/kube/pods.ts";
import { updateNetworkStatus } from "../lib/kube/status_store.ts";
import { kubeListWatch } from "../lib/kube/list_watch.ts";
import { Reflector } from "../lib/kube/reflector.ts";
import { type ListWatchTransport, Watcher } from "../lib/kube/watcher.ts";
import { Rig, waitFor } from "./rig/mod.ts";
import { beforeFirstWrite, rigTest } from "./support/mod.ts";

const log = new Logger({ level: (Deno.env.get("KUBE_TEST_LOG") ?? "error") as LogLevel });
/** Short retry pacing, so the restart test does not wait for the production backoff. */
const fast = { backoff: { initialMs: 100, maxMs: 1000 } };
const NS = "kube-adapters";
const WAIT_MS = 60_000;
/**
 * The Node of the API-only pods: an object with no kubelet behind it, so that nothing but the
 * test changes its pods (the rig's own node runs whatever is bound to it).
 */
const API_NODE = "kube-adapters-node";

let rig: Rig | undefined;
let admin: KubeClient | undefined;
let controller: KubeClient | undefined;
const stop = new AbortController();

function theRig(): Rig {
  if (!rig) throw new Error("the rig did not start (see the first test's failure)");
  return rig;
}
function adminClient(): KubeClient {
  if (!admin) throw new Error("no admin client (see the first test's failure)");
  return admin;
}
function controllerClient(): KubeClient {
  if (!controller) throw new Error("no controller client (see the first test's failure)");
  return controller;
}

/** A bare Pod object bound to `node` (no kubelet runs it: the informer only sees API objects). */
async function createApiPod(
  name: string,
  node: string,
  annotations: Record<string, string> = {},
): Promise<{ uid: string }> {
  const pod = await adminClient().json<{ metadata: { uid: string } }>(
    "POST",
    `/api/v1/namespaces/${NS}/pods`,
    {
      body: {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name, namespace: NS, annotations },
        spec: { nodeName: node, containers: [{ name: "app", image: "pause" }] },
      },
    },
  );
  return { uid: pod.metadata.uid };
}

async function annotate(name: string, annotations: Record<string, string | null>): Promise<void> {
  await adminClient().json("PATCH", `/api/v1/namespaces/${NS}/pods/${name}`, {
    body: { metadata: { annotations } },
    contentType: "application/merge-patch+json",
  });
}

async function deleteApiPod(name: string): Promise<void> {
  try {
    await adminClient().json("DELETE", `/api/v1/namespaces/${NS}/pods/${name}`, {
      body: { apiVersion: "v1", kind: "DeleteOptions", gracePeriodSeconds: 0 },
    });
  } catch (err) {
    if (!(err instanceof KubeApiError && err.status === 404)) throw err;
  }
}

/**
 * Records every change a reflector reports, in order. An update that only marks a pod as
 * terminating (the API server sets deletionTimestamp before removing it) is recorded as
 * `terminating`.
 */
function recordChanges<T>(reflector: Reflector<T>, keyOf: (o: T) => string): string[] {
  const seen: string[] = [];
  reflector.on("upsert", (o, old) => {
    const terminating = (o as { metadata?: { deletionTimestamp?: string } }).metadata
      ?.deletionTimestamp;
    seen.push(`${old ? terminating ? "terminating" : "update" : "add"} ${keyOf(o)}`);
  });
  reflector.on("delete", (o) => seen.push(`delete ${keyOf(o)}`));
  return seen;
}

const podKey = (p: Pod) => `${p.metadata.namespace}/${p.metadata.name}`;

Deno.test({
  name: "kube rig: start, admin client (client certificate), controller client (RBAC token)",
  ...rigTest,
  async fn() {
    rig = await Rig.start();
    admin = await KubeClient.create({ kubeconfig: rig.kubeconfig }, log);
    await rig.createNamespace(NS);
    await admin.json("POST", "/api/v1/nodes", {
      body: { apiVersion: "v1", kind: "Node", metadata: { name: API_NODE } },
    });
    const role = loadYaml(
      await Deno.readTextFile(new URL("../deploy/base/cluster_role.yaml", import.meta.url)),
    );
    await admin.json("POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles", { body: role });
    const kubeconfig = await rig.serviceAccountKubeconfig(
      "dynamic-networks-controller",
      "kube-system",
      "dynamic-networks-controller",
    );
    controller = await KubeClient.create({ kubeconfig }, log);
    assert.equal(controller.server.href, new URL(rig.apiServerUrl).href);
    // The token carries only the ClusterRole: anything else is forbidden.
    await assert.rejects(
      controller.json("GET", `/api/v1/namespaces/${NS}/configmaps`),
      (err) => err instanceof KubeApiError && err.status === 403,
    );
  },
});

Deno.test({
  name:
    "kube rig: in-cluster config reads the ServiceAccount files and re-reads a rotated token after 401",
  ...rigTest,
  async fn() {
    const r = theRig();
    const kc = JSON.parse(
      await Deno.readTextFile(
        await r.serviceAccountKubeconfig("rotating", "kube-system", "dynamic-networks-controller"),
      ),
    );
    const token: string = kc.users[0].user.token;
    const dir = await Deno.makeTempDir({ prefix: "kube_sa_" });
    try {
      await Deno.copyFile(r.caCertPath, `${dir}/ca.crt`);
      await Deno.writeTextFile(`${dir}/token`, "not-a-valid-token");
      const url = new URL(r.apiServerUrl);
      const client = await KubeClient.create({
        inCluster: {
          serviceAccountDir: dir,
          env: (n) =>
            ({ KUBERNETES_SERVICE_HOST: url.hostname, KUBERNETES_SERVICE_PORT: url.port })[n],
        },
      }, log);
      await assert.rejects(
        client.json("GET", `/api/v1/namespaces/${NS}/pods`),
        (err) => err instanceof KubeApiError && err.status === 401,
      );
      await Deno.writeTextFile(`${dir}/token`, `${token}\n`); // the kubelet rotated the token
      const list = await client.json<{ kind: string }>("GET", `/api/v1/namespaces/${NS}/pods`);
      assert.equal(list.kind, "PodList");
      client.close();
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

let pods: Reflector<Pod> | undefined;
let podRun: Promise<void> | undefined;
let podChanges: string[] = [];

Deno.test({
  name: "kube rig: pod informer sees add, update and delete of its node's pods only",
  ...rigTest,
  async fn() {
    await createApiPod("before-start", API_NODE, { "k8s.v1.cni.cncf.io/networks": "net-a" });
    pods = podInformer(controllerClient(), API_NODE, log, fast);
    podChanges = recordChanges(pods, podKey);
    podRun = pods.run(stop.signal);
    await pods.waitForSync();
    // A list at resourceVersion=0 is served from the API server's watch cache, which may lag
    // a moment behind a pod created just before: the pod then comes as an ADDED event.
    await waitFor(
      "the pod created before the start",
      () => pods!.get(`${NS}/before-start`),
      WAIT_MS,
    );
    assert.deepEqual(pods.keys(), [`${NS}/before-start`]);
    const cached = pods.get(`${NS}/before-start`)!;
    assert.equal(cached.metadata.annotations?.["k8s.v1.cni.cncf.io/networks"], "net-a");
    assert.equal(cached.spec.nodeName, API_NODE);

    await createApiPod("elsewhere", "some-other-node");
    await createApiPod("mine", API_NODE, { "unrelated": "dropped at ingestion" });
    await waitFor("pod mine in the cache", () => pods!.get(`${NS}/mine`), WAIT_MS);
    assert.deepEqual(pods.get(`${NS}/mine`)!.metadata.annotations, undefined);

    await annotate("mine", { "k8s.v1.cni.cncf.io/networks": "net-b" });
    await waitFor(
      "the annotation edit in the cache",
      () => pods!.get(`${NS}/mine`)?.metadata.annotations?.["k8s.v1.cni.cncf.io/networks"],
      WAIT_MS,
    );
    await deleteApiPod("mine");
    await waitFor("pod mine gone from the cache", () => !pods!.get(`${NS}/mine`), WAIT_MS);
    await deleteApiPod("elsewhere");

    assert.deepEqual(podChanges.filter((c) => !c.startsWith("terminating")), [
      `add ${NS}/before-start`,
      `add ${NS}/mine`,
      `update ${NS}/mine`,
      `delete ${NS}/mine`,
    ]);
    assert.equal(pods.get(`${NS}/elsewhere`), undefined);
  },
});

Deno.test({
  name:
    "kube rig: pod informer survives an API server restart and applies the edits made around it",
  ...rigTest,
  async fn() {
    const r = theRig();
    if (!pods) {
      // Run on its own (e.g. with --filter): start the informer here.
      pods = podInformer(controllerClient(), API_NODE, log, fast);
      podChanges = recordChanges(pods, podKey);
      podRun = pods.run(stop.signal);
      await pods.waitForSync();
    }
    const informer = pods;
    await createApiPod("survivor", API_NODE);
    await createApiPod("doomed", API_NODE);
    await waitFor("both pods cached", () => informer.get(`${NS}/doomed`), WAIT_MS);
    podChanges.length = 0;

    await r.restartApiServer();
    // Right after the restart the informer is still reconnecting: these changes reach it
    // through the resumed watch or the re-list, whichever happens.
    await annotate("survivor", { "k8s.v1.cni.cncf.io/networks": "after-restart" });
    await deleteApiPod("doomed");
    await createApiPod("newborn", API_NODE);

    await waitFor(
      "the edit made after the restart",
      () =>
        informer.get(`${NS}/survivor`)?.metadata.annotations?.["k8s.v1.cni.cncf.io/networks"] ===
          "after-restart" &&
        informer.get(`${NS}/doomed`) === undefined &&
        informer.get(`${NS}/newborn`) !== undefined,
      WAIT_MS,
    );
    assert.ok(podChanges.includes(`update ${NS}/survivor`), podChanges.join(", "));
    assert.ok(podChanges.includes(`delete ${NS}/doomed`), podChanges.join(", "));
    assert.ok(podChanges.includes(`add ${NS}/newborn`), podChanges.join(", "));

    // And it keeps watching afterwards.
    await annotate("survivor", { "k8s.v1.cni.cncf.io/networks": "later" });
    await waitFor(
      "an edit after recovery",
      () =>
        informer.get(`${NS}/survivor`)?.metadata.annotations?.["k8s.v1.cni.cncf.io/networks"] ===
          "later",
      WAIT_MS,
    );
  },
});

Deno.test({
  name:
    "kube rig: a watch that goes quiet is aborted by the inactivity timer and resumed, never stalls",
  ...rigTest,
  async fn() {
    const r = theRig();
    const kc = await r.serviceAccountKubeconfig(
      "quiet",
      "kube-system",
      "dynamic-networks-controller",
    );
    let podRequests = 0;
    const client = await KubeClient.create({
      kubeconfig: kc,
      onResponse: (_m, path) => {
        if (path === "/api/v1/pods") podRequests++;
      },
    }, log);
    const ac = new AbortController();
    // Far shorter than the API server's bookmark period (1 min): every stream goes quiet.
    const informer = podInformer(client, API_NODE, log, { ...fast, inactivityMs: 500 });
    const running = informer.run(ac.signal);
    await informer.waitForSync();
    await waitFor("two quiet streams aborted and re-opened", () => podRequests >= 4, WAIT_MS);
    await createApiPod("after-quiet", API_NODE);
    await waitFor(
      "a pod created after the quiet periods",
      () => informer.get(`${NS}/after-quiet`),
      WAIT_MS,
    );
    ac.abort();
    await running;
    client.close();
    await deleteApiPod("after-quiet");
  },
});

Deno.test({
  name:
    "kube rig: the server ends each watch at timeoutSeconds; the watcher resumes from its resourceVersion without re-listing",
  ...rigTest,
  async fn() {
    const inner = kubeListWatch(controllerClient(), "/api/v1/pods", {
      fieldSelector: `spec.nodeName=${API_NODE}`,
      transform: slimPod,
      minWatchTimeoutSeconds: 1, // 1–2 s streams
    });
    let lists = 0;
    const watchedFrom: string[] = [];
    const counting: ListWatchTransport<Pod> = {
      list: (signal) => {
        lists++;
        return inner.list(signal);
      },
      watch: (rv, signal) => {
        watchedFrom.push(rv);
        return inner.watch(rv, signal);
      },
    };
    const watcher = new Watcher<Pod>(counting, {
      versionOf: (p) => p.metadata.resourceVersion,
      backoff: fast.backoff,
      log,
    });
    const reflector = new Reflector(watcher);
    const ac = new AbortController();
    const running = reflector.run(ac.signal);
    await reflector.waitForSync();
    await waitFor("three watches ended by the server", () => watchedFrom.length >= 4, WAIT_MS);
    await createApiPod("after-timeouts", API_NODE);
    await waitFor("a pod created later", () => reflector.get(`${NS}/after-timeouts`), WAIT_MS);
    ac.abort();
    await running;
    assert.equal(lists, 1, "server-side timeouts never cause a re-list");
    await deleteApiPod("after-timeouts");
  },
});

Deno.test({
  name: "kube rig: NAD informer sees create, update and delete cluster-wide",
  ...rigTest,
  async fn() {
    const r = theRig();
    const nads = nadInformer(controllerClient(), log, fast);
    const changes = recordChanges(nads, (n) => `${n.namespace}/${n.name}`);
    const run = nads.run(stop.signal);
    await nads.waitForSync();
    const config = { cniVersion: "0.3.1", type: "bridge", bridge: "br-x" };
    await r.createNad(NS, "net-a", config);
    await r.createNad("default", "net-b", { ...config, type: "macvlan" });
    await waitFor("both NADs cached", () => nads.get("default/net-b"), WAIT_MS);
    assert.deepEqual(JSON.parse(nads.get(`${NS}/net-a`)!.config), config);
    const path = `/apis/k8s.cni.cncf.io/v1/namespaces/${NS}/network-attachment-definitions/net-a`;
    await adminClient().json("PATCH", path, {
      body: { spec: { config: JSON.stringify({ ...config, bridge: "br-y" }) } },
      contentType: "application/merge-patch+json",
    });
    await waitFor(
      "the NAD update",
      () => nads.get(`${NS}/net-a`)?.config.includes("br-y"),
      WAIT_MS,
    );
    // A big object spans many reads of the watch stream and arrives whole.
    const big = { ...config, padding: "p".repeat(300_000) };
    await r.createNad(NS, "net-big", big);
    await waitFor("the big NAD", () => nads.get(`${NS}/net-big`), WAIT_MS);
    assert.deepEqual(JSON.parse(nads.get(`${NS}/net-big`)!.config), big);
    await adminClient().json("DELETE", path.replace(/net-a$/, "net-big"));
    await waitFor("the big NAD's deletion", () => !nads.get(`${NS}/net-big`), WAIT_MS);
    await adminClient().json("DELETE", path);
    await waitFor("the NAD deletion", () => !nads.get(`${NS}/net-a`), WAIT_MS);
    assert.deepEqual(changes, [
      `add ${NS}/net-a`,
      "add default/net-b",
      `update ${NS}/net-a`,
      `add ${NS}/net-big`,
      `delete ${NS}/net-big`,
      `delete ${NS}/net-a`,
    ]);
    assert.deepEqual(Object.keys(nads.get("default/net-b")!).sort(), [
      "config",
      "name",
      "namespace",
      "resourceVersion",
    ]);
    void run;
  },
});

const STATUS = JSON.stringify([{ name: "rig-cluster", interface: "eth0", default: true }]);

/** A mutation of the network-status text alone, the finalizer left as it is. */
function onText(
  mutate: (current: string | undefined) => string | undefined,
): (current: OwnedStatus) => OwnedStatus {
  return (current) => ({ ...current, networkStatus: mutate(current.networkStatus) });
}

Deno.test({
  name:
    "kube rig: status writer writes from a fresh read and keeps other annotations; no write when unchanged",
  ...rigTest,
  async fn() {
    const { uid } = await createApiPod("status-a", API_NODE, {
      [NETWORK_STATUS_ANNOTATION]: STATUS,
      "example.com/keep": "me",
    });
    const seen: (string | undefined)[] = [];
    const appended = (current: string | undefined) => {
      seen.push(current);
      const entries = JSON.parse(current ?? "[]");
      return JSON.stringify([...entries, { name: `${NS}/net-a`, interface: "net1" }]);
    };
    const res = await updateNetworkStatus(
      controllerClient(),
      NS,
      "status-a",
      uid,
      onText(appended),
    );
    assert.equal(res.result, "written");
    assert.equal(res.attempts, 1);
    assert.deepEqual(seen, [STATUS]);
    const pod = (await getPod(adminClient(), NS, "status-a")) as {
      metadata: { annotations: Record<string, string>; resourceVersion: string };
    };
    assert.equal(pod.metadata.annotations["example.com/keep"], "me");
    assert.deepEqual(JSON.parse(pod.metadata.annotations[NETWORK_STATUS_ANNOTATION]!), [
      { name: "rig-cluster", interface: "eth0", default: true },
      { name: `${NS}/net-a`, interface: "net1" },
    ]);
    assert.equal(res.resourceVersion, pod.metadata.resourceVersion);

    const same = await updateNetworkStatus(controllerClient(), NS, "status-a", uid, (c) => c);
    assert.deepEqual(same, {
      result: "unchanged",
      attempts: 1,
      resourceVersion: pod.metadata.resourceVersion,
    });
    const removed = await updateNetworkStatus(
      controllerClient(),
      NS,
      "status-a",
      uid,
      onText(() => undefined),
    );
    assert.equal(removed.result, "written");
    const after = (await getPod(adminClient(), NS, "status-a")) as {
      metadata: { annotations: Record<string, string> };
    };
    assert.equal(after.metadata.annotations[NETWORK_STATUS_ANNOTATION], undefined);
    assert.equal(after.metadata.annotations["example.com/keep"], "me");
  },
});

Deno.test({
  name:
    "kube rig: status writer adds and removes the agent's finalizer in the same write, keeping others'",
  ...rigTest,
  async fn() {
    const { uid } = await createApiPod("status-f", API_NODE, {
      [NETWORK_STATUS_ANNOTATION]: STATUS,
    });
    await theRig().api.request(
      "PATCH",
      `/api/v1/namespaces/${NS}/pods/status-f`,
      { metadata: { finalizers: ["example.com/theirs"] } },
      { contentType: "application/merge-patch+json" },
    );
    const read = async () =>
      (await getPod(adminClient(), NS, "status-f")) as {
        metadata: { annotations: Record<string, string>; finalizers?: string[] };
      };
    const entry = { name: `${NS}/net-f`, interface: "net1" };
    const added = await updateNetworkStatus(controllerClient(), NS, "status-f", uid, (c) => {
      assert.equal(c.finalizer, false);
      return {
        networkStatus: JSON.stringify([...JSON.parse(c.networkStatus ?? "[]"), entry]),
        finalizer: true,
      };
    });
    assert.equal(added.result, "written");
    assert.equal(added.attempts, 1, "one write for both");
    let pod = await read();
    assert.deepEqual(pod.metadata.finalizers, ["example.com/theirs", RELEASE_FINALIZER]);
    assert.equal(JSON.parse(pod.metadata.annotations[NETWORK_STATUS_ANNOTATION]!).length, 2);

    const same = await updateNetworkStatus(controllerClient(), NS, "status-f", uid, (c) => {
      assert.equal(c.finalizer, true);
      return c;
    });
    assert.equal(same.result, "unchanged");
    const removed = await updateNetworkStatus(
      controllerClient(),
      NS,
      "status-f",
      uid,
      (c) => ({ ...c, finalizer: false }),
    );
    assert.equal(removed.result, "written");
    pod = await read();
    assert.deepEqual(pod.metadata.finalizers, ["example.com/theirs"]);
    await theRig().api.request(
      "PATCH",
      `/api/v1/namespaces/${NS}/pods/status-f`,
      { metadata: { finalizers: null } },
      { contentType: "application/merge-patch+json" },
    );
  },
});

Deno.test({
  name:
    "kube rig: status writer retries a real 409 conflict on a re-read, keeping the concurrent change",
  ...rigTest,
  async fn() {
    const { uid } = await createApiPod("status-b", API_NODE, {
      [NETWORK_STATUS_ANNOTATION]: STATUS,
    });
    const inputs: (string | undefined)[] = [];
    // Another writer changes the pod between our GET and our PUT.
    const client = beforeFirstWrite(controllerClient(), async () => {
      await annotate("status-b", {
        "example.com/concurrent": "yes",
        [NETWORK_STATUS_ANNOTATION]: JSON.stringify([
          ...JSON.parse(STATUS),
          { name: "other/writer" },
        ]),
      });
    });
    const res = await updateNetworkStatus(
      client,
      NS,
      "status-b",
      uid,
      onText((current) => {
        inputs.push(current);
        return JSON.stringify([...JSON.parse(current ?? "[]"), { name: `${NS}/net-c` }]);
      }),
    );
    assert.equal(res.result, "written");
    assert.equal(res.attempts, 2, "the first PUT got 409 Conflict and was retried");
    assert.equal(inputs.length, 2);
    const pod = (await getPod(adminClient(), NS, "status-b")) as {
      metadata: { annotations: Record<string, string> };
    };
    assert.equal(pod.metadata.annotations["example.com/concurrent"], "yes");
    assert.deepEqual(
      JSON.parse(pod.metadata.annotations[NETWORK_STATUS_ANNOTATION]!).map((e: { name: string }) =>
        e.name
      ),
      ["rig-cluster", "other/writer", `${NS}/net-c`],
    );
  },
});

Deno.test({
  name: "kube rig: status writer refuses a pod re-created under the same name, and a deleted one",
  ...rigTest,
  async fn() {
    const { uid: oldUid } = await createApiPod("status-c", API_NODE);
    await deleteApiPod("status-c");
    await waitFor(
      "status-c gone",
      async () => !(await getPod(adminClient(), NS, "status-c")),
      WAIT_MS,
    );
    const gone = await updateNetworkStatus(
      controllerClient(),
      NS,
      "status-c",
      oldUid,
      onText(() => "[]"),
    );
    assert.deepEqual([gone.result, gone.result === "gone" && gone.reason], ["gone", "NotFound"]);
    await createApiPod("status-c", API_NODE);
    const replaced = await updateNetworkStatus(
      controllerClient(),
      NS,
      "status-c",
      oldUid,
      onText(() => "[]"),
    );
    assert.deepEqual(
      [replaced.result, replaced.result === "gone" && replaced.reason],
      ["gone", "UidChanged"],
    );
  },
});

Deno.test({
  name: "kube rig: status writer keeps multus' own network-status entries of a real pod",
  ...rigTest,
  async fn() {
    const r = theRig();
    const pod = await r.createPod({ name: "real-pod", namespace: NS });
    const before = (await getPod(adminClient(), NS, "real-pod")) as {
      metadata: { annotations: Record<string, string> };
    };
    const multusStatus = before.metadata.annotations[NETWORK_STATUS_ANNOTATION]!;
    assert.ok(JSON.parse(multusStatus).length >= 1, "multus wrote the default network's entry");
    await updateNetworkStatus(
      controllerClient(),
      NS,
      "real-pod",
      pod.uid,
      onText((current) => {
        assert.equal(current, multusStatus);
        return JSON.stringify([
          ...JSON.parse(current!),
          { name: `${NS}/net-z`, interface: "net1" },
        ]);
      }),
    );
    const after = (await getPod(adminClient(), NS, "real-pod")) as {
      metadata: { annotations: Record<string, string> };
    };
    const entries = JSON.parse(after.metadata.annotations[NETWORK_STATUS_ANNOTATION]!);
    assert.deepEqual(entries.slice(0, -1), JSON.parse(multusStatus));
    assert.equal(entries.at(-1).name, `${NS}/net-z`);
    await r.deletePod(pod);
  },
});

Deno.test({
  name: "kube rig: event recorder creates an Event, then counts repeats on it",
  ...rigTest,
  async fn() {
    const r = theRig();
    const { uid } = await createApiPod("evented", API_NODE);
    const recorder = new KubeEventRecorder(controllerClient(), { nodeName: r.nodeName, log });
    const involved = { namespace: NS, name: "evented", uid };
    const msg = addedInterfaceMessage(`${NS}/evented`, "net1", "tiny-net-2");
    recorder.record(involved, "Normal", "AddedInterface", msg);
    await recorder.flush();
    recorder.record(involved, "Normal", "AddedInterface", msg);
    recorder.record(involved, "Normal", "AddedInterface", msg);
    recorder.record(involved, "Warning", "FailedAddingInterface", "pod [x]: failed: boom");
    await recorder.flush();
    assert.deepEqual(recorder.stats, { created: 2, patched: 1, failed: 0, dropped: 0 });

    type Ev = {
      reason: string;
      message: string;
      type: string;
      count: number;
      source: { component: string; host: string };
      involvedObject: { kind: string; name: string; uid: string; namespace: string };
      reportingComponent: string;
      reportingInstance: string;
      firstTimestamp: string;
      lastTimestamp: string;
    };
    const list = await adminClient().json<{ items: Ev[] }>(
      "GET",
      `/api/v1/namespaces/${NS}/events`,
      { query: { fieldSelector: `involvedObject.uid=${uid}` } },
    );
    const byReason = Object.fromEntries(list.items.map((e) => [e.reason, e]));
    assert.equal(list.items.length, 2);
    const added = byReason["AddedInterface"]!;
    assert.equal(added.count, 3);
    assert.equal(
      added.message,
      "pod [kube-adapters/evented]: added interface net1 to network: tiny-net-2",
    );
    assert.equal(added.type, "Normal");
    assert.deepEqual(added.source, { component: "pod-networks-updates", host: r.nodeName });
    assert.equal(added.reportingComponent, "pod-networks-updates");
    assert.equal(added.reportingInstance, r.nodeName);
    assert.deepEqual(
      { ...added.involvedObject },
      { ...added.involvedObject, kind: "Pod", name: "evented", uid, namespace: NS },
    );
    assert.ok(added.lastTimestamp >= added.firstTimestamp);
    assert.equal(byReason["FailedAddingInterface"]!.count, 1);
    assert.equal(byReason["FailedAddingInterface"]!.type, "Warning");
    await recorder.close();
  },
});

Deno.test({
  name:
    "kube rig: event recorder starts a new Event after the de-duplication window or an LRU eviction",
  ...rigTest,
  async fn() {
    const r = theRig();
    const { uid } = await createApiPod("evented-2", API_NODE);
    let now = Date.parse("2026-01-01T00:00:00Z");
    const recorder = new KubeEventRecorder(controllerClient(), {
      nodeName: r.nodeName,
      log,
      dedupWindowMs: 60_000,
      maxEntries: 2,
      now: () => now,
    });
    const pod = { namespace: NS, name: "evented-2", uid };
    recorder.record(pod, "Normal", "RemovedInterface", "m1");
    await recorder.flush();
    now += 30_000;
    recorder.record(pod, "Normal", "RemovedInterface", "m1"); // within the window: count 2
    await recorder.flush();
    now += 61_000;
    recorder.record(pod, "Normal", "RemovedInterface", "m1"); // after the window: new Event
    await recorder.flush();
    recorder.record(pod, "Normal", "RemovedInterface", "m2");
    recorder.record(pod, "Normal", "RemovedInterface", "m3"); // evicts m1 (maxEntries 2)
    await recorder.flush();
    recorder.record(pod, "Normal", "RemovedInterface", "m1"); // forgotten: new Event
    await recorder.close();
    assert.deepEqual(recorder.stats, { created: 5, patched: 1, failed: 0, dropped: 0 });
    const list = await adminClient().json<{ items: { message: string; count: number }[] }>(
      "GET",
      `/api/v1/namespaces/${NS}/events`,
      { query: { fieldSelector: `involvedObject.uid=${uid}` } },
    );
    assert.deepEqual(
      list.items.map((e) => `${e.message}×${e.count}`).sort(),
      ["m1×1", "m1×1", "m1×2", "m2×1", "m3×1"],
    );
  },
});

Deno.test({
  name: "kube rig: stop",
  ...rigTest,
  async fn() {
    stop.abort();
    await podRun;
    admin?.close();
    controller?.close();
    await rig?.stop();
  },
});
