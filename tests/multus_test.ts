import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import fc from "fast-check";
import type { CniResult } from "../lib/core/cni_result.ts";
import type { DelegateRequest } from "../lib/reconcile/ports.ts";
import {
  DelegateError,
  delegateRequestBody,
  MultusClient,
  parseDelegateResponse,
} from "../lib/multus/client.ts";
import { CriClient } from "../lib/cri/client.ts";
import { delegateConfig, type NetworkAttachmentDefinition } from "../lib/core/nad.ts";
import { Rig } from "./rig/mod.ts";
import { rigTest, runDeno } from "./support/mod.ts";

const enc = (s: string) => new TextEncoder().encode(s);

const base: DelegateRequest = {
  command: "ADD",
  containerId: "953914c8c8f7f12a",
  netns: "/var/run/netns/cni-2c0c55ac",
  ifname: "net1",
  podNamespace: "ns1",
  podName: "pod1",
  podUid: "6a1c0b8e-1234",
  config: enc('{"name":"n"}'),
};

// --- request body ------------------------------------------------------------------------------

Deno.test("multus body: ADD without attributes is Go's encoding byte for byte", () => {
  assert.equal(
    delegateRequestBody(base),
    '{"env":{"CNI_ARGS":"K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=pod1;K8S_POD_UID=6a1c0b8e-1234",' +
      '"CNI_COMMAND":"ADD","CNI_CONTAINERID":"953914c8c8f7f12a","CNI_IFNAME":"net1",' +
      '"CNI_NETNS":"/var/run/netns/cni-2c0c55ac"},"config":"eyJuYW1lIjoibiJ9"}',
  );
});

Deno.test("multus body: all attributes, cni-args keys sorted at every depth", () => {
  const body = delegateRequestBody({
    ...base,
    interfaceAttributes: {
      ips: ["10.1.1.11/24", "fd00::11/64"],
      mac: "02:03:04:05:06:07",
      "cni-args": { foo: "bar", b: { z: 1, a: [true, null] } },
    },
  });
  assert.ok(
    body.endsWith(
      ',"config":"eyJuYW1lIjoibiJ9","interfaceAttributes":{"ips":["10.1.1.11/24","fd00::11/64"],' +
        '"mac":"02:03:04:05:06:07","cni-args":{"b":{"a":[true,null],"z":1},"foo":"bar"}}}',
    ),
    body,
  );
});

Deno.test("multus body: interfaceAttributes only when something is set; cni-args null inside", () => {
  const attrs = (a: DelegateRequest["interfaceAttributes"]) =>
    JSON.parse(delegateRequestBody({ ...base, interfaceAttributes: a })).interfaceAttributes;
  assert.equal(attrs(undefined), undefined);
  assert.equal(attrs({}), undefined);
  assert.equal(attrs({ ips: [], mac: "", "cni-args": null }), undefined);
  assert.ok(
    delegateRequestBody({ ...base, interfaceAttributes: { mac: "02:00:00:00:00:01" } })
      .endsWith(',"interfaceAttributes":{"mac":"02:00:00:00:00:01","cni-args":null}}'),
  );
  assert.ok(
    delegateRequestBody({ ...base, interfaceAttributes: { ips: ["10.0.0.1/24"], mac: "" } })
      .endsWith(',"interfaceAttributes":{"ips":["10.0.0.1/24"],"cni-args":null}}'),
  );
  assert.ok(
    delegateRequestBody({ ...base, interfaceAttributes: { "cni-args": {} } })
      .endsWith(',"interfaceAttributes":{"cni-args":{}}}'),
  );
});

Deno.test("multus body: DEL, an empty interface name is still sent, config omitted when empty", () => {
  const body = JSON.parse(
    delegateRequestBody({ ...base, command: "DEL", ifname: "", config: new Uint8Array() }),
  );
  assert.equal(body.env.CNI_COMMAND, "DEL");
  assert.equal(body.env.CNI_IFNAME, "");
  assert.equal("config" in body, false);
});

Deno.test("multus body: config is padded standard base64 of the exact bytes", () => {
  for (
    const [raw, b64] of [["a", "YQ=="], ["ab", "YWI="], ["abc", "YWJj"], ["\xff\xfe?>", "w7/Dvj8+"]]
  ) {
    assert.equal(
      JSON.parse(delegateRequestBody({ ...base, config: enc(raw as string) })).config,
      b64,
    );
  }
});

