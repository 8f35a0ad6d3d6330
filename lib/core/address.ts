/**
 * IP and hardware address grammars, with the same acceptance rules as Go's `net.ParseIP`,
 * `net.ParseCIDR` and `net.ParseMAC`, so that every address the original controller accepts
 * is accepted here and vice versa. Canonical forms match Go's `String()` methods, which is
 * how multus writes addresses into network-status.
 *
 * @module
 */

/** A parsed IP address: always 16 bytes; IPv4 addresses are stored IPv4-mapped. */
export interface IpAddress {
  /** The address in 16-byte form (`::ffff:a.b.c.d` for IPv4). */
  readonly bytes: Uint8Array;
  /** True when the text was written in IPv4 dotted-decimal form. */
  readonly v4: boolean;
}

/** A parsed CIDR: an address and a prefix length counted in the address' own family. */
export interface Cidr {
  /** The address as written (not masked). */
  readonly address: IpAddress;
  /** Prefix length: 0..32 for IPv4, 0..128 for IPv6. */
  readonly prefixLength: number;
}

const V4_MAPPED_PREFIX = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

/** Parses `a.b.c.d` into `out[offset..offset+4]`; false when it is not dotted decimal. */
function parseIpv4Into(text: string, out: Uint8Array, offset: number): boolean {
  const fields = text.split(".");
  if (fields.length !== 4) return false;
  for (let i = 0; i < 4; i++) {
    const field = fields[i]!;
    // Leading zeros are refused, as Go does since 1.17: "010" could mean octal to other tools.
    if (!/^(0|[1-9][0-9]{0,2})$/.test(field)) return false;
    const value = Number(field);
    if (value > 255) return false;
    out[offset + i] = value;
  }
  return true;
}

/** Parses an IPv6 text (no zone) into 16 bytes, or returns undefined. */
function parseIpv6(text: string): Uint8Array | undefined {
  const bytes = new Uint8Array(16);
  let rest = text;
  let ellipsis = -1; // byte index where "::" stands, if any
  if (rest.startsWith("::")) {
    ellipsis = 0;
    rest = rest.slice(2);
    if (rest === "") return bytes;
  }
  let filled = 0;
  while (filled < 16) {
    const group = /^[0-9a-fA-F]*/.exec(rest)![0];
    if (group.length > 0 && group.length <= 3 && rest[group.length] === ".") {
      // Embedded IPv4: only as the last 32 bits.
      if (ellipsis < 0 && filled !== 12) return undefined;
      if (filled + 4 > 16) return undefined;
      if (!parseIpv4Into(rest, bytes, filled)) return undefined;
      filled += 4;
      rest = "";
      break;
    }
    if (group.length === 0 || group.length > 4) return undefined;
    const value = parseInt(group, 16);
    bytes[filled] = value >> 8;
    bytes[filled + 1] = value & 0xff;
    filled += 2;
    rest = rest.slice(group.length);
    if (rest === "") break;
    if (rest[0] !== ":" || rest.length === 1) return undefined;
    rest = rest.slice(1);
    if (rest[0] === ":") {
      if (ellipsis >= 0) return undefined; // a second "::"
      ellipsis = filled;
      rest = rest.slice(1);
      if (rest === "") break;
    }
  }
  if (rest !== "") return undefined;
  if (filled < 16) {
    if (ellipsis < 0) return undefined;
    const gap = 16 - filled;
    bytes.copyWithin(ellipsis + gap, ellipsis, filled);
    bytes.fill(0, ellipsis, ellipsis + gap);
  } else if (ellipsis >= 0) {
    return undefined; // "::" must stand for at least one group of zeros
  }
  return bytes;
}

/**
 * Parses an IP address written as IPv4 dotted decimal or IPv6 (RFC 4291 text forms, embedded
 * IPv4 allowed, zones not allowed). Returns undefined when the text is not an IP address.
 */
