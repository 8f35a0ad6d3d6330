/**
 * One element of the `k8s.v1.cni.cncf.io/networks` annotation: its shape, the error that
 * names what is wrong with it, and the rules both grammars (`selection.ts`, `selection_json.ts`)
 * check it with.
 *
 * @module
 */

/** A port mapping request (`portMappings[]`), passed through for plugins that honour it. */
export interface PortMapping {
  /** Port on the node. */
  hostPort?: number;
  /** Port in the pod. */
  containerPort?: number;
  /** `tcp`, `udp` or `sctp`. */
  protocol?: string;
  /** Node address to bind. */
  hostIP?: string;
}

/** A bandwidth limit request (`bandwidth`), passed through for plugins that honour it. */
export interface BandwidthEntry {
  /** Ingress rate in bits per second. */
  ingressRate?: number;
  /** Ingress burst in bits. */
  ingressBurst?: number;
  /** Egress rate in bits per second. */
  egressRate?: number;
  /** Egress burst in bits. */
  egressBurst?: number;
}

/** One requested attachment: a NetworkAttachmentDefinition and how to attach it. */
export interface NetworkSelectionElement {
  /** Name of the NetworkAttachmentDefinition. */
  name: string;
  /** Namespace of the NetworkAttachmentDefinition; defaulted to the pod's namespace. */
  namespace: string;
  /** Interface name in the pod; absent when the element does not name one. */
  interface?: string;
  /** Requested addresses, each an IP or a CIDR; absent when none are requested. */
  ips?: string[];
  /** Requested MAC address, as written. */
  mac?: string;
  /** Extra CNI arguments for the delegate. */
  "cni-args"?: Record<string, unknown> | null;
  /** Gateways for default routes through this attachment. */
  "default-route"?: string[];
  /** Port mappings. */
  portMappings?: PortMapping[];
  /** Bandwidth limits. */
  bandwidth?: BandwidthEntry;
  /** Requested InfiniBand GUID, as written. */
  "infiniband-guid"?: string;
  /** Name of an IPAMClaim that holds this attachment's addresses. */
  "ipam-claim-reference"?: string;
}

/**
 * A networks annotation that cannot be used. `path` names the element and field
 * (`networks[2].mac`, or `networks` for the annotation as a whole) and `value` is the bad value.
 */
export class SelectionError extends Error {
  /** Where the problem is, e.g. `networks[2].mac`. */
  readonly path: string;
  /** The offending value. */
  readonly value: unknown;

  /** Builds the error; the message is `<path>: <problem>`. */
  constructor(path: string, value: unknown, problem: string) {
    super(`${path}: ${problem}`);
    this.name = "SelectionError";
    this.path = path;
    this.value = value;
  }
}

const utf8 = new TextEncoder();

/** Quotes a value for an error message, shortening long ones so messages stay readable. */
export function quote(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 64 ? `${text.slice(0, 60)}...${text.slice(-3)}` : text;
}

/** How to write a name that the RFC 1123 rules accept. */
export const DNS_LABEL_HINT =
  'use lowercase letters, digits and "-", starting and ending with a letter or digit';
/** How to write an interface name the kernel accepts. */
export const INTERFACE_HINT = 'interface names are 1 to 15 bytes without "/", ":" or whitespace';

/**
 * Why the kernel would refuse `name` as a network interface name (its `dev_valid_name` rule),
 * or undefined when it is acceptable: 1 to 15 bytes, not `.` or `..`, no `/`, `:` or whitespace.
 */
export function interfaceNameProblem(name: string): string | undefined {
  const bytes = utf8.encode(name);
  if (bytes.length === 0) return "is empty";
  if (bytes.length > 15) return `is ${bytes.length} bytes long; the kernel allows at most 15`;
  if (name === "." || name === "..") return "is reserved by the kernel";
  for (const byte of bytes) {
    if (byte === 0x2f) return 'contains "/"';
    if (byte === 0x3a) return 'contains ":"';
    if (byte === 0) return "contains a NUL character";
    // The kernel's isspace() also counts byte 0xa0, which occurs inside some UTF-8 characters.
    if (byte === 0x20 || (byte >= 0x09 && byte <= 0x0d) || byte === 0xa0) {
      return "contains whitespace";
    }
  }
  return undefined;
}
