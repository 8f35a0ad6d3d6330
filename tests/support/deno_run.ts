/**
 * A child `deno` (the runtime running the tests) for tests that check what a command prints or
 * what a permission set allows: the command's exit code and its decoded output.
 *
 * @module
 */

/** What a child `deno` printed and how it ended. */
export interface DenoRunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options of {@linkcode runDeno}. */
export interface DenoRunOptions {
  /** Working directory (default: the test's). */
  cwd?: string;
  /** Environment, added to the test's unless `clearEnv`. `NO_COLOR=1` is always set. */
  env?: Record<string, string>;
  /** Start from an empty environment. */
  clearEnv?: boolean;
  /** Text written to the child's standard input (otherwise it reads nothing). */
  stdin?: string;
}

/** Runs `deno <args>` to completion. */
export async function runDeno(
  args: readonly string[],
  options: DenoRunOptions = {},
): Promise<DenoRunResult> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [...args],
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    env: { NO_COLOR: "1", ...options.env },
    clearEnv: options.clearEnv ?? false,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const out = await child.output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}
