/**
 * Wires the controller together: API client, pod and NAD caches, CRI and multus clients,
 * the reconciler behind a keyed work queue, the probe and metrics server, and a graceful
 * shutdown on SIGTERM or SIGINT.
 *
 * @module
 */
import type { Config } from "./config/load.ts";
import { ControllerMetrics } from "./observe/controller_metrics.ts";
import { CriClient } from "./cri/client.ts";
import { type HealthServer, serveHealth } from "./observe/http.ts";
import { KubeClient } from "./kube/client.ts";
import { KubeEventRecorder } from "./kube/events.ts";
import { nadInformer } from "./kube/nads.ts";
import { nadKey } from "./core/nad.ts";
import { objectKey } from "./core/names.ts";
import { NETWORKS_ANNOTATION } from "./core/annotations.ts";
import { getPod, type Pod, podInformer, slimPod } from "./kube/pods.ts";
import { updateNetworkStatus } from "./kube/status_writer.ts";
import { FileJournal, MemoryJournal } from "./journal/file_journal.ts";
import { errorText, type Logger } from "./base/log.ts";
import { registerProcessMetrics } from "./base/metrics.ts";
import { MultusClient } from "./multus/client.ts";
import {
  describeOperations,
  type FaultPoint,
  Reconciler,
  type ReconcilerDeps,
} from "./reconcile/reconciler.ts";
import { podCensus } from "./core/pod_census.ts";
import { WorkQueue } from "./reconcile/queue.ts";

/** Options of {@linkcode runController} beyond the configuration. */
export interface RunOptions {
  /** Program version, for the build-info metric and the start-up log line. */
  version: string;
  /** Stops the controller when aborted (in addition to SIGTERM and SIGINT). */
  signal?: AbortSignal;
  /** Where `--dry-run --once` prints its plans (default: standard output). */
  print?: (line: string) => void;
}

/** How long a cached socket probe result stays valid for `/readyz`. */
const PROBE_TTL_MS = 5_000;

/**
 * TEST-ONLY crash injection for the reliability tests: `DNC_FAULT_INJECTION=<point>:<add|remove>`
 * (points: before-delegate, after-delegate, before-status-write, after-status-write) makes the
 * process exit at once with code 137, as if SIGKILLed, the first time an operation of that kind
 * reaches that point. Unset (always, outside tests), it does nothing.
 */
export const FAULT_INJECTION_ENV = "DNC_FAULT_INJECTION";

/** Parses {@linkcode FAULT_INJECTION_ENV}; undefined when unset or not granted. */
export function faultInjection(
  log: Logger,
  text: string | undefined = readFaultInjectionEnv(),
): ReconcilerDeps["faultPoint"] {
  if (!text) return undefined;
  const match =
    /^(before-delegate|after-delegate|before-status-write|after-status-write):(add|remove)$/
      .exec(text);
  if (!match) {
    log.warn("Ignoring malformed test-only fault injection", { [FAULT_INJECTION_ENV]: text });
    return undefined;
  }
  const [, point, kind] = match as unknown as [string, FaultPoint, "add" | "remove"];
  log.warn("Test-only fault injection armed", { point, operation: kind });
  return (at, operation) => {
    if (at === point && operation === kind) {
      console.error(`fault injection: exiting at ${point} of ${kind}`);
      Deno.exit(137);
    }
  };
}

function readFaultInjectionEnv(): string | undefined {
  try {
    return Deno.env.get(FAULT_INJECTION_ENV);
  } catch {
    return undefined;
  }
}

