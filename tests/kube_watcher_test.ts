/**
 * The watcher state machine and the reflector, driven by an injected transport and an
 * injected sleep: no server, no clock.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { Backoff } from "../lib/base/backoff.ts";
import { KubeApiError } from "../lib/kube/client.ts";
import { Reflector } from "../lib/kube/reflector.ts";
import { type ListWatchTransport, Watcher, WatchError } from "../lib/kube/watcher.ts";
import { errorText } from "../lib/base/log.ts";
import type { ListResult, WatchEvent } from "../lib/kube/types.ts";

type Obj = { metadata: { namespace: string; name: string; resourceVersion: string }; v?: string };

const obj = (name: string, rv: string, v?: string): Obj => ({
  metadata: { namespace: "ns", name, resourceVersion: rv },
  ...(v === undefined ? {} : { v }),
});

/** A watch stream the test feeds by hand; it ends with the signal's reason on abort. */
class Stream<T> implements AsyncIterable<WatchEvent<T>> {
  readonly #queue: (IteratorResult<WatchEvent<T>> | { error: unknown })[] = [];
  #wake: (() => void) | undefined;
  readonly signal: AbortSignal;
  constructor(signal: AbortSignal) {
    this.signal = signal;
    signal.addEventListener("abort", () => this.#wake?.());
  }
  push(event: WatchEvent<T>): void {
    this.#queue.push({ value: event, done: false });
    this.#wake?.();
  }
  end(): void {
    this.#queue.push({ value: undefined, done: true });
    this.#wake?.();
  }
  fail(error: unknown): void {
    this.#queue.push({ error });
    this.#wake?.();
  }
  async *[Symbol.asyncIterator](): AsyncIterator<WatchEvent<T>> {
    while (true) {
      if (this.signal.aborted) throw this.signal.reason;
      const item = this.#queue.shift();
      if (!item) {
        await new Promise<void>((r) => this.#wake = r);
        continue;
      }
      if ("error" in item) throw item.error;
      if (item.done) return;
      yield item.value;
    }
  }
}

/** A transport whose list answers and watch streams are scripted by the test. */
class FakeTransport<T> implements ListWatchTransport<T> {
  readonly listAnswers: (ListResult<T> | Error)[] = [];
  listCalls = 0;
  readonly watchCalls: string[] = [];
  readonly streams: Stream<T>[] = [];
  #streamWaiters: (() => void)[] = [];
  list(_signal: AbortSignal): Promise<ListResult<T>> {
    this.listCalls++;
    const answer = this.listAnswers.shift();
    if (!answer) return Promise.reject(new Error("no list answer scripted"));
    return answer instanceof Error ? Promise.reject(answer) : Promise.resolve(answer);
  }
  watch(resourceVersion: string, signal: AbortSignal): AsyncIterable<WatchEvent<T>> {
    this.watchCalls.push(resourceVersion);
    const s = new Stream<T>(signal);
    this.streams.push(s);
    for (const w of this.#streamWaiters.splice(0)) w();
    return s;
  }
  /** The n-th stream (0-based), waiting until the watcher opened it. */
  async stream(n: number): Promise<Stream<T>> {
    while (this.streams.length <= n) await new Promise<void>((r) => this.#streamWaiters.push(r));
    return this.streams[n]!;
  }
}

const INACTIVITY = 77_777;

/** A sleep that records delays: backoff sleeps resolve at once, inactivity timers on demand. */
class FakeSleep {
  readonly delays: number[] = [];
  #inactivity: (() => void)[] = [];
  readonly sleep = (ms: number, signal: AbortSignal): Promise<void> => {
    if (ms !== INACTIVITY) {
      this.delays.push(ms);
      return signal.aborted ? Promise.reject(signal.reason) : Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const fire = () => resolve();
      this.#inactivity.push(fire);
      signal.addEventListener("abort", () => {
        this.#inactivity = this.#inactivity.filter((f) => f !== fire);
        reject(signal.reason);
      }, { once: true });
    });
  };
  /** Fires the pending inactivity timers; returns how many there were. */
  fireInactivity(): number {
    const fired = this.#inactivity.splice(0);
    for (const f of fired) f();
    return fired.length;
  }
}

function setup() {
  const transport = new FakeTransport<Obj>();
  const sleeper = new FakeSleep();
  const clock = { now: 0 };
  const watcher = new Watcher<Obj>(transport, {
    versionOf: (o) => o.metadata.resourceVersion,
    name: "test",
    inactivityMs: INACTIVITY,
    sleep: sleeper.sleep,
    backoff: { initialMs: 100, maxMs: 1000, jitter: 0 },
    minStreamMs: 1000,
    now: () => clock.now,
  });
  return { transport, sleeper, watcher, clock, ac: new AbortController() };
}

Deno.test("watcher: Empty lists, InitListed opens a watch from the list's resourceVersion", async () => {
  const { transport, watcher, ac } = setup();
  transport.listAnswers.push({ items: [obj("a", "5")], resourceVersion: "10" });
  assert.deepEqual(watcher.state, { kind: "Empty" });
  const events = await watcher.step(ac.signal);
  assert.deepEqual(events, [{
    type: "restarted",
    objects: [obj("a", "5")],
    resourceVersion: "10",
  }]);
  assert.deepEqual(watcher.state, { kind: "InitListed", resourceVersion: "10" });
  assert.deepEqual(await watcher.step(ac.signal), []);
  assert.deepEqual(watcher.state, { kind: "Watching", resourceVersion: "10" });
  assert.deepEqual(transport.watchCalls, ["10"]);
  ac.abort();
});

Deno.test("watcher: events advance the resourceVersion, bookmarks too, and a stream end resumes from it", async () => {
  const { transport, watcher, ac } = setup();
  transport.listAnswers.push({ items: [], resourceVersion: "10" });
  await watcher.step(ac.signal);
  await watcher.step(ac.signal);
  const s = await transport.stream(0);
  s.push({ type: "ADDED", object: obj("a", "11") });
  assert.deepEqual(await watcher.step(ac.signal), [{ type: "applied", object: obj("a", "11") }]);
  s.push({ type: "MODIFIED", object: obj("a", "12", "x") });
  assert.deepEqual(await watcher.step(ac.signal), [{
    type: "applied",
    object: obj("a", "12", "x"),
  }]);
  s.push({ type: "BOOKMARK", object: { metadata: { resourceVersion: "20" } } });
  assert.deepEqual(await watcher.step(ac.signal), []);
  assert.equal(watcher.state.resourceVersion, "20");
  s.push({ type: "DELETED", object: obj("a", "21") });
  assert.deepEqual(await watcher.step(ac.signal), [{ type: "deleted", object: obj("a", "21") }]);
  s.end();
  assert.deepEqual(await watcher.step(ac.signal), []);
  assert.deepEqual(watcher.state, { kind: "InitListed", resourceVersion: "21" });
  await watcher.step(ac.signal);
  assert.deepEqual(transport.watchCalls, ["10", "21"]);
  assert.equal(transport.listCalls, 1, "a stream end re-watches without re-listing");
  ac.abort();
});

Deno.test("watcher: an ERROR event 410 Expired re-lists", async () => {
  const { transport, watcher, ac } = setup();
  transport.listAnswers.push({ items: [], resourceVersion: "10" });
  transport.listAnswers.push({ items: [obj("b", "40")], resourceVersion: "50" });
  await watcher.step(ac.signal);
  await watcher.step(ac.signal);
  const s = await transport.stream(0);
  s.push({
    type: "ERROR",
    object: {
      kind: "Status",
      code: 410,
      reason: "Expired",
      message: "too old resource version: 10 (30)",
    },
  });
  assert.deepEqual(await watcher.step(ac.signal), []);
  assert.deepEqual(watcher.state, { kind: "Empty" });
  assert.ok(s.signal.aborted, "the expired stream is closed");
  const events = await watcher.step(ac.signal);
  assert.equal(transport.listCalls, 2);
  assert.deepEqual(events, [{
    type: "restarted",
    objects: [obj("b", "40")],
    resourceVersion: "50",
  }]);
  await watcher.step(ac.signal);
  assert.deepEqual(transport.watchCalls, ["10", "50"]);
  ac.abort();
});

Deno.test("watcher: a 410 Gone answer to the watch request re-lists", async () => {
  const { transport, watcher, ac } = setup();
  transport.listAnswers.push({ items: [], resourceVersion: "10" });
  await watcher.step(ac.signal);
  await watcher.step(ac.signal);
  (await transport.stream(0)).fail(
    new KubeApiError("GET", "/api/v1/pods (watch)", 410, { reason: "Gone", code: 410 }),
  );
  assert.deepEqual(await watcher.step(ac.signal), []);
  assert.deepEqual(watcher.state, { kind: "Empty" });
  ac.abort();
});

Deno.test("watcher: an ERROR event that is not 410 throws and keeps the resourceVersion", async () => {
  const { transport, watcher, ac } = setup();
  transport.listAnswers.push({ items: [], resourceVersion: "10" });
  await watcher.step(ac.signal);
  await watcher.step(ac.signal);
  (await transport.stream(0)).push({
    type: "ERROR",
    object: { code: 500, reason: "InternalError", message: "boom" },
  });
  await assert.rejects(
    watcher.step(ac.signal),
    (err) => err instanceof WatchError && /InternalError boom/.test(errorText(err)),
  );
  assert.deepEqual(watcher.state, { kind: "InitListed", resourceVersion: "10" });
  ac.abort();
});

Deno.test("watcher: a quiet stream is aborted by the inactivity timer and re-watched from the same resourceVersion", async () => {
  const { transport, sleeper, watcher, ac } = setup();
  transport.listAnswers.push({ items: [], resourceVersion: "10" });
  await watcher.step(ac.signal);
  await watcher.step(ac.signal);
  const s = await transport.stream(0);
  s.push({ type: "BOOKMARK", object: { metadata: { resourceVersion: "15" } } });
  await watcher.step(ac.signal);
  const waiting = watcher.step(ac.signal); // nothing arrives
  await Promise.resolve();
  assert.equal(sleeper.fireInactivity(), 1);
  assert.deepEqual(await waiting, []);
  assert.ok(s.signal.aborted, "the quiet stream's request is aborted");
  assert.deepEqual(watcher.state, { kind: "InitListed", resourceVersion: "15" });
  await watcher.step(ac.signal);
  assert.deepEqual(transport.watchCalls, ["10", "15"]);
  assert.equal(transport.listCalls, 1);
  ac.abort();
});

Deno.test("watcher: run() backs off exponentially on errors and resets after a success", async () => {
  const { transport, sleeper, watcher, ac } = setup();
  const down = new Error("connection refused");
  transport.listAnswers.push(down, down, down, down, down);
  transport.listAnswers.push({ items: [obj("a", "1")], resourceVersion: "7" });
  const seen: string[] = [];
  for await (const e of watcher.run(ac.signal)) {
    seen.push(e.type);
    break;
  }
  assert.deepEqual(seen, ["restarted"]);
  assert.deepEqual(sleeper.delays, [100, 200, 400, 800, 1000]);
  assert.equal(watcher.backoff.failures, 0, "a successful list resets the backoff");
  assert.equal(transport.listCalls, 6);
});

Deno.test("watcher: run() re-watches at once after a stream ends, backing off only when it ended at once and empty", async () => {
  const { transport, sleeper, watcher, clock, ac } = setup();
  transport.listAnswers.push({ items: [], resourceVersion: "10" });
  const events: string[] = [];
  const done = (async () => {
    for await (const e of watcher.run(ac.signal)) events.push(e.type);
  })();
  (await transport.stream(0)).end(); // empty and at once: a failure, back off
  const s1 = await transport.stream(1);
  s1.push({ type: "ADDED", object: obj("a", "11") });
  s1.end(); // brought an event: normal
  const s2 = await transport.stream(2);
  clock.now += 300_000;
  s2.end(); // empty after a long time: the server's timeoutSeconds, normal
  const s3 = await transport.stream(3);
  assert.deepEqual(transport.watchCalls, ["10", "10", "11", "11"]);
  assert.deepEqual(sleeper.delays, [100]);
  ac.abort();
  await done;
  assert.ok(s3.signal.aborted, "stopping the run closes the open stream");
  assert.deepEqual(events, ["restarted", "applied"]);
});

Deno.test("reflector: a re-list reports changed, new and vanished objects, and syncs once", async () => {
  const { transport, watcher, ac } = setup();
  const reflector = new Reflector(watcher);
  const log: string[] = [];
  reflector.on("synced", () => log.push("synced"));
  reflector.on(
    "upsert",
    (o, old) =>
      log.push(
        `upsert ${o.metadata.name}@${o.metadata.resourceVersion} old=${
          old?.metadata.resourceVersion ?? "-"
        }`,
      ),
  );
  reflector.on(
    "delete",
    (o) => log.push(`delete ${o.metadata.name}@${o.metadata.resourceVersion}`),
  );
  transport.listAnswers.push({
    items: [obj("a", "1"), obj("b", "2"), obj("c", "3")],
    resourceVersion: "3",
  });
  transport.listAnswers.push({
    items: [obj("b", "9"), obj("d", "8")],
    resourceVersion: "9",
  });
  const running = reflector.run(ac.signal);
  await reflector.waitForSync();
  assert.ok(reflector.hasSynced());
  assert.deepEqual(reflector.keys().sort(), ["ns/a", "ns/b", "ns/c"]);
  const s = await transport.stream(0);
  s.push({ type: "MODIFIED", object: obj("c", "4") });
  s.push({ type: "DELETED", object: obj("a", "5") });
  s.push({ type: "ERROR", object: { code: 410, reason: "Expired" } });
  await transport.stream(1);
  ac.abort();
  await running;
  assert.deepEqual(log, [
    "upsert a@1 old=-",
    "upsert b@2 old=-",
    "upsert c@3 old=-",
    "synced",
    "upsert c@4 old=3",
    "delete a@5",
    "upsert b@9 old=2",
    "upsert d@8 old=-",
    "delete c@4",
  ]);
  assert.deepEqual(reflector.keys().sort(), ["ns/b", "ns/d"]);
  assert.equal(reflector.get("ns/b")?.metadata.resourceVersion, "9");
  assert.equal(reflector.get("ns/c"), undefined);
});

Deno.test("reflector: a throwing handler does not stop the cache", () => {
  const { watcher } = setup();
  const reflector = new Reflector(watcher);
  reflector.on("upsert", () => {
    throw new Error("handler bug");
  });
  const seen: string[] = [];
  reflector.on("upsert", (o) => seen.push(o.metadata.name));
  reflector.apply({ type: "applied", object: obj("a", "1") });
  reflector.apply({ type: "deleted", object: obj("a", "2") });
  assert.deepEqual(seen, ["a"]);
  assert.equal(reflector.size, 0);
});

Deno.test("backoff: delays grow by the factor, stay within the jitter band and the cap", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 1000 }),
      fc.integer({ min: 1, max: 100 }),
      fc.double({ min: 0, max: 1, noNaN: true }),
      fc.array(fc.double({ min: 0, max: 0.999, noNaN: true }), { minLength: 1, maxLength: 30 }),
      (initialMs, capFactor, jitter, randoms) => {
        const maxMs = initialMs * capFactor;
        let i = 0;
        const b = new Backoff({
          initialMs,
          maxMs,
          jitter,
          random: () => randoms[i++ % randoms.length]!,
        });
        for (let n = 0; n < randoms.length; n++) {
          const base = Math.min(maxMs, initialMs * 2 ** n);
          const d = b.next();
          assert.ok(
            d <= base + 0.5 && d >= base * (1 - jitter) - 0.5,
            `delay ${d} for base ${base}`,
          );
        }
        b.reset();
        assert.equal(b.failures, 0);
      },
    ),
  );
});
