/**
 * Free loopback TCP ports for the rig's daemons and the controllers under test.
 *
 * A port found by binding port 0 lies in the kernel's ephemeral range
 * (`net.ipv4.ip_local_port_range`), where any outgoing connection may take it between the
 * check and the daemon's own bind ("address already in use"). Ports are therefore picked at
 * random below that range and checked by binding them; a port is never handed out twice by
 * one process.
 *
 * @module
 */

const LOWEST = 10_000;
const given = new Set<number>();

/** The first port of the kernel's ephemeral range (32768 when it cannot be read). */
function ephemeralStart(): number {
  try {
    const first = Number(
      Deno.readTextFileSync("/proc/sys/net/ipv4/ip_local_port_range").trim().split(/\s+/)[0],
    );
    return Number.isInteger(first) && first > LOWEST + 1000 ? first : 32768;
  } catch {
    return 32768;
  }
}

/** A free TCP port on 127.0.0.1 outside the ephemeral range. */
export function freePort(): number {
  const highest = ephemeralStart() - 1;
  for (let attempt = 0; attempt < 500; attempt++) {
    const port = LOWEST + Math.floor(Math.random() * (highest - LOWEST + 1));
    if (given.has(port)) continue;
    try {
      Deno.listen({ hostname: "127.0.0.1", port }).close();
    } catch {
      continue; // in use
    }
    given.add(port);
    return port;
  }
  throw new Error(
    `no free TCP port on 127.0.0.1 between ${LOWEST} and ${highest}: stop leftover rigs or controllers`,
  );
}
