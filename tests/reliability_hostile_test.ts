/**
 * A corpus of hostile input on the rig. Each hostile pod starts with a good attachment
 * (`blue` on net1, cold-plugged); its annotation is then replaced by something hostile. Each
 * case must give a Warning Event on the pod and a log line, keep the pod's good attachment, and
 * leave a bystander pod's hot-plugged attachment intact:
 *
 * - an annotation near the API server's 256 KiB limit with too many elements (and one over the
 *   limit, which the API server itself refuses);
 * - deeply nested JSON; wrong JSON types; an interface name longer than 15 bytes;
 * - a NetworkAttachmentDefinition whose config is not JSON;
 * - a NetworkAttachmentDefinition in another namespace while `--namespace-isolation` is on;
 * - multus answering 400 (a plugin that does not exist);
 * - a multus that answers garbage (a fake daemon on a unix socket).
 */
import assert from "node:assert/strict";
import {
  ControllerProcess,
  type DesiredAttachment,
  type PodEvent,
  podEvents,
  rigTest,
  setNetworks,
  waitConverged,
} from "./support/mod.ts";
import { ApiError, NETWORKS_ANNOTATION, Rig, type RigPod, waitFor } from "./rig/mod.ts";

const NS = "hostile";
const BLUE = { network: `${NS}/blue`, ipamNetwork: "hostile-blue", ipPrefix: "10.80.1." };
const IPAM = [BLUE.ipamNetwork];
const good = { name: "blue", interface: "net1" };
const kept: DesiredAttachment[] = [{ ...BLUE, iface: "net1" }];

interface HostileCase {
  name: string;
  annotation: string;
  reason: string;
  /** What the event message must say. */
  message: RegExp;
}

function cases(): HostileCase[] {
  const many = JSON.stringify(
    Array.from({ length: 15_000 }, (_, i) => ({ name: `n${i % 10}` })),
  );
  assert.ok(many.length > 200_000 && many.length < 256 * 1024 - 2048, String(many.length));
  const depth = 5_000;
  return [
    {
      name: "huge",
      annotation: many,
      reason: "InvalidNetworkSelection",
      message: /networks: 15000 elements/,
    },
    {
      name: "deep",
      annotation: `[{"name":"blue","interface":"net1"},{"name":"blue","cni-args":${
        '{"a":'.repeat(depth)
      }1${"}".repeat(depth)}}]`,
      reason: "InvalidNetworkSelection",
      message: /networks(\[1\])?.*(deep|depth|nest)/i,
    },
    {
      name: "wrong-types",
      annotation: JSON.stringify([good, { name: 42, interface: ["net2"] }]),
      reason: "InvalidNetworkSelection",
      message: /networks\[1\]\.name/,
    },
    {
      name: "long-ifname",
      annotation: JSON.stringify([good, { name: "blue", interface: "averyverylongname0" }]),
      reason: "InvalidNetworkSelection",
      message: /networks\[1\]\.interface.*15/,
    },
    {
      name: "bad-nad-json",
      annotation: JSON.stringify([good, { name: "broken", interface: "net2" }]),
      reason: "FailedAddingInterface",
      message: /net2.*broken/,
    },
    {
      name: "isolated",
      annotation: JSON.stringify([good, {
        name: "blue",
        namespace: "elsewhere",
        interface: "net2",
      }]),
      reason: "FailedAddingInterface",
      message: /namespace isolation/,
    },
    {
      name: "multus-400",
      annotation: JSON.stringify([good, { name: "noplugin", interface: "net2" }]),
      reason: "FailedAddingInterface",
      message: /400/,
    },
  ];
}

async function warningEvent(
  rig: Rig,
  pod: string,
  reason: string,
): Promise<PodEvent> {
  return await waitFor(
    `a ${reason} event on ${pod}`,
    async () =>
      (await podEvents(rig, NS, pod)).find((e) => e.type === "Warning" && e.reason === reason),
    60_000,
  );
}

/** A multus stand-in whose /healthz is fine and whose /delegate answers garbage. */
function garbageMultus(path: string): { server: Deno.HttpServer; calls: () => number } {
  let calls = 0;
  const bodies = ["\u0000\u00ff not json {", '{"cniVersion":', "[1,2,3]", '"a string"'];
  const server = Deno.serve({ path, transport: "unix", onListen: () => {} }, async (req) => {
    await req.body?.cancel();
    if (new URL(req.url).pathname === "/healthz") return new Response("ok");
    return new Response(bodies[calls++ % bodies.length], {
      headers: { "content-type": "application/json" },
    });
  });
  return { server, calls: () => calls };
}

