/**
 * Wires the controller together, and nothing else: the adapters (API client, pod and NAD
 * caches, CRI and multus clients, the journal, the status store, the event recorder, the
 * metrics), the reconciler behind the work queue with the one error policy, the triggers that
 * queue pods, the probe and metrics server, and a graceful shutdown on SIGTERM or SIGINT.
 *
 * Where each piece lives: `reconcile/reconciler.ts` (a pass), `reconcile/error_policy.ts`
 * (what a failed pass leads to), `work_queue/queue.ts` (the work queue), `reconcile/triggers.ts`
 * (what queues a pod), `kube/` (the Kubernetes adapters), `cri/`, `multus/`, `journal/`.
 *
 * @module
 */
import type { Logger } from "./base/log.ts";
import { registerProcessMetrics } from "./base/metrics.ts";
import type { Config } from "./config/settings.ts";
import { CriClient } from "./cri/client.ts";
import { FileJournal } from "./journal/file_journal.ts";
import { MemoryJournal } from "./journal/memory_journal.ts";
import { KubeClient } from "./kube/client.ts";
import { KubeEventRecorder } from "./kube/events.ts";
import { nadInformer, nadSource } from "./kube/nads.ts";
import { podInformer, podSource } from "./kube/pods.ts";
import { KubeStatusStore } from "./kube/status_store.ts";
import { MultusClient } from "./multus/client.ts";
import { ControllerMetrics } from "./observe/controller_metrics.ts";
import { healthChecks } from "./observe/health_checks.ts";
import { type HealthServer, serveHealth } from "./observe/http.ts";
import { podCensus } from "./core/pod_census.ts";
import type { PodSnapshot } from "./core/pod.ts";
import { DriftCheck } from "./reconcile/drift_check.ts";
import { dryRunLines } from "./reconcile/dry_run.ts";
import { errorPolicy } from "./reconcile/error_policy.ts";
import type { ReconcilerDeps } from "./reconcile/ports.ts";
import { WorkQueue } from "./work_queue/queue.ts";
import { type WorkQueueOptions } from "./work_queue/queue_options.ts";
import { Reconciler } from "./reconcile/reconciler.ts";
import { connectTriggers, type WatchedCache } from "./reconcile/triggers.ts";

/** Options of {@linkcode runController} beyond the configuration. */
export interface RunOptions {
  /** Program version, for the build-info metric and the start-up log line. */
  version: string;
  /** Stops the controller when aborted (in addition to SIGTERM and SIGINT). */
  signal?: AbortSignal;
  /** Where `--dry-run --once` prints its plans (default: standard output). */
  print?: (line: string) => void;
}

/** A cache the wiring reads: an informer, or a test's stand-in. */
export interface Cache<T> extends WatchedCache<T> {
  /** Every cached key. */
  keys(): string[];
}

/** What {@linkcode wireReconciler} connects. */
export interface WiringParts {
  /** The node's pods. */
  pods: Cache<PodSnapshot>;
  /** The cluster's NADs. */
  nads: Cache<{ namespace: string; name: string }>;
  /** The reconciler's ports and settings. */
  deps: ReconcilerDeps;
  /** The work queue's settings (its error policy is the controller's). */
  queue: Omit<WorkQueueOptions, "errorPolicy">;
}

/** The reconcile loop, wired to its caches. */
export interface Wiring {
  /** The reconciler. */
  reconciler: Reconciler;
  /** Its work queue. */
  queue: WorkQueue;
  /** Starts the queue with a pass for every pod, and for every pod the journal holds ADDs of. */
  start(): void;
  /** Queues every cached pod for another look (the periodic resync). */
  resync(): void;
}

/**
 * Builds the reconciler and its queue with the controller's {@linkcode errorPolicy}, and
 * connects the caches' events to the queue (`reconcile/triggers.ts`).
 */
export function wireReconciler(parts: WiringParts): Wiring {
  const reconciler = new Reconciler(parts.deps);
  const queue = new WorkQueue((key) => reconciler.reconcile(key), {
    ...parts.queue,
    errorPolicy,
  });
  connectTriggers({ pods: parts.pods, nads: parts.nads }, reconciler.memory, queue);
  return {
    reconciler,
    queue,
    start() {
      queue.start();
      // Journaled pods that are gone from the node get a pass too, to release what they hold.
      const journal = parts.deps.journal;
      for (
        const key of new Set([
          ...parts.pods.keys(),
          ...journal.podKeys(),
          ...journal.attachedPodKeys(),
        ])
      ) {
        queue.add(key);
      }
    },
    resync() {
      for (const key of parts.pods.keys()) queue.resync(key);
    },
  };
}

