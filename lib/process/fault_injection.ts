/**
 * TEST-ONLY crash injection for the reliability tests: `DNC_FAULT_INJECTION=<point>:<add|remove>`
 * (points: before-delegate, after-delegate, before-status-write, after-status-write) makes the
 * process exit at once with code 137, as if SIGKILLed, the first time an operation of that kind
 * reaches that point. Unset (always, outside tests), it does nothing.
 *
 * @module
 */
import type { Logger } from "../base/log.ts";
import type { FaultHook, FaultPoint } from "../reconcile/ports.ts";

/** The environment variable that arms the crash injection. */
export const FAULT_INJECTION_ENV = "DNC_FAULT_INJECTION";

/** Parses {@linkcode FAULT_INJECTION_ENV}; undefined when unset or not granted. */
export function faultInjection(
  log: Logger,
  text: string | undefined = readFaultInjectionEnv(),
): FaultHook | undefined {
  if (!text) return undefined;
  const match =
    /^(before-delegate|after-delegate|before-status-write|after-status-write):(add|remove)$/
      .exec(text);
  if (!match) {
    log.warn("Ignoring malformed test-only fault injection", { [FAULT_INJECTION_ENV]: text });
    return undefined;
  }
  const [, point, kind] = match as unknown as [string, FaultPoint, "add" | "remove"];
  log.warn("Test-only fault injection armed", { point, operation: kind });
  return (at, operation) => {
    if (at === point && operation === kind) {
      console.error(`fault injection: exiting at ${point} of ${kind}`);
      Deno.exit(137);
    }
  };
}

function readFaultInjectionEnv(): string | undefined {
  try {
    return Deno.env.get(FAULT_INJECTION_ENV);
  } catch {
    return undefined;
  }
}
