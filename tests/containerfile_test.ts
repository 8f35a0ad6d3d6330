/**
 * The Containerfile cannot be built on our machines (no container engine, and `deno compile`
 * cannot download its runtime), so these tests check what a build would do: its compile step
 * is the project's one compile task (hence the one permission list), every file the program
 * needs is in the build context it copies, the binary it builds is the entrypoint, and the
 * image carries the OCI labels.
 */
import assert from "node:assert/strict";
import { compileCommand, MAIN_PATH, runCommand } from "../lib/launch.ts";
import {
  COMPILE_TARGETS,
  compileArgs,
  DEPLOY_GRANTS,
  LAUNCHER_FLAGS,
  permissionFlags,
  RUNTIME_DATA_FILES,
  RUNTIME_FLAGS,
} from "../lib/process/permissions.ts";
import { runDeno } from "./support/mod.ts";

const ROOT = new URL("..", import.meta.url).pathname;

/** One instruction of a Containerfile: keyword and its text (continuations joined). */
interface Instruction {
  keyword: string;
  text: string;
  stage: number;
}

function parseContainerfile(source: string): Instruction[] {
  const out: Instruction[] = [];
  let stage = -1;
  let current = "";
  for (const raw of source.split("\n")) {
    const line = raw.trimEnd();
    if (current === "" && (line.trim() === "" || line.trim().startsWith("#"))) continue;
    if (current !== "" && line.trim().startsWith("#")) continue;
    if (line.endsWith("\\")) {
      current += line.slice(0, -1) + " ";
      continue;
    }
    current += line;
    const m = /^\s*([A-Za-z]+)\s+(.*)$/s.exec(current);
    assert.ok(m, `cannot parse Containerfile line: ${current}`);
    const keyword = m[1]!.toUpperCase();
    if (keyword === "FROM") stage++;
    out.push({ keyword, text: m[2]!.trim(), stage });
    current = "";
  }
  return out;
}

/** Splits a shell command into words: quotes, `${VAR}`/`$VAR` from `vars`, `&&` as a word. */
function shellWords(text: string, vars: Record<string, string>): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let i = 0;
  const expand = (): string => {
    const m = /^\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))/.exec(text.slice(i));
    assert.ok(m, `unsupported $ at ${text.slice(i)}`);
    const name = (m[1] ?? m[2])!;
    assert.ok(name in vars, `variable ${name} is not declared`);
    i += m[0].length;
    return vars[name]!;
  };
  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
      i++;
    } else if (c === '"') {
      word ??= "";
      i++;
      while (i < text.length && text[i] !== '"') {
        if (text[i] === "$") word += expand();
        else word += text[i++];
      }
      i++;
    } else if (c === "'") {
      const end = text.indexOf("'", i + 1);
      word = (word ?? "") + text.slice(i + 1, end);
      i = end + 1;
    } else if (c === "$") {
      word = (word ?? "") + expand();
    } else {
      word = (word ?? "") + c;
      i++;
    }
  }
  if (word !== undefined) words.push(word);
  return words;
}

/** The commands of a RUN line, split at `&&`. */
function commands(words: string[]): string[][] {
  const out: string[][] = [[]];
  for (const w of words) {
    if (w === "&&") out.push([]);
    else out[out.length - 1]!.push(w);
  }
  return out.filter((c) => c.length > 0);
}

const source = await Deno.readTextFile(`${ROOT}Containerfile`);
const instructions = parseContainerfile(source);
const froms = instructions.filter((i) => i.keyword === "FROM");
const finalStage = froms.length - 1;

/** The build stage's `deno task compile …` command for a target architecture. */
function compileStep(targetArch: string): string[] {
  const runs = instructions.filter((i) => i.keyword === "RUN" && /\bcompile\b/.test(i.text));
  assert.equal(runs.length, 1, "exactly one RUN compiles");
  const found = commands(shellWords(runs[0]!.text, { TARGETARCH: targetArch })).filter((c) =>
    c.includes("compile")
  );
  assert.equal(found.length, 1, `one compile command in: ${runs[0]!.text}`);
  return found[0]!;
}

Deno.test("Containerfile: the build stage is the pinned Deno image on the build platform", async () => {
  assert.ok(froms.length >= 2, "multi-stage");
  const ci = await Deno.readTextFile(`${ROOT}.ci/run`);
  const pinned = /^DENO_VERSION=(\S+)$/m.exec(ci)?.[1];
  assert.ok(pinned, ".ci/run pins DENO_VERSION");
  const build = froms[0]!.text.split(/\s+/);
  assert.deepEqual(build, ["--platform=$BUILDPLATFORM", `denoland/deno:${pinned}`, "AS", "build"]);
  assert.match(froms[finalStage]!.text, /^gcr\.io\/distroless\/cc(-debian\d+)?(:\S+)?$/);
  const targetArg = instructions.find((i) => i.keyword === "ARG" && i.text === "TARGETARCH");
  assert.equal(targetArg?.stage, 0, "TARGETARCH is declared in the build stage");
});

