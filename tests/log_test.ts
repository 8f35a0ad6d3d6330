import assert from "node:assert/strict";
import { Logger, type LogLevel } from "../lib/base/log.ts";

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

Deno.test("long values are cut and say how long they were; long lists say how many more", () => {
  const { log, lines } = capture("info");
  log.warn("x".repeat(5000), {
    err: new Error("e".repeat(200_000)),
    detail: "d".repeat(1025),
    list: Array.from({ length: 1000 }, (_, i) => `net${i}`),
  });
  assert.equal(lines.length, 1);
  assert.ok(lines[0]!.length < 5_000, `line of ${lines[0]!.length} characters`);
  const line = JSON.parse(lines[0]!);
  assert.match(line.msg, /^x{1024}… \(5000 characters in all\)$/);
  assert.match(line.err, /^e{1024}… \(200000 characters in all\)$/);
  assert.match(line.detail, /… \(1025 characters in all\)$/);
  assert.equal(line.list.length, 17);
  assert.equal(line.list.at(-1), "… and 984 more");
});

Deno.test("short values are written as they are", () => {
  const { log, lines } = capture("info");
  const detail = "d".repeat(1024);
  log.info("fine", { detail, list: ["a", "b"] });
  const line = JSON.parse(lines[0]!);
  assert.equal(line.detail, detail);
  assert.deepEqual(line.list, ["a", "b"]);
});
