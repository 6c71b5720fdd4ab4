/**
 * IP address parsing for the configuration: bind addresses and allow-list prefixes. It loads
 * ipaddr.js, which costs about 5 MB of memory, so main.ts imports it only when `-b`, `--ignore`
 * or `--ignore-file` is given; the per-connection path uses lib/address.ts.
 */
import ipaddr from "ipaddr.js";

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
    // A shorter one reaches beyond ::ffff:0:0/96 into IPv6 space: surely not what was meant.
    if (address instanceof ipaddr.IPv6 && address.isIPv4MappedAddress()) {
      if (bits < 96) {
        throw new RangeError(`Cannot ignore "${cidr}": an IPv4-mapped prefix needs /96 or more`);
      }
      [address, bits] = [address.toIPv4Address(), bits - 96];
    }
    if (address.kind() === "ipv4") this.#v4.push([address as ipaddr.IPv4, bits]);
    else this.#v6.push([address as ipaddr.IPv6, bits]);
  }

  /** The number of prefixes. */
  get size(): number {
    return this.#v4.length + this.#v6.length;
  }

  /** Whether a canonical address (as lib/address.ts makes them) is in one of the prefixes. */
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
