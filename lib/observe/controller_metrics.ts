/**
 * The controller's metric set, declared in one place: controller-runtime's reconcile and
 * work-queue families (so existing dashboards work), the Kubernetes client's request
 * families, and the domain metrics of hot-plugging (attachment operations, multus delegate
 * and CRI call durations, hot-plug latency, status writes).
 *
 * {@linkcode ControllerMetrics} has one typed method per thing worth counting. Its
 * `attachmentOperation`, `delegateDuration`, `statusWrite`, `unrecordedRelease`,
 * `hotplugCompleted`, `driftCheck` and `driftRepair` methods
 * match the reconciler's observer, and {@linkcode ControllerMetrics.queueMetrics} adapts it
 * to the work queue.
 *
 * No label ever holds a pod name: every label has a small, fixed set of values.
 *
 * @module
 */
import { type Counter, type Gauge, type Histogram } from "../base/metric_families.ts";
import { Registry } from "../base/metrics.ts";
import type { InFlightProbe, QueueMetrics, RunResult } from "../work_queue/queue_metrics.ts";
import type { DriftCheckResult } from "../reconcile/ports.ts";
import {
  DELEGATE_BUCKETS,
  HOTPLUG_BUCKETS,
  RECONCILE_BUCKETS,
  RPC_BUCKETS,
  WORKQUEUE_BUCKETS,
} from "./buckets.ts";

/** An attachment operation, as the planner names it. */
export type AttachmentOperation = "add" | "remove";
/** A CNI command sent through multus' `/delegate`. */
export type DelegateCommand = "ADD" | "DEL" | "CHECK";

/** Settings of a {@linkcode ControllerMetrics}. */
export interface ControllerMetricsOptions {
  /** The registry to declare the metrics in (default: a new one). */
  registry?: Registry;
  /** The `controller` label value (default `pod-networks`). */
  controller?: string;
  /** Version for the `dynamic_networks_build_info` gauge (default `unknown`). */
  version?: string;
}

/** Groups an HTTP status code as client-go does: the number, or `<error>` when none. */
function codeLabel(status: number): string {
  return status > 0 ? String(status) : "<error>";
}

/** The controller's metrics; see the module documentation. */
export class ControllerMetrics {
  /** The registry holding every metric of this set. */
  readonly registry: Registry;
  /** The `controller` label value. */
  readonly controller: string;

  readonly #reconcileTotal: Counter<"controller" | "result">;
  readonly #reconcileErrors: Counter<"controller">;
  readonly #reconcileTime: Histogram<"controller">;
  readonly #maxConcurrent: Gauge<"controller">;
  readonly #activeWorkers: Gauge<"controller">;

  readonly #queueDepth: Gauge<"name" | "controller">;
  readonly #queueAdds: Counter<"name" | "controller">;
  readonly #queueDuration: Histogram<"name" | "controller">;
  readonly #workDuration: Histogram<"name" | "controller">;
  readonly #retries: Counter<"name" | "controller">;
  readonly #unfinished: Gauge<"name" | "controller">;
  readonly #longestRunning: Gauge<"name" | "controller">;

  readonly #restRequests: Counter<"code" | "method">;
  readonly #restDuration: Histogram<"verb">;
  readonly #watchErrors: Counter<"resource">;

  readonly #attachmentOps: Counter<"operation" | "result">;
  readonly #driftChecks: Counter<"result">;
  readonly #driftRepairs: Counter<"result">;
  readonly #delegateDuration: Histogram<"command">;
  readonly #criDuration: Histogram<"method">;
  readonly #criRequests: Counter<"method" | "code">;
  readonly #hotplugLatency: Histogram<"operation">;
  readonly #statusWrites: Counter<"result">;
  readonly #unrecordedReleases: Counter<"result">;
  readonly #statusConflicts: Counter;
  readonly #events: Counter<"reason">;
  readonly #pods: Gauge;
  readonly #attachments: Gauge;

