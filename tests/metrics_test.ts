import assert from "node:assert/strict";
import { CONTENT_TYPE, registerProcessMetrics, Registry } from "../lib/base/metrics.ts";
import { formatValue, Gauge } from "../lib/base/metric_families.ts";
import { ControllerMetrics } from "../lib/observe/controller_metrics.ts";
import { runDeno } from "./support/mod.ts";

Deno.test("counters and gauges render byte-exact, families by name and series by labels", () => {
  const r = new Registry();
  const ops = r.counter({
    name: "dnc_ops_total",
    help: "Operations.",
    labelNames: ["operation", "result"],
  });
  ops.inc({ operation: "remove", result: "success" });
  ops.inc({ operation: "add", result: "error" }, 2);
  ops.inc({ operation: "add", result: "success" });
  ops.inc({ operation: "add", result: "error" });
  const g = r.gauge({ name: "a_gauge", help: "A gauge." });
  g.set({}, 1.5);
  g.inc();
  g.dec({}, 0.25);
  assert.equal(
    r.render(),
    [
      "# HELP a_gauge A gauge.",
      "# TYPE a_gauge gauge",
      "a_gauge 2.25",
      "# HELP dnc_ops_total Operations.",
      "# TYPE dnc_ops_total counter",
      'dnc_ops_total{operation="add",result="error"} 3',
      'dnc_ops_total{operation="add",result="success"} 1',
      'dnc_ops_total{operation="remove",result="success"} 1',
      "",
    ].join("\n"),
  );
  assert.equal(ops.get({ operation: "add", result: "error" }), 3);
  assert.equal(ops.get({ operation: "remove", result: "error" }), 0);
});

Deno.test("histogram buckets are cumulative, with +Inf, _sum and _count", () => {
  const r = new Registry();
  const h = r.histogram({
    name: "req_seconds",
    help: "Latency.",
    labelNames: ["method"],
    buckets: [0.5, 1, 10],
  });
  for (const v of [0.25, 0.5, 4, 16]) h.observe({ method: "GET" }, v);
  h.observe({ method: "DELETE" }, 1);
  assert.equal(
    r.render(),
    [
      "# HELP req_seconds Latency.",
      "# TYPE req_seconds histogram",
      'req_seconds_bucket{method="DELETE",le="0.5"} 0',
      'req_seconds_bucket{method="DELETE",le="1"} 1',
      'req_seconds_bucket{method="DELETE",le="10"} 1',
      'req_seconds_bucket{method="DELETE",le="+Inf"} 1',
      'req_seconds_sum{method="DELETE"} 1',
      'req_seconds_count{method="DELETE"} 1',
      'req_seconds_bucket{method="GET",le="0.5"} 2',
      'req_seconds_bucket{method="GET",le="1"} 2',
      'req_seconds_bucket{method="GET",le="10"} 3',
      'req_seconds_bucket{method="GET",le="+Inf"} 4',
      'req_seconds_sum{method="GET"} 20.75',
      'req_seconds_count{method="GET"} 4',
      "",
    ].join("\n"),
  );
  assert.deepEqual(h.get({ method: "GET" }), { count: 4, sum: 20.75 });
});

Deno.test("a label-free histogram renders its zero buckets before any observation", () => {
  const r = new Registry();
  r.histogram({ name: "h_seconds", help: "H.", buckets: [0.005, 2.5] });
  assert.equal(
    r.render(),
    [
      "# HELP h_seconds H.",
      "# TYPE h_seconds histogram",
      'h_seconds_bucket{le="0.005"} 0',
      'h_seconds_bucket{le="2.5"} 0',
      'h_seconds_bucket{le="+Inf"} 0',
      "h_seconds_sum 0",
      "h_seconds_count 0",
      "",
    ].join("\n"),
  );
});

