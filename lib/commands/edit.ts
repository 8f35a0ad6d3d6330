/**
 * `attach` and `detach`: one element added to or removed from a pod's networks annotation
 * by a read-modify-write with optimistic concurrency (`pod_editor.ts`), the form and
 * every other element kept (`selection_edit.ts`), then with `--wait` the pod followed
 * until its condition says the change is done or has failed (`change_verdict.ts`).
 *
 * @module
 */
import { sleep } from "../base/backoff.ts";
import { NETWORK_STATUS_ANNOTATION, NETWORKS_ANNOTATION } from "../core/annotations.ts";
import { changeVerdict, type WaitedChange } from "./change_verdict.ts";
import { findNetworksCondition, NETWORKS_READY_CONDITION } from "../core/networks_condition.ts";
import { describeSandboxNameClash, sandboxNameClashes } from "../core/multus_names.ts";
import { objectKey } from "../core/names.ts";
import { parseNetworkSelection } from "../core/selection.ts";
import {
  assignedInterfaces,
  type EditedPod,
  EditError,
  type NewElement,
  withElement,
  withoutInterface,
} from "./selection_edit.ts";
import { type NetworkStatus, parseNetworkStatus } from "../core/status.ts";
import { editNetworksAnnotation, nadExists, type PodObject, readPod } from "./pod_editor.ts";
import { type CommandContext, CommandFailure } from "./context.ts";

/** How often `--wait` reads the pod. */
const POLL_MS = 100;

function statusOf(pod: PodObject): NetworkStatus[] {
  try {
    return parseNetworkStatus(pod.metadata?.annotations?.[NETWORK_STATUS_ANNOTATION]);
  } catch {
    return [];
  }
}

function editedPod(pod: PodObject, namespace: string, name: string): EditedPod {
  return { namespace, name, status: statusOf(pod) };
}

/** Refuses a pod the agent cannot plug anything into. */
function checkPod(pod: PodObject, key: string): void {
  if (pod.metadata?.deletionTimestamp) {
    throw new CommandFailure(`pod ${key} is being deleted: nothing is attached to it any more`);
  }
  if (!pod.spec?.nodeName) {
    throw new CommandFailure(
      `pod ${key} is on no node yet (spec.nodeName is empty; phase ${
        pod.status?.phase ?? "unknown"
      }): the agent of a node plugs interfaces into the pods that run there; wait until the pod is scheduled (kubectl get pod -o wide), or check why it is not (kubectl describe pod)`,
    );
  }
  if (pod.spec.hostNetwork) {
    throw new CommandFailure(
      `pod ${key} uses the host network (spec.hostNetwork): nothing can be plugged into it; give the pod its own network`,
    );
  }
}

/**
 * Warns when the annotation written (`text`) is one multus could not plug into a new sandbox of
 * the pod (`multus_names.ts`).
 */
function warnOfSandboxClash(ctx: CommandContext, verb: string, text: string | undefined): void {
  const elements = parseNetworkSelection(text, ctx.namespace);
  const clashes = sandboxNameClashes(elements).map((c) => describeSandboxNameClash(c, elements));
  if (clashes.length === 0) return;
  ctx.io.err(
    `${ctx.program} ${verb}: warning: the agent plugs this into the running sandbox, but multus would fail a new one (made when the kubelet replaces a dead sandbox) and the pod could not start again: ${
      clashes.join("; ")
    }\n`,
  );
}

function describeWrite(key: string, what: string, conflicts: number, note = ""): string {
  const retried = conflicts > 0
    ? ` after ${conflicts} conflicting write${conflicts === 1 ? "" : "s"}`
    : "";
  return `pod/${key}: ${what} written to the networks annotation${retried}${note}\n`;
}

