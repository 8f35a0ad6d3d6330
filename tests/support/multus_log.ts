/**
 * What multus did, read from its verbose log on the rig: each request (the runtime's CNI
 * requests through the shim, and the agent's `/delegate` calls) and each plugin it ran, so
 * that a test can tell who added and who released which interface of a pod.
 *
 * @module
 */
import type { Rig } from "../rig/mod.ts";

/** Where multus' log is now (its length), to read what it writes from there on. */
export function multusMark(rig: Rig): number {
  return Deno.statSync(rig.logFile("multus")).size;
}

/** What multus' log says from `mark` (a {@linkcode multusMark}) on. */
export function multusSince(rig: Rig, mark: number): string {
  const bytes = Deno.readFileSync(rig.logFile("multus"));
  return new TextDecoder().decode(bytes.subarray(mark));
}

/** One request multus served for a pod. */
export interface MultusRequest {
  command: "ADD" | "DEL";
  /** `delegate`: the agent's `/delegate` calls; `CNI`: the runtime's, through the shim. */
  kind: "CNI" | "delegate";
  sandboxId: string;
  ifname: string;
  /** Whether multus answered without an error (from its `finished` line). */
  ok?: boolean;
}

/** What multus did for one pod (by uid), read from its verbose log. */
export interface MultusActivity {
  /** Requests about the pod, in the order they started. */
  requests: MultusRequest[];
  /**
   * The interfaces whose plugin multus ran (`Add:`, `Del:` lines) for the runtime's requests
   * (sandbox set-up and teardown) and for the agent's.
   */
  sandbox: { added: string[]; deleted: string[] };
  agent: { added: string[]; deleted: string[] };
}

const REQUEST =
  /\[verbose\] (ADD|DEL) (starting|finished) (CNI|delegate|Delegate) request ContainerID:"([0-9a-f]+)" Netns:"[^"]*" IfName:"([^"]*)" Args:"([^"]*)"/;
const PLUGIN = /\[verbose\] (Add|Del): [^:\s]+:[^:\s]+:([0-9a-f-]+):[^:\s]+:(\S+) /;

/** What multus did for pod `uid`, according to `log`. */
export function multusActivity(log: string, uid: string): MultusActivity {
  const requests: MultusRequest[] = [];
  const activity: MultusActivity = {
    requests,
    sandbox: { added: [], deleted: [] },
    agent: { added: [], deleted: [] },
  };
  /**
   * The agent's requests in flight (one at a time per pod), as `command ifname`, and whether
   * their one plugin line has come: a runtime's plugin line for the same interface meanwhile
   * is the other one.
   */
  const inFlight: { key: string; seen: boolean }[] = [];
  for (const line of log.split("\n")) {
    const r = REQUEST.exec(line);
    if (r) {
      if (!r[6]!.split(";").includes(`K8S_POD_UID=${uid}`)) continue;
      const command = r[1] as "ADD" | "DEL";
      const kind = r[3]!.toLowerCase() === "delegate" ? "delegate" : "CNI";
      const ifname = r[5]!;
      if (r[2] === "starting") {
        requests.push({ command, kind, sandboxId: r[4]!, ifname });
        if (kind === "delegate") inFlight.push({ key: `${command} ${ifname}`, seen: false });
        continue;
      }
      const started = requests.find((q) =>
        q.ok === undefined && q.command === command && q.kind === kind && q.ifname === ifname
      );
      if (started) started.ok = /, err: <nil>\s*$/.test(line);
      const i = inFlight.findIndex((f) => f.key === `${command} ${ifname}`);
      if (kind === "delegate" && i >= 0) inFlight.splice(i, 1);
      continue;
    }
    const p = PLUGIN.exec(line);
    if (!p || p[2] !== uid) continue;
    const command = p[1] === "Add" ? "ADD" : "DEL";
    const ours = inFlight.find((f) => f.key === `${command} ${p[3]}` && !f.seen);
    if (ours) ours.seen = true;
    const side = ours ? activity.agent : activity.sandbox;
    (command === "ADD" ? side.added : side.deleted).push(p[3]!);
  }
  return activity;
}

/**
 * Who released a deleted pod's attachments: `agent`, the interfaces of its `/delegate` DELs
 * that multus carried out without an error; `teardown`, those multus' CNI DEL at sandbox
 * teardown released.
 */
export function releases(activity: MultusActivity): { agent: string[]; teardown: string[] } {
  const agent = activity.requests.filter((r) =>
    r.kind === "delegate" && r.command === "DEL" && r.ok
  )
    .map((r) => r.ifname).sort();
  return { agent, teardown: [...activity.sandbox.deleted].sort() };
}

/** The interfaces multus plugged at sandbox set-up. */
export function coldPlugged(activity: MultusActivity): string[] {
  return [...activity.sandbox.added].sort();
}