Deno.test("label values and help text are escaped", () => {
  const r = new Registry();
  const c = r.counter({
    name: "esc_total",
    help: 'Help with a \\ backslash,\na line feed and "quotes".',
    labelNames: ["v"],
  });
  c.inc({ v: 'a\\b"c"\nd' });
  assert.equal(
    r.render(),
    [
      '# HELP esc_total Help with a \\\\ backslash,\\na line feed and "quotes".',
      "# TYPE esc_total counter",
      'esc_total{v="a\\\\b\\"c\\"\\nd"} 1',
      "",
    ].join("\n"),
  );
});

Deno.test("a labelled metric without series renders nothing; an empty registry renders ''", () => {
  const r = new Registry();
  assert.equal(r.render(), "");
  r.counter({ name: "unused_total", help: "Unused.", labelNames: ["x"] });
  assert.equal(r.render(), "");
  r.counter({ name: "plain_total", help: "Plain." });
  assert.equal(
    r.render(),
    "# HELP plain_total Plain.\n# TYPE plain_total counter\nplain_total 0\n",
  );
});

Deno.test("special values use the exposition spellings", () => {
  assert.equal(formatValue(Infinity), "+Inf");
  assert.equal(formatValue(-Infinity), "-Inf");
  assert.equal(formatValue(NaN), "NaN");
  assert.equal(formatValue(0.1), "0.1");
  assert.equal(formatValue(-3), "-3");
  const g = new Gauge({ name: "g", help: "G." });
  g.set({}, -Infinity);
  const lines: string[] = [];
  g.render(lines);
  assert.equal(lines.at(-1), "g -Inf");
});

Deno.test("misuse is refused with a message naming the metric and the fix", () => {
  const r = new Registry();
  assert.throws(() => r.counter({ name: "9bad", help: "" }), /metric name "9bad" is invalid/);
  assert.throws(
    () => r.counter({ name: "x_total", help: "", labelNames: ["__x"] }),
    /label name "__x"/,
  );
  assert.throws(
    () => r.histogram({ name: "h", help: "", labelNames: ["le"] }),
    /label name "le" is invalid or reserved/,
  );
  assert.throws(
    () => r.histogram({ name: "h2", help: "", buckets: [1, 1] }),
    /strictly increasing/,
  );
  const c = r.counter({ name: "c_total", help: "C.", labelNames: ["a"] });
  assert.throws(() => r.gauge({ name: "c_total", help: "" }), /already registered/);
  assert.throws(() => c.inc({} as { a: string }), /label "a" is missing/);
  assert.throws(
    () => c.inc({ a: "1", b: "2" } as { a: string }),
    /unknown label "b"; declared labels are \[a\]/,
  );
  assert.throws(() => c.inc({ a: "1" }, -1), /only goes up/);
  c.setTotal({ a: "1" }, 5);
  assert.throws(() => c.setTotal({ a: "1" }, 4), /below the current 5/);
  const h = r.histogram({ name: "h3", help: "" });
  assert.throws(() => h.observe({}, NaN), /observe\(NaN\)/);
});

Deno.test("collectors refresh values at render time; a failing one does not stop the rest", () => {
  const r = new Registry();
  const g = r.gauge({ name: "seen", help: "Renders so far." });
  let renders = 0;
  r.onCollect(() => {
    throw new Error("broken collector");
  });
  r.onCollect(() => g.set({}, ++renders));
  assert.match(r.render(), /^seen 1$/m);
  assert.match(r.render(), /^seen 2$/m);
});

Deno.test("process metrics are present and need no permission", async () => {
  const r = new Registry();
  registerProcessMetrics(r);
  const text = r.render();
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1]);
  assert.ok(value("process_resident_memory_bytes") > 1_000_000);
  assert.ok(value("deno_heap_used_bytes") > 0);
  assert.ok(value("deno_heap_total_bytes") >= value("deno_heap_used_bytes"));
  assert.ok(value("process_cpu_seconds_total") > 0);
  const start = value("process_start_time_seconds");
  assert.ok(start > 1_600_000_000 && start <= Date.now() / 1000);

  // The same rendering in a process without any permission.
  const url = new URL("../lib/base/metrics.ts", import.meta.url).href;
  const script = `import { Registry, registerProcessMetrics } from "${url}";
    const r = new Registry(); registerProcessMetrics(r); console.log(r.render());`;
  const file = await Deno.makeTempFile({ suffix: ".ts" });
  await Deno.writeTextFile(file, script);
  // `deno run` without --allow-* flags: every permission is denied.
  const out = await runDeno(["run", "--no-prompt", "--no-config", file])
    .finally(() => Deno.remove(file));
  assert.equal(out.code, 0, out.stderr);
  assert.match(out.stdout, /^process_resident_memory_bytes \d+$/m);
});

