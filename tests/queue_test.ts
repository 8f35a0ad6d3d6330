import assert from "node:assert/strict";
import { ManualClock } from "../lib/base/clock.ts";
import { ControllerMetrics } from "../lib/observe/controller_metrics.ts";
import { WorkQueue } from "../lib/work_queue/queue.ts";
import { type WorkQueueOptions } from "../lib/work_queue/queue_options.ts";
import {
  DONE,
  type ReconcileOutcome,
  requeue,
  requeueAfter,
  waitFor,
} from "../lib/work_queue/outcome.ts";
import { Logger } from "../lib/base/log.ts";

const quiet = new Logger({ level: "error", sink: () => {} });

/** Lets queued microtasks and one macrotask turn run (never used to measure time). */
const tick = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

function options(overrides: Partial<WorkQueueOptions> = {}): WorkQueueOptions {
  return { concurrency: 1, baseDelayMs: 10, maxDelayMs: 1000, jitter: 0, log: quiet, ...overrides };
}

/** Runs the manual clock to each due timer in turn until the queue settles or `limit` steps. */
async function settle(queue: WorkQueue, clock: ManualClock, limit = 100): Promise<void> {
  for (let i = 0; i < limit; i++) {
    await queue.idle();
    const due = clock.nextDue();
    if (due === undefined) return;
    clock.advance(due - clock.now());
  }
  throw new Error(`queue did not settle within ${limit} timer steps`);
}

/** A gate a handler can wait on, with a signal that the handler reached it. */
class Gate {
  readonly #open = Promise.withResolvers<void>();
  readonly #reached = Promise.withResolvers<void>();
  /** Called by the handler: signals arrival, then waits for release. */
  pass(): Promise<void> {
    this.#reached.resolve();
    return this.#open.promise;
  }
  /** Resolves when a handler reached the gate. */
  reached(): Promise<void> {
    return this.#reached.promise;
  }
  release(): void {
    this.#open.resolve();
  }
}

Deno.test("a key waiting to run is queued once however often it is added", async () => {
  const runs: string[] = [];
  const queue = new WorkQueue((key) => {
    runs.push(key);
    return Promise.resolve();
  }, options());
  queue.add("ns/a");
  queue.add("ns/a");
  queue.add("ns/b");
  queue.add("ns/a");
  assert.equal(queue.length, 2);
  queue.start();
  await queue.idle();
  assert.deepEqual(runs, ["ns/a", "ns/b"]);
  assert.equal(queue.length, 0);
  await queue.shutdown(0);
});

Deno.test("a key added while it runs runs exactly once more, never twice at once", async () => {
  const gate = new Gate();
  let runs = 0;
  let running = 0;
  let overlap = false;
  const queue = new WorkQueue(async () => {
    running++;
    if (running > 1) overlap = true;
    runs++;
    if (runs === 1) await gate.pass();
    running--;
  }, options({ concurrency: 4 }));
  queue.start();
  queue.add("ns/a");
  await gate.reached();
  queue.add("ns/a");
  queue.add("ns/a");
  await tick();
  assert.equal(runs, 1, "the second add must wait for the first run");
  assert.equal(queue.inFlight, 1);
  gate.release();
  await queue.idle();
  assert.equal(runs, 2);
  assert.equal(overlap, false);
  await queue.shutdown(0);
});

Deno.test("never more than `concurrency` keys run at once, and every key runs", async () => {
  const limit = 3;
  const keys = Array.from({ length: 10 }, (_, i) => `ns/p${i}`);
  const gates = new Map(keys.map((k) => [k, new Gate()]));
  let current = 0;
  let peak = 0;
  const done: string[] = [];
  const queue = new WorkQueue(async (key) => {
    current++;
    peak = Math.max(peak, current);
    await gates.get(key)!.pass();
    current--;
    done.push(key);
  }, options({ concurrency: limit }));
  for (const k of keys) queue.add(k);
  queue.start();
  for (let i = 0; i < keys.length; i++) {
    // Wait until the next key in line has started, then give the queue room to over-start.
    await gates.get(keys[Math.min(i + limit - 1, keys.length - 1)]!)!.reached();
    await tick();
    assert.ok(queue.inFlight <= limit, `inFlight=${queue.inFlight} exceeds ${limit}`);
    assert.equal(queue.inFlight, Math.min(limit, keys.length - i));
    gates.get(keys[i]!)!.release();
  }
  await queue.idle();
  assert.equal(peak, limit);
  assert.deepEqual(done, keys);
  await queue.shutdown(0);
});

