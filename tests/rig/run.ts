/**
 * Starts a node rig and keeps it up until Ctrl-C (SIGINT) or SIGTERM, for the demo and for
 * trying the controller by hand. Prints where everything is as one JSON object on stdout.
 *
 *     sudo deno run -A tests/rig/run.ts
 *
 * @module
 */

import { Rig } from "./mod.ts";

if (import.meta.main) {
  const rig = await Rig.start();
  const info = {
    nodeName: rig.nodeName,
    nodeIp: rig.nodeIp,
    apiServerUrl: rig.apiServerUrl,
    kubeconfig: rig.kubeconfig,
    kubectl: rig.binaries.kubectl,
    criSocket: rig.criSocket,
    multusSocket: rig.multusSocket,
    macvlanMaster: rig.macvlanMaster,
    ipamDataDir: rig.ipamDataDir,
    runDir: rig.dir,
  };
  console.log(JSON.stringify(info, null, 2));
  console.error(`rig ${rig.id} is up; Ctrl-C stops it and removes everything it made`);
  const { promise, resolve } = Promise.withResolvers<void>();
  Deno.addSignalListener("SIGINT", () => resolve());
  Deno.addSignalListener("SIGTERM", () => resolve());
  await promise;
  await rig.stop();
  Deno.exit(0);
}
