/**
 * dynamic-networks-controller: hot-plugs secondary network interfaces into running pods.
 *
 * Exit codes: 0 success, 1 invalid configuration, 2 unusable command line. The commands for
 * people (`networks`, `attach`, `detach`; `lib/commands/`) also use 3: timed out waiting.
 *
 * `main.ts kubectl …` is the kubectl plugin (`kubectl hotplug …`): the plugin binary is this
 * file compiled with the first argument `kubectl` baked in (`lib/commands/plugin.ts`).
 *
 * @module
 */
import { PROGRAM, UsageError, VERSION } from "./lib/config/cli.ts";
import { CONFIG_KEYS } from "./lib/config/settings.ts";
import { isCommand, KUBECTL_MODE, programHelp } from "./lib/commands/command_line.ts";
import { ConfigError, describeOrigin, loadConfig, readEnvironment } from "./lib/config/load.ts";
import { parseCommandLine } from "./lib/config/flags.ts";
import { errorText, Logger } from "./lib/base/log.ts";

/** Where {@linkcode main} writes its plain-text output; replaceable in tests. */
export interface MainIo {
  /** Writes text to standard output. */
  out(text: string): void;
  /** Writes text to standard error. */
  err(text: string): void;
}

const processIo: MainIo = {
  out: (text) => console.log(text.replace(/\n$/, "")),
  err: (text) => console.error(text.replace(/\n$/, "")),
};

function fail(io: MainIo, err: unknown): number {
  if (err instanceof UsageError) {
    io.err(`${PROGRAM}: ${err.message}`);
    return err.exitCode;
  }
  if (err instanceof ConfigError) {
    for (const problem of err.problems) io.err(`${PROGRAM}: ${problem}`);
    return err.exitCode;
  }
  io.err(`${PROGRAM}: ${errorText(err)}`);
  return 1;
}

/**
 * Runs the program with `args` (without the program name) and returns its exit code. A first
 * argument that names a command (`networks`, `attach`, `detach`) runs that command for a
 * person instead of the agent; a first argument `kubectl` runs the kubectl plugin
 * (`kubectl hotplug …`) with the rest.
 */
export function main(args: readonly string[], io: MainIo = processIo): Promise<number> {
  if (args[0] === KUBECTL_MODE) {
    return import("./lib/commands/plugin.ts").then(({ runPlugin }) => runPlugin(args.slice(1), io));
  }
  if (isCommand(args[0])) {
    return import("./lib/commands/run.ts").then(({ runCommand }) => runCommand(args, io));
  }
  try {
    const commandLine = parseCommandLine(args);
    if (commandLine.help) {
      io.out(programHelp());
      return Promise.resolve(0);
    }
    if (commandLine.version) {
      io.out(`${PROGRAM} ${VERSION}`);
      return Promise.resolve(0);
    }
    const { config, warnings, origins, configPath, configRead } = loadConfig({
      args,
      env: readEnvironment(),
    });
    const log = new Logger({ level: config.logLevel, format: config.logFormat });
    for (const warning of warnings) log.warn("Configuration warning", { detail: warning });
    const from = Object.fromEntries(
      CONFIG_KEYS.map(({ key }) => [key, describeOrigin(origins[key])]),
    );
    log.info("Loaded configuration", {
      version: VERSION,
      configFile: configRead ? configPath : undefined,
      config,
      origins: from,
    });
    // Loaded only now: --help, --version and configuration errors need no permission, and
    // load none of the controller's modules.
    return import("./lib/controller.ts")
      .then(({ runController }) => runController(config, log, { version: VERSION }))
      .catch((err) => fail(io, err));
  } catch (err) {
    return Promise.resolve(fail(io, err));
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