Deno.test("a failing key is retried with capped exponential backoff until it succeeds", async () => {
  const clock = new ManualClock();
  const attempts: number[] = [];
  const queue = new WorkQueue((key) => {
    attempts.push(clock.now());
    if (attempts.length <= 5) return Promise.reject(new Error(`${key} not ready`));
    return Promise.resolve();
  }, options({ clock, baseDelayMs: 10, maxDelayMs: 60 }));
  queue.add("ns/a");
  queue.start();
  await settle(queue, clock);
  assert.equal(attempts.length, 6, "five failures and one success");
  const gaps = attempts.slice(1).map((t, i) => t - attempts[i]!);
  assert.deepEqual(gaps, [10, 20, 40, 60, 60]);
  assert.equal(queue.failures("ns/a"), 0, "success resets the failure count");
  assert.equal(clock.pending, 0);
  await queue.shutdown(0);
});

Deno.test("a key that always fails is never dropped", async () => {
  const clock = new ManualClock();
  let attempts = 0;
  const queue = new WorkQueue(() => {
    attempts++;
    throw new Error("synchronous failure");
  }, options({ clock, baseDelayMs: 5, maxDelayMs: 40 }));
  queue.add("ns/a");
  queue.start();
  for (let i = 0; i < 30; i++) {
    await queue.idle();
    assert.equal(clock.pending, 1, "one retry timer for the key");
    clock.advance(clock.nextDue()! - clock.now());
  }
  await queue.idle();
  assert.equal(attempts, 31);
  assert.equal(queue.failures("ns/a"), 31);
  await queue.shutdown(0);
  assert.equal(clock.pending, 0, "shutdown clears the retry timer");
});

Deno.test("jitter shortens a retry delay by up to its fraction", async () => {
  const clock = new ManualClock();
  const attempts: number[] = [];
  const queue = new WorkQueue(() => {
    attempts.push(clock.now());
    return Promise.reject(new Error("no"));
  }, options({ clock, baseDelayMs: 100, maxDelayMs: 1000, jitter: 0.5, random: () => 0.5 }));
  queue.add("ns/a");
  queue.start();
  for (let i = 0; i < 3; i++) {
    await queue.idle();
    clock.advance(clock.nextDue()! - clock.now());
  }
  await queue.idle();
  const gaps = attempts.slice(1).map((t, i) => t - attempts[i]!);
  // delay × (1 − 0.5 × 0.5)
  assert.deepEqual(gaps, [75, 150, 300]);
  await queue.shutdown(0);
});

Deno.test("requeueAfter runs the key again that much later", async () => {
  const clock = new ManualClock();
  const attempts: number[] = [];
  const queue = new WorkQueue((): Promise<ReconcileOutcome> => {
    attempts.push(clock.now());
    return Promise.resolve(attempts.length < 3 ? requeueAfter(250) : DONE);
  }, options({ clock }));
  queue.add("ns/a");
  queue.start();
  await settle(queue, clock);
  assert.deepEqual(attempts, [0, 250, 500]);
  assert.equal(clock.pending, 0);
  await queue.shutdown(0);
});

