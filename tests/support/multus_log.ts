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

/**
 * multus writes each log line in three writes (header, message, newline) from many goroutines
 * at once, so under load the pieces of two lines interleave: one text line may hold two
 * messages, and a message may follow another's header. Messages are therefore matched anywhere
 * in the text, in order, never one per line.
 */
const MESSAGE = new RegExp(
  [
    String
      .raw`(ADD|DEL) (starting|finished) (CNI|delegate|Delegate) request ContainerID:"([0-9a-f]+)" Netns:"[^"]*" IfName:"([^"]*)" Args:"([^"]*)" Path:"[^"]*"(?:, result: "(?:[^"\\]|\\.)*", err: (<nil>)?)?`,
    String.raw`(Add|Del): [^:\s]+:[^:\s]+:([0-9a-f-]+):[^:\s]+:(\S+) `,
  ].join("|"),
  "g",
);

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
  for (const m of log.matchAll(MESSAGE)) {
    if (m[1]) {
      if (!m[6]!.split(";").includes(`K8S_POD_UID=${uid}`)) continue;
      const command = m[1] as "ADD" | "DEL";
      const kind = m[3]!.toLowerCase() === "delegate" ? "delegate" : "CNI";
      const ifname = m[5]!;
      if (m[2] === "starting") {
        requests.push({ command, kind, sandboxId: m[4]!, ifname });
        if (kind === "delegate") inFlight.push({ key: `${command} ${ifname}`, seen: false });
        continue;
      }
      const started = requests.find((q) =>
        q.ok === undefined && q.command === command && q.kind === kind && q.ifname === ifname
      );
      if (started) started.ok = m[7] !== undefined;
      const i = inFlight.findIndex((f) => f.key === `${command} ${ifname}`);
      if (kind === "delegate" && i >= 0) inFlight.splice(i, 1);
      continue;
    }
    if (m[9] !== uid) continue;
    const command = m[8] === "Add" ? "ADD" : "DEL";
    const ours = inFlight.find((f) => f.key === `${command} ${m[10]}` && !f.seen);
    if (ours) ours.seen = true;
    const side = ours ? activity.agent : activity.sandbox;
    (command === "ADD" ? side.added : side.deleted).push(m[10]!);
  }
  return activity;
}

/**
 * Who released a deleted pod's attachments: `agent`, the interfaces of its `/delegate` DELs
 * that multus carried out without an error; `teardown`, those multus' CNI DEL at sandbox
 * teardown released (each once, however many times the runtime tore the sandbox down).
 */
export function releases(activity: MultusActivity): { agent: string[]; teardown: string[] } {
  const agent = activity.requests.filter((r) =>
    r.kind === "delegate" && r.command === "DEL" && r.ok
  )
    .map((r) => r.ifname).sort();
  return { agent, teardown: [...new Set(activity.sandbox.deleted)].sort() };
}

/** The interfaces multus plugged at sandbox set-up. */
export function coldPlugged(activity: MultusActivity): string[] {
  return [...activity.sandbox.added].sort();
}

/**
 * One request of {@linkcode multusRequests}: a {@linkcode MultusRequest}, the pod it was for,
 * and where in the log it started and finished (character offsets, so that requests can be
 * ordered).
 */
export interface PodMultusRequest extends MultusRequest {
  podUid: string;
  startedAt: number;
  finishedAt?: number;
  /**
   * A CNI DEL that found no cached delegates of its sandbox: multus answers it without an error
   * and releases nothing (`cannot properly delete`).
   */
  withoutCache?: boolean;
}

/** multus' complaint when a DEL finds no cache of its sandbox, with the sandbox's ID. */
const NO_CACHE =
  /failed to get the cached delegates file: open \S*?\/([0-9a-f]{64}): [^\n]*cannot properly delete/g;

/** Every request `log` shows, for any pod, each with whether it finished without an error. */
export function multusRequests(log: string): PodMultusRequest[] {
  const requests: PodMultusRequest[] = [];
  for (const m of log.matchAll(MESSAGE)) {
    if (!m[1]) continue;
    const podUid = /(?:^|;)K8S_POD_UID=([^;]*)/.exec(m[6]!)?.[1] ?? "";
    const command = m[1] as "ADD" | "DEL";
    const kind = m[3]!.toLowerCase() === "delegate" ? "delegate" : "CNI";
    const sandboxId = m[4]!;
    const ifname = m[5]!;
    if (m[2] === "starting") {
      requests.push({ command, kind, sandboxId, ifname, podUid, startedAt: m.index });
      continue;
    }
    const started = requests.find((q) =>
      q.ok === undefined && q.command === command && q.kind === kind && q.ifname === ifname &&
      q.sandboxId === sandboxId
    );
    if (started) {
      started.ok = m[7] !== undefined;
      started.finishedAt = m.index;
    }
  }
  for (const m of log.matchAll(NO_CACHE)) {
    const del = requests.find((q) =>
      q.command === "DEL" && q.kind === "CNI" && q.sandboxId === m[1] && q.startedAt < m.index &&
      (q.finishedAt === undefined || q.finishedAt > m.index)
    );
    if (del) del.withoutCache = true;
  }
  return requests;
}
