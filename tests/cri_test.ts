import assert from "node:assert/strict";
import fc from "fast-check";
import protobuf from "protobufjs";
import { CriClient } from "../lib/cri/client.ts";
import { CriError } from "../lib/cri/errors.ts";
import {
  listPodSandboxRequest,
  NamespaceMode,
  parseSandboxInfo,
  pickSandbox,
  POD_UID_LABEL,
  SandboxState,
  usesNodeNetwork,
} from "../lib/cri/sandbox.ts";
import { CRI_DESCRIPTOR } from "../lib/cri/descriptor.ts";
import { ProtoCodec, ProtoDecodeError } from "../lib/cri/codec.ts";
import { renderDescriptor } from "../lib/cri/gen_descriptor.ts";
import { Rig, waitFor } from "./rig/mod.ts";
import { rigTest, runDeno } from "./support/mod.ts";

const codec = new ProtoCodec(CRI_DESCRIPTOR, "runtime.v1");
const ascii = (s: string) => Array.from(new TextEncoder().encode(s));
const UID = "6a1c0b8e-2f3d-4c5b-9a8e-7d6c5b4a3f21"; // 36 characters

// --- descriptor and codec ----------------------------------------------------------------------

Deno.test("cri descriptor: the committed descriptor is what the generator makes of the proto", () => {
  const proto = Deno.readTextFileSync(
    new URL("../lib/cri/runtime_v1.proto", import.meta.url),
  );
  const fresh = renderDescriptor(proto);
  const json = fresh.slice(fresh.indexOf("= {") + 2, fresh.lastIndexOf(";"));
  assert.deepEqual(CRI_DESCRIPTOR, JSON.parse(json));
});

Deno.test("cri descriptor: field numbers are CRI v1's (upstream.md §3.4)", () => {
  // message → field → number, transcribed from the CRI v1 table by hand.
  const expected: Record<string, Record<string, number>> = {
    ListPodSandboxRequest: { filter: 1 },
    PodSandboxFilter: { id: 1, state: 2, label_selector: 3 },
    PodSandboxStateValue: { state: 1 },
    ListPodSandboxResponse: { items: 1 },
    PodSandbox: {
      id: 1,
      metadata: 2,
      state: 3,
      created_at: 4,
      labels: 5,
      annotations: 6,
      runtime_handler: 7,
    },
    PodSandboxMetadata: { name: 1, uid: 2, namespace: 3, attempt: 4 },
    PodSandboxStatusRequest: { pod_sandbox_id: 1, verbose: 2 },
    PodSandboxStatusResponse: { status: 1, info: 2, timestamp: 4 },
    PodSandboxStatus: {
      id: 1,
      metadata: 2,
      state: 3,
      created_at: 4,
      network: 5,
      linux: 6,
      labels: 7,
      annotations: 8,
      runtime_handler: 9,
    },
    PodSandboxNetworkStatus: { ip: 1, additional_ips: 2 },
    PodIP: { ip: 1 },
    LinuxPodSandboxStatus: { namespaces: 1 },
    Namespace: { options: 2 },
    NamespaceOption: { network: 1, pid: 2, ipc: 3, target_id: 4 },
    VersionRequest: { version: 1 },
    VersionResponse: { version: 1, runtime_name: 2, runtime_version: 3, runtime_api_version: 4 },
  };
  const types = CRI_DESCRIPTOR.nested?.["runtime"]?.nested?.["v1"]?.nested ?? {};
  for (const [message, fields] of Object.entries(expected)) {
    const actual = Object.fromEntries(
      Object.entries(types[message]?.fields ?? {}).map(([name, f]) => [name, f.id]),
    );
    assert.deepEqual(actual, fields, message);
  }
  assert.deepEqual(types["PodSandboxState"]?.values, { SANDBOX_READY: 0, SANDBOX_NOTREADY: 1 });
  assert.equal(types["PodSandboxFilter"]?.fields?.["label_selector"]?.keyType, "string");
});

Deno.test("cri codec: ListPodSandboxRequest for a UID matches the wire example byte for byte", () => {
  const entry = [0x0a, 0x15, ...ascii(POD_UID_LABEL), 0x12, 0x24, ...ascii(UID)];
  const selector = [0x1a, 0x3d, ...entry];
  assert.deepEqual(
    Array.from(codec.encode("ListPodSandboxRequest", listPodSandboxRequest(UID))),
    [0x0a, 0x3f, ...selector],
  );
  // READY filter: field 2 of the filter as an empty, present sub-message; filter length 0x41.
  assert.deepEqual(
    Array.from(
      codec.encode("ListPodSandboxRequest", listPodSandboxRequest(UID, SandboxState.READY)),
    ),
    [0x0a, 0x41, 0x12, 0x00, ...selector],
  );
  assert.deepEqual(
    Array.from(
      codec.encode("ListPodSandboxRequest", listPodSandboxRequest(UID, SandboxState.NOTREADY)),
    ),
    [0x0a, 0x43, 0x12, 0x02, 0x08, 0x01, ...selector],
  );
});

