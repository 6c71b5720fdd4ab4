/**
 * Source addresses for the report: the canonical text of an address as the program writes it
 * (so that one source is one row however a line spells it) and its /24 (IPv4) or /48 (IPv6)
 * network.
 *
 * This codec runs once per new source (a million times on a log of a million sources) under V8
 * without its JIT, so IPv4 is read with a few string builtins and arithmetic, not a library;
 * IPv6 text is written by the daemon's own RFC 5952 writer.
 */
import { addressText } from "../daemon/client_address.ts";

/** Prefix length of the IPv4 networks in the report. */
export const IPV4_NETWORK_BITS = 24;
/** Prefix length of the IPv6 networks in the report. */
export const IPV6_NETWORK_BITS = 48;
/** The longest IPv6 text with an embedded IPv4 address has 45 characters. */
const MAX_ADDRESS_LENGTH = 45;
const OCTET = "(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)";
/**
 * A dotted quad without leading zeros (`010` is octal to some tools): one native call, where a
 * loop over the characters would be interpreted.
 */
const IPV4 = new RegExp(`^(?:${OCTET}\\.){3}${OCTET}$`);

/** A source address read from a log line. */
export interface SourceAddress {
  /** Its canonical text: dotted quad, or RFC 5952 IPv6 (an IPv4-mapped address is IPv4). */
  text: string;
  /** Its network: the first three parts of an IPv4 address (`203.0.113`), or the /48's text. */
  network: string;
}

/**
 * The value of the dotted-quad IPv4 address in `text[start, end)` (0 to 2^32 - 1), or -1 if it
 * is not one: four decimal parts of 0-255 without leading zeros (`010` is octal to some tools).
 */
function ipv4Value(text: string, start: number, end: number): number {
  let value = 0;
  let part = 0;
  let digits = 0;
  let parts = 0;
  for (let i = start; i < end; i++) {
    const code = text.charCodeAt(i);
    if (code === 46) {
      if (digits === 0 || parts === 3) return -1;
      value = value * 256 + part;
      parts++;
      part = 0;
      digits = 0;
      continue;
    }
    const digit = code - 48;
    if (digit < 0 || digit > 9 || (digits === 1 && part === 0)) return -1;
    part = part * 10 + digit;
    digits++;
    if (part > 255) return -1;
  }
  if (digits === 0 || parts !== 3) return -1;
  return value * 256 + part;
}

/** The eight 16-bit groups of the IPv6 address `text` (any valid spelling), or `null`. */
function ipv6Groups(text: string): number[] | null {
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const parse = (half: string, last: boolean): number[] | null => {
    if (half === "") return [];
    const groups: number[] = [];
    const parts = half.split(":");
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i];
      if (last && i === parts.length - 1 && part.includes(".")) {
        const v4 = ipv4Value(part, 0, part.length);
        if (v4 < 0) return null;
        groups.push(Math.floor(v4 / 65536), v4 % 65536);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(part)) {
        groups.push(parseInt(part, 16));
      } else {
        return null;
      }
    }
    return groups;
  };
  const head = parse(halves[0], halves.length === 1);
  const tail = halves.length === 2 ? parse(halves[1], true) : [];
  if (head === null || tail === null) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  return [...head, ...new Array(missing).fill(0), ...tail];
}

/** Whether eight groups are an IPv4-mapped address (`::ffff:a.b.c.d`). */
function isMapped(groups: number[]): boolean {
  return groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 &&
    groups[4] === 0 && groups[5] === 0xffff;
}

function groupsText(groups: number[]): string {
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    bytes[2 * i] = groups[i] >> 8;
    bytes[2 * i + 1] = groups[i] & 255;
  }
  return addressText(bytes);
}

function dottedQuad(value: number): string {
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join(".");
}

/**
 * The source address in `text` (any valid spelling: `2001:DB8::1`, `2001:db8:0:0:0:0:0:1` and
 * `::ffff:192.0.2.1` read as `2001:db8::1` and `192.0.2.1`), or `null` if it is not an IP
 * address. The returned text is a new string: a map may keep it without keeping `text`'s chunk.
 */
export function parseSourceAddress(text: string): SourceAddress | null {
  if (text.length < 2 || text.length > MAX_ADDRESS_LENGTH) return null;
  if (text.indexOf(":") < 0) {
    if (!IPV4.test(text)) return null;
    // A valid dotted quad is canonical already: copy it (toLowerCase makes a flat copy in one
    // builtin call), so that a map keeps the address, not the decoded text it was sliced from.
    const copy = text.toLowerCase();
    return { text: copy, network: copy.slice(0, copy.lastIndexOf(".")) };
  }
  const groups = ipv6Groups(text);
  if (groups === null) return null;
  if (isMapped(groups)) {
    const quad = dottedQuad(groups[6] * 65536 + groups[7]);
    return { text: quad, network: quad.slice(0, quad.lastIndexOf(".")) };
  }
  const network = groupsText([groups[0], groups[1], groups[2], 0, 0, 0, 0, 0]);
  return { text: groupsText(groups), network: `${network}/${IPV6_NETWORK_BITS}` };
}

/** The text of a network as {@linkcode SourceAddress.network} holds it: `203.0.113.0/24`. */
export function networkName(network: string): string {
  return network.includes(":") ? network : `${network}.0/${IPV4_NETWORK_BITS}`;
}

/**
 * The network of `address`: `203.0.113.0/24` or `2001:db8:1::/48`. A text that is not an IP
 * address is its own network.
 */
export function networkOf(address: string): string {
  const parsed = parseSourceAddress(address);
  return parsed === null ? address : networkName(parsed.network);
}

/** Whether `address` is a valid IPv4 or IPv6 address. */
export function isIpAddress(address: string): boolean {
  return parseSourceAddress(address) !== null;
}
