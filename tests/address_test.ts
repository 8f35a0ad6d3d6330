import assert from "node:assert/strict";
import { canonicalIp, canonicalMac, parseCidr, parseIp, parseMac } from "../lib/core/address.ts";

// Expected texts are what Go's net.IP.String prints for the same address.
const canonical: [string, string][] = [
  ["10.1.1.11", "10.1.1.11"],
  ["10.1.1.11/24", "10.1.1.11"],
  ["0.0.0.0/0", "0.0.0.0"],
  ["2001:DB8:0:0:0:0:0:1", "2001:db8::1"],
  ["2001:0db8:0000:0000:0000:0000:0000:0001/64", "2001:db8::1"],
  ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
  ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"],
  ["0:0:0:0:0:0:0:0", "::"],
  ["::", "::"],
  ["::1", "::1"],
  ["1::", "1::"],
  ["1:0:1:1:1:1:1:1", "1:0:1:1:1:1:1:1"],
  ["1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"],
  ["::ffff:10.1.1.1", "10.1.1.1"],
  ["::FFFF:a01:101", "10.1.1.1"],
  ["::10.1.1.1", "::a01:101"],
  ["64:ff9b::192.0.2.33/96", "64:ff9b::c000:221"],
  ["fe80::1:2", "fe80::1:2"],
];
for (const [text, expected] of canonical) {
  Deno.test(`canonical ip of ${text} is ${expected}`, () => {
    assert.equal(canonicalIp(text), expected);
  });
}

Deno.test("canonical ip of text that is not an address is undefined", () => {
  for (const text of ["", "x", "10.0.0.1/33", "1::2::3", "fe80::1%eth0", "10.0.0.01"]) {
    assert.equal(canonicalIp(text), undefined, text);
  }
});

Deno.test("parse ip marks the family", () => {
  assert.equal(parseIp("10.0.0.1")?.v4, true);
  assert.equal(parseIp("::ffff:10.0.0.1")?.v4, false);
  assert.deepEqual(Array.from(parseIp("10.0.0.1")!.bytes), [
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    255,
    255,
    10,
    0,
    0,
    1,
  ]);
});

Deno.test("cidr prefix is bounded by the family", () => {
  assert.equal(parseCidr("10.0.0.0/32")?.prefixLength, 32);
  assert.equal(parseCidr("10.0.0.0/33"), undefined);
  assert.equal(parseCidr("::/128")?.prefixLength, 128);
  assert.equal(parseCidr("::/129"), undefined);
  assert.equal(parseCidr("::ffff:10.0.0.0/100")?.prefixLength, 100);
  assert.equal(parseCidr("10.0.0.0"), undefined);
  assert.equal(parseCidr("10.0.0.0/-1"), undefined);
  assert.equal(parseCidr("10.0.0.0/1000"), undefined);
});

Deno.test("mac notations give the same canonical form", () => {
  for (const text of ["0A:00:00:00:00:0B", "0a-00-00-00-00-0b", "0a00.0000.000b"]) {
    assert.equal(canonicalMac(text), "0a:00:00:00:00:0b", text);
  }
  assert.equal(canonicalMac("02:00:00:00:00:00:00:01"), "02:00:00:00:00:00:00:01");
  assert.equal(parseMac("02:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:01")?.length, 20);
  assert.equal(canonicalMac("02:00:00:00:00"), undefined);
  assert.equal(canonicalMac("0200.0000.0001.0002.0003"), undefined); // 10 bytes
});
