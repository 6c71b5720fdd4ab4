/**
 * Client addresses from the socket address that accept4(2) fills in: the text the log shows
 * (IPv4 dotted quad, also for an IPv4 client of a dual-stack socket; IPv6 in RFC 5952 form) and
 * the port. This runs once per connection on the native path, so it reads bytes directly.
 */
import { AF_INET, AF_INET6 } from "./libc.ts";

const HEX = "0123456789abcdef";

/** The address family of a socket address (host order: little-endian on Linux targets). */
export function sockaddrFamily(sockaddr: Uint8Array): number {
  return sockaddr[0] | (sockaddr[1] << 8);
}

/** The port of an IPv4 or IPv6 socket address. */
export function sockaddrPort(sockaddr: Uint8Array): number {
  return (sockaddr[2] << 8) | sockaddr[3];
}

/** Where the address bytes of an IPv4-mapped IPv6 socket address start, or -1 if not mapped. */
function mappedOffset(sockaddr: Uint8Array): number {
  for (let i = 8; i < 18; i++) if (sockaddr[i] !== 0) return -1;
  return sockaddr[18] === 0xff && sockaddr[19] === 0xff ? 20 : -1;
}

function dottedQuad(bytes: Uint8Array, offset: number): string {
  return `${bytes[offset]}.${bytes[offset + 1]}.${bytes[offset + 2]}.${bytes[offset + 3]}`;
}

function hexGroup(value: number): string {
  if (value < 0x10) return HEX[value];
  if (value < 0x100) return HEX[value >> 4] + HEX[value & 15];
  if (value < 0x1000) return HEX[value >> 8] + HEX[(value >> 4) & 15] + HEX[value & 15];
  return HEX[value >> 12] + HEX[(value >> 8) & 15] + HEX[(value >> 4) & 15] + HEX[value & 15];
}

/**
 * The RFC 5952 text of 16 IPv6 address bytes from `offset`: lower-case hex without leading
 * zeros, the longest run of two or more zero groups (the first of equal runs) as `::`.
 */
export function formatIPv6(bytes: Uint8Array, offset = 0): string {
  let bestStart = -1;
  let bestLength = 1;
  for (let group = 0; group < 8;) {
    if (bytes[offset + 2 * group] !== 0 || bytes[offset + 2 * group + 1] !== 0) {
      group++;
      continue;
    }
    let end = group;
    while (end < 8 && bytes[offset + 2 * end] === 0 && bytes[offset + 2 * end + 1] === 0) end++;
    if (end - group > bestLength) [bestStart, bestLength] = [group, end - group];
    group = end;
  }
  let text = "";
  for (let group = 0; group < 8; group++) {
    if (group === bestStart) {
      text += "::";
      group += bestLength - 1;
      continue;
    }
    if (text !== "" && !text.endsWith(":")) text += ":";
    text += hexGroup((bytes[offset + 2 * group] << 8) | bytes[offset + 2 * group + 1]);
  }
  return text;
}

/** The log text of the client address in `sockaddr`, or `null` for an unknown family. */
export function formatSockaddrAddress(sockaddr: Uint8Array): string | null {
  const family = sockaddrFamily(sockaddr);
  if (family === AF_INET) return dottedQuad(sockaddr, 4);
  if (family !== AF_INET6) return null;
  const mapped = mappedOffset(sockaddr);
  return mapped === -1 ? formatIPv6(sockaddr, 8) : dottedQuad(sockaddr, mapped);
}

/**
 * The client's address bytes in `sockaddr` (4 for IPv4, also when mapped; 16 for IPv6), as a
 * view into it, for the allow-list.
 */
export function sockaddrAddressBytes(sockaddr: Uint8Array): Uint8Array {
  if (sockaddrFamily(sockaddr) === AF_INET) return sockaddr.subarray(4, 8);
  const mapped = mappedOffset(sockaddr);
  return mapped === -1 ? sockaddr.subarray(8, 24) : sockaddr.subarray(mapped, mapped + 4);
}
