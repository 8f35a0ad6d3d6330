/**
 * The `Deno.test` options every test on the node rig shares.
 *
 * @module
 */

/** Set to `1` (as `deno task test:unit` does) to skip every rig test, even as root. */
export const UNIT_ONLY_ENV = "DNC_UNIT_ONLY";

/**
 * Spread into a rig test's definition: skipped without root (the rig needs it) or with
 * {@linkcode UNIT_ONLY_ENV}, and without Deno's resource and op sanitizers, which a rig's
 * daemons, sockets and child processes that outlive one step would trip.
 */
export const rigTest = {
  ignore: Deno.uid() !== 0 || Deno.env.get(UNIT_ONLY_ENV) === "1",
  sanitizeResources: false,
  sanitizeOps: false,
} as const;
