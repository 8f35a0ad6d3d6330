/**
 * The CNI result a delegate ADD returns (CNI spec 1.0 "Success" shape; 0.3.x and 0.4.0
 * results have the same fields). Only what network-status needs is typed; plugins may add more.
 *
 * @module
 */

/** DNS settings from a CNI result, also the `dns` object of a network-status entry. */
export interface Dns {
  /** Name server addresses, in priority order. */
  nameservers?: string[];
  /** Local domain for short names. */
  domain?: string;
  /** Search domains, in priority order. */
  search?: string[];
  /** Resolver options. */
  options?: string[];
}

/** One interface a plugin created or touched. */
export interface CniInterface {
  /** Interface name. */
  name: string;
  /** Hardware address. */
  mac?: string;
  /** MTU. */
  mtu?: number;
  /** Network namespace path; set only for interfaces inside the pod. */
  sandbox?: string;
  /** vhost-user socket path. */
  socketPath?: string;
  /** PCI address of the device. */
  pciID?: string;
}

/** One address a plugin assigned. */
export interface CniIpConfig {
  /** Index into `interfaces` of the interface holding the address. */
  interface?: number;
  /** Address with prefix, e.g. `10.1.1.11/24`. */
  address: string;
  /** Gateway of the address' subnet. */
  gateway?: string;
}

/** One route a plugin installed. */
export interface CniRoute {
  /** Destination CIDR; `0.0.0.0/0` or `::/0` for a default route. */
  dst: string;
  /** Next hop. */
  gw?: string;
}

/** A CNI ADD result. */
export interface CniResult {
  /** Version of the result format, e.g. `1.0.0`. */
  cniVersion?: string;
  /** Interfaces created or touched. */
  interfaces?: CniInterface[];
  /** Assigned addresses. */
  ips?: CniIpConfig[];
  /** Installed routes. */
  routes?: CniRoute[];
  /** DNS settings. */
  dns?: Dns;
}
