/**
 * The commands for people (`networks`, `attach`, `detach`): each reads its command line
 * (`command_line.ts`), connects with the user's kubeconfig, and reports in plain text
 * on standard output, problems on standard error. Exit codes: 0 done, 1 failed, 2 unusable
 * command line, 3 timed out waiting.
 *
 * @module
 */
import { errorText, Logger } from "../base/log.ts";
import { PROGRAM, UsageError } from "../config/cli.ts";
import {
  COMMAND_ENV,
  commandHelp,
  type CommandLine,
  parseCommand,
  PLUGIN_NAME,
  userKubeconfig,
} from "./command_line.ts";
import { NETWORK_STATUS_ANNOTATION, NETWORKS_ANNOTATION } from "../core/annotations.ts";
import { findNetworksCondition } from "../core/networks_condition.ts";
import { networksTable, podNetworks } from "./pod_networks.ts";
import { EditError } from "./selection_edit.ts";
import { SelectionError } from "../core/selection_element.ts";
import { KubeApiError, KubeClient } from "../kube/client.ts";
import { PodNotFoundError, readPod } from "./pod_editor.ts";
import { attach, detach } from "./edit.ts";
import { type CommandContext, CommandFailure, type CommandIo } from "./context.ts";

const VERBS: Record<string, string> = {
  GET: "get",
  PATCH: "patch",
  PUT: "update",
  POST: "create",
  DELETE: "delete",
};

/**
 * A 403 in words that name the verb, the resource and the namespace refused, and the fix; any
 * other error as it is.
 */
export function explainApiError(err: unknown, method: string, path: string): string {
  if (!(err instanceof KubeApiError) || err.status !== 403) return errorText(err);
  const verb = VERBS[method] ?? method.toLowerCase();
  const m = /\/namespaces\/([^/]+)\/([^/]+)/.exec(path);
  const namespace = m ? decodeURIComponent(m[1]!) : "";
  const resource = m?.[2] ?? "pods";
  const detail = typeof err.body === "object" && err.body !== null
    ? String((err.body as { message?: unknown }).message ?? "")
    : "";
  return `the API server refused to let you ${verb} ${resource} in namespace ${namespace} (403 Forbidden${
    detail ? `: ${detail}` : ""
  }): ask for a Role that grants "${verb}" on "${resource}" there, or use a kubeconfig whose user has it`;
}

/** A client for the user's kubeconfig; says so clearly when this process may not read it. */
async function userClient(line: CommandLine, program: string): Promise<KubeClient> {
  const env = Object.fromEntries(COMMAND_ENV.map((name) => [name, Deno.env.get(name)]));
  const path = userKubeconfig(line, env);
  if (Deno.permissions.querySync({ name: "read", path }).state !== "granted") {
    throw new CommandFailure(
      program === PROGRAM
        ? `this process may not read the kubeconfig ${path}: run the command through the launcher, which grants exactly that file and its API server (deno task start ${line.command} …), or pass --kubeconfig with a file it may read`
        : `this process may not read the kubeconfig ${path}: run the compiled ${PLUGIN_NAME} (deno task compile), whose grants read any file, or pass --kubeconfig with a file it may read`,
    );
  }
  try {
    Deno.statSync(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    throw new CommandFailure(
      `kubeconfig ${path} does not exist: pass --kubeconfig <path>, or set KUBECONFIG to your kubeconfig`,
    );
  }
  const log = new Logger({ level: "error", format: "text" });
  return await KubeClient.create(
    {
      kubeconfig: path,
      context: line.context,
      userAgent: program === PROGRAM ? `${PROGRAM}-cli` : PLUGIN_NAME,
    },
    log,
  );
}

/** `networks POD`: the table (or JSON) of what the pod asks for and has. */
async function networks(ctx: CommandContext): Promise<number> {
  const name = ctx.line.args[0]!;
  const pod = await readPod(ctx.client, ctx.namespace, name);
  const annotations = pod.metadata?.annotations ?? {};
  const condition = findNetworksCondition(pod.status?.conditions);
  const view = podNetworks(
    ctx.namespace,
    name,
    annotations[NETWORKS_ANNOTATION],
    annotations[NETWORK_STATUS_ANNOTATION],
    condition,
  );
  if (ctx.line.output === "json") {
    ctx.io.out(
      JSON.stringify(
        {
          pod: name,
          namespace: ctx.namespace,
          node: pod.spec?.nodeName ?? null,
          networks: annotations[NETWORKS_ANNOTATION] ?? null,
          condition: condition ?? null,
          problem: view.problem ?? null,
          interfaces: view.rows,
        },
        null,
        2,
      ) + "\n",
    );
    return 0;
  }
  ctx.io.out(networksTable(view));
  if (condition) {
    ctx.io.out(
      `\nNetworksReady: ${condition.status} (${condition.reason}) since ${
        condition.lastTransitionTime ?? "?"
      }\n  ${condition.message}\n`,
    );
  } else if (annotations[NETWORKS_ANNOTATION] !== undefined) {
    ctx.io.out("\nNetworksReady: not set yet (no agent has looked at this pod)\n");
  }
  if (view.problem) ctx.io.err(`${ctx.program}: ${view.problem}\n`);
  return 0;
}

/**
 * Runs the command in `args` (starting with its name) and returns its exit code; never throws.
 * Help and messages name the program as `program` (`kubectl hotplug` for the kubectl plugin).
 */
export async function runCommand(
  args: readonly string[],
  io: CommandIo,
  program: string = PROGRAM,
): Promise<number> {
  let line: CommandLine;
  try {
    line = parseCommand(args, program);
  } catch (err) {
    io.err(`${program}: ${errorText(err)}\n`);
    return err instanceof UsageError ? err.exitCode : 1;
  }
  if (line.help) {
    io.out(commandHelp(line.command, program));
    return 0;
  }
  // These commands never write a file: give up the right to, whatever this process was granted.
  Deno.permissions.revokeSync({ name: "write" });
  try {
    const client = await userClient(line, program);
    const ctx: CommandContext = {
      client,
      namespace: line.namespace ?? client.namespace ?? "default",
      line,
      io,
      program,
    };
    try {
      if (line.command === "networks") return await networks(ctx);
      if (line.command === "attach") return await attach(ctx);
      return await detach(ctx);
    } finally {
      client.close();
    }
  } catch (err) {
    if (err instanceof CommandFailure) {
      io.err(`${program} ${line.command}: ${err.message}\n`);
      return err.exitCode;
    }
    if (err instanceof UsageError) {
      io.err(`${program} ${line.command}: ${err.message}\n`);
      return err.exitCode;
    }
    const known = err instanceof PodNotFoundError || err instanceof EditError ||
      err instanceof SelectionError;
    const text = err instanceof KubeApiError ? apiText(err) : errorText(err);
    io.err(`${program} ${line.command}: ${known ? err.message : text}\n`);
    return 1;
  }
}

function apiText(err: KubeApiError): string {
  const m = /^(GET|PATCH|PUT|POST|DELETE) (\S+):/.exec(err.message);
  return m ? explainApiError(err, m[1]!, m[2]!) : errorText(err);
}
