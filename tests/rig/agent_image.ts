/**
 * The agent's image for the rig, packed offline: what the Containerfile's compiled binary
 * would be, made from the parts this machine has. `deno compile` cannot run here (it
 * downloads its runtime), so the image holds
 *
 * - the Deno binary that runs the tests (`/usr/bin/deno`) and the glibc libraries it links;
 * - `/app`: `main.ts`, `lib/`, `deno.json`, `deno.lock` and the locked `node_modules`;
 * - a read-only `DENO_DIR` (`/deno-dir`) with the npm registry metadata Deno reads even when
 *   `node_modules` is complete (without it, Deno tries to download it at start-up);
 *
 * and its entrypoint is `deno run` of `main.ts` with exactly the flags `deno compile` bakes into
 * the shipped binary: the permission flags of `DEPLOY_GRANTS` and the V8 settings.
 * Images are cached in the rig's cache directory, keyed by the Deno version and the content of
 * everything they hold.
 *
 * @module
 */
import { DEPLOY_GRANTS, permissionFlags, RUNTIME_FLAGS } from "../../lib/process/permissions.ts";
import { run } from "./exec.ts";

const PROJECT = decodeURIComponent(new URL("../..", import.meta.url).pathname).replace(/\/$/, "");
const MAKE_IMAGE = decodeURIComponent(new URL("./image/make_image.sh", import.meta.url).pathname);
/** The image's name; the tag is the content key. */
export const AGENT_IMAGE_NAME = "localhost/dnc-rig/agent";

/** A packed agent image. */
export interface AgentImage {
  /** `localhost/dnc-rig/agent:<key>` */
  ref: string;
  /** The OCI image-layout tarball, importable with `ctr images import`. */
  tar: string;
}

async function projectFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(`${PROJECT}/${dir}`)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) out.push(...await projectFiles(path));
    else if (entry.isFile) out.push(path);
  }
  return out;
}

/** The project files the image holds, relative to the project root, sorted. */
async function appFiles(): Promise<string[]> {
  return ["deno.json", "deno.lock", "main.ts", ...await projectFiles("lib")].sort();
}