Deno.test("cri codec: PodSandboxStatusRequest is 0a <len> <id> 10 01", () => {
  const id = "953914c8c8f7f12a6b92a19812fe85a613eb28bd0c7e8e61239073830c727bd3";
  assert.deepEqual(
    Array.from(codec.encode("PodSandboxStatusRequest", { pod_sandbox_id: id, verbose: true })),
    [0x0a, 0x40, ...ascii(id), 0x10, 0x01],
  );
});

// protobufjs, from the same proto source, as an independent implementation to compare with.
const pbRoot = protobuf.Root.fromJSON(CRI_DESCRIPTOR as protobuf.INamespace);
const pbType = (name: string) => pbRoot.lookupType(`runtime.v1.${name}`);

const labelsArb = fc.dictionary(
  fc.string({ maxLength: 12 }).filter((k) => k !== "__proto__"),
  fc.string({ maxLength: 20 }),
  { maxKeys: 4, noNullPrototype: true },
);
const sandboxArb = fc.record({
  id: fc.string({ maxLength: 64 }),
  metadata: fc.record({
    name: fc.string({ maxLength: 10 }),
    uid: fc.uuid(),
    namespace: fc.string({ maxLength: 10 }),
    attempt: fc.nat(),
  }, { noNullPrototype: true }),
  state: fc.constantFrom(0, 1),
  created_at: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
  labels: labelsArb,
  annotations: labelsArb,
  runtime_handler: fc.string({ maxLength: 8 }),
}, { noNullPrototype: true });

Deno.test("cri codec: decodes what protobufjs encodes (ListPodSandboxResponse, property)", () => {
  const T = pbType("ListPodSandboxResponse");
  fc.assert(
    fc.property(fc.array(sandboxArb, { maxLength: 4 }), (items) => {
      const wire = T.encode(T.fromObject({
        items: items.map((s) => ({ ...s, created_at: s.created_at.toString() })),
      })).finish();
      assert.deepEqual(codec.decode("ListPodSandboxResponse", wire), { items });
    }),
  );
});

Deno.test("cri codec: protobufjs decodes what we encode (PodSandboxStatusResponse, property)", () => {
  const T = pbType("PodSandboxStatusResponse");
  fc.assert(
    fc.property(
      fc.string({ maxLength: 64 }),
      fc.constantFrom(0, 1),
      fc.bigInt({ min: 0n, max: 2n ** 63n - 1n }),
      labelsArb,
      (id, state, createdAt, info) => {
        const wire = codec.encode("PodSandboxStatusResponse", {
          status: { id, state, created_at: createdAt, network: { ip: "10.0.0.1" } },
          info,
        });
        const back = T.toObject(T.decode(wire), { longs: String, defaults: true });
        assert.equal(back.status.id, id);
        assert.equal(back.status.state, state);
        assert.equal(back.status.created_at, createdAt.toString());
        assert.equal(back.status.network.ip, "10.0.0.1");
        assert.deepEqual({ ...back.info }, { ...info });
      },
    ),
  );
});

Deno.test("cri codec: fields the subset does not know are skipped, whatever their wire type", () => {
  const known = codec.encode("PodSandbox", { id: "abc", state: 1, created_at: 42n });
  const unknown = [
    0x40,
    0x96,
    0x01, // field 8 varint 150
    0x49,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8, // field 9 fixed64
    0x52,
    0x03,
    0x61,
    0x62,
    0x63, // field 10 length-delimited
    0x5d,
    1,
    2,
    3,
    4, // field 11 fixed32
  ];
  const decoded = codec.decode("PodSandbox", new Uint8Array([...unknown, ...known, ...unknown]));
  assert.equal(decoded["id"], "abc");
  assert.equal(decoded["state"], 1);
  assert.equal(decoded["created_at"], 42n);
});

Deno.test("cri codec: truncated or malformed input is a ProtoDecodeError naming the message", () => {
  const good = codec.encode("PodSandbox", { id: "abcdef" });
  assert.throws(
    () => codec.decode("PodSandbox", good.subarray(0, good.length - 2)),
    (e: unknown) => e instanceof ProtoDecodeError && /PodSandbox: field of 6 bytes/.test(e.message),
  );
  assert.throws(() => codec.decode("PodSandbox", new Uint8Array([0x40, 0x80])), /truncated varint/);
  assert.throws(() => codec.decode("PodSandbox", new Uint8Array([0x08 | 3, 0])), /wire type 3/);
  assert.throws(
    () => codec.decode("PodSandbox", new Uint8Array([0x08, 1])),
    /field id has wire type 0/,
  );
  assert.throws(
    () => codec.decode("PodSandbox", new Uint8Array([0x0a, 0x02, 0xc3, 0x28])),
    /not valid UTF-8/,
  );
});