Deno.test("Containerfile: dependencies are installed exactly as locked", () => {
  const install = instructions.filter((i) => i.keyword === "RUN" && /deno install/.test(i.text));
  assert.equal(install.length, 1);
  const words = shellWords(install[0]!.text, {});
  assert.equal(words.slice(0, 2).join(" "), "deno install");
  assert.ok(words.includes("--frozen"), install[0]!.text);
  // Both programs that run in the build: the controller and the compile launcher.
  for (const entry of ["main.ts", "lib/launch.ts"]) assert.ok(words.includes(entry), entry);
});

Deno.test("Containerfile: the compile step is `deno task compile`, nothing spells a permission", async () => {
  // No permission flag and no direct `deno compile` anywhere: the one list is in lib/process/permissions.ts.
  assert.doesNotMatch(source, /--allow-|--deny-|\s-A\b|--ignore-env|--no-prompt/);
  assert.doesNotMatch(source.replace(/^\s*#.*$/gm, ""), /deno\s+compile/);
  const step = compileStep("amd64");
  assert.deepEqual(step.slice(0, 3), ["deno", "task", "compile"]);
  // The task is the launcher's compile command, run with the launcher's own flags.
  const deno = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));
  assert.equal(
    deno.tasks.compile,
    ["deno", "run", ...LAUNCHER_FLAGS, "lib/launch.ts", "compile"].join(" "),
  );
});

Deno.test("Containerfile: for each architecture the build runs deno compile with the one permission list", () => {
  for (const [arch, triple] of Object.entries(COMPILE_TARGETS)) {
    const step = compileStep(arch);
    const { argv, print } = compileCommand(step.slice(3));
    assert.equal(print, false);
    const output = argv[argv.indexOf("--output") + 1]!;
    assert.deepEqual(argv, ["deno", ...compileArgs(arch, { output })]);
    assert.equal(argv[argv.indexOf("--target") + 1], triple);
    // The flags baked into the binary are exactly the deployment grants' list and the V8 settings.
    const flags = argv.slice(argv.indexOf(triple) + 1, -1);
    assert.deepEqual(flags.filter((f) => f !== "--include" && !RUNTIME_DATA_FILES.includes(f)), [
      ...permissionFlags(DEPLOY_GRANTS),
      ...RUNTIME_FLAGS,
    ]);
    assert.equal(argv.at(-1), "main.ts");
  }
  // An architecture deno compile cannot target fails the build, naming the supported ones.
  assert.throws(() => compileCommand(compileStep("s390x").slice(3)), /not supported: use one of/);
});

Deno.test("Containerfile: the image and the tests run main.ts under the same kinds of grant", async () => {
  // The tests run `deno run <permissionFlags(grants for the rig)> main.ts`; the image bakes in
  // `permissionFlags(DEPLOY_GRANTS)`. Same function, same flags; only the paths differ.
  const testArgv = await runCommand(
    [
      "--kubeconfig=/k/config",
      "--node-name=n",
      "--cri-socket=/s/cri.sock",
      "--multus-socket=/s/m.sock",
    ],
    {
      env: {},
      readFile: (p) =>
        p === "/k/config"
          ? Promise.resolve(
            "current-context: c\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n" +
              'clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]\nusers: [{name: u, user: {token: t}}]\n',
          )
          : Promise.reject(new Deno.errors.NotFound(p)),
    },
  );
  const kinds = (flags: readonly string[]) =>
    flags.filter((f) => f.startsWith("-")).map((f) => f.split("=")[0]);
  const imageArgv = compileCommand(compileStep("amd64").slice(3)).argv;
  const imageFlags = imageArgv.slice(imageArgv.indexOf("--no-prompt"), -1);
  const testFlags = testArgv.slice(2, testArgv.indexOf(MAIN_PATH));
  // The image's API server is known only at run time: it alone adds the metadata services' deny.
  assert.deepEqual(kinds(testFlags), kinds(imageFlags).filter((k) => k !== "--deny-net"));
  assert.ok(kinds(imageFlags).includes("--deny-net"));
  const env = (flags: readonly string[]) => flags.find((f) => f.startsWith("--allow-env="));
  assert.equal(env(testFlags), env(imageFlags));
});

