/**
 * IP address parsing for the configuration: bind addresses and allow-list prefixes. It loads
 * ipaddr.js, which costs about 5 MB of memory, so lib/serve.ts imports it only when `-b`, `--ignore`
 * or `--ignore-file` is given; the per-connection path never uses it.
 */
import ipaddr from "ipaddr.js";
import { quote } from "../errors.ts";

/**
 * The canonical text of any valid IP address: IPv4 as dotted quad (also when written as an
 * IPv4-mapped IPv6 address), IPv6 in RFC 5952 form without a zone id.
 */
export function canonicalAddress(address: string): string {
  if (!address.includes(":")) return ipaddr.IPv4.parse(address).toString();
  const parsed = ipaddr.IPv6.parse(address.replace(/%.*$/, ""));
  return parsed.isIPv4MappedAddress()
    ? parsed.toIPv4Address().toString()
    : parsed.toRFC5952String();
}

/**
 * Parses a `-b` bind address into canonical text.
 *
 * @throws {RangeError} if `text` is not an IPv4 or IPv6 address (host names are never resolved),
 * or is a multicast or the broadcast address (no TCP connection can reach those).
 */
export function parseBindAddress(text: string): string {
  const bare = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  let address: string;
  if (ipaddr.IPv4.isValidFourPartDecimal(bare)) {
    address = ipaddr.IPv4.parse(bare).toString();
  } else if (bare.includes(":") && !bare.includes("%") && ipaddr.IPv6.isValid(bare)) {
    address = canonicalAddress(bare);
  } else {
    throw new RangeError(`Cannot bind to ${quote(text)}: not an IP address`);
  }
  // An IPv4-mapped multicast address is IPv4 by now, and caught as such.
  const range = ipaddr.parse(address).range();
  if (range === "multicast" || range === "broadcast") {
    const what = range === "multicast" ? "a multicast address" : "the broadcast address";
    throw new RangeError(
      `Cannot bind to ${quote(text)}: ${what}, which cannot accept TCP connections`,
    );
  }
  return address;
}
