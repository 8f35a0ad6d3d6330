/**
 * How the planner compares what an element of the networks annotation asks of its attachment
 * (IPs, MAC) with what a network-status entry records, and how it pairs unnamed elements with
 * recorded attachments of their network: a maximum matching, so that every attachment that
 * already gives what some element asks for is kept.
 *
 * @module
 */
import { canonicalIp, canonicalMac } from "./address.ts";
import type { NetworkSelectionElement } from "./selection_element.ts";
import type { NetworkStatus } from "./status.ts";

/** Addresses in a comparable form: canonical bare IPs, sorted, without repeats. */
function ipKey(ips: readonly unknown[]): string {
  const bare = ips.filter((ip): ip is string => typeof ip === "string")
    .map((ip) => canonicalIp(ip) ?? ip);
  return [...new Set(bare)].sort().join(",");
}

/** A MAC in a comparable form; text that does not parse is compared lowercased. */
function macKey(mac: string): string {
  return canonicalMac(mac) ?? mac.toLowerCase();
}

/** What an element asks of its attachment, in comparable form; undefined parts ask nothing. */
export interface Asked {
  /** The requested IPs, canonical and sorted; absent when none are requested. */
  ips?: string;
  /** The requested MAC, canonical; absent when none is requested. */
  mac?: string;
}

/** What a recorded attachment has, in comparable form. */
export interface Held {
  /** The recorded IPs, canonical and sorted. */
  ips: string;
  /** The recorded MAC, canonical; absent when none is recorded. */
  mac?: string;
}

/** What `element` asks of its attachment, in comparable form. */
export function askedBy(element: NetworkSelectionElement): Asked {
  const request: Asked = {};
  if (element.ips && element.ips.length > 0) request.ips = ipKey(element.ips);
  if (element.mac) request.mac = macKey(element.mac);
  return request;
}

/** What `entry` records of its attachment, in comparable form. */
export function heldBy(entry: NetworkStatus): Held {
  const record: Held = { ips: ipKey(Array.isArray(entry.ips) ? entry.ips : []) };
  if (typeof entry.mac === "string" && entry.mac !== "") record.mac = macKey(entry.mac);
  return record;
}

/** True when what is held gives what is asked. */
export function meets(request: Asked, record: Held): boolean {
  return (request.ips === undefined || request.ips === record.ips) &&
    (request.mac === undefined || request.mac === record.mac);
}

/**
 * True when the recorded attachment gives what `element` asks for: the same set of IPs (when
 * it asks for any; prefixes ignored) and the same MAC (when it asks for one; any notation).
 */
export function entrySatisfies(element: NetworkSelectionElement, entry: NetworkStatus): boolean {
  return meets(askedBy(element), heldBy(entry));
}

/**
 * A maximum matching between `left` and `right` items (Kuhn's augmenting paths, greedy start).
 * Returns, for each left index, the matched right index. Deterministic: earlier items first.
 */
export function maximumMatching(
  leftCount: number,
  rightCount: number,
  edge: (left: number, right: number) => boolean,
): (number | undefined)[] {
  const rightMatch: (number | undefined)[] = new Array(rightCount).fill(undefined);
  const leftMatch: (number | undefined)[] = new Array(leftCount).fill(undefined);
  for (let l = 0; l < leftCount; l++) {
    for (let r = 0; r < rightCount; r++) {
      if (rightMatch[r] === undefined && edge(l, r)) {
        rightMatch[r] = l;
        leftMatch[l] = r;
        break;
      }
    }
  }
  const augment = (l: number, seen: boolean[]): boolean => {
    for (let r = 0; r < rightCount; r++) {
      if (seen[r] || !edge(l, r)) continue;
      seen[r] = true;
      const holder = rightMatch[r];
      if (holder === undefined || augment(holder, seen)) {
        rightMatch[r] = l;
        leftMatch[l] = r;
        return true;
      }
    }
    return false;
  };
  for (let l = 0; l < leftCount; l++) {
    if (leftMatch[l] === undefined) augment(l, new Array(rightCount).fill(false));
  }
  return leftMatch;
}