async function contentKey(files: readonly string[]): Promise<string> {
  const hash = new Uint8Array(
    await crypto.subtle.digest(
      "SHA-256",
      new TextEncoder().encode(
        [
          Deno.version.deno,
          Deno.readTextFileSync(new URL(import.meta.url)),
          Deno.readTextFileSync(MAKE_IMAGE),
          ...files.map((f) => `${f}\n${Deno.readTextFileSync(`${PROJECT}/${f}`)}`),
        ].join("\0"),
      ),
    ),
  );
  return Array.from(hash.slice(0, 6), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The shared libraries `binary` loads, as absolute paths (from `ldd`). */
async function sharedLibraries(binary: string): Promise<string[]> {
  const out = await run(["ldd", binary]);
  const libs: string[] = [];
  for (const line of out.stdout.split("\n")) {
    const match = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (match) libs.push(match[1]!);
  }
  return libs;
}

/**
 * The npm registry metadata files that `denoDir` holds for the packages in `nodeModules`. Deno
 * reads those of the project's own dependencies at start-up; packages reached only through
 * others may have none, which is fine.
 */
async function registryFiles(nodeModules: string, denoDir: string): Promise<string[]> {
  const names = new Set<string>();
  for await (const entry of Deno.readDir(`${nodeModules}/.deno`)) {
    // `.deno/<name>@<version>`, a scope's slash written as `+`.
    const match = /^(.+)@[^@]+$/.exec(entry.name);
    if (match) names.add(match[1]!.replace("+", "/"));
  }
  const files: string[] = [];
  for (const name of [...names].sort()) {
    const path = `${denoDir}/npm/registry.npmjs.org/${name}/registry.json`;
    try {
      Deno.statSync(path);
      files.push(path);
    } catch {
      // not needed at start-up
    }
  }
  return files;
}

/** Packs the agent image into `cacheDir/image` unless an image of the same content is there. */
export async function packAgentImage(cacheDir: string): Promise<AgentImage> {
  const files = await appFiles();
  const key = await contentKey(files);
  const ref = `${AGENT_IMAGE_NAME}:${key}`;
  const tar = `${cacheDir}/image/agent-${key}.tar`;
  try {
    if (Deno.statSync(tar).size > 0) return { ref, tar };
  } catch {
    // not packed yet
  }
  const work = await Deno.makeTempDir({ prefix: "dnc-agent-image-" });
  try {
    const rootfs = `${work}/rootfs`;
    const deno = Deno.execPath();
    await Deno.mkdir(`${rootfs}/usr/bin`, { recursive: true });
    await Deno.copyFile(deno, `${rootfs}/usr/bin/deno`);
    for (const lib of await sharedLibraries(deno)) {
      const target = `${rootfs}${lib}`;
      await Deno.mkdir(target.replace(/\/[^/]+$/, ""), { recursive: true });
      await Deno.copyFile(await Deno.realPath(lib), target);
    }
    for (const file of files) {
      const target = `${rootfs}/app/${file}`;
      await Deno.mkdir(target.replace(/\/[^/]+$/, ""), { recursive: true });
      await Deno.copyFile(`${PROJECT}/${file}`, target);
    }
    const hostDenoDir = Deno.env.get("DENO_DIR") ??
      `${Deno.env.get("HOME") ?? "/root"}/.cache/deno`;
    // The locked packages, resolved from the host's npm cache: nothing is downloaded.
    await run([deno, "install", "--frozen", "--entrypoint", "main.ts", "lib/launch.ts"], {
      env: { DENO_DIR: hostDenoDir, DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
      cwd: `${rootfs}/app`,
      timeoutMs: 300_000,
    });
    for (const file of await registryFiles(`${rootfs}/app/node_modules`, hostDenoDir)) {
      const target = `${rootfs}/deno-dir${file.slice(hostDenoDir.length)}`;
      await Deno.mkdir(target.replace(/\/[^/]+$/, ""), { recursive: true });
      await Deno.copyFile(file, target);
    }
    // Mount points the runtime fills in; a read-only root cannot get them later.
    for (const dir of ["tmp", "etc", "proc", "sys", "dev"]) {
      await Deno.mkdir(`${rootfs}/${dir}`, { recursive: true });
    }
    await Deno.chmod(`${rootfs}/tmp`, 0o1777);
    await Deno.writeTextFile(`${rootfs}/etc/passwd`, "root:x:0:0:root:/tmp:/usr/bin/deno\n");
    await Deno.writeTextFile(`${rootfs}/etc/group`, "root:x:0:\n");
    const entrypoint = [
      "/usr/bin/deno",
      "run",
      ...permissionFlags(DEPLOY_GRANTS),
      ...RUNTIME_FLAGS,
      "/app/main.ts",
    ];
    const env = [
      "PATH=/usr/bin",
      "DENO_DIR=/deno-dir",
      "DENO_NO_UPDATE_CHECK=1",
      "HOME=/tmp",
    ];
    await Deno.mkdir(`${cacheDir}/image`, { recursive: true });
    await run([
      "bash",
      MAKE_IMAGE,
      ref,
      rootfs,
      JSON.stringify(entrypoint),
      tar,
      JSON.stringify(env),
      "/app",
    ], { timeoutMs: 300_000 });
    // Only the newest agent image is kept: each is some 200 MB.
    for await (const entry of Deno.readDir(`${cacheDir}/image`)) {
      if (/^agent-[0-9a-f]+\.tar$/.test(entry.name) && `${cacheDir}/image/${entry.name}` !== tar) {
        await Deno.remove(`${cacheDir}/image/${entry.name}`);
      }
    }
    return { ref, tar };
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}
