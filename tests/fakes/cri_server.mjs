// A fake CRI v1 runtime for the error paths a real containerd cannot be made to show. Runs under
// Node (a gRPC server must never be hosted by Deno): node cri_server.mjs SOCKET SCENARIO_JSON
//
// SCENARIO_JSON: {"mode": "cri" | "unimplemented" | "hang", "sandboxes": [{"id", "uid", "state",
// "createdAt", "info", "vanished", "network"}]} ("vanished": listed, but gone by
// PodSandboxStatus; "network": the NamespaceMode of linux.namespaces.options.network).
// Messages are encoded by protobufjs from lib/cri/runtime_v1.proto, independently of the
// agent's own codec. Prints "listening" once bound, then one line
// "call <Method> <request JSON>" per call received.
import grpc from "@grpc/grpc-js";
import protobuf from "protobufjs";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const [socket, scenarioText] = process.argv.slice(2);
const scenario = JSON.parse(scenarioText ?? "{}");
const protoPath = fileURLToPath(new URL("../../lib/cri/runtime_v1.proto", import.meta.url));
const root = protobuf.parse(readFileSync(protoPath, "utf8"), { keepCase: true }).root;
const type = (name) => root.lookupType(`runtime.v1.${name}`);

function method(name, req, res) {
  const Req = type(req);
  const Res = type(res);
  return {
    path: `/runtime.v1.RuntimeService/${name}`,
    requestStream: false,
    responseStream: false,
    requestSerialize: (o) => Buffer.from(Req.encode(Req.fromObject(o)).finish()),
    requestDeserialize: (b) => Req.toObject(Req.decode(b), { longs: String }),
    responseSerialize: (o) => Buffer.from(Res.encode(Res.fromObject(o)).finish()),
    responseDeserialize: (b) => Res.toObject(Res.decode(b), { longs: String }),
  };
}

const service = {
  Version: method("Version", "VersionRequest", "VersionResponse"),
  ListPodSandbox: method("ListPodSandbox", "ListPodSandboxRequest", "ListPodSandboxResponse"),
  PodSandboxStatus: method(
    "PodSandboxStatus",
    "PodSandboxStatusRequest",
    "PodSandboxStatusResponse",
  ),
};

const sandboxes = scenario.sandboxes ?? [];
const log = (name, req) => process.stdout.write(`call ${name} ${JSON.stringify(req)}\n`);

const impl = {
  Version(call, cb) {
    log("Version", call.request);
    cb(null, {
      version: "0.1.0",
      runtime_name: "fake-cri",
      runtime_version: "0.0.1",
      runtime_api_version: "v1",
    });
  },
  ListPodSandbox(call, cb) {
    log("ListPodSandbox", call.request);
    const filter = call.request.filter ?? {};
    const labels = filter.label_selector ?? {};
    const items = sandboxes
      .filter((s) =>
        Object.entries(labels).every(([k, v]) => k === "io.kubernetes.pod.uid" && s.uid === v)
      )
      .filter((s) => filter.state === undefined || (s.state ?? 0) === (filter.state.state ?? 0))
      .map((s) => ({
        id: s.id,
        metadata: { name: s.id, uid: s.uid, namespace: "ns1", attempt: 0 },
        state: s.state ?? 0,
        created_at: String(s.createdAt ?? 0),
        labels: { "io.kubernetes.pod.uid": s.uid },
      }));
    cb(null, { items });
  },
  PodSandboxStatus(call, cb) {
    log("PodSandboxStatus", call.request);
    const s = sandboxes.find((x) => x.id === call.request.pod_sandbox_id);
    if (!s || s.vanished) {
      return cb({
        code: grpc.status.NOT_FOUND,
        details: `sandbox ${call.request.pod_sandbox_id} not found`,
      });
    }
    cb(null, {
      status: {
        id: s.id,
        state: s.state ?? 0,
        created_at: String(s.createdAt ?? 0),
        ...(s.network === undefined
          ? {}
          : { linux: { namespaces: { options: { network: s.network } } } }),
      },
      info: call.request.verbose && s.info !== undefined ? { info: s.info } : {},
    });
  },
};

const server = new grpc.Server();
if (scenario.mode === "hang") {
  const hang = (call) => log("hang", call.request);
  server.addService(service, { Version: hang, ListPodSandbox: hang, PodSandboxStatus: hang });
} else if (scenario.mode !== "unimplemented") {
  server.addService(service, impl);
}
server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) {
    process.stderr.write(`bind ${socket}: ${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write("listening\n");
});
process.on("SIGTERM", () => server.forceShutdown() || process.exit(0));
