/**
 * Bounded noise and a network-status that stays other writers' own, on the node rig with
 * the agent running as the product runs it.
 *
 * - A pod whose annotation lists a thousand valid elements naming a missing NAD: the pass
 *   writes a handful of short log lines and one aggregated Event, then waits for the NAD (no
 *   retry), and another pod's hot-plug is not held up.
 * - A pod whose elements name a NAD whose plugin always fails: the pass is retried with
 *   backoff, and each retry writes one warning per distinct failure, one `Reconcile failed`
 *   line and the releases of what the previous pass left, and counts up one aggregated Event.
 * - A pod whose network-status holds entries written by someone else (their own key order,
 *   no `dns`, unknown fields): a hot-plug and an unplug leave those entries byte for byte as
 *   they were, and the agent's own entry has multus' shape.
 */
import assert from "node:assert/strict";
import { NETWORK_STATUS_ANNOTATION, Rig, sleep } from "./rig/mod.ts";
import {
  ControllerProcess,
  eventsFor,
  getPod,
  hasInterfaces,
  interfacesByName,
  networkStatusText,
  rigTest,
  setNetworks,
  waitForStatus,
} from "./support/mod.ts";

const NS = "noise";

/** A CNI plugin whose ADD always fails at once; its other commands succeed. */
const FAIL_PLUGIN = `#!/bin/sh
case "$CNI_COMMAND" in
  ADD) echo '{"code":11,"msg":"always fails"}'; exit 1 ;;
  VERSION) echo '{"cniVersion":"0.4.0","supportedVersions":["0.3.0","0.3.1","0.4.0"]}' ;;
  *) exit 0 ;;
esac
`;