/** Runs the controller until it is stopped; resolves to the process exit code. */
export async function runController(
  config: Config,
  log: Logger,
  options: RunOptions,
): Promise<number> {
  // A dry run acts on nothing, so it must not need (or touch) the node's journal.
  const journal = config.dryRun
    ? new MemoryJournal()
    : await FileJournal.open({ dir: config.stateDir, log });
  const stop = new AbortController();
  const metrics = new ControllerMetrics({ version: options.version });
  registerProcessMetrics(metrics.registry);
  const kube = await KubeClient.create({
    kubeconfig: config.kubeconfig || undefined,
    onResponse: (method, path, status, seconds) =>
      metrics.apiRequest(method, path, status, seconds),
  }, log);
  const pods = podInformer(kube, config.nodeName, log, {
    onError: () => metrics.watchError("pods"),
  });
  const nads = nadInformer(kube, log, {
    onError: () => metrics.watchError("network-attachment-definitions"),
  });
  const cri = new CriClient(config.criSocketPath, {
    timeoutMs: config.criTimeoutMs,
    observe: (call, seconds) => metrics.criDuration(call, seconds),
  });
  const multus = new MultusClient(config.multusSocketPath, {
    timeoutMs: config.delegateTimeoutMs,
  });
  const events = new KubeEventRecorder(kube, {
    nodeName: config.nodeName,
    log,
    onRecord: (reason) => metrics.eventRecorded(reason),
  });
  const { reconciler, queue, start, resync: resyncAll } = wireReconciler({
    pods,
    nads,
    deps: {
      pods: podSource(kube, pods),
      nads: nadSource(nads),
      sandboxes: cri,
      delegator: multus,
      status: new KubeStatusStore(kube, { onConflict: () => metrics.statusConflict() }),
      journal,
      events,
      log,
      options: {
        namespaceIsolation: config.namespaceIsolation,
        allowedNadNamespaces: config.allowedNadNamespaces,
        dryRun: config.dryRun,
        driftRepair: config.driftRepair,
      },
      observer: metrics,
    },
    queue: {
      name: "pod-networks-updates",
      concurrency: config.workers,
      baseDelayMs: config.retryBaseDelayMs,
      maxDelayMs: config.retryMaxDelayMs,
      metrics: metrics.queueMetrics(),
      log,
    },
  });
  metrics.registry.onCollect(() => {
    const census = podCensus(pods.list());
    metrics.setManagedPods(census.managedPods);
    metrics.setAttachments(census.attachments);
  });

  let health: HealthServer | undefined;
  if (!config.once) {
    health = serveHealth({
      address: config.metricsAddress,
      registry: metrics.registry,
      log,
      checks: healthChecks({
        podsSynced: () => pods.hasSynced(),
        nadsSynced: () => nads.hasSynced(),
        criAnswers: () => cri.version(),
        multusHealthy: () => multus.healthy(),
        multusSocketPath: config.multusSocketPath,
        longestRunningMs: () => queue.longestRunningMs(),
        // A worker stuck far beyond every call's time limit means the loop is wedged.
        wedgedAfterMs: 3 * (config.delegateTimeoutMs + config.criTimeoutMs) + 60_000,
      }),
    });
  }

  const onSignal = () => {
    log.info("Shutdown requested");
    stop.abort(new Error("shutdown"));
  };
  const signals: Deno.Signal[] = ["SIGTERM", "SIGINT"];
  for (const s of signals) Deno.addSignalListener(s, onSignal);
  options.signal?.addEventListener("abort", onSignal, { once: true });
  const stopped = new Promise((resolve) =>
    stop.signal.addEventListener("abort", resolve, { once: true })
  );

  const runs = [pods.run(stop.signal), nads.run(stop.signal)].map((p) =>
    p.catch((err) => {
      if (!stop.signal.aborted) log.error("Cache stopped", { err });
    })
  );
  let resync: ReturnType<typeof setInterval> | undefined;
  let exitCode = 0;
  try {
    await Promise.all([pods.waitForSync(stop.signal), nads.waitForSync(stop.signal)]);
    log.info("Caches synced", { pods: pods.size, nads: nads.size, nodeName: config.nodeName });
    if (config.once && config.dryRun) {
      const print = options.print ?? ((line: string) => console.log(line));
      for (const line of dryRunLines(pods.keys().sort(), (k) => reconciler.planFor(k))) {
        print(line);
      }
      return 0;
    }
    start();
    if (config.once) {
      await Promise.race([queue.idle(), stopped]);
      return 0;
    }
    if (config.resyncPeriodSeconds > 0) {
      resync = setInterval(resyncAll, config.resyncPeriodSeconds * 1000);
    }
    if (config.driftCheckIntervalSeconds > 0 && !config.dryRun) {
      const drift = new DriftCheck({
        pods: () => pods.list(),
        nads: nadSource(nads),
        sandboxes: cri,
        delegator: multus,
        journal,
        memory: reconciler.memory,
        enqueue: (key) => queue.add(key),
        log,
        observer: metrics,
        intervalMs: config.driftCheckIntervalSeconds * 1000,
      });
      runs.push(
        drift.run(stop.signal).catch((err) => {
          if (!stop.signal.aborted) log.error("Drift check stopped", { err });
        }),
      );
    }
    await stopped;
  } catch (err) {
    if (!stop.signal.aborted) {
      log.error("Controller failed", { err });
      exitCode = 1;
    }
  } finally {
    clearInterval(resync);
    health?.setShuttingDown();
    const { drained } = await queue.shutdown(config.shutdownTimeoutSeconds * 1000);
    if (!drained) log.warn("Shutdown deadline passed with reconciles still running");
    stop.abort(new Error("shutdown"));
    await Promise.all(runs);
    await events.close();
    for (const s of signals) Deno.removeSignalListener(s, onSignal);
    await health?.close();
    cri.close();
    kube.close();
    log.info("Stopped");
  }
  return exitCode;
}
