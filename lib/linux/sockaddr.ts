/**
 * The socket address that accept4(2) fills in: the client's family, port and address bytes.
 * The address is handed on as bytes (lib/daemon/client_address.ts); the views into the reused
 * buffer are made once, so a connection costs no allocation.
 */
import { AF_INET, AF_INET6 } from "./libc.ts";

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
  /** The buffer as 32-bit words (host order), to check for an IPv4-mapped address at once. */
  words: Uint32Array;
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
    words: new Uint32Array(sockaddr.buffer, sockaddr.byteOffset, sockaddr.byteLength >> 2),
    ipv4: sockaddr.subarray(4, 8),
    ipv6: sockaddr.subarray(8, 24),
    mapped: sockaddr.subarray(20, 24),
  };
}

/**
 * The client's address in the socket address of `views`, as one of them: 4 bytes for IPv4 (also when
 * IPv4-mapped), 16 for IPv6; `null` for a family that is not IP.
 */
export function sockaddrAddress(views: SockaddrViews): Uint8Array | null {
  const words = views.words;
  const family = words[0] & 0xffff; // sa_family: little-endian on every Linux target
  if (family === AF_INET) return views.ipv4;
  if (family !== AF_INET6) return null;
  // ::ffff:0:0/96: bytes 8-17 zero, 18-19 0xff (the third word read little-endian).
  return words[2] === 0 && words[3] === 0 && words[4] === 0xffff0000 ? views.mapped : views.ipv6;
}
