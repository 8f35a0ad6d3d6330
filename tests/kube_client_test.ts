/**
 * Client behaviour that needs no API server: a peer that accepts connections and never
 * answers (requests time out with an error naming the request), URL building, and errors.
 */
import assert from "node:assert/strict";
import { KubeApiError, KubeClient } from "../lib/kube/client.ts";
import { NoCredentials } from "../lib/kube/credentials.ts";
import { errorText, Logger } from "../lib/base/log.ts";

const log = new Logger({ level: "error" });

Deno.test("client: a request without an answer fails after timeoutMs and names the request", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) held.push(conn); // accept, never answer
  })();
  const port = (listener.addr as Deno.NetAddr).port;
  const client = new KubeClient(
    {
      server: new URL(`http://127.0.0.1:${port}`),
      caCerts: [],
      credentials: new NoCredentials(),
      source: "test",
    },
    { timeoutMs: 200 },
    log,
  );
  await assert.rejects(
    client.json("GET", "/api/v1/pods"),
    (err) => /GET \/api\/v1\/pods: no complete answer .* within 200 ms/.test(errorText(err)),
  );
  const caller = new AbortController();
  const pending = client.request("GET", "/api/v1/nodes", { signal: caller.signal });
  caller.abort(new Error("caller gave up"));
  await assert.rejects(pending, /caller gave up/);
  client.close();
  listener.close();
  await accepting.catch(() => {});
  for (const c of held) c.close();
});

Deno.test("client: paths must be absolute; API errors carry status, reason and a hint", async () => {
  const client = new KubeClient(
    {
      server: new URL("https://127.0.0.1:1/prefix/"),
      caCerts: [],
      credentials: new NoCredentials(),
      source: "test",
    },
    {},
    log,
  );
  await assert.rejects(client.request("GET", "api/v1/pods"), /must start with "\/"/);
  client.close();
  const forbidden = new KubeApiError("PATCH", "/api/v1/namespaces/a/pods/b", 403, {
    kind: "Status",
    reason: "Forbidden",
    message: 'pods "b" is forbidden',
  });
  assert.equal(forbidden.status, 403);
  assert.equal(forbidden.reason, "Forbidden");
  assert.match(forbidden.message, /HTTP 403 Forbidden: pods "b" is forbidden .*ClusterRole/);
});