Deno.test("multus body: property — exactly the five CNI keys, CNI_ARGS, config round trip", () => {
  const name = fc.string({ minLength: 1, maxLength: 12 }).filter((s) => !/[;=]/.test(s));
  fc.assert(
    fc.property(
      fc.constantFrom<"ADD" | "DEL">("ADD", "DEL"),
      name,
      name,
      fc.uuid(),
      fc.string(),
      fc.uint8Array({ maxLength: 64 }),
      (command, ns, pod, uid, ifname, config) => {
        const req = {
          ...base,
          command,
          podNamespace: ns,
          podName: pod,
          podUid: uid,
          ifname,
          config,
        };
        const body = JSON.parse(delegateRequestBody(req));
        assert.deepEqual(Object.keys(body.env), [
          "CNI_ARGS",
          "CNI_COMMAND",
          "CNI_CONTAINERID",
          "CNI_IFNAME",
          "CNI_NETNS",
        ]);
        assert.equal(
          body.env.CNI_ARGS,
          `K8S_POD_NAMESPACE=${ns};K8S_POD_NAME=${pod};K8S_POD_UID=${uid}`,
        );
        assert.equal(body.env.CNI_IFNAME, ifname);
        assert.equal(body.env.CNI_COMMAND, command);
        assert.deepEqual(new Uint8Array(Buffer.from(body.config ?? "", "base64")), config);
      },
    ),
  );
});

// --- response parsing (upstream pkg/multuscni/client_test.go cases) ---------------------------

Deno.test("multus response: non-200 → upstream wording with the body verbatim", () => {
  assert.throws(() => parseDelegateResponse(400, "kablewit\n"), (e: unknown) => {
    assert.ok(e instanceof DelegateError);
    assert.equal(e.message, "unexpected CNI response status 400: 'kablewit'");
    assert.equal(e.status, 400);
    assert.equal(e.body, "kablewit");
    return true;
  });
});

Deno.test("multus response: 200 with a body that is not JSON → unmarshal error", () => {
  assert.throws(() => parseDelegateResponse(200, "this is not json"), (e: unknown) => {
    assert.ok(e instanceof DelegateError);
    assert.match(e.message, /^failed to unmarshal response 'this is not json': /);
    return true;
  });
  assert.throws(() => parseDelegateResponse(200, "[1]"), /failed to unmarshal response/);
  assert.throws(() => parseDelegateResponse(200, '{"Result": 3}'), /Result is not a JSON object/);
});

Deno.test("multus response: L2 result and result with IPs round trip", () => {
  const l2: CniResult = {
    cniVersion: "1.0.0",
    interfaces: [{ name: "net1", mac: "02:03:04:05:06:07", sandbox: "/var/run/netns/cni-1" }],
    dns: {},
  };
  assert.deepEqual(parseDelegateResponse(200, JSON.stringify({ Result: l2 })), l2);
  const withIps: CniResult = {
    cniVersion: "1.0.0",
    interfaces: [{ name: "net1", mac: "02:00:00:aa:bb:cc", sandbox: "/var/run/netns/cni-1" }],
    ips: [{ interface: 0, address: "10.98.0.11/24", gateway: "10.98.0.1" }],
    routes: [{ dst: "0.0.0.0/0", gw: "10.98.0.1" }],
    dns: { nameservers: ["10.98.0.1"] },
  };
  assert.deepEqual(parseDelegateResponse(200, JSON.stringify({ Result: withIps }) + "\n"), withIps);
});

Deno.test("multus response: DEL's empty 200 body and a null Result give undefined", () => {
  assert.equal(parseDelegateResponse(200, ""), undefined);
  assert.equal(parseDelegateResponse(200, '{"Result":null}'), undefined);
});

// --- the client against unix-socket servers (error paths the real daemon cannot produce) -------

interface Seen {
  method: string;
  path: string;
  headers: Headers;
  body: string;
}

