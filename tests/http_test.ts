import assert from "node:assert/strict";
import { type CheckResult, parseAddress, serveHealth } from "../lib/observe/http.ts";
import { Registry } from "../lib/base/metrics.ts";
import { Logger } from "../lib/base/log.ts";

const quiet = new Logger({ level: "error", sink: () => {} });

async function get(port: number, path: string, method = "GET") {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method });
  return { status: res.status, type: res.headers.get("content-type"), res, body: await res.text() };
}

Deno.test("GET /metrics serves the registry in the 0.0.4 text format", async () => {
  const registry = new Registry();
  registry.counter({ name: "hits_total", help: "Hits.", labelNames: ["path"] }).inc({
    path: "/x",
  });
  const server = serveHealth({
    address: "127.0.0.1:0",
    registry,
    checks: { ready: () => ({ ok: true, reasons: [] }) },
    log: quiet,
  });
  try {
    assert.ok(server.port > 0, "port 0 picks a free port and reports it");
    const r = await get(server.port, "/metrics");
    assert.equal(r.status, 200);
    assert.equal(r.type, "text/plain; version=0.0.4; charset=utf-8");
    assert.equal(
      r.body,
      '# HELP hits_total Hits.\n# TYPE hits_total counter\nhits_total{path="/x"} 1\n',
    );
    const head = await get(server.port, "/metrics", "HEAD");
    assert.equal(head.status, 200);
    assert.equal(head.body, "");
  } finally {
    await server.close();
  }
});

Deno.test("/readyz is 503 with the reasons until ready, then 200, and 503 once shutting down", async () => {
  let state: CheckResult = {
    ok: false,
    reasons: ["pods informer has not synced", "multus socket /run/multus/multus.sock: ENOENT"],
  };
  let calls = 0;
  const server = serveHealth({
    address: "127.0.0.1:0",
    registry: new Registry(),
    checks: {
      ready: () => {
        calls++;
        return Promise.resolve(state);
      },
    },
    log: quiet,
  });
  try {
    const before = await get(server.port, "/readyz");
    assert.equal(before.status, 503);
    assert.equal(
      before.body,
      "[-] pods informer has not synced\n[-] multus socket /run/multus/multus.sock: ENOENT\nreadyz check failed\n",
    );
    state = { ok: true, reasons: [] };
    const ready = await get(server.port, "/readyz");
    assert.equal(ready.status, 200);
    assert.equal(ready.body, "ok\n");
    assert.equal(calls, 2);
    server.setShuttingDown();
    const stopping = await get(server.port, "/readyz");
    assert.equal(stopping.status, 503);
    assert.equal(stopping.body, "[-] shutting down\nreadyz check failed\n");
    assert.equal(calls, 2, "the check is not consulted once shutdown began");
    assert.equal((await get(server.port, "/healthz")).status, 200, "still alive while draining");
  } finally {
    await server.close();
  }
});

Deno.test("/healthz follows the liveness check; a throwing or silent check fails", async () => {
  let live: () => CheckResult | Promise<CheckResult> = () => ({ ok: true, reasons: [] });
  const server = serveHealth({
    address: "127.0.0.1:0",
    registry: new Registry(),
    checks: { live: () => live(), ready: () => ({ ok: true, reasons: [] }) },
    log: quiet,
    checkTimeoutMs: 20,
  });
  try {
    assert.deepEqual(
      [(await get(server.port, "/healthz")).status, (await get(server.port, "/healthz")).body],
      [200, "ok\n"],
    );
    live = () => ({ ok: false, reasons: ["work queue: a reconcile has run for 600 s"] });
    const wedged = await get(server.port, "/healthz");
    assert.equal(wedged.status, 503);
    assert.match(wedged.body, /^\[-\] work queue: a reconcile has run for 600 s\n/);
    live = () => {
      throw new Error("boom");
    };
    const thrown = await get(server.port, "/healthz");
    assert.equal(thrown.status, 503);
    assert.match(thrown.body, /check failed: boom/);
    live = () => new Promise<CheckResult>(() => {}); // never answers
    const silent = await get(server.port, "/healthz");
    assert.equal(silent.status, 503);
    assert.match(silent.body, /did not answer within 20 ms/);
  } finally {
    await server.close();
  }
});

Deno.test("unknown paths are 404 and other methods 405", async () => {
  const server = serveHealth({
    address: "127.0.0.1:0",
    registry: new Registry(),
    checks: { ready: () => ({ ok: true, reasons: [] }) },
    log: quiet,
  });
  try {
    const missing = await get(server.port, "/nope");
    assert.equal(missing.status, 404);
    assert.match(missing.body, /\/nope not found; try \/metrics, \/healthz or \/readyz/);
    const post = await get(server.port, "/metrics", "POST");
    assert.equal(post.status, 405);
    assert.equal(post.res.headers.get("allow"), "GET, HEAD");
  } finally {
    await server.close();
    await server.close(); // closing twice is harmless
  }
});

Deno.test("a taken address is refused with the address and the flag to change it", async () => {
  const first = serveHealth({
    address: "127.0.0.1:0",
    registry: new Registry(),
    checks: { ready: () => ({ ok: true, reasons: [] }) },
    log: quiet,
  });
  try {
    const address = `127.0.0.1:${first.port}`;
    assert.throws(
      () =>
        serveHealth({
          address,
          registry: new Registry(),
          checks: { ready: () => ({ ok: true, reasons: [] }) },
        }),
      (err: Error) => {
        assert.match(err.message, new RegExp(`cannot listen on ${address}`));
        assert.match(err.message, /--metrics-address/);
        return true;
      },
    );
  } finally {
    await first.close();
  }
});

Deno.test("addresses: host:port, :port, [v6]:port; malformed ones name the flag", () => {
  assert.deepEqual(parseAddress(":8080"), { hostname: "0.0.0.0", port: 8080 });
  assert.deepEqual(parseAddress("127.0.0.1:0"), { hostname: "127.0.0.1", port: 0 });
  assert.deepEqual(parseAddress("[::1]:9090"), { hostname: "::1", port: 9090 });
  assert.deepEqual(parseAddress("localhost:8443"), { hostname: "localhost", port: 8443 });
  for (const bad of ["8080", "localhost", "host:http", "1.2.3.4:70000", "::1:80", ""]) {
    assert.throws(() => parseAddress(bad), /--metrics-address/, bad);
  }
});
