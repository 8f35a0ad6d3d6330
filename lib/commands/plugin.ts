/**
 * The kubectl plugin: `kubectl hotplug networks|attach|detach …`. The plugin binary runs
 * `main.ts kubectl <what kubectl passes on>`; `main.ts` hands everything after `kubectl` here.
 * `kubectl hotplug` alone and `kubectl hotplug --help` print the plugin's help; a command runs
 * as `deno task start <command>` would, with its help and errors naming `kubectl hotplug`.
 * The plugin never starts the agent.
 *
 * @module
 */
import { closest, UsageError, VERSION } from "../config/cli.ts";
import { COMMAND_NAMES, isCommand, PLUGIN_PROGRAM, pluginHelp } from "./command_line.ts";
import type { CommandIo } from "./context.ts";

/**
 * Runs the plugin with `args` (what follows `kubectl hotplug`) and returns the exit code:
 * 0 done, 1 failed, 2 unusable command line, 3 timed out waiting. Never throws.
 */
export async function runPlugin(args: readonly string[], io: CommandIo): Promise<number> {
  const [first] = args;
  if (first === undefined || first === "--help" || first === "-h" || first === "help") {
    io.out(pluginHelp());
    return 0;
  }
  if (first === "--version") {
    io.out(`${PLUGIN_PROGRAM} ${VERSION}\n`);
    return 0;
  }
  if (isCommand(first)) {
    const { runCommand } = await import("./run.ts");
    return await runCommand(args, io, PLUGIN_PROGRAM);
  }
  const guess = first.startsWith("-") ? undefined : closest(first, COMMAND_NAMES);
  const err = new UsageError(
    first.startsWith("-")
      ? `${first}: name the command first, then its flags: ${PLUGIN_PROGRAM} ${
        COMMAND_NAMES.join("|")
      } … ${first} (see ${PLUGIN_PROGRAM} --help)`
      : `unknown command ${JSON.stringify(first)}${guess ? `: did you mean ${guess}?` : ""} (use ${
        COMMAND_NAMES.join(", ")
      }; see ${PLUGIN_PROGRAM} --help)`,
  );
  io.err(`${PLUGIN_PROGRAM}: ${err.message}\n`);
  return err.exitCode;
}