/** Runs `fn` with a Deno.serve HTTP server on a fresh unix socket; `handler` sees each request. */
async function withServer(
  handler: (req: Seen) => Response | Promise<Response>,
  fn: (socket: string, seen: Seen[]) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "multus_test_" });
  const socket = `${dir}/multus.sock`;
  const seen: Seen[] = [];
  const server = Deno.serve({ transport: "unix", path: socket, onListen() {} }, async (req) => {
    const s = {
      method: req.method,
      path: new URL(req.url).pathname,
      headers: req.headers,
      body: await req.text(),
    };
    seen.push(s);
    return handler(s);
  });
  try {
    await fn(socket, seen);
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

const commandOf = (s: Seen) => JSON.parse(s.body).env.CNI_COMMAND as string;

Deno.test("multus client: POSTs the exact body to /delegate and returns the Result", async () => {
  const result = {
    cniVersion: "1.0.0",
    interfaces: [{ name: "net1", sandbox: base.netns }],
    ips: [{ address: "10.10.10.111/24", interface: 0 }],
  };
  await withServer(() => Response.json({ Result: result }), async (socket, seen) => {
    const client = new MultusClient(socket, { timeoutMs: 5000 });
    const req = { ...base, interfaceAttributes: { ips: ["10.10.10.111/24"] } };
    assert.deepEqual(await client.delegate(req), result);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]?.method, "POST");
    assert.equal(seen[0]?.path, "/delegate");
    assert.equal(seen[0]?.headers.get("content-type"), "application/json");
    assert.equal(seen[0]?.headers.get("connection"), "close");
    assert.equal(seen[0]?.body, delegateRequestBody(req));
  });
});

Deno.test("multus client: DEL's empty answer is undefined; a 400 surfaces verbatim", async () => {
  const cause = 'ContainerID:"c" Netns:"/n" IfName:"net1" Args:"K8S_POD_NAMESPACE=ns1" Path:"" ' +
    'ERRORED: error adding container to network "macvlan": validateIfName: ' +
    "interface name net1 already exists";
  await withServer(
    (s) =>
      commandOf(s) === "DEL"
        ? new Response(null, { status: 200 })
        : new Response(cause + "\n", { status: 400 }),
    async (socket, seen) => {
      const client = new MultusClient(socket, { timeoutMs: 5000 });
      assert.equal(await client.delegate({ ...base, command: "DEL" }), undefined);
      await assert.rejects(client.delegate(base), (e: unknown) => {
        assert.ok(e instanceof DelegateError);
        assert.equal(e.message, `unexpected CNI response status 400: '${cause}'`);
        assert.equal(e.status, 400);
        assert.equal(e.body, cause);
        return true;
      });
      assert.equal(seen.length, 2);
    },
  );
});

Deno.test("multus client: an answer that is not JSON is a DelegateError", async () => {
  await withServer(() => new Response("<html>gateway</html>"), async (socket) => {
    const client = new MultusClient(socket, { timeoutMs: 5000 });
    await assert.rejects(
      client.delegate(base),
      (e: unknown) =>
        e instanceof DelegateError &&
        /^failed to unmarshal response '<html>gateway<\/html>'/.test(e.message),
    );
  });
});

Deno.test("multus client: an oversized answer is cut off", async () => {
  await withServer(() => new Response("x".repeat(70_000)), async (socket) => {
    const client = new MultusClient(socket, { timeoutMs: 5000, maxResponseBytes: 65_536 });
    await assert.rejects(client.delegate(base), /exceeds 65536 bytes/);
  });
});

Deno.test("multus client: healthy() is GET /healthz → 200", async () => {
  let status = 200;
  await withServer(() => new Response(null, { status }), async (socket, seen) => {
    const client = new MultusClient(socket, { timeoutMs: 5000 });
    assert.equal(await client.healthy(), true);
    assert.equal(seen[0]?.method, "GET");
    assert.equal(seen[0]?.path, "/healthz");
    status = 500;
    assert.equal(await client.healthy(), false);
  });
});

