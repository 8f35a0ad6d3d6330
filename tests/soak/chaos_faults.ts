/**
 * The chaos soak's faults, as the rig can inject them: the agent SIGKILLed and started again
 * (as its DaemonSet's kubelet would), multus, the runtime, the kubelet or the API server
 * restarted, a pod's sandbox killed behind the kubelet's back, and a CNI plugin made slow or
 * failing for a while.
 *
 * @module
 */
import { ControllerProcess } from "../support/mod.ts";
import { type Rig, type RigPod, sleep } from "../rig/mod.ts";
import type { PlannedFault } from "./chaos_plan.ts";

/**
 * Retries `fn` until it resolves, for at most `timeoutMs`: the rig's parts come and go during
 * a chaos round, and what the run itself asks of them must get through.
 */
export async function retrying<T>(
  what: string,
  fn: () => Promise<T>,
  timeoutMs = 120_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0;; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) {
        throw new Error(`${what}: still failing after ${timeoutMs / 1000} s: ${err}`, {
          cause: err,
        });
      }
      await sleep(Math.min(1_000, 100 * 2 ** attempt));
    }
  }
}

/** The agent as its DaemonSet runs it: one process at a time, started again after a crash. */
export class Agent {
  readonly #rig: Rig;
  readonly #args: string[];
  readonly #processes: ControllerProcess[] = [];

  private constructor(rig: Rig, args: string[]) {
    this.#rig = rig;
    this.#args = args;
  }

  /** Starts the agent on `rig` with `args` and waits until it is ready. */
  static async start(rig: Rig, args: string[]): Promise<Agent> {
    const agent = new Agent(rig, args);
    await agent.#spawn();
    return agent;
  }

  async #spawn(): Promise<void> {
    const process = await ControllerProcess.start(this.#rig, {
      args: this.#args,
      waitReady: false,
    });
    this.#processes.push(process);
    // Ready needs the API server, which may be restarting too.
    await process.waitReady(300_000);
  }

  /** The running process. */
  get current(): ControllerProcess {
    return this.#processes.at(-1)!;
  }

  /** How many processes have run. */
  get starts(): number {
    return this.#processes.length;
  }

  /** SIGKILLs the process, waits `downMs`, and starts a new one. */
  async kill(downMs: number): Promise<void> {
    await this.current.crash();
    await sleep(downMs);
    await this.#spawn();
  }

  /** The JSON log records of every process so far. */
  records(): Record<string, unknown>[] {
    return this.#processes.flatMap((p) => p.records());
  }

  /** The error-level lines of every process so far, in order, with when each was written. */
  errorLines(): { at: number; text: string }[] {
    const out: { at: number; text: string }[] = [];
    for (const process of this.#processes) {
      for (const line of process.lines) {
        if (!line.includes('"level":"error"')) continue;
        let at = NaN;
        try {
          at = Date.parse(String((JSON.parse(line) as { ts?: string }).ts));
        } catch { /* not JSON */ }
        out.push({ at, text: line });
      }
    }
    return out;
  }

  /** Stops the running process. */
  async stop(): Promise<void> {
    await this.current.stop();
  }
}

/**
 * A CNI plugin that a file switches between macvlan itself, macvlan after a 3 s sleep
 * (`slow`), and a plugin whose every ADD fails (`fail`; DEL and CHECK still work, so what
 * was attached can be released).
 */
export class FaultyPlugin {
  /** The `type` a NAD names to use it. */
  readonly type = "chaos-macvlan";
  readonly #control: string;

  private constructor(control: string) {
    this.#control = control;
  }

  /** Writes the plugin into the rig's CNI bin directory; it starts healthy. */
  static async install(rig: Rig): Promise<FaultyPlugin> {
    const control = `${rig.dir}/chaos-plugin-mode`;
    await Deno.writeTextFile(control, "");
    const script = `${rig.cniBinDir}/chaos-macvlan`;
    await Deno.writeTextFile(
      script,
      [
        "#!/bin/sh",
        `mode=$(cat '${control}' 2>/dev/null)`,
        'case "$mode" in',
        "  slow) sleep 3 ;;",
        '  fail) if [ "$CNI_COMMAND" = ADD ]; then',
        `    echo '{"cniVersion":"0.3.1","code":999,"msg":"injected fault: this plugin fails every ADD for a while"}'`,
        "    exit 1",
        "  fi ;;",
        "esac",
        `exec '${rig.cniBinDir}/macvlan' "$@"`,
        "",
      ].join("\n"),
    );
    await Deno.chmod(script, 0o755);
    return new FaultyPlugin(control);
  }

  /** Switches the plugin's behaviour. */
  async set(mode: "slow" | "fail" | "healthy"): Promise<void> {
    await Deno.writeTextFile(this.#control, mode === "healthy" ? "" : mode);
  }
}

/** What {@linkcode injectFault} needs. */
export interface FaultContext {
  rig: Rig;
  agent: Agent;
  plugin: FaultyPlugin;
  /** The pod `name` as the rig knows it (its current sandbox need not be current). */
  pod(name: string): RigPod | undefined;
}

/**
 * Injects one fault and resolves once it is over: the part restarted and answering, the
 * agent ready again, the sandbox dead, the plugin healthy again.
 */
export async function injectFault(fault: PlannedFault, ctx: FaultContext): Promise<void> {
  const { rig } = ctx;
  switch (fault.kind) {
    case "agent-kill":
      return await ctx.agent.kill(fault.downMs ?? 0);
    case "multus-restart":
      return await retrying("restart multus", () => rig.restartMultus());
    case "runtime-restart":
      return await retrying("restart the runtime", () => rig.restartRuntime());
    case "kubelet-restart":
      return await retrying("restart the kubelet", () => rig.restartKubelet());
    case "apiserver-restart":
      return await retrying("restart the API server", () => rig.restartApiServer());
    case "sandbox-kill": {
      const pod = ctx.pod(fault.pod ?? "");
      if (!pod) throw new Error(`sandbox-kill: the run does not know pod ${fault.pod}`);
      return await killSandbox(rig, pod);
    }
    case "plugin-fault":
      await ctx.plugin.set(fault.mode ?? "fail");
      await sleep(fault.holdMs ?? 1_000);
      await ctx.plugin.set("healthy");
      return;
  }
}

/**
 * Kills the pod's ready sandbox once, without waiting for the kubelet to replace it: its
 * pause process SIGKILLed (containerd), or a StopPodSandbox behind the kubelet's back (CRI-O,
 * whose default sandbox has no process of its own).
 */
async function killSandbox(rig: Rig, pod: RigPod): Promise<void> {
  const { sandboxId } = await retrying(
    `find the sandbox of ${pod.name}`,
    () => rig.refreshPod(pod),
  );
  if (rig.runtime === "crio") {
    await retrying(`stop sandbox ${sandboxId}`, () => rig.cri.stopPodSandbox(sandboxId));
    return;
  }
  const pid = await retrying(`find the pause process of ${sandboxId}`, async () => {
    const status = await rig.cri.podSandboxStatus(sandboxId);
    const pid = Number(status.info["pid"] ?? 0);
    if (!(pid > 0)) throw new Error(`sandbox ${sandboxId} has no PID in its CRI status`);
    return pid;
  });
  try {
    Deno.kill(pid, "SIGKILL");
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err; // dead already
  }
}
