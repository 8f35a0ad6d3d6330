/**
 * A rig's run directory (`/tmp/dnc-rig/<id>`) and its clean-up: what a run leaves is found from
 * its files and its ID alone (PID files, the links list, mounts under the directory, containerd
 * shims naming its socket, CRI-O's conmons naming its exit directory, the `dnc-rig-<id>`
 * cgroups and the root cgroups CRI-O names after the run's containers), so a run whose test process died can be
 * removed by the next one, which also puts back the host values its kubelet changed.
 *
 * @module
 */

import { orphanRigCgroups, removeRigCgroup, removeRootCgroups } from "./cgroups.ts";
import { CriClient } from "./cri_client.ts";
import { processAlive, stopGroup } from "./daemon.ts";
import { run } from "./exec.ts";
import { releaseHostState } from "./host_state.ts";

/** Where every rig's run directory lives. */
export const RIG_BASE_DIR = "/tmp/dnc-rig";
/** Where a stopped rig's logs are kept (the last {@linkcode KEPT_LOGS} runs). */
export const RIG_LOG_DIR = "/tmp/dnc-rig-logs";
/** How many runs' logs {@linkcode keepLogs} keeps. */
export const KEPT_LOGS = 10;

/** True if something exists at `path`. */
export function pathExists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Reads a pid file; 0 if missing or unreadable. */
export function readPid(path: string): number {
  try {
    return Number.parseInt(Deno.readTextFileSync(path).trim(), 10) || 0;
  } catch {
    return 0;
  }
}

/** All mount points at or under `dir`, deepest first. */
function mountsUnder(dir: string): string[] {
  const lines = Deno.readTextFileSync("/proc/self/mountinfo").split("\n");
  const points = lines
    .map((l) => l.split(" ")[4] ?? "")
    .map((p) => p.replace(/\\040/g, " "))
    .filter((p) => p === dir || p.startsWith(dir + "/"));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

/** A process's command line with spaces between arguments; "" if it is gone. */
function commandLine(pid: number): string {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/cmdline`).replaceAll("\0", " ");
  } catch {
    return "";
  }
}

/** The runtime sockets a run may have, by the PID file of the runtime that serves them. */
export const RUNTIME_SOCKETS: Readonly<Record<string, string>> = {
  "containerd.pid": "containerd/containerd.sock",
  "crio.pid": "crio/crio.sock",
};

/** IDs of the containers (and sandboxes) in a run's CRI-O storage; none without CRI-O. */
function crioContainerIds(dir: string): string[] {
  const ids = new Set<string>();
  for (const sub of ["root", "runroot"]) {
    try {
      for (const entry of Deno.readDirSync(`${dir}/crio/${sub}/overlay-containers`)) {
        if (/^[0-9a-f]{64}$/.test(entry.name)) ids.add(entry.name);
      }
    } catch {
      // no CRI-O storage
    }
  }
  return [...ids];
}

/** PIDs whose command line contains `needle`. */
function pidsWithCommandLine(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const cmd = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`).replaceAll("\0", " ");
      if (cmd.includes(needle)) pids.push(Number(entry.name));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) out.push(Number(entry.name));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/**
 * Removes what a run left behind, by its files and ID only: processes by PID file, containerd
 * shims and their pause processes, what is left in its cgroups and the cgroups, mounts (the
 * kubelet's volumes among them), links, its hold on the host state (the last run out restores
 * the sysctls), the directory.
 */
