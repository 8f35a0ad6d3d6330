/**
 * What every command shares: its context and its failure with an exit code.
 *
 * @module
 */
import type { CommandLine } from "./command_line.ts";
import type { KubeClient } from "../kube/client.ts";

/** Where a command writes; replaceable in tests. */
export interface CommandIo {
  /** Standard output. */
  out(text: string): void;
  /** Standard error. */
  err(text: string): void;
}

/** A command's failure with its exit code; the message is printed as is. */
export class CommandFailure extends Error {
  /** The exit code. */
  readonly exitCode: number;
  /** A failure with `message` and `exitCode` (1: failed, 3: timed out). */
  constructor(message: string, exitCode = 1) {
    super(message);
    this.name = "CommandFailure";
    this.exitCode = exitCode;
  }
}

/** What a command needs to run: the client, the pod's namespace, and where to write. */
export interface CommandContext {
  /** A client acting with the user's credentials. */
  client: KubeClient;
  /** The pod's namespace. */
  namespace: string;
  /** The parsed command line. */
  line: CommandLine;
  /** Output. */
  io: CommandIo;
  /** How messages name the program: `dynamic-networks-controller` or `kubectl hotplug`. */
  program: string;
}
