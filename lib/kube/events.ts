/**
 * Kubernetes Events on pods, as upstream's recorder writes them: core/v1 Events with source
 * component `pod-networks-updates`. Like client-go's correlator, a repeat of the same event
 * (same pod uid, type, reason and message) within a window PATCHes the existing Event's
 * `count` and `lastTimestamp` instead of creating another one.
 *
 * Recording is fire-and-forget: it never throws and never blocks the caller. Memory is
 * bounded (an LRU of recent events and a bounded backlog), and so are the concurrent API
 * requests. A pod gets at most 25 writes in a burst, then one per 5 minutes (client-go's
 * spam filter), so a failure loop cannot flood the API server.
 *
 * @module
 */
import type { Logger } from "../base/log.ts";
import { EVENT_COMPONENT, type EventType } from "../core/event_messages.ts";
import { objectKey } from "../core/names.ts";
import type { EventRecorder, InvolvedPod } from "../reconcile/ports.ts";
import { KubeApiError, type KubeClient } from "./client.ts";

/** Settings of a {@linkcode KubeEventRecorder}. */
export interface KubeEventRecorderOptions {
  /** This node's name: `source.host` and `reportingInstance`. */
  nodeName: string;
  /** Logger for write failures. */
  log: Logger;
  /** `source.component` and `reportingComponent` (default `pod-networks-updates`). */
  component?: string;
  /** A repeat within this many ms updates the existing Event (default 10 minutes). */
  dedupWindowMs?: number;
  /** Recent events remembered for de-duplication (default 4096, as client-go). */
  maxEntries?: number;
  /** Concurrent API requests (default 4). */
  concurrency?: number;
  /** Events waiting to be written before new ones are dropped (default 1000). */
  maxBacklog?: number;
  /** Writes per pod allowed in a burst, as client-go's spam filter (default 25). */
  spamBurst?: number;
  /** One more write per pod is allowed every this many ms (default 300 000, as client-go). */
  spamRefillMs?: number;
  /** Wall clock in ms; injectable for tests. */
  now?: () => number;
  /** Called for every event recorded, before de-duplication (for metrics). */
  onRecord?: (reason: string) => void;
}

/** Counters of a {@linkcode KubeEventRecorder}. */
export interface EventRecorderStats {
  /** Events created. */
  created: number;
  /** Repeats written as a count update of an existing Event. */
  patched: number;
  /** Writes that failed. */
  failed: number;
  /** Events not written: closed, backlog full, or over a pod's budget. */
  dropped: number;
}

interface Entry {
  namespace: string;
  /** The Event's name once created. */
  name?: string;
  /** Occurrences recorded. */
  count: number;
  /** Occurrences the API server has. */
  written: number;
  firstTimestamp: string;
  lastTimestamp: string;
  lastSeen: number;
  /** Writes of this entry run one after another. */
  chain: Promise<void>;
}

/** Longest message written; the API server limits messages, kube-rs truncates at 1 kB too. */
export const MAX_MESSAGE_LENGTH = 1024;