export function parseIp(text: string): IpAddress | undefined {
  if (text.includes(":")) {
    const bytes = parseIpv6(text);
    return bytes ? { bytes, v4: false } : undefined;
  }
  const bytes = new Uint8Array(16);
  bytes.set(V4_MAPPED_PREFIX);
  return parseIpv4Into(text, bytes, 12) ? { bytes, v4: true } : undefined;
}

/**
 * Parses `address/prefix`, e.g. `10.1.1.11/24` or `2001:db8::1/64`. Returns undefined when the
 * address is invalid or the prefix is not a decimal number within the address family's width.
 */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf("/");
  if (slash < 0) return undefined;
  const address = parseIp(text.slice(0, slash));
  const prefix = text.slice(slash + 1);
  if (!address || !/^[0-9]{1,3}$/.test(prefix)) return undefined;
  const prefixLength = Number(prefix);
  if (prefixLength > (address.v4 ? 32 : 128)) return undefined;
  return { address, prefixLength };
}

function isV4Mapped(bytes: Uint8Array): boolean {
  return V4_MAPPED_PREFIX.every((b, i) => bytes[i] === b);
}

/**
 * Formats an address the way Go's `net.IP.String` does: dotted decimal for IPv4 and
 * IPv4-mapped IPv6, otherwise RFC 5952 (lowercase, longest run of two or more zero groups as `::`).
 */
export function formatIp(address: IpAddress): string {
  const b = address.bytes;
  if (isV4Mapped(b)) return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[i]! << 8) | b[i + 1]!);
  let bestStart = -1;
  let bestLength = 1; // a single zero group is never shortened
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let end = i;
    while (end < 8 && groups[end] === 0) end++;
    if (end - i > bestLength) {
      bestStart = i;
      bestLength = end - i;
    }
    i = end;
  }
  const hex = (from: number, to: number) =>
    groups.slice(from, to).map((g) => g.toString(16)).join(":");
  if (bestStart < 0) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLength, 8)}`;
}

/**
 * The canonical bare IP of `text`, which may be an IP or a CIDR (the prefix is dropped).
 * Returns undefined when `text` is neither.
 */
export function canonicalIp(text: string): string | undefined {
  const address = text.includes("/") ? parseCidr(text)?.address : parseIp(text);
  return address ? formatIp(address) : undefined;
}

/** Byte lengths a hardware address may have: EUI-48, EUI-64 and 20-byte IP over InfiniBand. */
const HARDWARE_ADDRESS_LENGTHS = new Set([6, 8, 20]);

/**
 * Parses a hardware address as Go's `net.ParseMAC` does: 6, 8 or 20 bytes written as
 * `00:00:5e:00:53:01`, `00-00-5e-00-53-01` or `0000.5e00.5301` (case-insensitive).
 * Returns undefined when `text` is not such an address.
 */
export function parseMac(text: string): Uint8Array | undefined {
  let groupDigits: number;
  let separator: string;
  if (text[2] === ":" || text[2] === "-") {
    groupDigits = 2;
    separator = text[2];
  } else if (text[4] === ".") {
    groupDigits = 4;
    separator = ".";
  } else {
    return undefined;
  }
  const groups = text.split(separator);
  if (!HARDWARE_ADDRESS_LENGTHS.has((groups.length * groupDigits) / 2)) return undefined;
  const bytes: number[] = [];
  for (const group of groups) {
    if (group.length !== groupDigits || !/^[0-9a-fA-F]+$/.test(group)) return undefined;
    for (let i = 0; i < groupDigits; i += 2) bytes.push(parseInt(group.slice(i, i + 2), 16));
  }
  return Uint8Array.from(bytes);
}

/** Formats a hardware address as Go's `HardwareAddr.String`: lowercase hex pairs joined by `:`. */
export function formatMac(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(":");
}

/** The canonical form of a MAC or GUID text, or undefined when it does not parse. */
export function canonicalMac(text: string): string | undefined {
  const bytes = parseMac(text);
  return bytes ? formatMac(bytes) : undefined;
}
