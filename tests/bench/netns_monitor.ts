/**
 * Watches the links of one network namespace with `ip -o monitor link` (netlink events, no
 * polling) and tells when a named link appears up or disappears, with the time the event
 * reached this process.
 *
 * @module
 */

/** One link as last reported. */
interface LinkState {
  name: string;
  up: boolean;
}

interface Waiter {
  ifname: string;
  present: boolean;
  resolve: (at: number) => void;
}

const LINE = /^(Deleted )?(\d+): ([^:@\s]+)(?:@[^:\s]*)?: <([^>]*)>/;

/** A running `ip monitor link` inside one network namespace. */
export class NetnsMonitor {
  readonly #child: Deno.ChildProcess;
  readonly #links = new Map<number, LinkState>();
  readonly #waiters = new Set<Waiter>();
  readonly #pump: Promise<void>;

  private constructor(child: Deno.ChildProcess) {
    this.#child = child;
    this.#pump = this.#read(child.stdout);
  }

  /** Starts monitoring the namespace at `netnsPath`, seeded with its current links. */
  static async start(netnsPath: string): Promise<NetnsMonitor> {
    const child = new Deno.Command("nsenter", {
      args: [`--net=${netnsPath}`, "ip", "-o", "monitor", "link"],
      stdout: "piped",
      stderr: "null",
      stdin: "null",
    }).spawn();
    const monitor = new NetnsMonitor(child);
    const out = await new Deno.Command("nsenter", {
      args: [`--net=${netnsPath}`, "ip", "-o", "link", "show"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      await monitor.stop();
      throw new Error(`cannot list links in ${netnsPath}: ${new TextDecoder().decode(out.stderr)}`);
    }
    for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
      monitor.#apply(line, true);
    }
    return monitor;
  }

  async #read(stream: ReadableStream<Uint8Array>): Promise<void> {
    let buffer = "";
    try {
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
        buffer += chunk;
        let nl;
        while ((nl = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          this.#apply(line, false);
        }
      }
    } catch {
      // Stopped.
    }
  }

  /** Applies one line; a seed line never overrides what an event already said. */
  #apply(line: string, seed: boolean): void {
    const m = LINE.exec(line);
    if (!m) return;
    const index = Number(m[2]);
    if (seed && this.#links.has(index)) return;
    if (m[1]) this.#links.delete(index);
    else this.#links.set(index, { name: m[3]!, up: m[4]!.split(",").includes("UP") });
    if (seed) return;
    const at = performance.now();
    for (const w of this.#waiters) {
      if (this.has(w.ifname) === w.present) {
        this.#waiters.delete(w);
        w.resolve(at);
      }
    }
  }

  /** Whether a link named `ifname` exists and is up. */
  has(ifname: string): boolean {
    for (const link of this.#links.values()) if (link.name === ifname && link.up) return true;
    return false;
  }

  /** Names of the links present now. */
  names(): string[] {
    return [...this.#links.values()].map((l) => l.name);
  }

  /**
   * Resolves with the `performance.now()` of the event after which `ifname` is up
   * (`present` true) or gone (`present` false). Register before causing the change.
   */
  until(ifname: string, present: boolean, timeoutMs = 60_000): Promise<number> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new Error(`link ${ifname} not ${present ? "up" : "gone"} after ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter: Waiter = {
        ifname,
        present,
        resolve: (at) => {
          clearTimeout(timer);
          resolve(at);
        },
      };
      this.#waiters.add(waiter);
    });
  }

  /** Stops the monitor process. */
  async stop(): Promise<void> {
    try {
      this.#child.kill("SIGTERM");
    } catch {
      // Already gone.
    }
    await this.#child.status;
    await this.#pump;
  }
}