/** A check whose (slow) probe runs at most once per {@linkcode PROBE_TTL_MS}. */
function cachedProbe(probe: () => Promise<void>): () => Promise<string | undefined> {
  let checkedAt = -Infinity;
  let last: string | undefined = "not checked yet";
  return async () => {
    if (Date.now() - checkedAt < PROBE_TTL_MS) return last;
    try {
      await probe();
      last = undefined;
    } catch (err) {
      last = errorText(err);
    }
    checkedAt = Date.now();
    return last;
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
  const events = new KubeEventRecorder(kube, { nodeName: config.nodeName, log });
  const reconciler = new Reconciler({
    pods: {
      cached: (key) => pods.get(key),
      fetch: async (namespace, name) => slimPod(await getPod(kube, namespace, name)),
    },
    nads: { get: (namespace, name) => nads.get(objectKey(namespace, name)) },
    sandboxes: cri,
    delegator: multus,
    status: {
      update: (namespace, name, uid, mutate) =>
        updateNetworkStatus(kube, namespace, name, uid, mutate, {
          onConflict: () => metrics.statusConflict(),
        }),
    },
    journal,
    events: {
      record(pod, type, reason, message) {
        metrics.eventRecorded(reason);
        events.record(pod, type, reason, message);
      },
    },
    log,
    options: {
      namespaceIsolation: config.namespaceIsolation,
      allowedNadNamespaces: config.allowedNadNamespaces,
      dryRun: config.dryRun,
    },
    observer: metrics,
    faultPoint: faultInjection(log),
  });
  metrics.registry.onCollect(() => {
    const census = podCensus(pods.list());
    metrics.setManagedPods(census.managedPods);
    metrics.setAttachments(census.attachments);
  });
  const queue = new WorkQueue((key) => reconciler.reconcile(key), {
    name: "pod-networks-updates",
    concurrency: config.workers,
    baseDelayMs: config.retryBaseDelayMs,
    maxDelayMs: config.retryMaxDelayMs,
    metrics: metrics.queueMetrics(),
    log,
  });

  pods.on("upsert", (pod: Pod, old: Pod | undefined) => {
    const key = objectKey(pod.metadata.namespace, pod.metadata.name);
    const networks = pod.metadata.annotations?.[NETWORKS_ANNOTATION];
    if (old !== undefined && networks !== old.metadata.annotations?.[NETWORKS_ANNOTATION]) {
      reconciler.noteAnnotationChange(key);
    }
    // A change may be the fix (or the deletion to act on): due now, whatever the backoff.
    if (reconciler.changeMatters(old, pod)) queue.add(key);
    else queue.resync(key);
  });
  pods.on("delete", (pod: Pod) => {
    const key = objectKey(pod.metadata.namespace, pod.metadata.name);
    reconciler.podRemoved(pod);
    // Unfinished ADDs of a deleted pod still hold addresses: one more pass tries to release them.
    if (journal.pending(key).length > 0) queue.add(key);
    else reconciler.forget(key);
  });
  nads.on("upsert", (nad) => {
    for (const key of reconciler.podsWaitingFor(nadKey(nad))) queue.add(key);
  });

  const criReachable = cachedProbe(async () => {
    await cri.version();
  });
  const multusReachable = cachedProbe(async () => {
    if (!await multus.healthy()) {
      throw new Error(`multus at ${config.multusSocketPath} is unhealthy`);
    }
  });
  let health: HealthServer | undefined;
  if (!config.once) {
    health = serveHealth({
      address: config.metricsAddress,
      registry: metrics.registry,
      log,
      checks: {
        live: () => {
          // A worker stuck far beyond every call's time limit means the loop is wedged.
          const limitMs = 3 * (config.delegateTimeoutMs + config.criTimeoutMs) + 60_000;
          const longest = queue.longestRunningMs();
          return longest > limitMs
            ? { ok: false, reasons: [`a reconcile has been running for ${longest} ms`] }
            : { ok: true, reasons: [] };
        },
        ready: async () => {
          const reasons: string[] = [];
          if (!pods.hasSynced()) reasons.push("pod cache not synced");
          if (!nads.hasSynced()) reasons.push("NetworkAttachmentDefinition cache not synced");
          const criProblem = await criReachable();
          if (criProblem) reasons.push(`CRI: ${criProblem}`);
          const multusProblem = await multusReachable();
          if (multusProblem) reasons.push(`multus: ${multusProblem}`);
          return { ok: reasons.length === 0, reasons };
        },
      },
    });
  }

  const onSignal = () => {
    log.info("Shutdown requested");
    stop.abort(new Error("shutdown"));
  };
  const signals: Deno.Signal[] = ["SIGTERM", "SIGINT"];
  for (const s of signals) Deno.addSignalListener(s, onSignal);
  options.signal?.addEventListener("abort", onSignal, { once: true });

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
      for (const key of pods.keys().sort()) {
        const plan = reconciler.planFor(key);
        if (typeof plan === "string") print(`${key}: ${plan}`);
        else {
          const lines = [
            ...describeOperations(plan),
            ...plan.refusals.map((r) => `refused: ${r.message}`),
          ];
          print(`${key}: ${lines.length === 0 ? "nothing to do" : lines.join("; ")}`);
        }
      }
      return 0;
    }
    queue.start();
    // Journaled pods that are gone from the node get a pass too, to release what they hold.
    for (const key of new Set([...pods.keys(), ...journal.podKeys()])) queue.add(key);
    if (config.once) {
      await Promise.race([
        queue.idle(),
        new Promise((resolve) => stop.signal.addEventListener("abort", resolve, { once: true })),
      ]);
      return 0;
    }
    if (config.resyncPeriodSeconds > 0) {
      resync = setInterval(() => {
        for (const key of pods.keys()) queue.resync(key);
      }, config.resyncPeriodSeconds * 1000);
    }
    await new Promise((resolve) => stop.signal.addEventListener("abort", resolve, { once: true }));
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