/** A unix socket that accepts connections and never answers: a hung daemon or plugin. */
async function withHangingSocket(fn: (socket: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "multus_hang_" });
  const socket = `${dir}/multus.sock`;
  const listener = Deno.listen({ transport: "unix", path: socket });
  const conns: Deno.Conn[] = [];
  const accepting = (async () => {
    try {
      for await (const c of listener) conns.push(c);
    } catch { /* listener closed */ }
  })();
  try {
    await fn(socket);
  } finally {
    listener.close();
    for (const c of conns) {
      try {
        c.close();
      } catch { /* already closed by the peer */ }
    }
    await accepting;
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("multus client: a hung daemon → DelegateError naming the timeout and the socket", async () => {
  await withHangingSocket(async (socket) => {
    const client = new MultusClient(socket, { timeoutMs: 300 });
    await assert.rejects(client.delegate(base), (e: unknown) => {
      assert.ok(e instanceof DelegateError);
      assert.equal(e.status, undefined);
      assert.ok(e.message.includes(`on ${socket} timed out after 300 ms`), e.message);
      assert.ok(e.message.includes("delegate ADD of net1 for pod ns1/pod1"), e.message);
      return true;
    });
    assert.equal(await client.healthy(), false);
  });
});

Deno.test("multus client: an abort signal cancels the call with its reason", async () => {
  await withHangingSocket(async (socket) => {
    const client = new MultusClient(socket, { timeoutMs: 60_000 });
    const ac = new AbortController();
    const call = client.delegate(base, ac.signal);
    const reason = new Error("shutting down");
    ac.abort(reason);
    await assert.rejects(call, (e: unknown) => e === reason);
    await assert.rejects(client.delegate(base, ac.signal), (e: unknown) => e === reason);
  });
});

Deno.test("multus client: a missing socket says so and names multusSocketPath", async () => {
  const socket = `${await Deno.makeTempDir()}/nope.sock`;
  const client = new MultusClient(socket, { timeoutMs: 5000 });
  await assert.rejects(client.delegate(base), (e: unknown) => {
    assert.ok(e instanceof DelegateError);
    assert.ok(
      e.message.startsWith(
        `multus socket ${socket} not found; is the multus thick daemon running? set multusSocketPath`,
      ),
      e.message,
    );
    return true;
  });
  assert.equal(await client.healthy(), false);
});

/** Leaves a socket file nobody listens on, as a crashed daemon does (Node killed after listen). */
async function staleSocket(path: string): Promise<void> {
  const script =
    `require("net").createServer().listen(process.argv[1], () => process.kill(process.pid, "SIGKILL"))`;
  await new Deno.Command("node", { args: ["-e", script, path], stderr: "null" }).output();
  assert.ok(Deno.statSync(path).isSocket, `expected a stale socket at ${path}`);
}

Deno.test("multus client: a socket file nobody listens on is reported as stale", async () => {
  const dir = await Deno.makeTempDir();
  const socket = `${dir}/stale.sock`;
  await staleSocket(socket);
  try {
    const client = new MultusClient(socket, { timeoutMs: 5000 });
    await assert.rejects(client.delegate(base), (e: unknown) => {
      assert.ok(e instanceof DelegateError);
      assert.ok(
        e.message.startsWith(`multus socket ${socket} refuses connections (a stale socket?)`),
        e.message,
      );
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("multus client: a missing Deno permission names the exact flags to grant", async () => {
  const socket = "/run/dnc-test-no-such-multus.sock";
  const script = `
    import { MultusClient } from "${new URL("../lib/multus/client.ts", import.meta.url).href}";
    const client = new MultusClient("${socket}", { timeoutMs: 5000 });
    const req = { command: "DEL", containerId: "c", netns: "/n", ifname: "net1",
      podNamespace: "ns1", podName: "pod1", podUid: "u", config: new Uint8Array() };
    try { await client.delegate(req); } catch (e) { console.log(e.message); }`;
  const { stdout: text, stderr } = await runDeno([
    "run",
    "--no-prompt",
    `--config=${new URL("../deno.json", import.meta.url).pathname}`,
    "-",
  ], { stdin: script });
  assert.ok(
    text.startsWith(
      `the process has no Deno permission for multus socket ${socket}; grant ` +
        `--allow-read=${socket} --allow-write=${socket} --allow-net=unix:${socket}`,
    ),
    text + stderr,
  );
});

Deno.test("multus client: relative socket paths and bad timeouts are refused up front", () => {
  assert.throws(
    () => new MultusClient("run/multus.sock", { timeoutMs: 1 }),
    /must be absolute; fix multusSocketPath/,
  );
  assert.throws(() => new MultusClient("/run/multus.sock", { timeoutMs: 0 }), /positive number/);
});

Deno.test("multus client: a restarted daemon on a recreated socket is reached on the next call", async () => {
  const dir = await Deno.makeTempDir({ prefix: "multus_restart_" });
  const socket = `${dir}/multus.sock`;
  const client = new MultusClient(socket, { timeoutMs: 5000 });
  try {
    for (const generation of [1, 2]) {
      const server = Deno.serve(
        { transport: "unix", path: socket, onListen() {} },
        () => Response.json({ Result: { cniVersion: "1.0.0", generation } }),
      );
      assert.deepEqual(await client.delegate(base), { cniVersion: "1.0.0", generation });
      await server.shutdown(); // removes the socket file, as multus' restart does (rm -rf of its dir)
      await assert.rejects(client.delegate(base), /not found/);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// --- on the node rig: the real multus thick daemon and CNI plugins ------------------------------

/** Rig tests: root only; gRPC and fetch keep handles between tests. */
let rig: Rig | undefined;
function theRig(): Rig {
  if (!rig) throw new Error("the node rig did not start (see the first rig test's failure)");
  return rig;
}

Deno.test({
  name: "multus rig: start the node rig",
  ...rigTest,
  async fn() {
    rig = await Rig.start();
  },
});

Deno.test({
  name: "multus rig: healthy() on the real daemon",
  ...rigTest,
  async fn() {
    assert.equal(
      await new MultusClient(theRig().multusSocket, { timeoutMs: 10_000 }).healthy(),
      true,
    );
  },
});

Deno.test({
  name: "multus rig: ADD a macvlan into a pod, a second ADD fails verbatim, DEL removes it",
  ...rigTest,
  async fn() {
    const r = theRig();
    // No "name": the NAD's metadata.name is injected, as for the original controller.
    const nad: NetworkAttachmentDefinition = {
      namespace: "default",
      name: "mv-hotplug",
      // macvlan + static IPAM take the requested IP, tuning sets the requested MAC
      // (upstream e2e's "network with IPAM").
      config: JSON.stringify({
        cniVersion: "0.3.1",
        plugins: [
          {
            type: "macvlan",
            master: r.macvlanMaster,
            mode: "bridge",
            ipam: { type: "static" },
            capabilities: { ips: true },
          },
          { type: "tuning", capabilities: { mac: true } },
        ],
      }),
    };
    const pod = await r.createPod({ name: "multus-hotplug" });
    const cri = new CriClient(r.criSocket, { timeoutMs: 10_000 });
    const multus = new MultusClient(r.multusSocket, { timeoutMs: 30_000 });
    try {
      const sandbox = await cri.findSandbox(pod.uid);
      assert.ok(sandbox);
      const req: DelegateRequest = {
        command: "ADD",
        containerId: sandbox.id,
        netns: sandbox.netnsPath,
        ifname: "net7",
        podNamespace: pod.namespace,
        podName: pod.name,
        podUid: pod.uid,
        config: delegateConfig(nad),
        interfaceAttributes: { ips: ["10.77.0.5/24"], mac: "02:77:00:00:00:05" },
      };
      const result = await multus.delegate(req);
      assert.ok(result, "ADD returned no CNI result");
      const iface = result.interfaces?.find((i) => i.sandbox === sandbox.netnsPath);
      assert.equal(iface?.name, "net7", JSON.stringify(result));
      assert.equal(iface?.mac, "02:77:00:00:00:05");
      assert.deepEqual(result.ips?.map((ip) => ip.address), ["10.77.0.5/24"]);
      const plugged = (await r.netnsInterfaces(pod)).find((i) => i.name === "net7");
      assert.ok(plugged, "net7 is not in the pod's netns");
      assert.equal(plugged.mac, "02:77:00:00:00:05");
      assert.deepEqual(plugged.ipv4, ["10.77.0.5/24"]);

      await assert.rejects(multus.delegate(req), (e: unknown) => {
        assert.ok(e instanceof DelegateError, String(e));
        assert.equal(e.status, 400);
        assert.ok(e.body?.includes("already exists"), String(e.body));
        assert.equal(e.message, `unexpected CNI response status 400: '${e.body}'`);
        return true;
      });

      assert.equal(await multus.delegate({ ...req, command: "DEL" }), undefined);
      const after = await r.netnsInterfaces(pod);
      assert.equal(after.some((i) => i.name === "net7"), false, JSON.stringify(after));
    } finally {
      cri.close();
      await r.deletePod(pod);
    }
  },
});

Deno.test({
  name: "multus rig: a restarted daemon (socket recreated) is reached by the same client",
  ...rigTest,
  async fn() {
    const r = theRig();
    const multus = new MultusClient(r.multusSocket, { timeoutMs: 10_000 });
    assert.equal(await multus.healthy(), true);
    // The inode number alone cannot tell: ext4 may give the freed one to the new socket.
    const identity = () => {
      const info = Deno.statSync(r.multusSocket);
      return `${info.ino}@${info.birthtime?.getTime() ?? info.mtime?.getTime()}`;
    };
    const before = identity();
    await r.restartMultus();
    assert.notEqual(identity(), before, "the socket was not recreated");
    assert.equal(await multus.healthy(), true);
  },
});

Deno.test({
  name: "multus rig: stop the node rig",
  ...rigTest,
  async fn() {
    await rig?.stop();
  },
});
