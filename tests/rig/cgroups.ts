/**
 * A rig's own cgroup root (`dnc-rig-<id>` in every cgroup hierarchy), which its kubelet takes
 * as `cgroupRoot`: the kubelet's `kubepods` tree and every pod's processes live under it, so
 * two rigs never share one, and the rig (or the clean-up after a crash) can kill what is left
 * in it and remove it by the run's ID alone.
 *
 * @module
 */

import { sleep } from "./daemon.ts";

/** Where the cgroup hierarchies are mounted. */
export const CGROUP_FS = "/sys/fs/cgroup";
const PREFIX = "dnc-rig-";

/** The cgroup root's name (and path below each hierarchy) of run `id`. */
export function rigCgroupName(id: string): string {
  return `${PREFIX}${id}`;
}

/** Mount points of the cgroup hierarchies (v1 controllers, named ones and v2). */
export function cgroupHierarchies(): string[] {
  const points: string[] = [];
  for (const line of Deno.readTextFileSync("/proc/self/mountinfo").split("\n")) {
    // fields: id parent major:minor root mountpoint options … - fstype source superoptions
    const [left, right] = line.split(" - ");
    const fstype = right?.split(" ")[0];
    const point = left?.split(" ")[4];
    if (point && (fstype === "cgroup" || fstype === "cgroup2") && point.startsWith(CGROUP_FS)) {
      points.push(point);
    }
  }
  return [...new Set(points)];
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Creates `dnc-rig-<id>` in every hierarchy (cpuset gets its parent's CPUs and memory nodes). */
export async function createRigCgroup(id: string): Promise<void> {
  for (const hierarchy of cgroupHierarchies()) {
    const dir = `${hierarchy}/${rigCgroupName(id)}`;
    await Deno.mkdir(dir, { recursive: true });
    // A v1 cpuset cgroup starts with no CPUs: no task could join it.
    for (const file of ["cpuset.cpus", "cpuset.mems"]) {
      if (exists(`${dir}/${file}`) && (await Deno.readTextFile(`${dir}/${file}`)).trim() === "") {
        await Deno.writeTextFile(`${dir}/${file}`, await Deno.readTextFile(`${hierarchy}/${file}`));
      }
    }
  }
}

/** Every cgroup directory at or under `dir`, deepest first. */
function treeDeepestFirst(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(d)];
    } catch {
      return;
    }
    for (const e of entries) if (e.isDirectory) walk(`${d}/${e.name}`);
    out.push(d);
  };
  walk(dir);
  return out;
}

function pidsIn(dir: string): number[] {
  try {
    return Deno.readTextFileSync(`${dir}/cgroup.procs`).split("\n").filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/**
 * Kills every process left in run `id`'s cgroups and removes them. Resolves with the paths it
 * could not remove (empty when all went).
 */
export async function removeRigCgroup(id: string): Promise<string[]> {
  const trees = cgroupHierarchies().map((h) => `${h}/${rigCgroupName(id)}`).filter(exists);
  for (const tree of trees) {
    for (const dir of treeDeepestFirst(tree)) {
      for (const pid of pidsIn(dir)) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch {
          // gone
        }
      }
    }
  }
  const left: string[] = [];
  for (const tree of trees) {
    for (const dir of treeDeepestFirst(tree)) {
      // A killed task leaves its cgroup a moment after the signal.
      for (let attempt = 0;; attempt++) {
        try {
          await Deno.remove(dir);
          break;
        } catch (err) {
          if (err instanceof Deno.errors.NotFound) break;
          if (attempt >= 50) {
            left.push(dir);
            break;
          }
          for (const pid of pidsIn(dir)) {
            try {
              Deno.kill(pid, "SIGKILL");
            } catch {
              // gone
            }
          }
          await sleep(100);
        }
      }
    }
  }
  return left;
}

/**
 * Kills what is left in the cgroups `names` directly below each hierarchy's root and removes
 * them: those CRI-O makes there for a sandbox that failed before it had a cgroup parent
 * (`crio-conmon-<id>`, `crio-<id>`). Resolves with the paths it could not remove.
 */
export async function removeRootCgroups(names: readonly string[]): Promise<string[]> {
  const left: string[] = [];
  for (const hierarchy of cgroupHierarchies()) {
    for (const name of names) {
      const dir = `${hierarchy}/${name}`;
      if (!exists(dir)) continue;
      for (let attempt = 0;; attempt++) {
        for (const pid of pidsIn(dir)) {
          try {
            Deno.kill(pid, "SIGKILL");
          } catch {
            // gone
          }
        }
        try {
          await Deno.remove(dir);
          break;
        } catch (err) {
          if (err instanceof Deno.errors.NotFound) break;
          if (attempt >= 50) {
            left.push(dir);
            break;
          }
          await sleep(100);
        }
      }
    }
  }
  return left;
}

/** IDs of rig cgroups whose run directory under `base` is gone (left by a crashed run). */
export function orphanRigCgroups(base: string): string[] {
  const ids = new Set<string>();
  for (const hierarchy of cgroupHierarchies()) {
    try {
      for (const entry of Deno.readDirSync(hierarchy)) {
        if (!entry.isDirectory || !entry.name.startsWith(PREFIX)) continue;
        const id = entry.name.slice(PREFIX.length);
        if (!exists(`${base}/${id}`)) ids.add(id);
      }
    } catch {
      // unreadable hierarchy
    }
  }
  return [...ids];
}
