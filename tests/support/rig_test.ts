/**
 * The `Deno.test` options every test on the node rig shares.
 *
 * @module
 */

/**
 * Spread into a rig test's definition: skipped without root (the rig needs it), and without
 * Deno's resource and op sanitizers, which a rig's daemons, sockets and child processes that
 * outlive one step would trip.
 */
export const rigTest = {
  ignore: Deno.uid() !== 0,
  sanitizeResources: false,
  sanitizeOps: false,
} as const;