Deno.test("delayed adds keep one timer per key and the earliest wins", async () => {
  const clock = new ManualClock();
  const attempts: [string, number][] = [];
  const queue = new WorkQueue((key) => {
    attempts.push([key, clock.now()]);
    return Promise.resolve();
  }, options({ clock, concurrency: 2 }));
  queue.start();
  queue.addAfter("ns/a", 300);
  queue.addAfter("ns/a", 100);
  queue.addAfter("ns/a", 200);
  queue.addAfter("ns/b", 150);
  assert.equal(clock.pending, 2);
  await settle(queue, clock);
  assert.deepEqual(attempts, [["ns/a", 100], ["ns/b", 150]]);
  queue.addAfter("ns/c", 0);
  await queue.idle();
  assert.deepEqual(attempts.at(-1), ["ns/c", 150], "a delay of 0 is an add");
  await queue.shutdown(0);
});

Deno.test("every add cuts a backoff wait short, however often; failures still count", async () => {
  const clock = new ManualClock();
  const attempts: number[] = [];
  const queue = new WorkQueue(() => {
    attempts.push(clock.now());
    return Promise.reject(new Error("NAD missing"));
  }, options({ clock, baseDelayMs: 1000, maxDelayMs: 100_000 }));
  queue.add("ns/a");
  queue.start();
  await queue.idle();
  assert.deepEqual(attempts, [0]);

  // Each change may be the fix: it runs now, the first, the second and the third time.
  for (const at of [100, 200, 300]) {
    clock.advance(at - clock.now());
    queue.add("ns/a");
    await queue.idle();
    assert.equal(attempts.at(-1), at);
  }
  assert.deepEqual(attempts, [0, 100, 200, 300]);
  assert.equal(queue.failures("ns/a"), 4, "adds never reset the failure count");
  assert.equal(clock.nextDue(), 300 + 8000, "the retry after the fourth failure waits 8 s");
  await queue.shutdown(0);
});

Deno.test("a resync while the key waits in backoff is folded into the pending retry", async () => {
  const clock = new ManualClock();
  const attempts: number[] = [];
  const queue = new WorkQueue(() => {
    attempts.push(clock.now());
    return Promise.reject(new Error("NAD missing"));
  }, options({ clock, baseDelayMs: 1000, maxDelayMs: 100_000 }));
  queue.add("ns/a");
  queue.start();
  await queue.idle();
  clock.advance(100);
  queue.resync("ns/a"); // an echo of the pod's own status write, a periodic resync…
  queue.resync("ns/a");
  await queue.idle();
  assert.deepEqual(attempts, [0], "no extra run");
  assert.equal(clock.nextDue(), 1000, "the retry keeps its time");

  for (const due of [1000, 3000]) {
    clock.advance(due - clock.now());
    await queue.idle();
  }
  assert.deepEqual(attempts, [0, 1000, 3000], "backoff grows: 1 s, then 2 s");
  await queue.shutdown(0);
});

Deno.test("a resync of an idle key runs it at once", async () => {
  const clock = new ManualClock();
  let runs = 0;
  const queue = new WorkQueue(() => {
    runs++;
    return Promise.resolve();
  }, options({ clock }));
  queue.start();
  queue.resync("ns/a");
  await queue.idle();
  assert.equal(runs, 1);
  await queue.shutdown(0);
});

Deno.test("a change after resyncs and an own-write echo still runs at once (late NAD)", async () => {
  // The defect this guards: the echo of a partial pass's status write used up the one cut a
  // backoff wait allowed, and the NAD's creation then waited for the whole (long) backoff.
  const clock = new ManualClock();
  const attempts: number[] = [];
  let nadExists = false;
  const gate = new Gate();
  const queue = new WorkQueue(async () => {
    attempts.push(clock.now());
    if (attempts.length === 1) await gate.pass(); // the partial pass, writing status
    if (!nadExists) throw new Error("NAD missing");
  }, options({ clock, baseDelayMs: 60_000, maxDelayMs: 600_000 }));
  queue.add("ns/a");
  queue.start();
  await gate.reached();
  queue.resync("ns/a"); // the status write's echo arrives while the pass runs
  gate.release();
  await queue.idle();
  assert.deepEqual(attempts, [0], "the echo does not re-run a failing pass");
  clock.advance(5_000);
  queue.resync("ns/a"); // periodic resync
  clock.advance(5_000);
  nadExists = true;
  queue.add("ns/a"); // the NAD's creation
  await queue.idle();
  assert.deepEqual(attempts, [0, 10_000]);
  assert.equal(queue.failures("ns/a"), 0, "the success reset the backoff");
  assert.equal(clock.nextDue(), undefined, "no retry left behind");
  await queue.shutdown(0);
});

