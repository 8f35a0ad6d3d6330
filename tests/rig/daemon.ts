/**
 * Long-running processes of the node rig (etcd, kube-apiserver, containerd, multus): each
 * runs in its own session and process group, logs to a file and leaves a PID file, so that
 * the rig, or the next run after a crash, can stop it by PID.
 *
 * @module
 */

/** How to start one daemon. */
export interface DaemonSpec {
  /** Short name used in file names and messages, e.g. `etcd`. */
  name: string;
  /** Program and arguments. */
  command: string[];
  /** Extra environment. */
  env?: Record<string, string>;
  /** Where stdout and stderr go (appended). */
  logFile: string;
  /** Where the PID is written. */
  pidFile: string;
  /** How long stop() waits after SIGTERM before SIGKILL (default 10 s). */
  graceMs?: number;
}

/** True when a process with that PID exists and is not a zombie. */
export function processAlive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** Sends a signal to a process group, ignoring one that is gone. */
export function signalGroup(pid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(-pid, signal);
  } catch {
    try {
      Deno.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/** Stops a process group: SIGTERM, then SIGKILL after `graceMs`. Resolves once it is gone. */
export async function stopGroup(pid: number, graceMs = 10_000): Promise<void> {
  if (!processAlive(pid)) return;
  signalGroup(pid, "SIGTERM");
  const deadline = Date.now() + graceMs;
  while (processAlive(pid) && Date.now() < deadline) await sleep(50);
  if (processAlive(pid)) {
    signalGroup(pid, "SIGKILL");
    while (processAlive(pid)) await sleep(20);
  }
}

/** A daemon the rig waits for has exited: {@linkcode waitFor} gives up at once. */
export class DaemonExitedError extends Error {
  override name = "DaemonExitedError";
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `check` until it returns a value other than `undefined`/`false`, or throws after
 * `timeoutMs` with `what` and the last error in the message.
 */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 60_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value as T;
    } catch (err) {
      if (err instanceof DaemonExitedError) throw err; // no point waiting for a dead process
      last = err;
    }
    if (Date.now() > deadline) {
      const why = last instanceof Error ? `: ${last.message}` : "";
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`, { cause: last });
    }
    await sleep(intervalMs);
  }
}

/** A daemon started by the rig. */
export class Daemon {
  #pid = 0;
  #child: Deno.ChildProcess | undefined;

  /** @param spec what to run and where it logs */
  constructor(readonly spec: DaemonSpec) {}

  /** PID of the running process (0 before start). */
  get pid(): number {
    return this.#pid;
  }

  /** True while the process runs. */
  get alive(): boolean {
    return this.#pid > 0 && processAlive(this.#pid);
  }

  /** Starts the process in a new session; its stdout and stderr go to the log file. */
  start(): void {
    if (this.alive) throw new Error(`${this.spec.name} is already running as PID ${this.#pid}`);
    Deno.writeTextFileSync(
      this.spec.logFile,
      `\n==== ${new Date().toISOString()} start: ${this.spec.command.join(" ")}\n`,
      { append: true },
    );
    // setsid execs (our child is not a group leader), and so does sh: the PID we get is
    // the daemon's own, and its process group is ours to signal.
    this.#child = new Deno.Command("setsid", {
      args: ["sh", "-c", 'exec "$@" >>"$RIG_DAEMON_LOG" 2>&1', "sh", ...this.spec.command],
      env: { ...this.spec.env, RIG_DAEMON_LOG: this.spec.logFile },
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    this.#child.unref();
    this.#pid = this.#child.pid;
    Deno.writeTextFileSync(this.spec.pidFile, `${this.#pid}\n`);
  }

  /** Stops the process group (SIGTERM, then SIGKILL) and removes the PID file. */
  async stop(graceMs = this.spec.graceMs ?? 10_000): Promise<void> {
    if (this.#pid > 0) await stopGroup(this.#pid, graceMs);
    // The child is unref'd: a timer keeps the event loop alive while it is reaped.
    if (this.#child) await Promise.race([this.#child.status.catch(() => undefined), sleep(2_000)]);
    this.#child = undefined;
    this.#pid = 0;
    try {
      Deno.removeSync(this.spec.pidFile);
    } catch {
      // never written, or removed by a cleanup
    }
  }

  /** Kills the process group at once with SIGKILL, as a crash would. */
  async kill(): Promise<void> {
    if (this.#pid > 0) signalGroup(this.#pid, "SIGKILL");
    await this.stop(0);
  }

  /** The last `lines` lines of the log, for error messages. */
  logTail(lines = 20): string {
    try {
      return Deno.readTextFileSync(this.spec.logFile).trimEnd().split("\n").slice(-lines).join(
        "\n",
      );
    } catch {
      return "(no log)";
    }
  }

  /** Throws {@linkcode DaemonExitedError} with the log's tail if the process has exited. */
  assertAlive(): void {
    if (!this.alive) {
      throw new DaemonExitedError(
        `${this.spec.name} exited; last lines of ${this.spec.logFile}:\n${this.logTail()}`,
      );
    }
  }
}