// --- verbose info: containerd and CRI-O shapes -------------------------------------------------

const NETNS = "/var/run/netns/cni-2c0c55ac-9c24-bc7b-4861-99ab95c0e852";
const spec = (path?: string) => ({
  ociVersion: "1.0.2-dev",
  linux: {
    namespaces: [
      { type: "pid" },
      { type: "ipc" },
      { type: "uts" },
      { type: "mount" },
      path === undefined ? { type: "network" } : { type: "network", path },
    ],
  },
});

Deno.test('cri info: containerd\'s shape (info key "info", netNamespaceClosed)', () => {
  const info = {
    info: JSON.stringify({
      pid: 32178,
      processStatus: "running",
      netNamespaceClosed: false,
      image: "localhost/pause:test",
      snapshotKey: "9539",
      snapshotter: "overlayfs",
      runtimeHandler: "",
      runtimeType: "io.containerd.runc.v2",
      runtimeOptions: null,
      config: { metadata: { name: "pod-a", uid: "uid-a", namespace: "default" } },
      runtimeSpec: spec(NETNS),
      cniResult: { Interfaces: { eth0: { Sandbox: NETNS } } },
    }),
  };
  assert.deepEqual(parseSandboxInfo("s1", info), { netnsPath: NETNS, netNamespaceClosed: false });
});

Deno.test("cri info: a stopped containerd sandbox keeps its stale path and says the netns is closed", () => {
  const info = {
    info: JSON.stringify({
      pid: 0,
      processStatus: "deleted",
      netNamespaceClosed: true,
      runtimeSpec: spec(NETNS),
    }),
  };
  assert.deepEqual(parseSandboxInfo("s1", info), { netnsPath: NETNS, netNamespaceClosed: true });
});

Deno.test("cri info: CRI-O's shapes (normal infra container and spoofed infra)", () => {
  const path = "/var/run/netns/8c3ea1b4-0f6e-4bd6-a1d2-0d9a8c1e7f10";
  const normal = {
    info: JSON.stringify({
      image: "registry.k8s.io/pause:3.9",
      pid: 4242,
      runtimeSpec: spec(path),
    }),
  };
  assert.deepEqual(parseSandboxInfo("s1", normal), { netnsPath: path });
  const spoofed = { info: JSON.stringify({ runtimeSpec: spec(path) }) };
  assert.deepEqual(parseSandboxInfo("s1", spoofed), { netnsPath: path });
});

Deno.test("cri info: missing runtimeSpec says the sandbox may not be fully created", () => {
  const info = { info: JSON.stringify({ pid: 1, netNamespaceClosed: false }) };
  assert.throws(
    () => parseSandboxInfo("sb-7", info),
    /sandbox sb-7 has no runtimeSpec in its verbose info \(keys: pid, netNamespaceClosed\); it may not be fully created yet/,
  );
});

Deno.test("cri info: no info key, not JSON, no namespaces, no network path: each named", () => {
  assert.throws(
    () => parseSandboxInfo("sb-7", {}),
    /sandbox sb-7 has no info\["info"\] \(keys: none\)/,
  );
  assert.throws(() => parseSandboxInfo("sb-7", { other: "x" }), /\(keys: other\)/);
  assert.throws(
    () => parseSandboxInfo("sb-7", { info: "{nope" }),
    /info\["info"\] of sandbox sb-7 is not JSON/,
  );
  assert.throws(() => parseSandboxInfo("sb-7", { info: "[1]" }), /is not a JSON object/);
  assert.throws(
    () => parseSandboxInfo("sb-7", { info: JSON.stringify({ runtimeSpec: { linux: {} } }) }),
    /runtimeSpec of sandbox sb-7 has no linux\.namespaces list/,
  );
  assert.throws(
    () => parseSandboxInfo("sb-7", { info: JSON.stringify({ runtimeSpec: spec() }) }),
    /sandbox sb-7 has no network namespace path .*host-network/,
  );
});

Deno.test("cri status: namespace mode NODE is the node's network, whatever the info says", () => {
  const status = (network?: number) =>
    network === undefined ? {} : { linux: { namespaces: { options: { network } } } };
  assert.equal(usesNodeNetwork(status(NamespaceMode.NODE)), true);
  assert.equal(usesNodeNetwork(status(NamespaceMode.POD)), false);
  assert.equal(usesNodeNetwork(status()), false, "absent: the pod's own (proto3 default POD)");
  assert.equal(usesNodeNetwork(undefined), false);
});

// --- sandbox choice ----------------------------------------------------------------------------

