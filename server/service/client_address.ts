/**
 * Who a call comes from, for limits that apply per client. The client is the connection's peer
 * address, unless that peer is a trusted proxy (`TRUSTED_PROXIES`): then `x-forwarded-for` is read
 * from the right, skipping trusted proxies, as Envoy does with `xff_num_trusted_hops`. An untrusted
 * peer cannot choose who it is counted as by sending the header itself.
 *
 * @example
 * ```ts
 * import { ClientAddresses } from "./client_address.ts";
 *
 * const clients = new ClientAddresses(["10.0.0.0/8"]);
 * if (clients.resolve("10.1.2.3", "198.51.100.7, 10.0.0.9") !== "198.51.100.7") throw new Error();
 * if (clients.resolve("203.0.113.5", "198.51.100.7") !== "203.0.113.5") throw new Error();
 * ```
 *
 * @module
 */

import { BlockList, isIP } from "node:net";

/** An IP address or CIDR range. */
export interface AddressRange {
  address: string;
  prefix: number;
  family: "ipv4" | "ipv6";
}

/** Reads `entry` as an IP address or CIDR (`10.0.0.0/8`, `::1`, `[::1]`); undefined when it is neither. */
export function parseAddressRange(entry: string): AddressRange | undefined {
  const match = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(entry.trim());
  if (match === null) return undefined;
  const address = match[1].replace(/^\[(.*)\]$/, "$1");
  const version = isIP(address);
  if (version === 0) return undefined;
  const maxPrefix = version === 4 ? 32 : 128;
  const prefix = match[2] === undefined ? maxPrefix : Number(match[2]);
  if (prefix > maxPrefix) return undefined;
  return { address, prefix, family: version === 4 ? "ipv4" : "ipv6" };
}

/** The header a proxy appends the address it received a request from to. */
export const FORWARDED_FOR_HEADER = "x-forwarded-for";

/** Resolves the client address of a call from its peer and, behind trusted proxies, its header. */
export class ClientAddresses {
  readonly #trusted = new BlockList();
  readonly #anyTrusted: boolean;

  /** `trustedProxies`: IPs or CIDRs, as {@linkcode parseAddressRange} reads them. */
  constructor(trustedProxies: readonly string[] = []) {
    for (const entry of trustedProxies) {
      const range = parseAddressRange(entry);
      if (range === undefined) throw new TypeError(`Not an IP address or CIDR: ${entry}`);
      this.#trusted.addSubnet(range.address, range.prefix, range.family);
    }
    this.#anyTrusted = trustedProxies.length > 0;
  }

  /** Whether `address` is one of the trusted proxies. */
  isTrusted(address: string): boolean {
    const bare = stripPort(address);
    const version = isIP(bare);
    if (!this.#anyTrusted || version === 0) return false;
    return this.#trusted.check(bare, version === 4 ? "ipv4" : "ipv6");
  }

  /**
   * The client behind a call from `peer` (an address, optionally with a port) carrying
   * `forwardedFor` (the `x-forwarded-for` header, if any).
   */
  resolve(peer: string | undefined, forwardedFor: string | undefined): string {
    let client = normalize(stripPort(peer ?? "unknown"));
    if (forwardedFor === undefined || !this.isTrusted(client)) return client;
    const hops = forwardedFor.split(",").map((hop) => stripPort(hop.trim())).filter((hop) =>
      hop !== ""
    );
    // Each trusted hop vouches for the one to its left; the first untrusted one is the client.
    for (let i = hops.length - 1; i >= 0; i--) {
      if (isIP(hops[i]) === 0) break;
      client = normalize(hops[i]);
      if (!this.isTrusted(client)) break;
    }
    return client;
  }
}

/** `1.2.3.4:5678` -> `1.2.3.4`, `[::1]:80` -> `::1`; bare addresses pass through. */
function stripPort(address: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(address);
  if (bracketed !== null) return bracketed[1];
  const v4 = /^(\d{1,3}(?:\.\d{1,3}){3}):\d+$/.exec(address);
  return v4 !== null ? v4[1] : address;
}

/** IPv4-mapped IPv6 (`::ffff:1.2.3.4`, as dual-stack sockets report) counts as the IPv4 client. */
function normalize(address: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  return (mapped !== null ? mapped[1] : address).toLowerCase();
}