Deno.test("a success cancels the pending retry but keeps a requested later run", async () => {
  const clock = new ManualClock();
  const attempts: number[] = [];
  let fail = true;
  const queue = new WorkQueue(() => {
    attempts.push(clock.now());
    return fail ? Promise.reject(new Error("no")) : Promise.resolve();
  }, options({ clock, baseDelayMs: 1000 }));
  queue.start();
  queue.addAfter("ns/a", 5000);
  queue.add("ns/a");
  await queue.idle();
  assert.equal(clock.nextDue(), 1000, "retry first");
  fail = false;
  queue.add("ns/a");
  await queue.idle();
  assert.equal(clock.nextDue(), 5000, "the retry is gone, the addAfter stays");
  await settle(queue, clock);
  assert.deepEqual(attempts, [0, 0, 5000]);
  await queue.shutdown(0);
});

Deno.test("an add during a failing run re-runs it once, then backoff applies", async () => {
  const clock = new ManualClock();
  const gate = new Gate();
  let attempts = 0;
  const queue = new WorkQueue(async () => {
    attempts++;
    if (attempts === 1) await gate.pass();
    throw new Error("no");
  }, options({ clock, baseDelayMs: 1000, maxDelayMs: 100_000 }));
  queue.add("ns/a");
  queue.start();
  await gate.reached();
  queue.add("ns/a");
  gate.release();
  await queue.idle();
  assert.equal(attempts, 2, "the dirty key re-ran at once");
  assert.equal(clock.nextDue(), 2000, "then waits for its second backoff");
  await queue.shutdown(0);
});

Deno.test("a resync during a failing run waits for the retry", async () => {
  const clock = new ManualClock();
  const gate = new Gate();
  let attempts = 0;
  const queue = new WorkQueue(async () => {
    attempts++;
    if (attempts === 1) await gate.pass();
    throw new Error("no");
  }, options({ clock, baseDelayMs: 1000, maxDelayMs: 100_000 }));
  queue.add("ns/a");
  queue.start();
  await gate.reached();
  queue.resync("ns/a");
  gate.release();
  await queue.idle();
  assert.equal(attempts, 1, "no re-run for a resync");
  assert.equal(clock.nextDue(), 1000);
  await queue.shutdown(0);
});

Deno.test("a resync during a successful run runs the key once more", async () => {
  const clock = new ManualClock();
  const gate = new Gate();
  let attempts = 0;
  const queue = new WorkQueue(async () => {
    attempts++;
    if (attempts === 1) await gate.pass();
  }, options({ clock }));
  queue.add("ns/a");
  queue.start();
  await gate.reached();
  queue.resync("ns/a");
  gate.release();
  await queue.idle();
  assert.equal(attempts, 2);
  await queue.shutdown(0);
});

Deno.test("shutdown drops waiting keys, waits for runs in flight, and ignores later adds", async () => {
  const clock = new ManualClock();
  const gate = new Gate();
  const runs: string[] = [];
  const queue = new WorkQueue(async (key) => {
    runs.push(key);
    if (key === "ns/a") await gate.pass();
  }, options({ clock }));
  queue.add("ns/a");
  queue.add("ns/b");
  queue.addAfter("ns/c", 100);
  queue.start();
  await gate.reached();
  const stopping = queue.shutdown(10_000);
  queue.add("ns/d");
  queue.addAfter("ns/e", 5);
  assert.equal(queue.length, 0);
  gate.release();
  assert.deepEqual(await stopping, { drained: true });
  assert.deepEqual(runs, ["ns/a"]);
  assert.equal(clock.pending, 0, "no timer is left behind");
  await queue.idle();
  assert.throws(() => queue.start(), /after shutdown/);
});

