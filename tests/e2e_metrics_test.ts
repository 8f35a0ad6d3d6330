/**
 * Every metric the README lists is fed, on the node rig: a scenario makes each one move
 * (plugs and unplugs, a missing NAD, a NAD deleted before an unplug, an ADD that times out and
 * is released from the journal, status writes racing another writer, an API server restart,
 * work that waits behind a busy worker), and each metric is checked against what the
 * scenario did. A metric in the README without a check here fails the test.
 */
import assert from "node:assert/strict";
import { ApiError, NETWORK_STATUS_ANNOTATION, Rig, type RigPod, waitFor } from "./rig/mod.ts";
import {
  ControllerProcess,
  getPod,
  hasInterfaces,
  metricValue,
  rigTest,
  setNetworks,
  waitForEvent,
  waitForStatus,
} from "./support/mod.ts";

const NS = "metrics";
const README = new URL("../README.md", import.meta.url);

/** Metrics another rig test feeds and checks: the file (next to this one) that does. */
const CHECKED_ELSEWHERE: Record<string, string> = {
  dynamic_networks_drift_checks_total: "./e2e_drift_test.ts",
  dynamic_networks_drift_repairs_total: "./e2e_drift_test.ts",
};

/** A CNI plugin whose ADD hangs for a while, then fails; its DEL succeeds at once. */
const SLOW_PLUGIN = `#!/bin/sh
case "$CNI_COMMAND" in
  ADD) echo $$ >> "$(dirname "$0")/dnc-slow.pids"; sleep 6
       echo '{"code":11,"msg":"too slow"}'; exit 1 ;;
  VERSION) echo '{"cniVersion":"0.4.0","supportedVersions":["0.3.0","0.3.1","0.4.0"]}' ;;
  *) exit 0 ;;
esac
`;

/** A CNI plugin that records an attachment without making one, and cannot release it. */
const STUCK_PLUGIN = `#!/bin/sh
case "$CNI_COMMAND" in
  ADD) printf '{"cniVersion":"0.3.1","interfaces":[{"name":"%s","sandbox":"%s"}]}' "$CNI_IFNAME" "$CNI_NETNS" ;;
  DEL) echo '{"code":11,"msg":"cannot release"}'; exit 1 ;;
  VERSION) echo '{"cniVersion":"0.4.0","supportedVersions":["0.3.0","0.3.1","0.4.0"]}' ;;
  *) exit 0 ;;
esac
`;

/** The metric names of the README's metrics table. */
function readmeMetrics(): string[] {
  const text = Deno.readTextFileSync(README);
  const section = text.slice(text.indexOf("Metrics (no label ever holds a pod name)"));
  const names: string[] = [];
  for (const line of section.split("\n").slice(1)) {
    if (names.length > 0 && !line.startsWith("|")) break;
    const match = /^\| `([a-z_]+)`/.exec(line);
    if (match) names.push(match[1]!);
  }
  return names;
}

/** Sum of every sample of `name` (any labels). */
function total(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{.*\})? (\S+)$/.exec(line);
    if (match && match[1] === name) sum += Number(match[2]);
  }
  return sum;
}

/** Keeps rewriting a label of `pod` until stopped: another writer racing the agent's writes. */
function raceWrites(rig: Rig, pod: RigPod): { stop: () => Promise<number> } {
  let running = true;
  let writes = 0;
  const loop = (async () => {
    while (running) {
      const obj = await getPod(rig, pod);
      (obj.metadata as { labels?: Record<string, string> }).labels = { racer: `${writes}` };
      try {
        await rig.api.request("PUT", `/api/v1/namespaces/${NS}/pods/${pod.name}`, obj);
        writes++;
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 409)) throw err;
      }
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return writes;
    },
  };
}

