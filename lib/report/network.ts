/** The network of a source address for the report: its /24 (IPv4) or /48 (IPv6). */

/** Prefix length of the IPv4 networks in the report. */
export const IPV4_NETWORK_BITS = 24;
/** Prefix length of the IPv6 networks in the report. */
export const IPV6_NETWORK_BITS = 48;

/** The eight 16-bit groups of an IPv6 address, or `null` if it is not one. */
function ipv6Groups(address: string): number[] | null {
  const halves = address.split("::");
  if (halves.length > 2) return null;
  const parse = (text: string): number[] | null => {
    if (text === "") return [];
    const groups: number[] = [];
    const parts = text.split(":");
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i];
      if (i === parts.length - 1 && part.includes(".")) {
        const v4 = ipv4Octets(part);
        if (v4 === null) return null;
        groups.push(v4[0] * 256 + v4[1], v4[2] * 256 + v4[3]);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(part)) {
        groups.push(parseInt(part, 16));
      } else {
        return null;
      }
    }
    return groups;
  };
  const head = parse(halves[0]);
  const tail = halves.length === 2 ? parse(halves[1]) : [];
  if (head === null || tail === null) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  return [...head, ...new Array(missing).fill(0), ...tail];
}

/** The four octets of an IPv4 address in dotted decimal, or `null`. */
function ipv4Octets(address: string): number[] | null {
  const parts = address.split(".");
  if (parts.length !== 4) return null;
  const octets = parts.map((part) => /^\d{1,3}$/.test(part) ? Number(part) : 256);
  return octets.every((octet) => octet <= 255) ? octets : null;
}

/** RFC 5952 text of eight groups: lower case, the longest run of two or more zeros as `::`. */
function ipv6Text(groups: number[]): string {
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((group) => group.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLength).join(":")}`;
}

/**
 * The network of `address`: `203.0.113.0/24` or `2001:db8:1::/48`. An address that is not a
 * valid IP address is its own network (the report still counts it, under its own text).
 */
export function networkOf(address: string): string {
  if (!address.includes(":")) {
    const octets = ipv4Octets(address);
    return octets === null ? address : `${octets[0]}.${octets[1]}.${octets[2]}.0/24`;
  }
  const groups = ipv6Groups(address);
  if (groups === null) return address;
  return `${ipv6Text([groups[0], groups[1], groups[2], 0, 0, 0, 0, 0])}/48`;
}

/** Whether `address` is a valid IPv4 or IPv6 address. */
export function isIpAddress(address: string): boolean {
  return address.includes(":") ? ipv6Groups(address) !== null : ipv4Octets(address) !== null;
}