Deno.test("shutdown gives up at its deadline when a run does not end", async () => {
  const clock = new ManualClock();
  const gate = new Gate();
  const queue = new WorkQueue(() => gate.pass(), options({ clock }));
  queue.add("ns/stuck");
  queue.start();
  await gate.reached();
  const stopping = queue.shutdown(3000);
  clock.advance(3000);
  assert.deepEqual(await stopping, { drained: false });
  gate.release();
  await queue.idle();
  assert.equal(queue.inFlight, 0);
});

Deno.test("real timers: retries finish and shutdown leaves no timer behind", async () => {
  let attempts = 0;
  const queue = new WorkQueue(() => {
    attempts++;
    return attempts < 3 ? Promise.reject(new Error("no")) : Promise.resolve();
  }, options({ baseDelayMs: 1, maxDelayMs: 2 }));
  queue.add("ns/a");
  queue.start();
  await queue.idle(Infinity);
  assert.equal(attempts, 3);

  const failing = new WorkQueue(
    () => Promise.reject(new Error("no")),
    options({ baseDelayMs: 60_000, maxDelayMs: 60_000 }),
  );
  failing.add("ns/b");
  failing.start();
  await failing.idle();
  assert.equal(failing.failures("ns/b"), 1);
  // The sanitizer fails this test if the 60 s retry timer survives shutdown.
  assert.deepEqual(await failing.shutdown(1000), { drained: true });
  await queue.shutdown(1000);
});

Deno.test("idle ignores delayed keys beyond its horizon", async () => {
  const clock = new ManualClock();
  const queue = new WorkQueue(() => Promise.resolve(), options({ clock }));
  queue.start();
  queue.addAfter("ns/a", 500);
  await queue.idle();
  await queue.idle(499);
  let settled = false;
  const all = queue.idle(500).then(() => {
    settled = true;
  });
  await tick();
  assert.equal(settled, false, "a key due within the horizon keeps idle waiting");
  clock.advance(500);
  await all;
  assert.equal(settled, true);
  await queue.shutdown(0);
});

Deno.test("options out of range are refused with the option's name", () => {
  const h = () => Promise.resolve();
  assert.throws(() => new WorkQueue(h, options({ concurrency: 0 })), /concurrency=0/);
  assert.throws(() => new WorkQueue(h, options({ concurrency: 1.5 })), /concurrency=1.5/);
  assert.throws(() => new WorkQueue(h, options({ baseDelayMs: 0 })), /baseDelayMs=0/);
  assert.throws(
    () => new WorkQueue(h, options({ baseDelayMs: 100, maxDelayMs: 10 })),
    /maxDelayMs=10/,
  );
  assert.throws(() => new WorkQueue(h, options({ jitter: 2 })), /jitter=2/);
  const queue = new WorkQueue(h, options());
  assert.throws(() => queue.addAfter("ns/a", NaN), /addAfter/);
});