Deno.test("the controller's metric set: names, labels and the observer methods", () => {
  const m = new ControllerMetrics({ controller: "pod-networks", version: "1.2.3" });
  m.attachmentOperation("add", true);
  m.attachmentOperation("remove", false);
  m.delegateDuration("ADD", 0.2);
  m.criDuration("PodSandboxStatus", 0.004);
  m.criDuration("ListPodSandbox", 0.002, "UNAVAILABLE");
  m.statusWrite(true);
  m.statusWrite(false);
  m.statusConflict();
  m.hotplugCompleted("add", 1.5);
  m.eventRecorded("AddedInterface");
  m.apiRequest("get", "/api/v1/namespaces/ns1/pods/secret-pod-name", 200, 0.01);
  m.apiRequest("PUT", "/api/v1/namespaces/ns1/pods/p/status", 0, 0.02);
  m.watchError("pods");
  m.setManagedPods(3);
  m.setAttachments(5);
  const text = m.registry.render();
  const has = (line: string) => assert.ok(text.split("\n").includes(line), `missing: ${line}`);
  has('dynamic_networks_attachment_operations_total{operation="add",result="success"} 1');
  has('dynamic_networks_attachment_operations_total{operation="add",result="error"} 0');
  has('dynamic_networks_attachment_operations_total{operation="remove",result="error"} 1');
  has('dynamic_networks_delegate_duration_seconds_count{command="ADD"} 1');
  has('dynamic_networks_delegate_duration_seconds_bucket{command="ADD",le="0.25"} 1');
  has('dynamic_networks_cri_duration_seconds_count{method="PodSandboxStatus"} 1');
  has('dynamic_networks_cri_requests_total{method="PodSandboxStatus",code="OK"} 1');
  has('dynamic_networks_cri_requests_total{method="ListPodSandbox",code="UNAVAILABLE"} 1');
  has('dynamic_networks_status_writes_total{result="success"} 1');
  has('dynamic_networks_status_writes_total{result="error"} 1');
  has("dynamic_networks_status_update_conflicts_total 1");
  has('dynamic_networks_hotplug_latency_seconds_sum{operation="add"} 1.5');
  has('dynamic_networks_events_total{reason="AddedInterface"} 1');
  has('rest_client_requests_total{code="200",method="GET"} 1');
  has('rest_client_requests_total{code="<error>",method="PUT"} 1');
  has('rest_client_request_duration_seconds_count{verb="GET"} 1');
  has('dynamic_networks_watch_errors_total{resource="pods"} 1');
  has("dynamic_networks_managed_pods 3");
  has("dynamic_networks_attachments 5");
  has(`dynamic_networks_build_info{version="1.2.3",deno="${Deno.version.deno}"} 1`);
  for (const result of ["success", "error", "requeue_after"]) {
    has(`controller_runtime_reconcile_total{controller="pod-networks",result="${result}"} 0`);
  }
  has('controller_runtime_reconcile_errors_total{controller="pod-networks"} 0');
  assert.ok(!text.includes("secret-pod-name"), "a pod name must never become a label");
  // Every family has HELP and TYPE, and every sample belongs to a declared family.
  const types = new Map<string, string>();
  for (const line of text.split("\n")) {
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) types.set(t[1]!, t[2]!);
  }
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)![0];
    const family = [name, name.replace(/_(bucket|sum|count)$/, "")].find((n) => types.has(n));
    assert.ok(family, `sample ${line} has no # TYPE`);
    if (types.get(family) === "counter") assert.match(family, /_total$/);
  }
  assert.equal(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
});