function rfc3339(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

function truncate(message: string): string {
  return message.length <= MAX_MESSAGE_LENGTH
    ? message
    : `${message.slice(0, MAX_MESSAGE_LENGTH - 3)}...`;
}

/** An {@linkcode EventRecorder} that writes core/v1 Events through a {@linkcode KubeClient}. */
export class KubeEventRecorder implements EventRecorder {
  readonly #client: KubeClient;
  readonly #nodeName: string;
  readonly #component: string;
  readonly #log: Logger;
  readonly #window: number;
  readonly #maxEntries: number;
  readonly #concurrency: number;
  readonly #maxBacklog: number;
  readonly #spamBurst: number;
  readonly #spamRefillMs: number;
  readonly #now: () => number;
  readonly #onRecord: ((reason: string) => void) | undefined;
  /** Pod uid → write tokens left and when they were counted. */
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  readonly #entries = new Map<string, Entry>();
  readonly #pending = new Set<Promise<void>>();
  readonly #waiting: (() => void)[] = [];
  #active = 0;
  #backlog = 0;
  #closed = false;
  #seq = 0;
  /** What happened so far. */
  readonly stats: EventRecorderStats = { created: 0, patched: 0, failed: 0, dropped: 0 };

  /** Creates a recorder writing through `client`. */
  constructor(client: KubeClient, options: KubeEventRecorderOptions) {
    this.#client = client;
    this.#nodeName = options.nodeName;
    this.#component = options.component ?? EVENT_COMPONENT;
    this.#log = options.log;
    this.#window = options.dedupWindowMs ?? 10 * 60_000;
    this.#maxEntries = options.maxEntries ?? 4096;
    this.#concurrency = options.concurrency ?? 4;
    this.#maxBacklog = options.maxBacklog ?? 1000;
    this.#spamBurst = options.spamBurst ?? 25;
    this.#spamRefillMs = options.spamRefillMs ?? 300_000;
    this.#now = options.now ?? Date.now;
    this.#onRecord = options.onRecord;
  }

  /** Records an event; a repeat within the window increments the existing Event's count. */
  record(pod: InvolvedPod, type: EventType, reason: string, message: string): void {
    this.#onRecord?.(reason);
    try {
      this.#record(pod, type, reason, truncate(message));
    } catch (err) {
      this.stats.failed++;
      this.#log.warn("Event not recorded", { reason, err });
    }
  }

  #record(pod: InvolvedPod, type: EventType, reason: string, message: string): void {
    if (this.#closed) {
      this.stats.dropped++;
      return;
    }
    if (this.#backlog >= this.#maxBacklog) {
      this.stats.dropped++;
      this.#log.warn("Event dropped: too many events waiting to be written", {
        pod: objectKey(pod.namespace, pod.name),
        reason,
        backlog: this.#backlog,
      });
      return;
    }
    const now = this.#now();
    if (!this.#takeToken(pod.uid, now)) {
      this.stats.dropped++;
      this.#log.debug("Event dropped: too many events for this pod", {
        pod: objectKey(pod.namespace, pod.name),
        reason,
      });
      return;
    }
    const key = `${pod.uid}\u0000${type}\u0000${reason}\u0000${message}`;
    let entry = this.#entries.get(key);
    if (entry && now - entry.lastSeen > this.#window) entry = undefined;
    if (entry) {
      this.#entries.delete(key); // re-insert: most recently used last
    } else {
      entry = {
        namespace: pod.namespace,
        count: 0,
        written: 0,
        firstTimestamp: rfc3339(now),
        lastTimestamp: rfc3339(now),
        lastSeen: now,
        chain: Promise.resolve(),
      };
    }
    this.#entries.set(key, entry);
    while (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
    }
    entry.count++;
    entry.lastSeen = now;
    entry.lastTimestamp = rfc3339(now);
    const e = entry;
    this.#backlog++;
    const task = e.chain.then(() => this.#limited(() => this.#write(e, pod, type, reason, message)))
      .catch((err) => {
        this.stats.failed++;
        this.#log.warn("Event not recorded", { reason, err });
      })
      .finally(() => {
        this.#backlog--;
        this.#pending.delete(task);
      });
    e.chain = task;
    this.#pending.add(task);
  }

  /** client-go's spam filter: a token bucket per pod. */
  #takeToken(uid: string, now: number): boolean {
    let bucket = this.#buckets.get(uid);
    if (bucket) {
      this.#buckets.delete(uid);
      const refill = Math.floor((now - bucket.at) / this.#spamRefillMs);
      if (refill > 0) {
        bucket.tokens = Math.min(this.#spamBurst, bucket.tokens + refill);
        bucket.at += refill * this.#spamRefillMs;
      }
    } else {
      bucket = { tokens: this.#spamBurst, at: now };
    }
    this.#buckets.set(uid, bucket);
    while (this.#buckets.size > this.#maxEntries) {
      this.#buckets.delete(this.#buckets.keys().next().value as string);
    }
    if (bucket.tokens <= 0) return false;
    bucket.tokens--;
    return true;
  }

  async #limited(fn: () => Promise<void>): Promise<void> {
    while (this.#active >= this.#concurrency) {
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    }
    this.#active++;
    try {
      await fn();
    } finally {
      this.#active--;
      this.#waiting.shift()?.();
    }
  }

  async #write(
    e: Entry,
    pod: InvolvedPod,
    type: EventType,
    reason: string,
    message: string,
  ): Promise<void> {
    if (e.written >= e.count) return; // a later write already covered this occurrence
    const count = e.count;
    const fields = { pod: objectKey(pod.namespace, pod.name), reason, count };
    if (e.name !== undefined) {
      try {
        await this.#client.json(
          "PATCH",
          `/api/v1/namespaces/${encodeURIComponent(e.namespace)}/events/${
            encodeURIComponent(e.name)
          }`,
          {
            body: { count, lastTimestamp: e.lastTimestamp },
            contentType: "application/merge-patch+json",
          },
        );
        e.written = count;
        this.stats.patched++;
        this.#log.debug("Event updated", fields);
        return;
      } catch (err) {
        if (!(err instanceof KubeApiError && err.status === 404)) throw err;
        e.name = undefined; // expired (event TTL): create a new one
      }
    }
    const name = `${pod.name}.${this.#eventSuffix()}`;
    const event = {
      apiVersion: "v1",
      kind: "Event",
      metadata: { name, namespace: pod.namespace },
      involvedObject: {
        kind: "Pod",
        apiVersion: "v1",
        namespace: pod.namespace,
        name: pod.name,
        uid: pod.uid,
        ...(pod.resourceVersion ? { resourceVersion: pod.resourceVersion } : {}),
      },
      reason,
      message,
      type,
      source: { component: this.#component, host: this.#nodeName },
      firstTimestamp: e.firstTimestamp,
      lastTimestamp: e.lastTimestamp,
      count,
      reportingComponent: this.#component,
      reportingInstance: this.#nodeName,
    };
    await this.#client.json(
      "POST",
      `/api/v1/namespaces/${encodeURIComponent(pod.namespace)}/events`,
      { body: event },
    );
    e.name = name;
    e.written = count;
    this.stats.created++;
    this.#log.debug("Event created", fields);
  }

  /** A unique suffix like client-go's `%x` of UnixNano. */
  #eventSuffix(): string {
    const nanos = BigInt(this.#now()) * 1_000_000n + BigInt(this.#seq++ % 1_000_000);
    return nanos.toString(16);
  }

  /** Resolves when every event recorded so far has been written (or failed). */
  async flush(): Promise<void> {
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }

  /** Stops accepting events and waits for the backlog to be written. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.flush();
  }
}