Deno.test("the queue reports workqueue_* and controller_runtime_* metrics", async () => {
  const clock = new ManualClock();
  const metrics = new ControllerMetrics({ controller: "pods" });
  const gate = new Gate();
  let attempts = 0;
  const queue = new WorkQueue(async () => {
    attempts++;
    if (attempts === 1) {
      await gate.pass();
      throw new Error("no");
    }
    return attempts === 2 ? requeueAfter(10_000) : DONE;
  }, options({ clock, concurrency: 2, metrics: metrics.queueMetrics("pod-networks") }));
  queue.add("ns/a");
  queue.add("ns/a");
  queue.start();
  await gate.reached();
  clock.advance(2500);
  const during = metrics.registry.render();
  const q = `{name="pod-networks",controller="pods"}`;
  assert.match(during, new RegExp(`^workqueue_longest_running_processor_seconds${q} 2.5$`, "m"));
  assert.match(during, new RegExp(`^workqueue_unfinished_work_seconds${q} 2.5$`, "m"));
  assert.match(during, /^controller_runtime_active_workers\{controller="pods"\} 1$/m);
  assert.match(during, /^controller_runtime_max_concurrent_reconciles\{controller="pods"\} 2$/m);
  gate.release();
  await queue.idle();
  clock.advance(10); // the retry
  await queue.idle();
  clock.advance(10_000); // the requeue
  await queue.idle();
  assert.equal(attempts, 3);
  const after = metrics.registry.render();
  const line = (name: string) => new RegExp(`^${name} (\\S+)$`, "m").exec(after)?.[1];
  assert.equal(line(`workqueue_adds_total\\{name="pod-networks",controller="pods"\\}`), "3");
  assert.equal(line(`workqueue_retries_total\\{name="pod-networks",controller="pods"\\}`), "1");
  assert.equal(line(`workqueue_depth\\{name="pod-networks",controller="pods"\\}`), "0");
  assert.equal(
    line(`workqueue_work_duration_seconds_count\\{name="pod-networks",controller="pods"\\}`),
    "3",
  );
  const total = (result: string) =>
    line(`controller_runtime_reconcile_total\\{controller="pods",result="${result}"\\}`);
  assert.equal(total("success"), "1");
  assert.equal(total("error"), "1");
  assert.equal(total("requeue_after"), "1");
  assert.equal(line(`controller_runtime_reconcile_errors_total\\{controller="pods"\\}`), "1");
  assert.equal(line(`controller_runtime_reconcile_time_seconds_sum\\{controller="pods"\\}`), "2.5");
  assert.equal(line(`controller_runtime_active_workers\\{controller="pods"\\}`), "0");
  await queue.shutdown(0);
});

Deno.test("requeue polls with the key's backoff, without an error, and counts as a retry", async () => {
  const clock = new ManualClock();
  const metrics = new ControllerMetrics({ controller: "pods" });
  const lines: Record<string, unknown>[] = [];
  const attempts: number[] = [];
  const queue = new WorkQueue((): Promise<ReconcileOutcome> => {
    attempts.push(clock.now());
    return Promise.resolve(attempts.length <= 3 ? requeue("the pod sandbox") : DONE);
  }, {
    ...options({ clock, metrics: metrics.queueMetrics("q") }),
    log: new Logger({ level: "debug", sink: (line) => lines.push(JSON.parse(line)) }),
  });
  queue.add("ns/a");
  queue.start();
  await settle(queue, clock);
  assert.deepEqual(attempts, [0, 10, 30, 70], "10 · 2^(n-1), as for failures");
  assert.equal(queue.failures("ns/a"), 0, "the final success resets the count");
  assert.deepEqual(lines.filter((l) => l.level === "warn"), [], "no warning for a poll");
  assert.equal(lines.filter((l) => l.msg === "Requeued").length, 3);
  const text = metrics.registry.render();
  assert.match(
    text,
    /^controller_runtime_reconcile_total\{controller="pods",result="requeue"\} 3$/m,
  );
  assert.match(text, /^controller_runtime_reconcile_errors_total\{controller="pods"\} 0$/m);
  assert.match(text, /^workqueue_retries_total\{name="q",controller="pods"\} 3$/m);
  await queue.shutdown(0);
});

Deno.test("a requeue is cut short by an add and keeps waiting through a resync", async () => {
  const clock = new ManualClock();
  const attempts: number[] = [];
  const queue = new WorkQueue((): Promise<ReconcileOutcome> => {
    attempts.push(clock.now());
    return Promise.resolve(requeue("the pod sandbox"));
  }, options({ clock, baseDelayMs: 1000, maxDelayMs: 1000 }));
  queue.add("ns/a");
  queue.start();
  await queue.idle();
  queue.resync("ns/a");
  await queue.idle();
  assert.deepEqual(attempts, [0], "the resync is folded into the pending poll");
  clock.advance(100);
  queue.add("ns/a");
  await queue.idle();
  assert.deepEqual(attempts, [0, 100], "an add runs it at once");
  await queue.shutdown(0);
});

