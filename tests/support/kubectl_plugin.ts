/**
 * The kubectl plugin as the tests and the demo install it: `deno compile` cannot run here, so
 * `kubectl-hotplug` is a script that runs `deno run <people's grants> main.ts kubectl "$@"`,
 * exactly the flags and baked-in argument of the compiled plugin (`lib/process/permissions.ts`).
 *
 * @module
 */
import { PLUGIN_NAME } from "../../lib/commands/command_line.ts";
import { PLUGIN_FLAGS, PLUGIN_SCRIPT_ARGS } from "../../lib/process/permissions.ts";
import { MAIN_PATH } from "../../lib/launch.ts";

/** Quotes one word for a POSIX shell. */
export function sh(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * The plugin as a script, as `deno compile` would bake it: people's grants, `main.ts`, then
 * the plugin's script arguments (`kubectl`) before what kubectl passes on.
 */
export function pluginLauncherScript(
  script: string = MAIN_PATH,
  scriptArgs: readonly string[] = PLUGIN_SCRIPT_ARGS,
): string {
  return `#!/bin/sh\nexec ${
    [Deno.execPath(), "run", ...PLUGIN_FLAGS, script, ...scriptArgs].map(sh).join(" ")
  } "$@"\n`;
}

/** Writes the launcher as `<binDir>/kubectl-hotplug` (executable); resolves with its path. */
export async function installPluginLauncher(binDir: string): Promise<string> {
  const path = `${binDir}/${PLUGIN_NAME}`;
  await Deno.writeTextFile(path, pluginLauncherScript(), { mode: 0o755 });
  await Deno.chmod(path, 0o755);
  return path;
}