Deno.test("cri pick: newest READY, else newest NOTREADY, else none", () => {
  const s = (id: string, state: number, createdAt: bigint) => ({ id, state, createdAt });
  assert.equal(pickSandbox([]), undefined);
  assert.equal(
    pickSandbox([s("old", 0, 1n), s("stopped-new", 1, 9n), s("new", 0, 5n)])?.id,
    "new",
  );
  assert.equal(pickSandbox([s("a", 1, 3n), s("b", 1, 7n), s("c", 1, 5n)])?.id, "b");
});

Deno.test("cri pick: property — the choice is in the list, of the best state, and the newest of it", () => {
  const item = fc.record({
    id: fc.string(),
    state: fc.constantFrom(0, 1),
    createdAt: fc.bigInt({ min: 0n, max: 2n ** 63n }),
  });
  fc.assert(fc.property(fc.array(item, { maxLength: 6 }), (items) => {
    const chosen = pickSandbox(items);
    if (items.length === 0) return assert.equal(chosen, undefined);
    assert.ok(chosen && items.includes(chosen));
    const wanted = items.some((i) => i.state === 0) ? 0 : 1;
    assert.equal(chosen.state, wanted);
    for (const i of items) if (i.state === wanted) assert.ok(i.createdAt <= chosen.createdAt);
  }));
});

// --- the client against fake runtimes (Node gRPC servers) -------------------------------------

interface FakeSandbox {
  id: string;
  uid: string;
  state?: number;
  createdAt?: string;
  info?: string;
  vanished?: boolean;
  /** `linux.namespaces.options.network` of its status (a `NamespaceMode`). */
  network?: number;
}

interface FakeRuntime {
  socket: string;
  /**
   * Lines "call <Method> <json>" printed so far, once there are at least `atLeast` (or after
   * 2 s): the fake prints each call as it answers it, so the last line may still be in the pipe
   * when the client has its answer.
   */
  calls(atLeast?: number): Promise<string[]>;
  stop(): Promise<void>;
}

const fakeServer = new URL("./fakes/cri_server.mjs", import.meta.url).pathname;

async function startFake(
  socket: string,
  scenario: { mode?: string; sandboxes?: FakeSandbox[] },
): Promise<FakeRuntime> {
  const child = new Deno.Command("node", {
    args: [fakeServer, socket, JSON.stringify(scenario)],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines: string[] = [];
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let ready!: () => void;
  const listening = new Promise<void>((r) => (ready = r));
  const pump = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (line === "listening") ready();
        else lines.push(line);
      }
    }
    ready();
  })();
  await listening;
  return {
    socket,
    async calls(atLeast = 0) {
      for (let i = 0; i < 200 && lines.length < atLeast; i++) {
        await new Promise((r) => setTimeout(r, 10));
      }
      return [...lines];
    },
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      await child.status;
      await pump;
    },
  };
}

async function tempSocket(): Promise<{ dir: string; socket: string }> {
  const dir = await Deno.makeTempDir({ prefix: "cri_test_" });
  return { dir, socket: `${dir}/cri.sock` };
}

const containerdInfo = (path: string, closed = false) =>
  JSON.stringify({ pid: 1, netNamespaceClosed: closed, runtimeSpec: spec(path) });

/** Test options: grpc-js keeps timers and handles between calls by design. */
const grpcTest = { sanitizeResources: false, sanitizeOps: false };