  /** Declares every metric of the set in `options.registry` (or a new registry). */
  constructor(options: ControllerMetricsOptions = {}) {
    const r = options.registry ?? new Registry();
    this.registry = r;
    this.controller = options.controller ?? "pod-networks";
    const q = ["name", "controller"] as const;

    this.#reconcileTotal = r.counter({
      name: "controller_runtime_reconcile_total",
      help: "Total number of reconciliations per controller.",
      labelNames: ["controller", "result"],
    });
    this.#reconcileErrors = r.counter({
      name: "controller_runtime_reconcile_errors_total",
      help: "Total number of reconciliation errors per controller.",
      labelNames: ["controller"],
    });
    this.#reconcileTime = r.histogram({
      name: "controller_runtime_reconcile_time_seconds",
      help: "Length of time per reconciliation per controller.",
      labelNames: ["controller"],
      buckets: RECONCILE_BUCKETS,
    });
    this.#maxConcurrent = r.gauge({
      name: "controller_runtime_max_concurrent_reconciles",
      help: "Maximum number of concurrent reconciles per controller.",
      labelNames: ["controller"],
    });
    this.#activeWorkers = r.gauge({
      name: "controller_runtime_active_workers",
      help: "Number of currently used workers per controller.",
      labelNames: ["controller"],
    });

    this.#queueDepth = r.gauge({
      name: "workqueue_depth",
      help: "Current depth of workqueue.",
      labelNames: q,
    });
    this.#queueAdds = r.counter({
      name: "workqueue_adds_total",
      help: "Total number of adds handled by workqueue.",
      labelNames: q,
    });
    this.#queueDuration = r.histogram({
      name: "workqueue_queue_duration_seconds",
      help: "How long in seconds an item stays in workqueue before being requested.",
      labelNames: q,
      buckets: WORKQUEUE_BUCKETS,
    });
    this.#workDuration = r.histogram({
      name: "workqueue_work_duration_seconds",
      help: "How long in seconds processing an item from workqueue takes.",
      labelNames: q,
      buckets: WORKQUEUE_BUCKETS,
    });
    this.#retries = r.counter({
      name: "workqueue_retries_total",
      help: "Total number of retries handled by workqueue.",
      labelNames: q,
    });
    this.#unfinished = r.gauge({
      name: "workqueue_unfinished_work_seconds",
      help:
        "How many seconds of work has been done that is in progress and hasn't been observed by work_duration.",
      labelNames: q,
    });
    this.#longestRunning = r.gauge({
      name: "workqueue_longest_running_processor_seconds",
      help: "How many seconds has the longest running processor for workqueue been running.",
      labelNames: q,
    });

    this.#restRequests = r.counter({
      name: "rest_client_requests_total",
      help: "Number of HTTP requests to the Kubernetes API, partitioned by status code and method.",
      labelNames: ["code", "method"],
    });
    this.#restDuration = r.histogram({
      name: "rest_client_request_duration_seconds",
      help: "Kubernetes API request latency in seconds, partitioned by verb.",
      labelNames: ["verb"],
      buckets: RPC_BUCKETS,
    });
    this.#watchErrors = r.counter({
      name: "dynamic_networks_watch_errors_total",
      help: "Errors the list/watch loops recovered from, by resource.",
      labelNames: ["resource"],
    });

    this.#attachmentOps = r.counter({
      name: "dynamic_networks_attachment_operations_total",
      help: "Network attachments added to or removed from running pods, by result.",
      labelNames: ["operation", "result"],
    });
    this.#driftChecks = r.counter({
      name: "dynamic_networks_drift_checks_total",
      help:
        "Drift checks (CNI CHECK) of attachments by result: ok, drifted, unsupported (cannot be checked), error (multus could not be asked).",
      labelNames: ["result"],
    });
    this.#driftRepairs = r.counter({
      name: "dynamic_networks_drift_repairs_total",
      help: "Drifted attachments released and added again, by result.",
      labelNames: ["result"],
    });
    this.#delegateDuration = r.histogram({
      name: "dynamic_networks_delegate_duration_seconds",
      help: "Duration of multus /delegate calls (CNI ADD, DEL or CHECK) in seconds.",
      labelNames: ["command"],
      buckets: DELEGATE_BUCKETS,
    });
    this.#criDuration = r.histogram({
      name: "dynamic_networks_cri_duration_seconds",
      help: "Duration of CRI runtime calls in seconds, by method.",
      labelNames: ["method"],
      buckets: RPC_BUCKETS,
    });
    this.#criRequests = r.counter({
      name: "dynamic_networks_cri_requests_total",
      help: "CRI runtime calls, by method and gRPC status code.",
      labelNames: ["method", "code"],
    });
    this.#hotplugLatency = r.histogram({
      name: "dynamic_networks_hotplug_latency_seconds",
      help: "Time from a networks annotation change being observed to network-status written.",
      labelNames: ["operation"],
      buckets: HOTPLUG_BUCKETS,
    });
    this.#statusWrites = r.counter({
      name: "dynamic_networks_status_writes_total",
      help:
        "Writes of the agent's part of a pod (network-status, its finalizer, the NetworksReady condition; one update each), by result.",
      labelNames: ["result"],
    });
    this.#unrecordedReleases = r.counter({
      name: "dynamic_networks_unrecorded_releases_total",
      help:
        "ADDs cut short by a crash or a timeout and released from the attachment journal with a DEL, by result.",
      labelNames: ["result"],
    });
    this.#statusConflicts = r.counter({
      name: "dynamic_networks_status_update_conflicts_total",
      help: "network-status writes that met a conflict (HTTP 409) and were retried.",
    });
    this.#events = r.counter({
      name: "dynamic_networks_events_total",
      help: "Kubernetes Events recorded on pods, by reason.",
      labelNames: ["reason"],
    });
    this.#pods = r.gauge({
      name: "dynamic_networks_managed_pods",
      help: "Pods on this node that ask for secondary networks.",
    });
    this.#attachments = r.gauge({
      name: "dynamic_networks_attachments",
      help: "Secondary network attachments recorded in network-status on this node's pods.",
    });
    r.gauge({
      name: "dynamic_networks_build_info",
      help: "Build information; the value is always 1.",
      labelNames: ["version", "deno"],
    }).set({ version: options.version ?? "unknown", deno: Deno.version.deno }, 1);

    // Zero the series dashboards expect before the first reconcile.
    const c = { controller: this.controller };
    for (const result of ["success", "error", "requeue", "requeue_after"] as const) {
      this.#reconcileTotal.inc({ ...c, result }, 0);
    }
    this.#reconcileErrors.inc(c, 0);
    this.#activeWorkers.set(c, 0);
    for (const operation of ["add", "remove"] as const) {
      for (const result of ["success", "error"] as const) {
        this.#attachmentOps.inc({ operation, result }, 0);
      }
    }
    for (const result of ["ok", "drifted", "unsupported", "error"] as const) {
      this.#driftChecks.inc({ result }, 0);
    }
    for (const result of ["success", "error"] as const) this.#driftRepairs.inc({ result }, 0);
  }

  /**
   * The work queue's metrics sink for the queue named `name` (default: the controller
   * name): `workqueue_*{name,controller}` plus `controller_runtime_reconcile_*` and the
   * worker gauges.
   */
  queueMetrics(name = this.controller): QueueMetrics {
    const q = { name, controller: this.controller };
    const c = { controller: this.controller };
    let probe: (() => InFlightProbe) | undefined;
    this.registry.onCollect(() => {
      const now = probe?.() ?? { unfinishedSeconds: 0, longestRunningSeconds: 0 };
      this.#unfinished.set(q, now.unfinishedSeconds);
      this.#longestRunning.set(q, now.longestRunningSeconds);
    });
    this.#queueDepth.set(q, 0);
    this.#queueAdds.inc(q, 0);
    this.#retries.inc(q, 0);
    return {
      maxConcurrency: (workers) => this.#maxConcurrent.set(c, workers),
      added: () => this.#queueAdds.inc(q),
      depth: (keys) => this.#queueDepth.set(q, keys),
      started: (waited) => this.#queueDuration.observe(q, waited),
      finished: (result: RunResult, seconds) => {
        this.#workDuration.observe(q, seconds);
        this.#reconcileTime.observe(c, seconds);
        this.#reconcileTotal.inc({ ...c, result });
        if (result === "error") this.#reconcileErrors.inc(c);
      },
      retried: () => this.#retries.inc(q),
      active: (workers) => this.#activeWorkers.set(c, workers),
      observeInFlight: (p) => {
        probe = p;
      },
    };
  }

  /** Counts one attachment operation on a pod and whether it succeeded. */
  attachmentOperation(operation: AttachmentOperation, ok: boolean): void {
    this.#attachmentOps.inc({ operation, result: ok ? "success" : "error" });
  }

  /** Records one drift check's result. */
  driftCheck(result: DriftCheckResult): void {
    this.#driftChecks.inc({ result });
  }

  /** Records one repair of a drifted attachment. */
  driftRepair(ok: boolean): void {
    this.#driftRepairs.inc({ result: ok ? "success" : "error" });
  }

  /** Records how long one multus `/delegate` call took. */
  delegateDuration(command: DelegateCommand, seconds: number): void {
    this.#delegateDuration.observe({ command }, seconds);
  }

  /**
   * Records one CRI call: `method` is the RPC name (e.g. `ListPodSandbox`), `code` its gRPC
   * status name (e.g. `OK`, `UNAVAILABLE`). Fits the CRI client's `observe` option:
   * `observe: (m, s, c) => metrics.criDuration(m, s, c)`.
   */
  criDuration(method: string, seconds: number, code = "OK"): void {
    this.#criDuration.observe({ method }, seconds);
    this.#criRequests.inc({ method, code });
  }

  /** Counts one network-status write and whether it succeeded. */
  statusWrite(ok: boolean): void {
    this.#statusWrites.inc({ result: ok ? "success" : "error" });
  }

  /** Counts one DEL of an ADD the journal held unrecorded, and whether it succeeded. */
  unrecordedRelease(ok: boolean): void {
    this.#unrecordedReleases.inc({ result: ok ? "success" : "error" });
  }

  /** Counts a network-status write that met a conflict and was retried. */
  statusConflict(): void {
    this.#statusConflicts.inc();
  }

  /** Records the time from an annotation change being observed to its status being written. */
  hotplugCompleted(operation: AttachmentOperation, seconds: number): void {
    this.#hotplugLatency.observe({ operation }, seconds);
  }

  /** Counts one Kubernetes Event recorded on a pod. */
  eventRecorded(reason: string): void {
    this.#events.inc({ reason });
  }

  /**
   * Records one Kubernetes API response; the signature fits the API client's `onResponse`:
   * `onResponse: (m, p, s, t) => metrics.apiRequest(m, p, s, t)`. The path is not a label.
   */
  apiRequest(method: string, _path: string, status: number, seconds: number): void {
    const verb = method.toUpperCase();
    this.#restRequests.inc({ code: codeLabel(status), method: verb });
    this.#restDuration.observe({ verb }, seconds);
  }

  /** Counts an error a list/watch loop of `resource` (e.g. `pods`) recovered from. */
  watchError(resource: string): void {
    this.#watchErrors.inc({ resource });
  }

  /** Sets the number of pods on this node that ask for secondary networks. */
  setManagedPods(count: number): void {
    this.#pods.set({}, count);
  }

  /** Sets the number of secondary attachments recorded on this node's pods. */
  setAttachments(count: number): void {
    this.#attachments.set({}, count);
  }
}