/** `attach POD [NS/]NAD[@IF]`. */
export async function attach(ctx: CommandContext): Promise<number> {
  const { client, namespace, line, io } = ctx;
  const [name, spec] = line.args as [string, string];
  const key = objectKey(namespace, name);
  const [parsed] = parseNetworkSelection(spec, namespace);
  if (!parsed || spec.includes(",")) {
    throw new CommandFailure(
      `${JSON.stringify(spec)} is not one network: write [namespace/]name[@interface]`,
    );
  }
  const element: NewElement = { name: parsed.name };
  if (spec.includes("/")) element.namespace = parsed.namespace;
  if (parsed.interface) element.interface = parsed.interface;
  if (line.ips) element.ips = line.ips;
  if (line.mac) element.mac = line.mac;
  // Checked before writing: the same parser the agent uses refuses bad addresses.
  parseNetworkSelection(JSON.stringify([{ ...element, namespace: parsed.namespace }]), namespace);

  const first = await readPod(client, namespace, name);
  checkPod(first, key);
  const nadKey = objectKey(parsed.namespace, parsed.name);
  const exists = await nadExists(client, parsed.namespace, parsed.name);
  if (exists === false) {
    io.err(
      `${ctx.program} attach: warning: NetworkAttachmentDefinition ${nadKey} does not exist (yet): the agent attaches the interface once it is created; until then the pod's condition says NetworkNotFound\n`,
    );
  } else if (exists === undefined) {
    io.err(
      `${ctx.program} attach: warning: you may not get NetworkAttachmentDefinition ${nadKey} (403), so whether it exists was not checked\n`,
    );
  }
  let iface = element.interface;
  let converted = false;
  let written: string | undefined;
  const result = await editNetworksAnnotation(client, namespace, name, (pod) => {
    checkPod(pod, key);
    const current = pod.metadata?.annotations?.[NETWORKS_ANNOTATION];
    const target = editedPod(pod, namespace, name);
    const edited = withElement(current, element, target);
    const elements = parseNetworkSelection(edited.text, namespace);
    iface = assignedInterfaces(target, elements).at(-1);
    if (iface === undefined) {
      throw new EditError(
        `the agent would refuse ${spec} on pod ${key}: name its interface with ${parsed.name}@<interface>`,
      );
    }
    converted = edited.converted;
    written = edited.text;
    return { text: edited.text };
  });
  const note = converted
    ? " (the short list became a JSON one: the short form cannot hold --ips or --mac)"
    : "";
  io.out(describeWrite(key, `attach ${nadKey} as ${iface}`, result.conflicts, note));
  warnOfSandboxClash(ctx, "attach", written);
  if (line.waitMs === undefined) return 0;
  return await waitFor(ctx, {
    kind: "attach",
    interface: iface!,
    network: nadKey,
    conditionBefore: findNetworksCondition(result.before.status?.conditions),
  });
}

/** `detach POD IF`. */
export async function detach(ctx: CommandContext): Promise<number> {
  const { client, namespace, line, io } = ctx;
  const [name, iface] = line.args as [string, string];
  const key = objectKey(namespace, name);
  let removed = "";
  let network = "";
  let written: string | undefined;
  const result = await editNetworksAnnotation(client, namespace, name, (pod) => {
    checkPod(pod, key);
    const current = pod.metadata?.annotations?.[NETWORKS_ANNOTATION];
    const edited = withoutInterface(current, iface, editedPod(pod, namespace, name));
    removed = edited.removed;
    const [element] = parseNetworkSelection(removed.replace(/@.*$/, ""), namespace);
    network = element ? objectKey(element.namespace, element.name) : "";
    written = edited.text;
    return { text: edited.text };
  });
  io.out(describeWrite(key, `detach ${iface} (${removed})`, result.conflicts));
  warnOfSandboxClash(ctx, "detach", written);
  if (line.waitMs === undefined) return 0;
  return await waitFor(ctx, {
    kind: "detach",
    interface: iface,
    network,
    conditionBefore: findNetworksCondition(result.before.status?.conditions),
  });
}

/** Follows the pod until `change` is done (0), has failed (1) or `--wait` runs out (3). */
async function waitFor(ctx: CommandContext, change: WaitedChange): Promise<number> {
  const { client, namespace, line, io } = ctx;
  const name = line.args[0]!;
  const key = objectKey(namespace, name);
  const started = performance.now();
  const deadline = started + line.waitMs!;
  let last: ReturnType<typeof changeVerdict> | undefined;
  for (;;) {
    const pod = await readPod(client, namespace, name);
    const elapsed = performance.now() - started;
    const condition = findNetworksCondition(pod.status?.conditions);
    last = changeVerdict(change, statusOf(pod), condition, elapsed);
    const seconds = (elapsed / 1000).toFixed(2);
    if (last.state === "done") {
      const entry = last.entry;
      const detail = entry
        ? ` (ips ${entry.ips?.join(",") || "none"}, mac ${entry.mac || "none"})`
        : "";
      io.out(`pod/${key}: ${change.interface} ${change.kind}ed${detail} in ${seconds}s\n`);
      if (last.others) {
        io.err(
          `${ctx.program} ${change.kind}: warning: ${NETWORKS_READY_CONDITION} is False for other interfaces (${last.others.reason}): ${last.others.message}\n`,
        );
      }
      return 0;
    }
    if (last.state === "failed") {
      throw new CommandFailure(
        `${change.interface} not ${change.kind}ed after ${seconds}s: ${last.condition.reason}: ${last.condition.message}`,
      );
    }
    if (performance.now() >= deadline) break;
    await sleep(Math.min(POLL_MS, Math.max(0, deadline - performance.now())));
  }
  const condition = last?.state === "waiting" ? last.condition : undefined;
  throw new CommandFailure(
    `timed out after ${(line.waitMs! / 1000).toFixed(1)}s waiting for ${change.interface} to be ${
      change.kind === "attach" ? "attached" : "detached"
    }: ${
      condition
        ? `${NETWORKS_READY_CONDITION} is ${condition.status} (${condition.reason}): ${condition.message}`
        : `the pod has no ${NETWORKS_READY_CONDITION} condition: is the agent running on its node?`
    }`,
    3,
  );
}