/** Local modules of an entry point's module graph, from `deno info --json`. */
async function localModules(entry: string): Promise<string[]> {
  const out = await runDeno(["info", "--json", entry], { cwd: ROOT });
  assert.equal(out.code, 0, out.stderr);
  const info = JSON.parse(out.stdout) as {
    modules: { specifier: string }[];
  };
  return info.modules.map((m) => m.specifier).filter((s) => s.startsWith("file://")).map((s) =>
    decodeURIComponent(new URL(s).pathname).slice(ROOT.length)
  );
}

function withoutComments(code: string): string {
  return code.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`])\/\/.*$/gm, "$1");
}

Deno.test("Containerfile: the build context holds every module of the program and the launcher", async () => {
  const copied = instructions.filter((i) => i.keyword === "COPY" && i.stage === 0)
    .flatMap((i) => shellWords(i.text, {}).slice(0, -1));
  const inContext = (path: string) =>
    copied.some((c) => c.endsWith("/") ? path.startsWith(c) : path === c);
  for (const file of ["deno.json", "deno.lock"]) assert.ok(inContext(file), file);
  const modules = [...await localModules("main.ts"), ...await localModules("lib/launch.ts")];
  assert.ok(modules.includes("main.ts") && modules.includes("lib/controller.ts"), modules.join());
  for (const m of modules) assert.ok(inContext(m), `${m} is not copied into the build stage`);
  for (const f of RUNTIME_DATA_FILES) assert.ok(inContext(f), `${f} is not copied`);
});

Deno.test("Containerfile: every file the program reads at run time is embedded", async () => {
  const argv = compileCommand(compileStep("amd64").slice(3)).argv;
  const included = argv.flatMap((a, i) => argv[i - 1] === "--include" ? [a] : []);
  assert.deepEqual(included, [...RUNTIME_DATA_FILES]);
  for (const f of RUNTIME_DATA_FILES) await Deno.stat(`${ROOT}${f}`);
  // A module of the program that locates a file next to itself reads project data at run
  // time; each such file must be in RUNTIME_DATA_FILES. Dynamic imports must be literal, or
  // deno compile cannot see (and embed) them.
  const modules = await localModules("main.ts");
  assert.ok(modules.length > 10, modules.join());
  for (const m of modules) {
    const code = withoutComments(await Deno.readTextFile(`${ROOT}${m}`));
    for (const match of code.matchAll(/import\.meta\.(url|dirname|filename)/g)) {
      const around = code.slice(Math.max(0, match.index - 60), match.index + 20);
      const literal = /new URL\(\s*["']([^"']+)["']\s*,\s*import\.meta\.url\s*\)/.exec(around);
      assert.ok(literal, `${m} uses import.meta.${match[1]} in a way this test cannot follow`);
      const file = new URL(literal[1]!, `file://${ROOT}${m}`).pathname.slice(ROOT.length);
      assert.ok(RUNTIME_DATA_FILES.includes(file), `${m} reads ${file} at run time`);
    }
    for (const match of code.matchAll(/\bimport\(\s*([^)\s]?)/g)) {
      assert.match(match[1]!, /["'`]/, `${m}: a dynamic import of a computed specifier`);
    }
  }
});

Deno.test("Containerfile: the compiled binary is the entrypoint, with OCI labels from build arguments", () => {
  const output = compileStep("amd64")[compileStep("amd64").indexOf("--output") + 1]!;
  const copy = instructions.find((i) => i.keyword === "COPY" && i.stage === finalStage);
  const words = shellWords(copy!.text, {});
  assert.deepEqual(words, ["--from=build", output, "/dynamic-networks-controller"]);
  const entry = instructions.filter((i) => i.keyword === "ENTRYPOINT");
  assert.equal(entry.length, 1);
  assert.equal(entry[0]!.stage, finalStage);
  assert.deepEqual(JSON.parse(entry[0]!.text), ["/dynamic-networks-controller"]);

  const args = instructions.filter((i) => i.keyword === "ARG" && i.stage === finalStage)
    .map((i) => i.text.split("=")[0]!);
  const labels = instructions.filter((i) => i.keyword === "LABEL" && i.stage === finalStage)
    .flatMap((i) => shellWords(i.text, Object.fromEntries(args.map((a) => [a, `<${a}>`]))));
  const label = (name: string) =>
    labels.find((l) => l.startsWith(`${name}=`))?.slice(name.length + 1);
  assert.equal(label("org.opencontainers.image.source"), "<SOURCE>");
  assert.equal(label("org.opencontainers.image.revision"), "<REVISION>");
  assert.equal(label("org.opencontainers.image.version"), "<VERSION>");
});
