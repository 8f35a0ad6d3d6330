/**
 * The launcher behind `deno task start` and `deno task compile`: it turns the program's own
 * arguments into the exact permission flags of `lib/process/permissions.ts` and runs
 * `deno run <flags> main.ts <arguments>`, or builds the `deno compile` command line with the
 * deployment grants.
 *
 * ```sh
 * deno run --no-prompt --allow-read --allow-env --allow-run=deno lib/launch.ts run [--print] [--] <program flags>
 * deno run --no-prompt --allow-read --allow-env --allow-run=deno lib/launch.ts compile [--print] \
 *   [--target amd64|arm64|<triple>] [--only agent|plugin] [--output <file>] \
 *   [--plugin-output <file>] [--api-server <host:port>]...
 * ```
 *
 * `compile` builds two binaries from `main.ts`: the agent (`dist/dynamic-networks-controller`,
 * the deployment grants) and the kubectl plugin (`dist/kubectl-hotplug`, people's grants and
 * the baked-in argument `kubectl`); `--only` builds one of them.
 *
 * For `run` it loads the configuration exactly as the program will (same flags, environment,
 * file and socket detection), then grants the chosen sockets, the config file, the kubeconfig
 * with the files it names and its server (or the ServiceAccount directory and
 * `$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`), and the metrics address. The launcher
 * itself reads files and the environment and starts `deno`; the controller gets only its list.
 * With `--print` it prints the command instead of running it.
 *
 * A terminal's Ctrl-C reaches the controller directly (same process group); SIGTERM sent to the
 * launcher is passed on. The launcher exits with the controller's exit code.
 *
 * @module
 */
import { UsageError } from "./config/cli.ts";
import { ConfigError, configFileOf, loadConfig } from "./config/load.ts";
import { parseCommandLine } from "./config/flags.ts";
import { isCommand } from "./commands/command_line.ts";
import {
  commandGrants,
  COMPILE_TARGETS,
  compileArgs,
  DEPLOY_GRANTS,
  type Grants,
  grantsFor,
  permissionFlags,
  pluginCompileArgs,
  RUNTIME_FLAGS,
} from "./process/permissions.ts";

/** The project root (the directory holding `main.ts` and `deno.json`). */
export const PROJECT_ROOT: string = decodeURIComponent(new URL("..", import.meta.url).pathname)
  .replace(
    /\/$/,
    "",
  );

/** The program's entry point, as an absolute path. */
export const MAIN_PATH = `${PROJECT_ROOT}/main.ts`;

const NO_GRANTS: Grants = { criSockets: [], multusSockets: [], apiServers: [], metricsAddress: "" };

/** What {@linkcode runCommand} reads; injectable for tests. */
export interface RunCommandOptions {
  /** The environment the controller will see. */
  env: Readonly<Record<string, string | undefined>>;
  /** Reads a text file (config file, kubeconfig); defaults to the real file system. */
  readFile?: (path: string) => Promise<string>;
  /** Whether a path exists (socket detection); defaults to the real file system. */
  exists?: (path: string) => boolean;
}

/**
 * The grants the controller needs for `programArgs`. A command line or configuration the
 * program will refuse gets only its config file, so that the program itself reports the
 * problem, in its own words and with its own exit code.
 */
export async function grantsForArgs(
  programArgs: readonly string[],
  options: RunCommandOptions,
): Promise<Grants> {
  let commandLine;
  try {
    commandLine = parseCommandLine(programArgs);
  } catch (err) {
    if (err instanceof UsageError) return NO_GRANTS;
    throw err;
  }
  if (commandLine.help || commandLine.version) return NO_GRANTS;
  const configFile = configFileOf(commandLine.flags, options.env).path || undefined;
  const readFile = options.readFile ?? ((p: string) => Deno.readTextFile(p));
  let text: string | undefined;
  if (configFile !== undefined) {
    try {
      text = await readFile(configFile);
    } catch {
      text = undefined; // loadConfig below reports (or ignores) the missing file
    }
  }
  let loaded;
  try {
    loaded = loadConfig({
      args: programArgs,
      env: options.env,
      readFile: (p) => {
        if (p === configFile && text !== undefined) return text;
        throw new Deno.errors.NotFound(`${p} does not exist`);
      },
      exists: options.exists,
    });
  } catch (err) {
    if (err instanceof ConfigError || err instanceof UsageError) {
      return { ...NO_GRANTS, configFile };
    }
    throw err;
  }
  return await grantsFor(loaded, { env: options.env, readFile });
}

/**
 * The full command (`deno run <permission flags> <main.ts> <programArgs>`). A command for
 * people (`networks`, `attach`, `detach`) gets its own smaller list (`commandGrants`); a
 * command line it cannot parse gets none, so that it reports the problem itself.
 */
export async function runCommand(
  programArgs: readonly string[],
  options: RunCommandOptions,
): Promise<string[]> {
  if (isCommand(programArgs[0])) {
    let flags: string[];
    try {
      flags = await commandGrants(programArgs, options.env, options.readFile);
    } catch (err) {
      if (!(err instanceof UsageError)) throw err;
      flags = ["--no-prompt", "--ignore-env"];
    }
    return ["deno", "run", ...flags, MAIN_PATH, ...programArgs];
  }
  const grants = await grantsForArgs(programArgs, options);
  return ["deno", "run", ...permissionFlags(grants), ...RUNTIME_FLAGS, MAIN_PATH, ...programArgs];
}

