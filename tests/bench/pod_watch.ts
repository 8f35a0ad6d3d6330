/**
 * A watch on the pods of one namespace, as a user's client sees them: keeps each pod's latest
 * annotations and tells when a pod first satisfies a condition, with the time the watch event
 * reached this process. Credentials come from a kubeconfig JSON file with embedded data.
 *
 * @module
 */

/** The parts of a Pod the bench reads. */
export interface WatchedPod {
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    resourceVersion: string;
    annotations?: Record<string, string>;
  };
}

interface Waiter {
  name: string;
  check: (pod: WatchedPod) => boolean;
  resolve: (at: number) => void;
}

interface KubeconfigJson {
  clusters: { cluster: { server: string; "certificate-authority-data": string } }[];
  users: { user: Record<string, string> }[];
}

const fromBase64 = (b64: string) =>
  new TextDecoder().decode(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)));

/** A running pod watch. */
export class PodWatch {
  readonly #server: string;
  readonly #namespace: string;
  readonly #client: Deno.HttpClient;
  readonly #pods = new Map<string, WatchedPod>();
  readonly #waiters = new Set<Waiter>();
  readonly #stop = new AbortController();
  #resourceVersion = "";
  #loop: Promise<void> = Promise.resolve();

  private constructor(server: string, namespace: string, client: Deno.HttpClient) {
    this.#server = server;
    this.#namespace = namespace;
    this.#client = client;
  }

  /** Lists then watches the pods of `namespace` with the admin kubeconfig at `kubeconfig`. */
  static async start(kubeconfig: string, namespace: string): Promise<PodWatch> {
    const config = JSON.parse(await Deno.readTextFile(kubeconfig)) as KubeconfigJson;
    const cluster = config.clusters[0]!.cluster;
    const user = config.users[0]!.user;
    const client = Deno.createHttpClient({
      caCerts: [fromBase64(cluster["certificate-authority-data"])],
      cert: fromBase64(user["client-certificate-data"]!),
      key: fromBase64(user["client-key-data"]!),
    });
    const watch = new PodWatch(cluster.server, namespace, client);
    await watch.#list();
    watch.#loop = watch.#run();
    return watch;
  }

  get #base(): string {
    return `${this.#server}/api/v1/namespaces/${this.#namespace}/pods`;
  }

  async #list(): Promise<void> {
    const res = await fetch(this.#base, { client: this.#client, signal: this.#stop.signal });
    if (!res.ok) throw new Error(`list pods: ${res.status} ${await res.text()}`);
    const list = await res.json() as { metadata: { resourceVersion: string }; items: WatchedPod[] };
    this.#pods.clear();
    for (const pod of list.items) this.#pods.set(pod.metadata.name, pod);
    this.#resourceVersion = list.metadata.resourceVersion;
  }

  async #run(): Promise<void> {
    while (!this.#stop.signal.aborted) {
      try {
        await this.#watchOnce();
      } catch {
        if (this.#stop.signal.aborted) return;
        await new Promise((r) => setTimeout(r, 100));
        await this.#list().catch(() => undefined);
      }
    }
  }

  async #watchOnce(): Promise<void> {
    const url = `${this.#base}?watch=1&allowWatchBookmarks=true&timeoutSeconds=3600` +
      `&resourceVersion=${this.#resourceVersion}`;
    const res = await fetch(url, { client: this.#client, signal: this.#stop.signal });
    if (!res.ok || !res.body) throw new Error(`watch pods: ${res.status}`);
    // Read the body directly: an abort does not always reach a reader behind pipeThrough, and
    // stop() would wait for it forever.
    const reader = res.body.getReader();
    const cancel = () => reader.cancel().catch(() => undefined);
    this.#stop.signal.addEventListener("abort", cancel, { once: true });
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      while (true) {
        const { done, value } = await reader.read();
        if (done) return;
        buffer += decoder.decode(value, { stream: true });
        let nl;
        while ((nl = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          if (line.trim() !== "") this.#event(JSON.parse(line), performance.now());
        }
      }
    } finally {
      this.#stop.signal.removeEventListener("abort", cancel);
    }
  }

  #event(event: { type: string; object: WatchedPod }, at: number): void {
    if (event.type === "ERROR") throw new Error(`watch error: ${JSON.stringify(event.object)}`);
    const pod = event.object;
    if (pod.metadata?.resourceVersion) this.#resourceVersion = pod.metadata.resourceVersion;
    if (event.type === "BOOKMARK") return;
    if (event.type === "DELETED") {
      this.#pods.delete(pod.metadata.name);
      return;
    }
    this.#pods.set(pod.metadata.name, pod);
    for (const w of this.#waiters) {
      if (w.name === pod.metadata.name && w.check(pod)) {
        this.#waiters.delete(w);
        w.resolve(at);
      }
    }
  }

  /** The latest state of pod `name`, if known. */
  get(name: string): WatchedPod | undefined {
    return this.#pods.get(name);
  }

  /**
   * Resolves with the `performance.now()` of the first watch event after which pod `name`
   * satisfies `check`. Register before causing the change.
   */
  until(name: string, check: (pod: WatchedPod) => boolean, timeoutMs = 120_000): Promise<number> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(
          new Error(`pod ${this.#namespace}/${name}: condition not met after ${timeoutMs} ms`),
        );
      }, timeoutMs);
      const waiter: Waiter = {
        name,
        check,
        resolve: (at) => {
          clearTimeout(timer);
          resolve(at);
        },
      };
      this.#waiters.add(waiter);
    });
  }

  /** Merge-patches pod `name`'s annotations; resolves with `performance.now()` at the response. */
  async annotate(name: string, annotations: Record<string, string | null>): Promise<number> {
    const res = await fetch(`${this.#base}/${name}`, {
      method: "PATCH",
      headers: { "content-type": "application/merge-patch+json", accept: "application/json" },
      body: JSON.stringify({ metadata: { annotations } }),
      client: this.#client,
    });
    const at = performance.now();
    const text = await res.text();
    if (!res.ok) throw new Error(`patch pod ${name}: ${res.status} ${text}`);
    return at;
  }

  /** Stops watching. */
  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
    this.#client.close();
  }
}
