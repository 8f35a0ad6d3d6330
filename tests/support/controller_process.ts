/**
 * Runs the controller as the product runs it: `main.ts` under `deno run` with exactly the
 * permission flags of `lib/process/permissions.ts` (through the launcher's `runCommand`), against
 * a started node rig. Collects its log lines for assertions.
 *
 * @module
 */
import { MAIN_PATH, runCommand } from "../../lib/launch.ts";
import { CRASH_AT_ENV, CRASHING_AGENT } from "./crashing_agent.ts";
import type { Rig } from "../rig/mod.ts";
import { freePort } from "../rig/ports.ts";

/** Options of {@linkcode ControllerProcess.start}. */
export interface ControllerStartOptions {
  /**
   * Kubeconfig the controller uses (default: the agent's own identity, `deploy/base`'s
   * ServiceAccount with a token bound to a pod on the node, under its node-confinement policy).
   */
  kubeconfig?: string;
  /** More program flags. */
  args?: string[];
  /** Wait for `/readyz` to answer 200 before resolving (default true). */
  waitReady?: boolean;
  /** Extra environment. */
  env?: Record<string, string>;
  /**
   * Arms a crash (`<point>:<add|remove>`): the process runs `tests/support/crashing_agent.ts`
   * instead of `main.ts`, with the same flags plus the grant to read the variable that arms it.
   */
  crashAt?: string;
}

/** One controller process under test. */
export class ControllerProcess {
  readonly #child: Deno.ChildProcess;
  readonly #lines: string[] = [];
  readonly #done: Promise<Deno.CommandStatus>;
  readonly #pumps: Promise<void>[];
  /** The metrics/probe port. */
  readonly port: number;
  /** The full command line it was started with. */
  readonly command: string[];

  private constructor(child: Deno.ChildProcess, port: number, command: string[]) {
    this.#child = child;
    this.port = port;
    this.command = command;
    this.#pumps = [this.#pump(child.stdout), this.#pump(child.stderr)];
    this.#done = child.status;
  }

  /** Starts the controller for `rig`. */
  static async start(rig: Rig, options: ControllerStartOptions = {}): Promise<ControllerProcess> {
    const port = freePort();
    const args = [
      `--kubeconfig=${options.kubeconfig ?? await rig.agentKubeconfig()}`,
      `--node-name=${rig.nodeName}`,
      `--cri-socket=${rig.criSocket}`,
      `--multus-socket=${rig.multusSocket}`,
      `--state-dir=${rig.agentStateDir}`,
      `--metrics-address=127.0.0.1:${port}`,
      "--log-level=debug",
      "--retry-base-delay-ms=100",
      "--retry-max-delay-ms=2000",
      ...(options.args ?? []),
    ];
    const env: Record<string, string> = {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      ...options.env,
    };
    let command = await runCommand(args, { env });
    if (options.crashAt !== undefined) {
      env[CRASH_AT_ENV] = options.crashAt;
      command = command.map((arg) =>
        arg === MAIN_PATH
          ? CRASHING_AGENT
          : arg.startsWith("--allow-env=")
          ? `${arg},${CRASH_AT_ENV}`
          : arg
      );
    }
    const child = new Deno.Command(Deno.execPath(), {
      args: command.slice(1),
      env,
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    }).spawn();
    const process = new ControllerProcess(child, port, command);
    if (options.waitReady ?? true) await process.waitReady();
    return process;
  }

  async #pump(stream: ReadableStream<Uint8Array>): Promise<void> {
    let buffer = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        this.#lines.push(line);
        if (Deno.env.get("DNC_TEST_VERBOSE")) console.error(`[controller] ${line}`);
      }
    }
    if (buffer) this.#lines.push(buffer);
  }

  /** The controller's process ID (the `deno run` child is the controller itself). */
  get pid(): number {
    return this.#child.pid;
  }

  /** Every line logged so far. */
  get lines(): readonly string[] {
    return this.#lines;
  }

  /** Parsed JSON log lines (other lines skipped). */
  records(): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const line of this.#lines) {
      try {
        out.push(JSON.parse(line));
      } catch { /* not a JSON line */ }
    }
    return out;
  }

  /** GETs a path of the probe/metrics server; status and body. */
  async get(path: string): Promise<{ status: number; body: string }> {
    const res = await fetch(`http://127.0.0.1:${this.port}${path}`);
    return { status: res.status, body: await res.text() };
  }

  /** Resolves when `/readyz` answers 200; rejects with the log tail when the process dies. */
  async waitReady(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    this.#done.then(() => exited = true);
    let last = "";
    while (Date.now() < deadline) {
      if (exited) break;
      try {
        const { status, body } = await this.get("/readyz");
        if (status === 200) return;
        last = body;
      } catch (err) {
        last = String(err);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(
      `controller not ready (${exited ? "exited" : "timeout"}; last /readyz: ${last})\n` +
        this.#lines.slice(-30).join("\n"),
    );
  }

  /** Sends `signal` and waits for the exit; resolves with the exit code. */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<number> {
    try {
      this.#child.kill(signal);
    } catch { /* already gone */ }
    const status = await this.#done;
    await Promise.all(this.#pumps);
    return status.code;
  }

  /** Kills the process at once (a crash). */
  async crash(): Promise<void> {
    await this.stop("SIGKILL");
  }

  /** Resolves with the exit status when the process ends by itself. */
  get status(): Promise<Deno.CommandStatus> {
    return this.#done;
  }
}