export async function teardownRunDir(dir: string): Promise<void> {
  const pidDir = `${dir}/pids`;
  try {
    for (const entry of Deno.readDirSync(pidDir)) {
      // Every rig daemon names the run dir in its arguments; a PID reused since is left alone.
      const pid = readPid(`${pidDir}/${entry.name}`);
      if (pid > 0 && commandLine(pid).includes(dir)) await stopGroup(pid, 5_000);
    }
  } catch {
    // no pid dir
  }
  // Shims outlive containerd, conmons CRI-O; their children are the pause processes and the
  // containers' first processes.
  const monitors = [
    ...pidsWithCommandLine(`${dir}/containerd/containerd.sock`),
    ...pidsWithCommandLine(`${dir}/crio/exits`),
  ];
  for (const shim of monitors) {
    for (const child of childrenOf(shim)) {
      try {
        Deno.kill(child, "SIGKILL");
      } catch {
        // gone
      }
    }
    try {
      Deno.kill(shim, "SIGKILL");
    } catch {
      // gone
    }
  }
  const left = await removeRigCgroup(dir.slice(dir.lastIndexOf("/") + 1));
  left.push(
    ...await removeRootCgroups(
      crioContainerIds(dir).flatMap((id) => [`crio-conmon-${id}`, `crio-${id}`]),
    ),
  );
  if (left.length > 0) console.warn(`rig clean-up: cgroups left (busy): ${left.join(", ")}`);
  for (const point of mountsUnder(dir)) {
    await run(["umount", "-l", point], { allowFailure: true });
  }
  try {
    for (const link of Deno.readTextFileSync(`${dir}/links`).split("\n").filter(Boolean)) {
      await run(["ip", "link", "del", link], { allowFailure: true });
    }
  } catch {
    // no links recorded
  }
  await releaseHostState(dir.slice(0, dir.lastIndexOf("/")), dir);
  await Deno.remove(dir, { recursive: true }).catch(() => undefined);
}

/** Copies a run's logs to {@linkcode RIG_LOG_DIR}/<id> and prunes old copies. */
export async function keepLogs(dir: string, id: string): Promise<void> {
  await Deno.mkdir(RIG_LOG_DIR, { recursive: true });
  await run(["cp", "-r", `${dir}/logs`, `${RIG_LOG_DIR}/${id}`], { allowFailure: true });
  const runs = [...Deno.readDirSync(RIG_LOG_DIR)]
    .map((e) => ({
      path: `${RIG_LOG_DIR}/${e.name}`,
      mtime: Deno.statSync(`${RIG_LOG_DIR}/${e.name}`).mtime?.getTime() ?? 0,
    }))
    .sort((a, b) => b.mtime - a.mtime);
  for (const old of runs.slice(KEPT_LOGS)) await Deno.remove(old.path, { recursive: true });
}

/** Stops and removes every sandbox a (possibly orphaned) runtime of a run still has. */
export async function removeSandboxes(cri: CriClient): Promise<void> {
  for (const sandbox of await cri.listPodSandbox()) {
    await cri.stopPodSandbox(sandbox.id).catch(() => undefined);
    await cri.removePodSandbox(sandbox.id).catch(() => undefined);
  }
}

/** Cleans run directories whose owning test process is gone. */
export async function cleanDeadRuns(): Promise<string[]> {
  const cleaned: string[] = [];
  let entries: Deno.DirEntry[] = [];
  try {
    entries = [...Deno.readDirSync(RIG_BASE_DIR)];
  } catch {
    // no runs yet
  }
  for (const entry of entries) {
    const dir = `${RIG_BASE_DIR}/${entry.name}`;
    const owner = readPid(`${dir}/owner.pid`);
    if (owner === Deno.pid) continue;
    // The owner is a live Deno process (a PID reused by something else does not count).
    if (owner > 0 && processAlive(owner) && commandLine(owner).includes("deno")) continue;
    for (const [pidFile, socket] of Object.entries(RUNTIME_SOCKETS)) {
      const runtime = readPid(`${dir}/pids/${pidFile}`);
      if (runtime > 0 && processAlive(runtime)) {
        const cri = new CriClient(`${dir}/${socket}`, 15_000);
        await removeSandboxes(cri).catch(() => undefined);
        cri.close();
      }
    }
    await teardownRunDir(dir);
    cleaned.push(dir);
  }
  // Left by runs whose directory another clean-up removed without knowing of them.
  for (const id of orphanRigCgroups(RIG_BASE_DIR)) await removeRigCgroup(id);
  await releaseHostState(RIG_BASE_DIR);
  return cleaned;
}
