/**
 * The socket address that accept4(2) fills in: the client's family, port and address bytes.
 * The address is handed on as bytes (lib/daemon/client_address.ts); the views into the reused
 * buffer are made once, so a connection costs no allocation.
 */
import { AF_INET, AF_INET6 } from "./libc.ts";
import { addressText } from "../daemon/client_address.ts";

/** The address family of a socket address (host order: little-endian on Linux targets). */
export function sockaddrFamily(sockaddr: Uint8Array): number {
  return sockaddr[0] | (sockaddr[1] << 8);
}

/** The port of an IPv4 or IPv6 socket address. */
export function sockaddrPort(sockaddr: Uint8Array): number {
  return (sockaddr[2] << 8) | sockaddr[3];
}

/** Views of the address bytes of one socket address buffer, made once per buffer. */
export interface SockaddrViews {
  /** `sin_addr` of an IPv4 socket address. */
  ipv4: Uint8Array;
  /** `sin6_addr` of an IPv6 socket address. */
  ipv6: Uint8Array;
  /** The IPv4 address inside an IPv4-mapped `sin6_addr` (`::ffff:a.b.c.d`). */
  mapped: Uint8Array;
}

/** Makes the views of `sockaddr`'s address bytes (see {@linkcode sockaddrAddress}). */
export function sockaddrViews(sockaddr: Uint8Array): SockaddrViews {
  return {
    ipv4: sockaddr.subarray(4, 8),
    ipv6: sockaddr.subarray(8, 24),
    mapped: sockaddr.subarray(20, 24),
  };
}

/**
 * The client's address in `sockaddr`, as one of `views`: 4 bytes for IPv4 (also when
 * IPv4-mapped), 16 for IPv6; `null` for a family that is not IP.
 */
export function sockaddrAddress(sockaddr: Uint8Array, views: SockaddrViews): Uint8Array | null {
  const family = sockaddr[0] | (sockaddr[1] << 8);
  if (family === AF_INET) return views.ipv4;
  if (family !== AF_INET6) return null;
  for (let i = 8; i < 18; i++) if (sockaddr[i] !== 0) return views.ipv6;
  return sockaddr[18] === 0xff && sockaddr[19] === 0xff ? views.mapped : views.ipv6;
}

/** The RFC 5952 text of 16 IPv6 address bytes from `offset` (as the log writes it). */
export function formatIPv6(bytes: Uint8Array, offset = 0): string {
  return addressText(bytes.subarray(offset, offset + 16));
}