Deno.test("a wait outcome sets no timer; only another add or resync runs the key", async () => {
  const clock = new ManualClock();
  const metrics = new ControllerMetrics({ controller: "pods" });
  let runs = 0;
  const queue = new WorkQueue((): Promise<ReconcileOutcome> => {
    runs++;
    return Promise.resolve(waitFor("NetworkAttachmentDefinition ns/x"));
  }, options({ clock, metrics: metrics.queueMetrics("q") }));
  queue.add("ns/a");
  queue.start();
  await settle(queue, clock);
  assert.equal(runs, 1);
  assert.equal(clock.pending, 0, "no retry timer");
  assert.equal(queue.failures("ns/a"), 0);
  queue.resync("ns/a");
  await queue.idle();
  assert.equal(runs, 2, "a resync of a waiting key runs it");
  assert.match(
    metrics.registry.render(),
    /^controller_runtime_reconcile_total\{controller="pods",result="success"\} 2$/m,
  );
  await queue.shutdown(0);
});

Deno.test("the error policy decides: backoff retries, terminal waits for the input to change", async () => {
  const clock = new ManualClock();
  const metrics = new ControllerMetrics({ controller: "pods" });
  const lines: Record<string, unknown>[] = [];
  const runs: string[] = [];
  const queue = new WorkQueue((key) => {
    runs.push(key);
    return Promise.reject(new Error(key === "ns/bad" ? "bad input" : "flaky"));
  }, {
    ...options({ clock, metrics: metrics.queueMetrics("q") }),
    errorPolicy: (_key, err) => ({
      action: (err as Error).message === "bad input" ? "terminal" : "backoff",
    }),
    log: new Logger({ level: "warn", sink: (line) => lines.push(JSON.parse(line)) }),
  });
  queue.add("ns/bad");
  queue.add("ns/flaky");
  queue.start();
  await queue.idle();
  clock.advance(10);
  await queue.idle();
  assert.deepEqual(runs, ["ns/bad", "ns/flaky", "ns/flaky"], "only the transient one is retried");
  assert.equal(queue.failures("ns/bad"), 0, "a terminal error forgets the backoff");
  const failed = lines.filter((l) => l.msg === "Reconcile failed");
  assert.deepEqual(failed.map((l) => [l.key, l.retry ?? l.retryInMs]), [
    ["ns/bad", "when its input changes"],
    ["ns/flaky", 10],
    ["ns/flaky", 20],
  ]);
  queue.add("ns/bad");
  await queue.idle();
  assert.equal(runs.filter((k) => k === "ns/bad").length, 2, "an add runs it again");
  assert.match(
    metrics.registry.render(),
    /^controller_runtime_reconcile_total\{controller="pods",result="error"\} 4$/m,
  );
  await queue.shutdown(0);
});

Deno.test("a failure the policy calls quiet is retried like any other, logged at info", async () => {
  const clock = new ManualClock();
  const lines: Record<string, unknown>[] = [];
  let runs = 0;
  const queue = new WorkQueue(() => {
    runs++;
    return runs === 1 ? Promise.reject(new Error("409 Conflict")) : Promise.resolve(DONE);
  }, {
    ...options({ clock }),
    errorPolicy: () => ({ action: "backoff", quiet: true }),
    log: new Logger({ level: "info", sink: (line) => lines.push(JSON.parse(line)) }),
  });
  queue.add("ns/a");
  queue.start();
  await queue.idle();
  clock.advance(10);
  await queue.idle();
  assert.equal(runs, 2);
  assert.deepEqual(
    lines.filter((l) => l.msg === "Reconcile failed").map((l) => [l.level, l.retryInMs]),
    [["info", 10]],
  );
  await queue.shutdown(0);
});
