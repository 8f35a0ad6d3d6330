/**
 * The reconciler's ports in memory, for the unit suites (`tests/reconcile_test.ts`, the pass;
 * `tests/controller_test.ts`, the wiring): a world the passes change as the real node would,
 * checked without sockets. The real adapters are exercised on the node rig.
 *
 * @module
 */
import { MemoryJournal } from "../../lib/journal/memory_journal.ts";
import { Logger } from "../../lib/base/log.ts";
import type { PodSnapshot } from "../../lib/core/pod.ts";
import { errorPolicy } from "../../lib/reconcile/error_policy.ts";
import { ReconcileError } from "../../lib/reconcile/outcome.ts";
import {
  type DelegateRequest,
  type ReconcilerDeps,
  StatusWriteError,
} from "../../lib/reconcile/ports.ts";
import { Reconciler } from "../../lib/reconcile/reconciler.ts";
import { NETWORK_STATUS_ANNOTATION, NETWORKS_ANNOTATION } from "../../lib/core/annotations.ts";
import {
  formatNetworkStatus,
  type NetworkStatus,
  parseNetworkStatus,
} from "../../lib/core/status.ts";

/** The cluster network's entry multus writes for every pod. */
export const DEFAULT_ENTRY: NetworkStatus = {
  name: "cluster",
  interface: "eth0",
  ips: ["10.0.0.5"],
  default: true,
  dns: {},
};

/** An Event the world recorded. */
export interface RecordedEvent {
  type: string;
  reason: string;
  message: string;
}

/** Settings of the ports a {@linkcode MemoryWorld} hands out. */
export interface WorldOptions {
  /** Namespace isolation on. */
  namespaceIsolation?: boolean;
  /** A dry run. */
  dryRun?: boolean;
  /** Whether drifted attachments are repaired (the default) or only reported. */
  driftRepair?: boolean;
  /** The pod cache, when not the world's own pod (the wiring's tests feed a real cache). */
  cached?: (key: string) => PodSnapshot | undefined;
  /** The logger (default: warnings and errors kept in `warnings`). */
  log?: Logger;
}

/**
 * A small in-memory world: one pod (the API server's copy), its NADs, a sandbox, a multus that
 * really "attaches" into a netns of names, a journal, and knobs that make any of them fail or
 * hang at a precise point.
 */
export class MemoryWorld {
  pod: PodSnapshot;
  nads = new Map<string, string>();
  /** Interfaces that exist in the pod's netns, by name → network. */
  netns = new Map<string, string>();
  /** The addresses on each of those interfaces (the requested `ips`, as static IPAM gives). */
  netnsIps = new Map<string, string[]>();
  events: RecordedEvent[] = [];
  delegateCalls: string[] = [];
  /** Every delegate request, in order. */
  delegateRequests: DelegateRequest[] = [];
  failStatusWrites = 0;
  sandboxRemoved = false;
  /** When set, the runtime reports the sandbox in the node's network namespace. */
  sandboxHostNetwork = false;
  /** The sandbox the runtime reports now (the kubelet replaces a dead one with another). */
  sandboxId = "sb1";
  /** Whether that sandbox is ready (false once the kubelet stopped it). */
  sandboxReady = true;
  /** Wall clock of the reconcilers made from now on, in ms. */
  now = Date.parse("2026-12-01T12:00:00Z");
  failDelegate?: (req: DelegateRequest) => string | undefined;
  /** The journal survives "restarts" (new reconcilers), as the state directory does. */
  journal = new MemoryJournal();
  /** Whether the pod is still in the cache (false once deleted). */
  present = true;
  /** When set, an ADD attaches and then never answers: the process dies before it sees the result. */
  hangAfterAdd = false;
  /** When set, a status write that changes network-status lands and then never answers. */
  hangAfterStatusWrite = false;
  /** When set, a DEL detaches and then never answers: the process dies before it sees the result. */
  hangAfterDel = false;
  /** Results of the releases of unrecorded ADDs, as reported to the observer. */
  releases: boolean[] = [];
  /** When set, status writes find the pod gone (as once the kubelet's final delete landed). */
  podGoneOnWrite = false;
  /** Warning and error log records. */
  warnings: Record<string, unknown>[] = [];
  /** Status updates that changed the agent's condition. */
  conditionWrites = 0;
  /** Status writes that would change network-status and are to fail, as a refused PUT does. */
  failRecordingWrites = 0;
  /** What the pod carried when each delegate request was sent. */
  atSend: { request: string; finalizer: boolean; condition?: string }[] = [];
  /** Called after every fresh read (a test's chance to change the world behind it). */
  afterFetch?: () => void;