Deno.test({
  name:
    "noise: a thousand failing elements stay quiet, a retried failure is bounded per retry; other writers' status entries stay intact",
  ...rigTest,
  async fn(t) {
    const rig = await Rig.start();
    let ctl: ControllerProcess | undefined;
    try {
      await rig.createNamespace(NS);
      await rig.createNad(NS, "blue", rig.macvlanConfig("10.82.1.0/24"));
      ctl = await ControllerProcess.start(rig);

      /** The controller's JSON log records about pod `key` from line `start` on, and stats. */
      const recordsAbout = (key: string, start: number) => {
        const lines = ctl!.lines.slice(start);
        const records = lines.flatMap((line) => {
          try {
            return [JSON.parse(line) as Record<string, unknown>];
          } catch {
            return [];
          }
        }).filter((r) => r.pod === key || r.key === key);
        const longest = Math.max(...lines.map((l) => l.length));
        const bytes = lines.reduce((sum, l) => sum + l.length + 1, 0);
        return { lines, records, longest, bytes };
      };

      await t.step("a thousand elements naming a missing NAD", async () => {
        const elements = Array.from({ length: 1000 }, (_, i) => ({
          name: "missing-nad",
          interface: `n${i}`,
          ips: [`10.83.${i >> 8}.${i & 255}/16`],
          mac: `02:00:00:00:${(i >> 8).toString(16).padStart(2, "0")}:${
            (i & 255).toString(16).padStart(2, "0")
          }`,
          "cni-args": { note: "x".repeat(60) },
        }));
        const annotation = JSON.stringify(elements);
        const flood = await rig.createPod({ name: "flood", namespace: NS });
        const bystander = await rig.createPod({ name: "bystander", namespace: NS });
        const key = `${NS}/flood`;
        const start = ctl!.lines.length;
        await setNetworks(rig, flood, annotation);
        // Another pod is served while the flood pod's pass reports its thousand failures.
        await setNetworks(rig, bystander, [{ name: "blue", interface: "net1" }]);
        await waitForStatus(rig, bystander, (s) => hasInterfaces(s, ["net1"]));
        await sleep(10_000);

        const { lines, records, longest, bytes } = recordsAbout(key, start);
        const passes = records.filter((r) => r.msg === "adding interfaces failed").length;
        const ours = await eventsFor(rig, flood);
        console.log(
          `${annotation.length} bytes of annotation, 10 s: ${passes} pass(es), ` +
            `${records.length} log lines about the pod (${lines.length} in all, ${bytes} bytes, ` +
            `longest ${longest}), ${ours.length} Event object(s), counts ${
              ours.map((e) => e.count ?? 1).join(",")
            }`,
        );
        assert.ok(passes >= 1, "the pod was reconciled");
        assert.deepEqual(
          records.filter((r) => r.msg === "Reconcile failed"),
          [],
          "a missing NAD is waited for, not retried",
        );
        assert.ok(longest <= 4096, `a log line of ${longest} characters`);
        assert.ok(
          records.length <= 3 * passes + 5,
          `${records.length} log lines about the pod over ${passes} passes`,
        );
        assert.deepEqual(ours.map((e) => e.reason), ["FailedAddingInterface"]);
        assert.match(
          ours[0]!.message,
          /^pod \[noise\/flood\]: 1000 interfaces could not be added: network missing-nad: NetworkAttachmentDefinition noise\/missing-nad not found; .*\(n0, n1, n2, n3, n4, n5, n6, n7, … and 992 more\)$/,
        );
        await setNetworks(rig, flood, undefined);
      });

      await t.step(
        "elements naming a NAD whose plugin always fails: bounded per retry",
        async () => {
          await Deno.writeTextFile(`${rig.cniBinDir}/dnc-fail`, FAIL_PLUGIN, { mode: 0o755 });
          await rig.createNad(NS, "fail", {
            cniVersion: "0.3.1",
            name: "noise-fail",
            type: "dnc-fail",
          });
          const elements = Array.from(
            { length: 12 },
            (_, i) => ({ name: "fail", interface: `f${i}` }),
          );
          const pod = await rig.createPod({ name: "failing", namespace: NS });
          const key = `${NS}/failing`;
          const start = ctl!.lines.length;
          await setNetworks(rig, pod, elements);
          await sleep(10_000);

          const { records, longest } = recordsAbout(key, start);
          const passes = records.filter((r) => r.msg === "Reconcile failed").length;
          const warnings = records.filter((r) => r.level === "warn" || r.level === "error");
          const released = records.filter((r) =>
            r.msg === "released an attachment whose ADD was never recorded" ||
            r.msg === "released attachments whose ADDs were never recorded"
          );
          const ours = await eventsFor(rig, pod);
          console.log(
            `a plugin that always fails, 12 elements, 10 s: ${passes} failed passes, ` +
              `${records.length} log lines about the pod (${warnings.length} warnings, ` +
              `${released.length} releases), longest ${longest}, ${ours.length} Event object(s), ` +
              `counts ${ours.map((e) => e.count ?? 1).join(",")}`,
          );
          assert.ok(passes >= 3, `the pod was retried (${passes} failed passes)`);
          assert.ok(longest <= 4096, `a log line of ${longest} characters`);
          // Per pass, whatever the number of elements: one warning for the failure they share
          // (multus names each interface in its error; that name does not make them distinct),
          // one `Reconcile failed`, and one line for the releases of the ADDs the previous pass
          // left journaled. The pass in flight when the lines are read may be cut.
          const perPass = (n: number) => n * (passes + 1);
          assert.ok(
            warnings.length <= perPass(2),
            `${warnings.length} warnings about the pod over ${passes} passes`,
          );
          assert.ok(
            released.length <= perPass(1),
            `${released.length} release lines over ${passes} passes`,
          );
          assert.ok(
            records.length <= perPass(4),
            `${records.length} log lines about the pod over ${passes} passes`,
          );
          assert.deepEqual(
            ours.map((e) => e.reason),
            ["FailedAddingInterface"],
            "one Event object",
          );
          assert.ok((ours[0]!.count ?? 1) >= 3, `the Event counted ${ours[0]!.count} passes`);
          const message = ours[0]!.message;
          const prefix = "pod [noise/failing]: 12 interfaces could not be added: network fail: ";
          assert.ok(message.startsWith(prefix), message);
          assert.match(message, /always fails/);
          assert.ok(message.length <= 1024, `an Event message of ${message.length} characters`);
          await setNetworks(rig, pod, undefined);
        },
      );

      await t.step(
        "status entries written by someone else are left exactly as they were",
        async () => {
          const pod = await rig.createPod({ name: "foreign", namespace: NS });
          const multus = await networkStatusText(rig, pod);
          const [cluster] = JSON.parse(multus!) as Record<string, unknown>[];
          // Another writer's entries: the cluster network in its own key order without dns, and
          // a device-info entry with no interface and an unknown field.
          const theirs = [
            JSON.stringify({
              default: true,
              interface: cluster!.interface,
              name: cluster!.name,
              mac: cluster!.mac,
              ips: cluster!.ips,
            }),
            `{"name":"sriov-info","device-info":{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:00:01.0"}},"vendor":{"b":1,"a":2}}`,
          ];
          const obj = await getPod(rig, pod);
          obj.metadata.annotations = {
            ...obj.metadata.annotations,
            [NETWORK_STATUS_ANNOTATION]: `[${theirs.join(",")}]`,
          };
          await rig.api.request("PUT", `/api/v1/namespaces/${NS}/pods/foreign/status`, obj);

          await setNetworks(rig, pod, [{ name: "blue", interface: "net1" }]);
          const withNet1 = (s: { interface?: string }[]) => s.some((e) => e.interface === "net1");
          const entries = await waitForStatus(rig, pod, withNet1);
          const recorded = entries.find((e) => e.interface === "net1")!;
          const link = (await interfacesByName(rig, pod)).get("net1");
          assert.equal(link?.mac, recorded.mac, "net1 in the netns is the one recorded");
          assert.deepEqual(link?.ipv4, [`${recorded.ips![0]}/24`]);
          const text = (await networkStatusText(rig, pod))!;
          const prefix = `[${
            theirs.join(",")
          },{\n    "name": "${NS}/blue",\n    "interface": "net1",`;
          assert.ok(text.startsWith(prefix), text);
          assert.match(text, /\n {4}"dns": \{\}\n\}\]$/, "our entry ends as multus writes it");

          await setNetworks(rig, pod, []);
          await waitForStatus(rig, pod, (s) => !withNet1(s));
          assert.equal(await networkStatusText(rig, pod), `[${theirs.join(",")}]`);
        },
      );
    } finally {
      await ctl?.stop();
      await rig.stop();
    }
  },
});
