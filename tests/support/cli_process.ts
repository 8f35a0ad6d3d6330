/**
 * Runs the commands for people (`networks`, `attach`, `detach`) as a person runs them:
 * `main.ts` under `deno run` with exactly the commands' own permission flags (through the
 * launcher's `runCommand`), with a kubeconfig of the rig's. Resolves with the exit code, the
 * output and how long the process took.
 *
 * @module
 */
import { runCommand } from "../../lib/launch.ts";
import { runDeno } from "./deno_run.ts";

/** What one run of a command gave. */
export interface CliResult {
  /** Exit code. */
  code: number;
  /** Standard output. */
  stdout: string;
  /** Standard error. */
  stderr: string;
  /** Wall time of the process, in ms. */
  ms: number;
  /** The command line it ran with. */
  command: string[];
}

/** Runs `args` (a command and its arguments) with `kubeconfig` (passed as `--kubeconfig`). */
export async function runCli(kubeconfig: string, args: readonly string[]): Promise<CliResult> {
  const full = [...args, `--kubeconfig=${kubeconfig}`];
  const env = { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", HOME: "/nonexistent" };
  const command = await runCommand(full, { env });
  const started = performance.now();
  const out = await runDeno(command.slice(1), {
    env: { ...env, DENO_DIR: Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME")}/.cache/deno` },
    clearEnv: true,
  });
  return { ...out, ms: performance.now() - started, command };
}

/** The result as one text block, for assertion messages. */
export function describeRun(r: CliResult): string {
  return `exit ${r.code} after ${Math.round(r.ms)} ms\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}
