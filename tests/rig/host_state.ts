/**
 * What a rig's kubelet (and the bridge CNI plugin) change on the host outside the run
 * directory, saved before the first such rig starts and put back when the last one is gone:
 *
 * - sysctls: the kubelet sets `vm.overcommit_memory`, `vm.panic_on_oom`, `kernel.panic`,
 *   `kernel.panic_on_oops` and the root key quotas; the bridge plugin of the cluster network
 *   turns on `net.ipv4.ip_forward`;
 * - `/var/log/containers`, a path the kubelet hard-codes: its links into a run are removed
 *   with the run, the directory itself only if no rig's kubelet is left and none existed before.
 *
 * Two rigs may run at once and see each other's changes, so the values are saved once, in
 * {@linkcode HOST_STATE_DIR}, by the first rig; each rig holding them leaves a marker file in
 * its run directory; whoever removes the last marker (a rig's stop, or the clean-up of a dead
 * run by the next start) restores them. All under one file lock.
 *
 * @module
 */

/** Where the saved host values live while a rig with a kubelet exists. */
export const HOST_STATE_DIR = "/tmp/dnc-rig-host";
/** The directory of container log links the kubelet hard-codes. */
export const CONTAINER_LOG_LINKS = "/var/log/containers";
/** The marker in a run directory that says the run holds the saved host state. */
const MARKER = "host-state.held";

/** The sysctls the rig's parts rewrite, by their `/proc/sys` path. */
export const TOUCHED_SYSCTLS = [
  "vm/overcommit_memory",
  "vm/panic_on_oom",
  "kernel/panic",
  "kernel/panic_on_oops",
  "kernel/keys/root_maxkeys",
  "kernel/keys/root_maxbytes",
  "net/ipv4/ip_forward",
] as const;

interface SavedState {
  sysctls: Record<string, string>;
  /** Whether /var/log/containers existed before the first rig's kubelet. */
  containerLogLinksExisted: boolean;
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Runs `fn` holding the host-state lock (shared by every rig process on the machine). */
async function locked<T>(fn: () => Promise<T>): Promise<T> {
  await Deno.mkdir(HOST_STATE_DIR, { recursive: true });
  const file = await Deno.open(`${HOST_STATE_DIR}/lock`, { create: true, write: true });
  try {
    await file.lock(true);
    return await fn();
  } finally {
    file.close();
  }
}

function readSysctl(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(`/proc/sys/${path}`).trim();
  } catch {
    return undefined;
  }
}

/** Every run directory under `base` that holds the saved state. */
function holders(base: string): string[] {
  const found: string[] = [];
  try {
    for (const entry of Deno.readDirSync(base)) {
      const dir = `${base}/${entry.name}`;
      if (exists(`${dir}/${MARKER}`)) found.push(dir);
    }
  } catch {
    // no base dir: no holders
  }
  return found;
}

/**
 * Called before a rig starts its kubelet: saves the host values unless another rig already
 * did, and marks `runDir` as holding them.
 */
export async function holdHostState(runDir: string): Promise<void> {
  await locked(async () => {
    const savedPath = `${HOST_STATE_DIR}/saved.json`;
    if (!exists(savedPath)) {
      const sysctls: Record<string, string> = {};
      for (const path of TOUCHED_SYSCTLS) {
        const value = readSysctl(path);
        if (value !== undefined) sysctls[path] = value;
      }
      const saved: SavedState = {
        sysctls,
        containerLogLinksExisted: exists(CONTAINER_LOG_LINKS),
      };
      await Deno.writeTextFile(`${savedPath}.tmp`, JSON.stringify(saved, null, 2) + "\n");
      await Deno.rename(`${savedPath}.tmp`, savedPath);
    }
    await Deno.writeTextFile(`${runDir}/${MARKER}`, "");
  });
}

/** Removes the links in /var/log/containers that point into `runDir` or into a run gone. */
function removeLogLinks(base: string, runDir?: string): void {
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(CONTAINER_LOG_LINKS)];
  } catch {
    return;
  }
  for (const entry of entries) {
    if (!entry.isSymlink) continue;
    const link = `${CONTAINER_LOG_LINKS}/${entry.name}`;
    let target: string;
    try {
      target = Deno.readLinkSync(link);
    } catch {
      continue;
    }
    const ours = runDir !== undefined && target.startsWith(`${runDir}/`);
    // A link into a run directory that no longer exists was left by a crashed run.
    const stale = target.startsWith(`${base}/`) &&
      !exists(target.slice(0, target.indexOf("/", base.length + 1)));
    if (ours || stale) {
      try {
        Deno.removeSync(link);
      } catch {
        // removed meanwhile
      }
    }
  }
}

/**
 * Called when a run goes (its stop, or the clean-up of dead runs under `base`): drops the
 * marker and the log links of `runDir`; if no run under `base` holds the state any more,
 * writes the saved sysctls back and removes /var/log/containers if the rigs created it.
 * Resolves with the sysctls it restored, as `name=value`.
 */
export async function releaseHostState(base: string, runDir?: string): Promise<string[]> {
  if (!exists(HOST_STATE_DIR)) return [];
  return await locked(async () => {
    if (runDir !== undefined) {
      try {
        Deno.removeSync(`${runDir}/${MARKER}`);
      } catch {
        // never held, or already released
      }
    }
    removeLogLinks(base, runDir);
    const savedPath = `${HOST_STATE_DIR}/saved.json`;
    if (!exists(savedPath) || holders(base).length > 0) return [];
    const saved = JSON.parse(await Deno.readTextFile(savedPath)) as SavedState;
    const restored: string[] = [];
    for (const [path, value] of Object.entries(saved.sysctls)) {
      if (readSysctl(path) === value) continue;
      try {
        Deno.writeTextFileSync(`/proc/sys/${path}`, `${value}\n`);
        restored.push(`${path.replaceAll("/", ".")}=${value}`);
      } catch (err) {
        throw new Error(
          `cannot restore sysctl ${path.replaceAll("/", ".")} to ${value} ` +
            `(saved in ${savedPath}): ${(err as Error).message}; write it by hand`,
          { cause: err },
        );
      }
    }
    if (!saved.containerLogLinksExisted) {
      await Deno.remove(CONTAINER_LOG_LINKS, { recursive: true }).catch(() => undefined);
    }
    await Deno.remove(savedPath);
    return restored;
  });
}
