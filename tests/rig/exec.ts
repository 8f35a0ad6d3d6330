/**
 * Running short commands from the rig (ip, mount, ctr, openssl, kubectl …) with a timeout,
 * and errors that show the command and its stderr.
 *
 * @module
 */

/** Output of a finished command. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options of {@linkcode run}. */
export interface RunOptions {
  /** Extra environment. */
  env?: Record<string, string>;
  /** Bytes for stdin. */
  stdin?: string;
  /** Kill the command after this many ms (default 60 s). */
  timeoutMs?: number;
  /** Resolve with a non-zero exit code instead of throwing. */
  allowFailure?: boolean;
  /** Working directory (default: the caller's). */
  cwd?: string;
}

/** Runs a command to completion; throws on a non-zero exit unless `allowFailure`. */
export async function run(command: string[], options: RunOptions = {}): Promise<RunResult> {
  const [program, ...args] = command;
  if (!program) throw new Error("run() needs a program name");
  const child = new Deno.Command(program, {
    args,
    env: options.env,
    cwd: options.cwd,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const timeoutMs = options.timeoutMs ?? 60_000;
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // finished meanwhile
    }
  }, timeoutMs);
  const out = await child.output();
  clearTimeout(timer);
  const result = {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
  if (out.code !== 0 && !options.allowFailure) {
    const why = out.signal === "SIGKILL" ? `killed after ${timeoutMs} ms` : `exit code ${out.code}`;
    throw new Error(
      `command failed (${why}): ${command.join(" ")}\n${
        result.stderr.trim() || result.stdout.trim()
      }`,
    );
  }
  return result;
}
