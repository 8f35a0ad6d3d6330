/**
 * The event recorder never throws and never blocks its caller, even when the API server
 * cannot be reached (a closed local port: a real connection failure, no fake server).
 */
import assert from "node:assert/strict";
import { KubeClient } from "../lib/kube/client.ts";
import { NoCredentials } from "../lib/kube/credentials.ts";
import { KubeEventRecorder } from "../lib/kube/events.ts";
import { Logger } from "../lib/log.ts";

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
