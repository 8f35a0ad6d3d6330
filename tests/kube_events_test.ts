/**
 * The event recorder never throws and never blocks its caller, even when the API server
 * cannot be reached (a closed local port: a real connection failure, no fake server).
 */
import assert from "node:assert/strict";
import { KubeClient } from "../lib/kube/client.ts";
import { NoCredentials } from "../lib/kube/credentials.ts";
import { KubeEventRecorder } from "../lib/kube/events.ts";
import { Logger } from "../lib/base/log.ts";

function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

Deno.test("event recorder: an unreachable API server is logged, never thrown; the backlog is bounded", async () => {
  const lines: string[] = [];
  const log = new Logger({ level: "warn", sink: (line) => lines.push(line) });
  const client = new KubeClient(
    {
      server: new URL(`http://127.0.0.1:${closedPort()}`),
      caCerts: [],
      credentials: new NoCredentials(),
      source: "test",
    },
    { timeoutMs: 5_000 },
    log,
  );
  const recorder = new KubeEventRecorder(client, {
    nodeName: "node-1",
    log,
    maxBacklog: 2,
    concurrency: 1,
  });
  const pod = { namespace: "ns", name: "p", uid: "u" };
  recorder.record(pod, "Normal", "AddedInterface", "a");
  recorder.record(pod, "Normal", "AddedInterface", "b");
  recorder.record(pod, "Normal", "AddedInterface", "c"); // over the backlog: dropped
  await recorder.close();
  recorder.record(pod, "Normal", "AddedInterface", "d"); // after close: dropped
  assert.deepEqual(recorder.stats, { created: 0, patched: 0, failed: 2, dropped: 2 });
  assert.ok(lines.some((l) => l.includes("Event not recorded")), lines.join("\n"));
  assert.ok(lines.some((l) => l.includes("Event dropped")), lines.join("\n"));
  client.close();
});

Deno.test("event recorder: a pod gets a burst of writes, then one per refill period (spam filter)", async () => {
  const log = new Logger({ level: "error" });
  const client = new KubeClient(
    {
      server: new URL(`http://127.0.0.1:${closedPort()}`),
      caCerts: [],
      credentials: new NoCredentials(),
      source: "test",
    },
    { timeoutMs: 5_000 },
    log,
  );
  let now = 0;
  const recorder = new KubeEventRecorder(client, {
    nodeName: "node-1",
    log,
    spamBurst: 3,
    spamRefillMs: 1000,
    now: () => now,
  });
  const a = { namespace: "ns", name: "a", uid: "ua" };
  const b = { namespace: "ns", name: "b", uid: "ub" };
  for (let i = 0; i < 5; i++) recorder.record(a, "Warning", "FailedAddingInterface", `try ${i}`);
  recorder.record(b, "Warning", "FailedAddingInterface", "other pod");
  await recorder.flush();
  assert.equal(recorder.stats.dropped, 2, "pod a: 3 of 5 pass");
  assert.equal(recorder.stats.failed, 4, "3 of pod a and 1 of pod b reached the (unreachable) API");
  now = 2500; // two refills
  for (let i = 5; i < 8; i++) recorder.record(a, "Warning", "FailedAddingInterface", `try ${i}`);
  await recorder.close();
  assert.equal(recorder.stats.dropped, 3);
  assert.equal(recorder.stats.failed, 6);
  client.close();
});