  constructor(networks: unknown, status: NetworkStatus[] = [DEFAULT_ENTRY]) {
    this.pod = {
      metadata: {
        name: "p",
        namespace: "ns1",
        uid: "uid-1",
        annotations: {
          [NETWORKS_ANNOTATION]: JSON.stringify(networks),
          [NETWORK_STATUS_ANNOTATION]: formatNetworkStatus(status),
        },
      },
      spec: { nodeName: "n1" },
      status: { phase: "Running" },
    };
    for (const entry of status) {
      if (entry.interface) this.netns.set(entry.interface, entry.name.split("/").pop()!);
    }
  }

  status(): NetworkStatus[] {
    return parseNetworkStatus(this.pod.metadata.annotations?.[NETWORK_STATUS_ANNOTATION]);
  }

  setNetworks(networks: unknown): void {
    this.pod.metadata.annotations![NETWORKS_ANNOTATION] = JSON.stringify(networks);
  }

  /** A reconciler over {@linkcode MemoryWorld.deps}. */
  reconciler(options: WorldOptions = {}): Reconciler {
    return new Reconciler(this.deps(options));
  }

  /** In-memory ports over this world. */
  deps(options: WorldOptions = {}): ReconcilerDeps {
    // The stand-ins below close over the world they change.
    // deno-lint-ignore no-this-alias
    const world = this;
    return {
      pods: {
        cached: options.cached ??
          (() => world.present ? structuredClone(world.pod) : undefined),
        fetch: () => {
          const read = world.present ? structuredClone(world.pod) : undefined;
          world.afterFetch?.();
          return Promise.resolve(read && { pod: read, base: { resourceVersion: "" } });
        },
      },
      nads: {
        get: (namespace, name) => {
          const config = world.nads.get(`${namespace}/${name}`);
          return config === undefined ? undefined : { namespace, name, config };
        },
      },
      sandboxes: {
        findSandbox: () =>
          Promise.resolve(
            world.sandboxRemoved
              ? undefined
              : world.sandboxHostNetwork
              ? { id: "sb1", netnsPath: "", ready: true, createdAt: 1, hostNetwork: true }
              : {
                id: world.sandboxId,
                netnsPath: `/var/run/netns/${world.sandboxId}`,
                ready: world.sandboxReady,
                createdAt: 1,
              },
          ),
      },
      delegator: {
        delegate(req) {
          const network = JSON.parse(new TextDecoder().decode(req.config)).name as string;
          world.delegateCalls.push(`${req.command} ${req.ifname} ${network}`);
          world.delegateRequests.push(req);
          const condition = world.pod.status?.networksCondition;
          world.atSend.push({
            request: `${req.command} ${req.ifname}`,
            finalizer: world.pod.metadata.holdsFinalizer === true,
            ...(condition ? { condition: `${condition.status} ${condition.reason}` } : {}),
          });
          const failure = world.failDelegate?.(req);
          if (failure) return Promise.reject(new Error(failure));
          if (req.command === "DEL") {
            world.netns.delete(req.ifname);
            world.netnsIps.delete(req.ifname);
            if (world.hangAfterDel) return new Promise(() => {});
            return Promise.resolve(undefined);
          }
          if (world.netns.has(req.ifname)) {
            return Promise.reject(
              new Error(`validateIfName: interface name ${req.ifname} already exists`),
            );
          }
          world.netns.set(req.ifname, network);
          const ips = req.interfaceAttributes?.ips ?? [];
          world.netnsIps.set(req.ifname, ips);
          if (world.hangAfterAdd) return new Promise(() => {});
          return Promise.resolve({
            cniVersion: "1.0.0",
            interfaces: [{ name: req.ifname, mac: "02:00:00:00:00:01", sandbox: req.netns }],
            ips: ips.map((address) => ({ address, interface: 0 })),
          });
        },
      },
      status: {
        update(_namespace, _name, uid, mutate) {
          if (uid !== world.pod.metadata.uid) {
            return Promise.resolve({ result: "gone", reason: "UidChanged" });
          }
          if (world.podGoneOnWrite) return Promise.resolve({ result: "gone", reason: "NotFound" });
          if (world.failStatusWrites > 0) {
            world.failStatusWrites--;
            return Promise.reject(new Error("apiserver unavailable"));
          }
          const annotations = world.pod.metadata.annotations!;
          const condition = world.pod.status?.networksCondition;
          const next = mutate({
            networkStatus: annotations[NETWORK_STATUS_ANNOTATION],
            finalizer: world.pod.metadata.holdsFinalizer === true,
            deleting: world.pod.metadata.deletionTimestamp !== undefined,
            ...(condition ? { condition } : {}),
          });
          const records = next.networkStatus !== annotations[NETWORK_STATUS_ANNOTATION];
          if (records && world.failRecordingWrites > 0) {
            world.failRecordingWrites--;
            return Promise.reject(
              new StatusWriteError("PUT pods/p/status: HTTP 409 Conflict", "conflict"),
            );
          }
          if (
            next.finalizer && !world.pod.metadata.holdsFinalizer &&
            world.pod.metadata.deletionTimestamp
          ) {
            return Promise.reject(
              new StatusWriteError(
                "HTTP 422: no new finalizers can be added if the object is being deleted",
                "refused",
              ),
            );
          }
          if (next.condition !== undefined && next.condition !== condition) {
            world.pod.status = { ...world.pod.status, networksCondition: next.condition };
            world.conditionWrites++;
          }
          if (next.networkStatus === undefined) delete annotations[NETWORK_STATUS_ANNOTATION];
          else annotations[NETWORK_STATUS_ANNOTATION] = next.networkStatus;
          if (next.finalizer) world.pod.metadata.holdsFinalizer = true;
          else delete world.pod.metadata.holdsFinalizer;
          if (world.hangAfterStatusWrite && records) return new Promise(() => {});
          return Promise.resolve({ result: "written" });
        },
      },
      journal: world.journal,
      observer: { unrecordedRelease: (ok) => world.releases.push(ok) },
      events: {
        record(_pod, type, reason, message) {
          world.events.push({ type, reason, message });
        },
      },
      log: options.log ??
        new Logger({ level: "warn", sink: (line) => world.warnings.push(JSON.parse(line)) }),
      options: {
        namespaceIsolation: options.namespaceIsolation ?? false,
        allowedNadNamespaces: [],
        dryRun: options.dryRun ?? false,
        ...(options.driftRepair === undefined ? {} : { driftRepair: options.driftRepair }),
      },
      now: () => world.now,
    };
  }

  /**
   * Runs passes as the queue would, at most `max`: again after a requeue or an error the
   * policy retries, and no more after an outcome that waits or an error it does not retry.
   */
  async converge(reconciler: Reconciler, max = 5): Promise<number> {
    for (let pass = 1; pass <= max; pass++) {
      try {
        const outcome = await reconciler.reconcile("ns1/p");
        if (outcome.kind !== "requeue") return pass;
      } catch (err) {
        if (!(err instanceof ReconcileError)) throw err;
        if (errorPolicy("ns1/p", err).action === "terminal") return pass;
      }
    }
    throw new Error(`no convergence in ${max} passes`);
  }

  /** Non-default status interfaces mapped to their network. */
  recorded(): Record<string, string> {
    return Object.fromEntries(
      this.status().filter((e) => !e.default).map((e) => [e.interface, e.name]),
    );
  }

  /** Non-default interfaces present in the netns. */
  attached(): Record<string, string> {
    return Object.fromEntries([...this.netns].filter(([name]) => name !== "eth0"));
  }
}
