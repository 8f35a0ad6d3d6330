/**
 * What the tests share beyond the rig itself: the agent as a process with its exact grants
 * ({@linkcode ControllerProcess}), pods read and edited through the API server, convergence
 * checked against network-status, the pod's netns and host-local's files, a child `deno`, and
 * the options of a rig test.
 *
 * @module
 */
export * from "./cli_process.ts";
export * from "./controller_process.ts";
export * from "./convergence.ts";
export * from "./deno_run.ts";
export * from "./kubectl_plugin.ts";
export * from "./multus_log.ts";
export * from "./pods.ts";
export * from "./rig_test.ts";
export * from "./staged_conflict.ts";
