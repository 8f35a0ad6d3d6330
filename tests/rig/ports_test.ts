/** The rig's port picker stays out of the kernel's ephemeral range and never repeats itself. */
import assert from "node:assert/strict";
import { freePort } from "./ports.ts";

Deno.test("rig ports: free, below the ephemeral range, never handed out twice", () => {
  const ephemeralStart = Number(
    Deno.readTextFileSync("/proc/sys/net/ipv4/ip_local_port_range").trim().split(/\s+/)[0],
  );
  const ports = Array.from({ length: 50 }, () => freePort());
  assert.equal(new Set(ports).size, ports.length);
  for (const port of ports) {
    assert.ok(port >= 10_000 && port < ephemeralStart, `${port}`);
    Deno.listen({ hostname: "127.0.0.1", port }).close(); // still free to bind
  }
});