Deno.test({
  name: "hostile input: each case gives an event and a log line and harms nothing else",
  ...rigTest,
  async fn(t) {
    const rig = await Rig.start();
    let ctl: ControllerProcess | undefined;
    let fake: Deno.HttpServer | undefined;
    try {
      await rig.createNamespace(NS);
      await rig.createNamespace("elsewhere");
      const blue = rig.macvlanConfig("10.80.1.0/24", { name: BLUE.ipamNetwork });
      await rig.createNad(NS, "blue", blue);
      await rig.createNad("elsewhere", "blue", { ...blue, name: "hostile-elsewhere" });
      await rig.createNad(NS, "broken", '{"cniVersion": "0.3.1", "type": "macvlan", oops');
      await rig.createNad(NS, "noplugin", { cniVersion: "0.3.1", type: "dnc-no-such-plugin" });

      ctl = await ControllerProcess.start(rig, { args: ["--namespace-isolation=true"] });
      const bystander = await rig.createPod({ name: "bystander", namespace: NS });
      await setNetworks(rig, bystander, [good, { name: "blue", interface: "net2" }]);
      const bystanderState = [...kept, { ...BLUE, iface: "net2" }];
      await waitConverged(rig, bystander, bystanderState, IPAM);

      const hostile: RigPod[] = [];
      for (const c of cases()) {
        await t.step(c.name, async () => {
          const pod = await rig.createPod({ name: c.name, namespace: NS, networks: [good] });
          hostile.push(pod);
          await waitConverged(rig, pod, kept, IPAM);
          const from = ctl!.records().length;
          await setNetworks(rig, pod, c.annotation);
          const event = await warningEvent(rig, c.name, c.reason);
          assert.match(event.message, c.message);
          assert.ok(event.message.length < 4096, `event message of ${event.message.length} bytes`);
          await waitFor(
            `a log line about ${c.name}`,
            () =>
              ctl!.records().slice(from).some((r) =>
                r.pod === `${NS}/${c.name}` && (r.level === "warn" || r.level === "error")
              ),
            60_000,
          );
          await waitConverged(rig, pod, kept, IPAM);
          await waitConverged(rig, bystander, bystanderState, IPAM);
        });
      }

      await t.step("an annotation over 256 KiB never reaches the controller", async () => {
        const pod = await rig.createPod({ name: "oversized", namespace: NS, networks: [good] });
        await assert.rejects(
          () => setNetworks(rig, pod, " ".repeat(256 * 1024 + 1)),
          (err) => err instanceof ApiError && err.status === 422,
        );
        await waitConverged(rig, pod, kept, IPAM);
      });

      await t.step("a NAD of the allowed 'default' namespace passes isolation", async () => {
        await rig.createNad("default", "shared", { ...blue, name: "hostile-shared" });
        const pod = await rig.createPod({ name: "allowed", namespace: NS, networks: [good] });
        await setNetworks(rig, pod, [good, {
          name: "shared",
          namespace: "default",
          interface: "net2",
        }]);
        await waitConverged(
          rig,
          pod,
          [...kept, { network: "default/shared", iface: "net2" }],
          IPAM,
        );
      });

      await t.step("multus answering garbage", async () => {
        await ctl!.stop();
        const socket = `${rig.dir}/garbage-multus.sock`;
        const garbage = garbageMultus(socket);
        fake = garbage.server;
        ctl = await ControllerProcess.start(rig, {
          args: ["--namespace-isolation=true", `--multus-socket=${socket}`],
        });
        const pod = await rig.createPod({ name: "garbage", namespace: NS, networks: [good] });
        await waitConverged(rig, pod, kept, IPAM);
        const from = ctl.records().length;
        await setNetworks(rig, pod, [good, { name: "blue", interface: "net2" }]);
        const event = await warningEvent(rig, "garbage", "FailedAddingInterface");
        assert.match(event.message, /net2/);
        await waitFor(
          "the garbage answers to be retried and refused each time",
          () => garbage.calls() >= 4,
          60_000,
        );
        assert.ok(
          ctl.records().slice(from).some((r) => r.pod === `${NS}/garbage` && r.level === "warn"),
          "no log line",
        );
        await waitConverged(rig, pod, kept, IPAM);
        const { status } = await ctl.get("/healthz");
        assert.equal(status, 200, "the controller is unhealthy after garbage");
        await ctl.stop();
        ctl = undefined;
      });

      // Nothing harmed the others; the annotations are still what was written.
      await waitConverged(rig, bystander, bystanderState, IPAM);
      for (const pod of hostile) await waitConverged(rig, pod, kept, IPAM);
      const obj = await rig.api.request<{ metadata: { annotations: Record<string, string> } }>(
        "GET",
        `/api/v1/namespaces/${NS}/pods/huge`,
      );
      assert.ok(obj.metadata.annotations[NETWORKS_ANNOTATION]!.length > 200_000);
    } finally {
      await ctl?.stop();
      await fake?.shutdown();
      await rig.stop();
    }
  },
});