/** Quotes `argv` for a POSIX shell, for printing. */
export function shellQuote(argv: readonly string[]): string {
  return argv.map((a) => /^[A-Za-z0-9_@%+=:,./*-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)
    .join(" ");
}

/** The options of the `compile` command. */
export interface CompileCommandOptions {
  /** Print the commands instead of running them. */
  print: boolean;
  /** The full `deno compile` commands, run one after the other: the agent's, the plugin's. */
  commands: string[][];
  /** The first of {@linkcode CompileCommandOptions.commands}: the agent's, unless `--only plugin`. */
  argv: string[];
}

/** The binaries `deno task compile` builds: the agent and the kubectl plugin. */
export const COMPILE_BINARIES = ["agent", "plugin"] as const;

function hostArch(): keyof typeof COMPILE_TARGETS {
  return Deno.build.arch === "aarch64" ? "arm64" : "amd64";
}

/** Parses the `compile` command's options into the `deno compile` command lines. */
export function compileCommand(args: readonly string[]): CompileCommandOptions {
  let print = false;
  let target: string = hostArch();
  let output: string | undefined;
  let pluginOutput: string | undefined;
  let only: typeof COMPILE_BINARIES[number] | undefined;
  const apiServers: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const m = /^--([a-z-]+)(?:=(.*))?$/s.exec(arg);
    const name = m?.[1];
    if (name === "print" && m?.[2] === undefined) {
      print = true;
      continue;
    }
    if (
      name === "target" || name === "output" || name === "api-server" ||
      name === "plugin-output" || name === "only"
    ) {
      const value = m?.[2] ?? args[++i];
      if (value === undefined || value === "") {
        throw new UsageError(`compile: --${name} needs a value: write --${name}=<value>`);
      }
      if (name === "target") target = value;
      else if (name === "output") output = value;
      else if (name === "plugin-output") pluginOutput = value;
      else if (name === "api-server") apiServers.push(value);
      else if ((COMPILE_BINARIES as readonly string[]).includes(value)) {
        only = value as typeof COMPILE_BINARIES[number];
      } else {
        throw new UsageError(
          `compile: --only ${JSON.stringify(value)} names no binary: use --only ${
            COMPILE_BINARIES.join(" or --only ")
          }`,
        );
      }
      continue;
    }
    throw new UsageError(
      `compile: unknown argument ${
        JSON.stringify(arg)
      }: use --print, --target, --only, --output, --plugin-output or --api-server`,
    );
  }
  const grants = apiServers.length > 0 ? { ...DEPLOY_GRANTS, apiServers } : DEPLOY_GRANTS;
  const commands: string[][] = [];
  if (only !== "plugin") commands.push(["deno", ...compileArgs(target, { output, grants })]);
  if (only !== "agent") {
    commands.push(["deno", ...pluginCompileArgs(target, { output: pluginOutput })]);
  }
  return { print, commands, argv: commands[0]! };
}

async function spawn(argv: readonly string[], cwd?: string): Promise<number> {
  const child = new Deno.Command(argv[0]!, {
    args: argv.slice(1),
    cwd,
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  const onTerm = () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // Already gone.
    }
  };
  const onInt = () => {}; // the controller gets the terminal's SIGINT itself
  Deno.addSignalListener("SIGTERM", onTerm);
  Deno.addSignalListener("SIGINT", onInt);
  try {
    const status = await child.status;
    return status.code;
  } finally {
    Deno.removeSignalListener("SIGTERM", onTerm);
    Deno.removeSignalListener("SIGINT", onInt);
  }
}

/** Runs the launcher with `args` (`run …` or `compile …`) and returns the exit code. */
export async function launch(args: readonly string[]): Promise<number> {
  const [command, ...rest] = args;
  try {
    if (command === "run") {
      let print = false;
      let i = 0;
      if (rest[i] === "--print") {
        print = true;
        i++;
      }
      if (rest[i] === "--") i++;
      const argv = await runCommand(rest.slice(i), { env: Deno.env.toObject() });
      if (print) {
        console.log(shellQuote(argv));
        return 0;
      }
      return await spawn(argv);
    }
    if (command === "compile") {
      const { print, commands } = compileCommand(rest[0] === "--" ? rest.slice(1) : rest);
      for (const argv of commands) {
        console.log(shellQuote(argv));
        if (print) continue;
        const code = await spawn(argv, PROJECT_ROOT);
        if (code !== 0) return code;
      }
      return 0;
    }
    throw new UsageError(
      `unknown command ${JSON.stringify(command ?? "")}: use "run" or "compile"`,
    );
  } catch (err) {
    console.error(`launch: ${err instanceof Error ? err.message : String(err)}`);
    if (err instanceof Error && err.cause !== undefined) console.error(`  cause: ${err.cause}`);
    return err instanceof UsageError ? 2 : 1;
  }
}

if (import.meta.main) {
  Deno.exit(await launch(Deno.args));
}
