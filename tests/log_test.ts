import assert from "node:assert/strict";
import { Logger, type LogLevel } from "../lib/log.ts";

function capture(level: LogLevel, format: "json" | "text" = "json") {
  const lines: string[] = [];
  const log = new Logger({ level, format, sink: (line) => lines.push(line) });
  return { log, lines };
}

Deno.test("json lines carry ts, level, msg and lowerCamelCase fields", () => {
  const { log, lines } = capture("info");
  log.with({ pod: "ns1/p" }).info("added interface", { interfaceName: "net1" });
  assert.equal(lines.length, 1);
  const line = JSON.parse(lines[0]!);
  assert.equal(line.level, "info");
  assert.equal(line.msg, "added interface");
  assert.equal(line.pod, "ns1/p");
  assert.equal(line.interfaceName, "net1");
  assert.ok(!Number.isNaN(Date.parse(line.ts)));
});

Deno.test("errors are rendered with their cause chain under err", () => {
  const { log, lines } = capture("info");
  log.error("delegate failed", { err: new Error("outer", { cause: new Error("inner") }) });
  assert.equal(JSON.parse(lines[0]!).err, "outer: inner");
});

Deno.test("lines below the level are dropped", () => {
  const { log, lines } = capture("warn");
  log.info("quiet");
  log.debug("quieter");
  log.warn("loud");
  assert.deepEqual(lines.map((l) => JSON.parse(l).msg), ["loud"]);
  assert.equal(log.enabled("debug"), false);
});

Deno.test("text format quotes values with spaces", () => {
  const { log, lines } = capture("debug", "text");
  log.debug("planned", { pod: "a/b", reason: "two words" });
  assert.match(lines[0]!, /DEBUG planned pod=a\/b reason="two words"$/);
});