Deno.test({
  name:
    "cri client: one lookup is exactly ListPodSandbox + PodSandboxStatus(verbose); newest READY wins",
  ...grpcTest,
  async fn() {
    const { dir, socket } = await tempSocket();
    const fake = await startFake(socket, {
      sandboxes: [
        {
          id: "old-ready",
          uid: UID,
          state: 0,
          createdAt: "100",
          info: containerdInfo("/run/netns/old"),
        },
        {
          id: "new-stopped",
          uid: UID,
          state: 1,
          createdAt: "300",
          info: containerdInfo("/run/netns/s", true),
        },
        {
          id: "new-ready",
          uid: UID,
          state: 0,
          createdAt: "200",
          info: containerdInfo("/run/netns/new"),
        },
        {
          id: "other-pod",
          uid: "another",
          state: 0,
          createdAt: "999",
          info: containerdInfo("/run/netns/x"),
        },
      ],
    });
    const client = new CriClient(socket, { timeoutMs: 5000 });
    try {
      assert.deepEqual(await client.findSandbox(UID), {
        id: "new-ready",
        netnsPath: "/run/netns/new",
        ready: true,
        createdAt: 200n,
      });
      const calls = await fake.calls(2);
      assert.equal(calls.length, 2, calls.join("\n"));
      assert.equal(
        calls[0],
        `call ListPodSandbox ${
          JSON.stringify({ filter: { label_selector: { [POD_UID_LABEL]: UID } } })
        }`,
      );
      assert.equal(
        calls[1],
        `call PodSandboxStatus ${JSON.stringify({ pod_sandbox_id: "new-ready", verbose: true })}`,
      );
      assert.equal(await client.findSandbox("no-such-uid"), undefined);
      assert.deepEqual(await client.version(), {
        runtimeName: "fake-cri",
        runtimeVersion: "0.0.1",
        runtimeApiVersion: "v1",
      });
    } finally {
      client.close();
      await fake.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "cri client: with no READY sandbox the newest NOTREADY one is returned, ready=false",
  ...grpcTest,
  async fn() {
    const { dir, socket } = await tempSocket();
    const fake = await startFake(socket, {
      sandboxes: [
        { id: "a", uid: UID, state: 1, createdAt: "1", info: containerdInfo("/run/netns/a", true) },
        { id: "b", uid: UID, state: 1, createdAt: "2", info: containerdInfo("/run/netns/b", true) },
      ],
    });
    const client = new CriClient(socket, { timeoutMs: 5000 });
    try {
      assert.deepEqual(await client.findSandbox(UID), {
        id: "b",
        netnsPath: "/run/netns/b",
        ready: false,
        createdAt: 2n,
      });
    } finally {
      client.close();
      await fake.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "cri client: a READY sandbox whose netns is closed is not ready; no runtimeSpec is an error",
  ...grpcTest,
  async fn() {
    const { dir, socket } = await tempSocket();
    const fake = await startFake(socket, {
      sandboxes: [
        {
          id: "closing",
          uid: "u1",
          state: 0,
          createdAt: "1",
          info: containerdInfo("/run/netns/c", true),
        },
        { id: "young", uid: "u2", state: 0, createdAt: "1", info: JSON.stringify({ pid: 0 }) },
        { id: "terse", uid: "u3", state: 0, createdAt: "1" },
        { id: "gone", uid: "u4", state: 0, createdAt: "1", vanished: true },
      ],
    });
    const client = new CriClient(socket, { timeoutMs: 5000 });
    try {
      assert.equal((await client.findSandbox("u1"))?.ready, false);
      await assert.rejects(client.findSandbox("u2"), /sandbox young has no runtimeSpec/);
      await assert.rejects(client.findSandbox("u3"), /sandbox terse has no info\["info"\]/);
      // Removed between ListPodSandbox and PodSandboxStatus: as if it had never been listed.
      assert.equal(await client.findSandbox("u4"), undefined);
    } finally {
      client.close();
      await fake.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "cri client: a server that is not CRI v1 → CriError UNIMPLEMENTED saying so",
  ...grpcTest,
  async fn() {
    const { dir, socket } = await tempSocket();
    const fake = await startFake(socket, { mode: "unimplemented" });
    const client = new CriClient(socket, { timeoutMs: 5000 });
    try {
      await assert.rejects(client.findSandbox(UID), (e: unknown) => {
        assert.ok(e instanceof CriError, String(e));
        assert.equal(e.codeName, "UNIMPLEMENTED");
        assert.equal(e.call, "ListPodSandbox");
        assert.equal(e.socketPath, socket);
        assert.ok(e.message.includes(`it is not a CRI v1 runtime`), e.message);
        assert.ok(
          e.message.includes(`CRI ListPodSandbox on ${socket} failed with UNIMPLEMENTED (12)`),
          e.message,
        );
        return true;
      });
    } finally {
      client.close();
      await fake.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "cri client: a hung runtime → DEADLINE_EXCEEDED after the per-call timeout",
  ...grpcTest,
  async fn() {
    const { dir, socket } = await tempSocket();
    const fake = await startFake(socket, { mode: "hang" });
    const client = new CriClient(socket, { timeoutMs: 300 });
    try {
      await assert.rejects(client.findSandbox(UID), (e: unknown) => {
        assert.ok(e instanceof CriError, String(e));
        assert.equal(e.codeName, "DEADLINE_EXCEEDED");
        assert.ok(e.message.includes("did not answer ListPodSandbox within 300 ms"), e.message);
        return true;
      });
      const ac = new AbortController();
      const pending = client.findSandbox(UID, ac.signal);
      const reason = new Error("draining");
      ac.abort(reason);
      await assert.rejects(pending, (e: unknown) => e === reason);
    } finally {
      client.close();
      await fake.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "cri client: socket missing → clear CriError; the runtime coming back is reached again",
  ...grpcTest,
  async fn() {
    const { dir, socket } = await tempSocket();
    const sandboxes = [{ id: "s", uid: UID, info: containerdInfo("/run/netns/s") }];
    const client = new CriClient(socket, { timeoutMs: 5000 });
    try {
      await assert.rejects(client.findSandbox(UID), (e: unknown) => {
        assert.ok(e instanceof CriError, String(e));
        assert.equal(e.codeName, "UNAVAILABLE");
        assert.ok(
          e.message.startsWith(
            `CRI socket ${socket} not found; is the container runtime running? set criSocketPath`,
          ),
          e.message,
        );
        return true;
      });
      for (let round = 0; round < 2; round++) {
        const fake = await startFake(socket, { sandboxes });
        assert.equal((await client.findSandbox(UID))?.id, "s");
        await fake.stop(); // the socket file goes with it, as when the runtime stops
        await assert.rejects(
          client.findSandbox(UID),
          (e: unknown) => e instanceof CriError && e.codeName === "UNAVAILABLE",
        );
      }
      // A restart between two lookups (the channel's connection died unseen): no failed lookup.
      let fake = await startFake(socket, { sandboxes });
      assert.equal((await client.findSandbox(UID))?.id, "s");
      await fake.stop();
      fake = await startFake(socket, { sandboxes });
      try {
        assert.equal((await client.findSandbox(UID))?.id, "s");
      } finally {
        await fake.stop();
      }
    } finally {
      client.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "cri client: a socket served by a plain HTTP server → 'not a gRPC server'",
  ...grpcTest,
  async fn() {
    const { dir, socket } = await tempSocket();
    const server = Deno.serve(
      { transport: "unix", path: socket, onListen() {} },
      () => new Response("ok"),
    );
    const client = new CriClient(socket, { timeoutMs: 5000 });
    try {
      await assert.rejects(client.findSandbox(UID), (e: unknown) => {
        assert.ok(e instanceof CriError, String(e));
        assert.ok(
          e.message.startsWith(
            `the server on ${socket} is not a gRPC server, so not a CRI runtime`,
          ),
          e.message,
        );
        return true;
      });
    } finally {
      client.close();
      await server.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "cri client: a missing Deno permission names the exact flags to grant",
  ...grpcTest,
  async fn() {
    const socket = "/run/dnc-test-no-such-runtime.sock";
    const script = `
      import { CriClient } from "${new URL("../lib/cri/client.ts", import.meta.url).href}";
      const client = new CriClient("${socket}", { timeoutMs: 5000 });
      try { await client.findSandbox("u"); } catch (e) { console.log(e.message); }
      client.close();`;
    const { stdout: text, stderr } = await runDeno([
      "run",
      "--no-prompt",
      `--config=${new URL("../deno.json", import.meta.url).pathname}`,
      "--allow-env=GRPC_*",
      "-",
    ], { stdin: script });
    assert.ok(
      text.startsWith(
        `the process has no Deno permission for CRI socket ${socket}; grant --allow-read=${socket} ` +
          `--allow-write=${socket} --allow-net=unix:${socket}`,
      ),
      text + stderr,
    );
  },
});

Deno.test({
  name: "cri client: observe() sees every call with its duration and gRPC code",
  ...grpcTest,
  async fn() {
    const { dir, socket } = await tempSocket();
    const fake = await startFake(socket, {
      sandboxes: [{ id: "s", uid: UID, info: containerdInfo("/run/netns/s") }],
    });
    const seen: [string, string][] = [];
    const client = new CriClient(socket, {
      timeoutMs: 5000,
      observe: (call, seconds, code) => {
        assert.ok(seconds >= 0);
        seen.push([call, code]);
      },
    });
    try {
      await client.findSandbox(UID);
      await client.findSandbox("nobody");
      assert.deepEqual(seen, [
        ["ListPodSandbox", "OK"],
        ["PodSandboxStatus", "OK"],
        ["ListPodSandbox", "OK"],
      ]);
    } finally {
      client.close();
      await fake.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "cri client: a sandbox in the node's network namespace is reported as such, though its info names a path (CRI-O)",
  ...grpcTest,
  async fn() {
    const { dir, socket } = await tempSocket();
    const fake = await startFake(socket, {
      sandboxes: [{
        id: "host-net",
        uid: UID,
        state: 0,
        createdAt: "100",
        network: 2,
        // CRI-O pins the host's own namespace and lists it like a pod's.
        info: JSON.stringify({ runtimeSpec: spec("/var/run/netns/host-pin") }),
      }],
    });
    const client = new CriClient(socket, { timeoutMs: 5000 });
    try {
      assert.deepEqual(await client.findSandbox(UID), {
        id: "host-net",
        netnsPath: "",
        ready: true,
        createdAt: 100n,
        hostNetwork: true,
      });
    } finally {
      client.close();
      await fake.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "cri client: a sandbox seen ready is looked up again with ListPodSandbox alone; one not READY is asked for its status",
  ...grpcTest,
  async fn() {
    const { dir, socket } = await tempSocket();
    const fake = await startFake(socket, {
      sandboxes: [
        { id: "live", uid: UID, state: 0, createdAt: "1", info: containerdInfo("/run/netns/l") },
        { id: "down", uid: "u2", state: 1, createdAt: "1", info: containerdInfo("/run/netns/d") },
      ],
    });
    const client = new CriClient(socket, { timeoutMs: 5000 });
    try {
      const first = await client.findSandbox(UID);
      const again = await client.findSandbox(UID);
      assert.deepEqual(again, first);
      await client.findSandbox("u2");
      await client.findSandbox("u2");
      assert.deepEqual((await fake.calls(7)).map((c) => c.split(" ")[1]), [
        "ListPodSandbox",
        "PodSandboxStatus",
        "ListPodSandbox",
        "ListPodSandbox",
        "PodSandboxStatus",
        "ListPodSandbox",
        "PodSandboxStatus",
      ]);
    } finally {
      client.close();
      await fake.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("cri client: relative socket paths and bad timeouts are refused up front", () => {
  assert.throws(
    () => new CriClient("run/containerd.sock", { timeoutMs: 1 }),
    /must be absolute; fix criSocketPath/,
  );
  assert.throws(() => new CriClient("/run/containerd.sock", { timeoutMs: -1 }), /positive number/);
});

// --- on the node rig: the real runtime (containerd, or CRI-O with DNC_RIG_RUNTIME=crio) -------

/** What each rig runtime calls itself in CRI Version. */
const RUNTIME_NAMES = { containerd: "containerd", crio: "cri-o" } as const;
/** Where each runtime's socket is by default, as the agent's detection looks for it. */
const DEFAULT_SOCKETS = {
  containerd: "/run/containerd/containerd.sock",
  crio: "/run/crio/crio.sock",
} as const;
/** Rig tests: root only; gRPC and fetch keep handles between tests. */
let rig: Rig | undefined;
function theRig(): Rig {
  if (!rig) throw new Error("the node rig did not start (see the first rig test's failure)");
  return rig;
}

Deno.test({
  name: "cri rig: start the node rig",
  ...rigTest,
  async fn() {
    rig = await Rig.start();
  },
});

Deno.test({
  name: "cri rig: Version reports the rig's runtime speaking CRI v1",
  ...rigTest,
  async fn() {
    const r = theRig();
    const client = new CriClient(r.criSocket, { timeoutMs: 10_000 });
    try {
      const v = await client.version();
      assert.equal(v.runtimeName, RUNTIME_NAMES[r.runtime]);
      assert.equal(v.runtimeApiVersion, "v1");
      assert.match(v.runtimeVersion, /^\d+\.\d+/);
      if (r.runtime === "crio") assert.equal(v.runtimeVersion, r.binaries.crioVersion.slice(1));
    } finally {
      client.close();
    }
  },
});

Deno.test({
  name:
    "cri rig: findSandbox on a pod returns its sandbox and the netns path its interfaces live in",
  ...rigTest,
  async fn() {
    const r = theRig();
    const pod = await r.createPod({ name: "cri-find" });
    const client = new CriClient(r.criSocket, { timeoutMs: 10_000 });
    try {
      const found = await client.findSandbox(pod.uid);
      assert.ok(found, `no sandbox found for pod uid ${pod.uid}`);
      assert.equal(found.id, pod.sandboxId);
      assert.equal(found.ready, true);
      assert.equal(typeof found.createdAt, "bigint");
      assert.ok(Deno.statSync(found.netnsPath).isFile, `${found.netnsPath} is not a netns file`);
      // The rig reads the path its own way; both must name the same namespace.
      assert.equal(found.netnsPath, await r.podNetns(pod));
      const inside = await r.netnsInterfaces(found.netnsPath);
      assert.ok(inside.some((i) => i.name === "eth0" && i.ipv4.length > 0), JSON.stringify(inside));
      assert.equal(await client.findSandbox(crypto.randomUUID()), undefined);
    } finally {
      client.close();
      await r.deletePod(pod);
    }
  },
});

Deno.test({
  name:
    "cri rig: a dead sandbox is returned with ready=false; the kubelet's new READY sandbox wins",
  ...rigTest,
  async fn() {
    const r = theRig();
    const pod = await r.createPod({ name: "cri-restart" });
    const client = new CriClient(r.criSocket, { timeoutMs: 10_000 });
    try {
      const first = await client.findSandbox(pod.uid);
      assert.ok(first);
      // The sandbox dies while the kubelet is down, so that it can be looked at before the
      // kubelet replaces it.
      await r.stopPart("kubelet");
      await r.killPause(pod);
      const dead = await client.findSandbox(pod.uid);
      assert.deepEqual(dead, { ...first, ready: false });
      // Back, the kubelet makes a new sandbox (attempt 1) with the same pod labels, while the
      // dead one waits for the kubelet's garbage collection.
      await r.startPart("kubelet");
      const current = await waitFor("the kubelet's new sandbox", async () => {
        const found = await client.findSandbox(pod.uid);
        return found && found.id !== first.id && found.ready ? found : undefined;
      }, 60_000);
      assert.notEqual(current.netnsPath, first.netnsPath);
      assert.ok(current.createdAt > first.createdAt);
      assert.equal(current.id, (await r.refreshPod(pod)).sandboxId);
      const old = (await r.cri.listPodSandbox({ [POD_UID_LABEL]: pod.uid }))
        .find((s) => s.id === first.id);
      if (old) assert.equal(old.state, "SANDBOX_NOTREADY");
    } finally {
      client.close();
      await r.startPart("kubelet");
      await r.deletePod(pod);
    }
  },
});

Deno.test({
  name:
    "cri rig: a hostNetwork pod's sandbox is reported in the node's network namespace, whatever path the runtime shows",
  ...rigTest,
  async fn() {
    const r = theRig();
    const pod = await r.createPod({ name: "cri-host", hostNetwork: true });
    const client = new CriClient(r.criSocket, { timeoutMs: 10_000 });
    try {
      const raw = await r.cri.podSandboxStatus(pod.sandboxId);
      const spec = raw.info["runtimeSpec"] as {
        linux?: { namespaces?: { type: string; path?: string }[] };
      };
      const shown = spec.linux?.namespaces?.find((n) => n.type === "network");
      if (r.runtime === "crio") {
        // The trap: CRI-O names a network namespace path, a pin of the node's own namespace.
        assert.ok(shown?.path, `CRI-O showed no network path: ${JSON.stringify(shown)}`);
        assert.equal(Deno.statSync(shown.path).ino, Deno.statSync("/proc/self/ns/net").ino);
      } else {
        assert.equal(shown, undefined, "containerd shows no network namespace for the node's");
      }
      const found = await client.findSandbox(pod.uid);
      assert.ok(found, `no sandbox found for pod uid ${pod.uid}`);
      const { createdAt, ...rest } = found;
      assert.deepEqual(rest, { id: pod.sandboxId, netnsPath: "", ready: true, hostNetwork: true });
      assert.ok(createdAt > 0n);
    } finally {
      client.close();
      await r.deletePod(pod);
    }
  },
});

Deno.test({
  name:
    "cri rig: with no socket configured, the agent finds the runtime's socket at its default path",
  ...rigTest,
  async fn() {
    const r = theRig();
    const expected = DEFAULT_SOCKETS[r.runtime];
    const runtimeDir = expected.slice(0, expected.lastIndexOf("/"));
    const probe = [
      `import { grantedExists, loadConfig } from "${new URL(
        "../lib/config/load.ts",
        import.meta.url,
      )}";`,
      `import { CriClient } from "${new URL("../lib/cri/client.ts", import.meta.url)}";`,
      `const { config, origins } = loadConfig({ args: ["--node-name=n"], env: {}, exists: grantedExists });`,
      "const client = new CriClient(config.criSocketPath, { timeoutMs: 10000 });",
      "const version = await client.version();",
      "client.close();",
      "console.log(JSON.stringify({ socket: config.criSocketPath, origin: origins.criSocketPath, runtime: version.runtimeName }));",
    ].join("\n");
    // A private mount namespace whose /run is empty but for the rig's runtime directory at
    // the runtime's usual place: the host's /run is left alone.
    const out = await new Deno.Command("unshare", {
      args: [
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        [
          "set -e",
          "mount -t tmpfs -o size=1m dnc-rig-detect /run",
          `mkdir -p ${runtimeDir}`,
          `mount --bind "$0" ${runtimeDir}`,
          'exec "$@"',
        ].join("\n"),
        r.criSocket.slice(0, r.criSocket.lastIndexOf("/")),
        Deno.execPath(),
        "eval",
        probe,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.deepEqual(JSON.parse(text.trim().split("\n").at(-1)!), {
      socket: expected,
      origin: { kind: "detected", path: expected },
      runtime: RUNTIME_NAMES[r.runtime],
    });
  },
});

Deno.test({
  name: "cri rig: the same client keeps working across a runtime restart",
  ...rigTest,
  async fn() {
    const r = theRig();
    const pod = await r.createPod({ name: "cri-survive" });
    const client = new CriClient(r.criSocket, { timeoutMs: 10_000 });
    try {
      const before = await client.findSandbox(pod.uid);
      assert.ok(before);
      await r.restartRuntime();
      // The channel's connection died with the old runtime; the next lookup just works.
      assert.deepEqual(await client.findSandbox(pod.uid), before);
    } finally {
      client.close();
      await r.deletePod(pod);
    }
  },
});

Deno.test({
  name: "cri rig: a CRI socket path with nothing behind it gives the clear 'not found' error",
  ...rigTest,
  async fn() {
    const missing = `${theRig().dir}/not-here.sock`;
    const client = new CriClient(missing, { timeoutMs: 10_000 });
    try {
      await assert.rejects(client.findSandbox(UID), (e: unknown) => {
        assert.ok(e instanceof CriError);
        assert.ok(e.message.startsWith(`CRI socket ${missing} not found`), e.message);
        return true;
      });
    } finally {
      client.close();
    }
  },
});

Deno.test({
  name: "cri rig: stop the node rig",
  ...rigTest,
  async fn() {
    await rig?.stop();
  },
});