Deno.test({
  name: "metrics: every metric in the README is fed by what the agent does",
  ...rigTest,
  async fn() {
    const rig = await Rig.start();
    let ctl: ControllerProcess | undefined;
    try {
      await rig.createNamespace(NS);
      await Deno.writeTextFile(`${rig.cniBinDir}/dnc-slow`, SLOW_PLUGIN, { mode: 0o755 });
      await rig.createNad(NS, "blue", rig.macvlanConfig("10.84.1.0/24"));
      await Deno.writeTextFile(`${rig.cniBinDir}/dnc-stuck`, STUCK_PLUGIN, { mode: 0o755 });
      await rig.createNad(NS, "stuck", { cniVersion: "0.3.1", name: "stuck", type: "dnc-stuck" });
      await rig.createNad(NS, "slow", { cniVersion: "0.3.1", name: "slow", type: "dnc-slow" });
      ctl = await ControllerProcess.start(rig, {
        args: ["--workers=1", "--delegate-timeout-ms=1500"],
      });
      const scrape = async () => (await ctl!.get("/metrics")).body;
      const [a, b, c, d] = await Promise.all(
        ["a", "b", "c", "d"].map((name) => rig.createPod({ name, namespace: NS })),
      ) as [RigPod, RigPod, RigPod, RigPod];

      // Plugs, and an unplug that fails.
      await setNetworks(rig, a, [{ name: "blue", interface: "net1" }]);
      await setNetworks(rig, d, [{ name: "stuck", interface: "net1" }]);
      await waitForStatus(rig, a, (s) => hasInterfaces(s, ["net1"]));
      await waitForStatus(rig, d, (s) => hasInterfaces(s, ["net1"]));
      await setNetworks(rig, d, []);
      await waitForEvent(rig, d, {
        reason: "FailedRemovingInterface",
        includes: ["cannot release"],
      });
      // A missing NAD.
      await setNetworks(rig, b, [{ name: "missing", interface: "net1" }]);
      await waitForEvent(rig, b, { reason: "FailedAddingInterface", includes: ["not found"] });

      // An ADD that hangs, with a worker busy and another pod waiting behind it.
      const pids = `${rig.cniBinDir}/dnc-slow.pids`;
      await setNetworks(rig, c, [{ name: "slow", interface: "net1" }]);
      await waitFor(
        "the slow plugin to start",
        async () => {
          try {
            return (await Deno.readTextFile(pids)).trim() !== "";
          } catch {
            return false;
          }
        },
        30_000,
        50,
      );
      await setNetworks(rig, a, [{ name: "blue", interface: "net1" }, {
        name: "blue",
        interface: "net2",
      }]);
      const busy = await waitFor(
        "a pod to wait behind the busy worker",
        async () => {
          const text = await scrape();
          return metricValue(text, "workqueue_depth") >= 1 ? text : undefined;
        },
        10_000,
        50,
      );
      await waitForStatus(rig, a, (s) => hasInterfaces(s, ["net1", "net2"]));
      // The timed-out ADD stays journaled, and a later pass releases it with a DEL.
      await waitFor(
        "the timed-out ADD to be released",
        async () => {
          const text = await scrape();
          return metricValue(text, "dynamic_networks_unrecorded_releases_total", {
            result: "success",
          }) > 0;
        },
        30_000,
        200,
      );
      await setNetworks(rig, c, []);

      // Status writes racing another writer of the same pod.
      const racer = raceWrites(rig, a);
      try {
        await waitFor(
          "a status write to meet a conflict",
          async () => {
            const current = (await getPod(rig, a)).metadata.annotations
              ?.[NETWORK_STATUS_ANNOTATION];
            const plugged = current?.includes('"net3"') ?? false;
            await setNetworks(
              rig,
              a,
              plugged ? [{ name: "blue", interface: "net1" }] : [
                { name: "blue", interface: "net1" },
                { name: "blue", interface: "net3" },
              ],
            );
            await waitForStatus(
              rig,
              a,
              (s) => hasInterfaces(s, plugged ? ["net1"] : ["net1", "net3"]),
            );
            return metricValue(await scrape(), "dynamic_networks_status_update_conflicts_total") >
              0;
          },
          60_000,
          0,
        );
      } finally {
        console.log(`the racing writer made ${await racer.stop()} writes`);
      }
      await setNetworks(rig, a, [{ name: "blue", interface: "net1" }]);
      await waitForStatus(rig, a, (s) => hasInterfaces(s, ["net1"]));

      // An API server restart: the watches fail and recover.
      await rig.restartApiServer();
      await waitFor(
        "the watches to report their errors",
        async () => {
          return total(await scrape(), "dynamic_networks_watch_errors_total") > 0;
        },
        60_000,
        200,
      );

      const text = await scrape();
      const positive = (name: string) => () =>
        assert.ok(total(text, name) > 0, `${name} is fed: ${total(text, name)}`);
      const value = (name: string, labels: Record<string, string> = {}) =>
        metricValue(text, name, labels);
      const checks: Record<string, () => void> = {
        dynamic_networks_attachment_operations_total: () => {
          for (const operation of ["add", "remove"]) {
            for (const result of ["success", "error"]) {
              const n = value("dynamic_networks_attachment_operations_total", {
                operation,
                result,
              });
              assert.ok(n > 0, `${operation}/${result}: ${n}`);
            }
          }
        },
        dynamic_networks_hotplug_latency_seconds: positive(
          "dynamic_networks_hotplug_latency_seconds_count",
        ),
        // CHECK, too, in tests/e2e_drift_test.ts.
        dynamic_networks_delegate_duration_seconds: () => {
          for (const command of ["ADD", "DEL"]) {
            const n = value("dynamic_networks_delegate_duration_seconds_count", { command });
            assert.ok(n > 0, `${command}: ${n}`);
          }
        },
        dynamic_networks_cri_duration_seconds: positive(
          "dynamic_networks_cri_duration_seconds_count",
        ),
        dynamic_networks_cri_requests_total: () =>
          assert.ok(value("dynamic_networks_cri_requests_total", { code: "OK" }) > 0),
        dynamic_networks_status_writes_total: () =>
          assert.ok(value("dynamic_networks_status_writes_total", { result: "success" }) > 0),
        dynamic_networks_status_update_conflicts_total: positive(
          "dynamic_networks_status_update_conflicts_total",
        ),
        dynamic_networks_unrecorded_releases_total: () =>
          assert.ok(value("dynamic_networks_unrecorded_releases_total", { result: "success" }) > 0),
        dynamic_networks_events_total: () => {
          for (
            const reason of ["AddedInterface", "FailedAddingInterface", "FailedRemovingInterface"]
          ) {
            assert.ok(value("dynamic_networks_events_total", { reason }) > 0, reason);
          }
        },
        // a asks for net1, b for a missing NAD; c and d ask for nothing now.
        dynamic_networks_managed_pods: () =>
          assert.equal(value("dynamic_networks_managed_pods"), 2),
        // a's net1, and d's net1, which cannot be released.
        dynamic_networks_attachments: () => assert.equal(value("dynamic_networks_attachments"), 2),
        dynamic_networks_watch_errors_total: positive("dynamic_networks_watch_errors_total"),
        dynamic_networks_build_info: () =>
          assert.equal(total(text, "dynamic_networks_build_info"), 1),
        controller_runtime_reconcile_total: () => {
          for (const result of ["success", "error"]) {
            assert.ok(value("controller_runtime_reconcile_total", { result }) > 0, result);
          }
        },
        controller_runtime_reconcile_errors_total: positive(
          "controller_runtime_reconcile_errors_total",
        ),
        controller_runtime_reconcile_time_seconds: positive(
          "controller_runtime_reconcile_time_seconds_count",
        ),
        controller_runtime_max_concurrent_reconciles: () =>
          assert.equal(value("controller_runtime_max_concurrent_reconciles"), 1),
        controller_runtime_active_workers: () =>
          assert.equal(metricValue(busy, "controller_runtime_active_workers"), 1),
        workqueue_depth: () => assert.ok(metricValue(busy, "workqueue_depth") >= 1),
        workqueue_adds_total: positive("workqueue_adds_total"),
        workqueue_queue_duration_seconds: positive("workqueue_queue_duration_seconds_count"),
        workqueue_work_duration_seconds: positive("workqueue_work_duration_seconds_count"),
        workqueue_retries_total: positive("workqueue_retries_total"),
        workqueue_unfinished_work_seconds: () =>
          assert.ok(metricValue(busy, "workqueue_unfinished_work_seconds") > 0),
        workqueue_longest_running_processor_seconds: () =>
          assert.ok(metricValue(busy, "workqueue_longest_running_processor_seconds") > 0),
        rest_client_requests_total: () =>
          assert.ok(value("rest_client_requests_total", { code: "200", method: "GET" }) > 0),
        rest_client_request_duration_seconds: positive(
          "rest_client_request_duration_seconds_count",
        ),
      };
      const listed = readmeMetrics();
      assert.ok(listed.length >= 20, `README metrics table: ${listed.join(", ")}`);
      // Fed only where multus can CHECK (its daemon config at cniVersion 0.4.0), which this
      // rig's multus, as multus' own manifest, is not: the drift test's rig checks them.
      for (const [name, file] of Object.entries(CHECKED_ELSEWHERE)) {
        const source = Deno.readTextFileSync(new URL(file, import.meta.url));
        assert.ok(source.includes(name), `${name} is checked in ${file}`);
      }
      assert.deepEqual(
        listed.filter((name) => !(name in checks) && !(name in CHECKED_ELSEWHERE)),
        [],
        "README metrics without a check",
      );
      assert.deepEqual(
        [...Object.keys(checks), ...Object.keys(CHECKED_ELSEWHERE)].filter((name) =>
          !listed.includes(name)
        ),
        [],
        "checked metrics missing from the README",
      );
      for (const name of listed.filter((n) => !(n in CHECKED_ELSEWHERE))) {
        try {
          checks[name]!();
        } catch (err) {
          throw new Error(`metric ${name}: ${(err as Error).message}`, { cause: err });
        }
      }
    } finally {
      await ctl?.stop();
      await rig.stop();
    }
  },
});
