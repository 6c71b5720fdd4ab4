/** IP address handling: canonical forms for the log, bind addresses, allow-list prefixes. */
import ipaddr from "ipaddr.js";

const MAPPED_PREFIX = "::ffff:";

/**
 * The canonical text of an IP address as the kernel reports it: IPv4 as dotted quad (also
 * when it reached a dual-stack socket as `::ffff:a.b.c.d`), IPv6 in RFC 5952 form without a
 * zone id (a zone names the local interface; ban tools take plain addresses).
 */
export function canonicalAddress(address: string): string {
  // Hot path: a connection's address. Deno reports IPv4 plainly and IPv4 on a dual-stack
  // socket with the mapped prefix; both are cheap to handle without parsing.
  if (!address.includes(":")) return address;
  if (address.startsWith(MAPPED_PREFIX) && address.includes(".")) {
    return address.slice(MAPPED_PREFIX.length);
  }
  const parsed = ipaddr.IPv6.parse(address.replace(/%.*$/, ""));
  return parsed.isIPv4MappedAddress()
    ? parsed.toIPv4Address().toString()
    : parsed.toRFC5952String();
}

/** Whether a kernel-reported address is an IPv4 client seen through a dual-stack socket. */
export function isMappedIPv4(address: string): boolean {
  return address.startsWith(MAPPED_PREFIX) && address.includes(".");
}

/** The IP version of a valid address text. */
export function addressFamily(address: string): 4 | 6 {
  return address.includes(":") ? 6 : 4;
}

/**
 * Parses a `-b` bind address into canonical text.
 *
 * @throws {RangeError} if `text` is not an IPv4 or IPv6 address (host names are never resolved).
 */
export function parseBindAddress(text: string): string {
  const bare = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  if (ipaddr.IPv4.isValidFourPartDecimal(bare)) return ipaddr.IPv4.parse(bare).toString();
  if (bare.includes(":") && !bare.includes("%") && ipaddr.IPv6.isValid(bare)) {
    return canonicalAddress(bare);
  }
  throw new RangeError(`Cannot bind to "${text}": not an IP address`);
}

/** A set of IPv4 and IPv6 prefixes to test client addresses against. */
export class PrefixSet {
  #v4: [ipaddr.IPv4, number][] = [];
  #v6: [ipaddr.IPv6, number][] = [];

  /**
   * Adds a prefix in CIDR notation (a plain address means a single host).
   *
   * @throws {RangeError} if `cidr` is not a valid address or prefix.
   */
  add(cidr: string): void {
    const text = cidr.trim();
    const [host, bitsText, extra] = text.split("/");
    const isV4 = ipaddr.IPv4.isValidFourPartDecimal(host);
    const max = isV4 ? 32 : 128;
    const valid = extra === undefined &&
      (isV4 || (!host.includes("%") && ipaddr.IPv6.isValid(host))) &&
      (bitsText === undefined || (/^\d{1,3}$/.test(bitsText) && Number(bitsText) <= max));
    if (!valid) throw new RangeError(`Cannot ignore "${cidr}": not an IP address or CIDR prefix`);
    const parsed: [ipaddr.IPv4 | ipaddr.IPv6, number] = [
      ipaddr.parse(host),
      bitsText === undefined ? max : Number(bitsText),
    ];
    let [address, bits] = parsed;
    // Clients on a dual-stack socket are logged and matched as IPv4: so are mapped prefixes.
    if (address instanceof ipaddr.IPv6 && address.isIPv4MappedAddress() && bits >= 96) {
      [address, bits] = [address.toIPv4Address(), bits - 96];
    }
    if (address.kind() === "ipv4") this.#v4.push([address as ipaddr.IPv4, bits]);
    else this.#v6.push([address as ipaddr.IPv6, bits]);
  }

  /** The number of prefixes. */
  get size(): number {
    return this.#v4.length + this.#v6.length;
  }

  /** Whether the canonical address (see {@linkcode canonicalAddress}) is in one of the prefixes. */
  has(address: string): boolean {
    if (this.size === 0) return false;
    if (address.includes(":")) {
      const v6 = ipaddr.IPv6.parse(address);
      return this.#v6.some(([prefix, bits]) => v6.match(prefix, bits));
    }
    const v4 = ipaddr.IPv4.parse(address);
    return this.#v4.some(([prefix, bits]) => v4.match(prefix, bits));
  }
}
