import assert from "node:assert/strict";
import { AF_INET, AF_INET6, encodeSockaddr, SOCKADDR_BYTES } from "../../lib/linux/libc.ts";
import {
  sockaddrAddress,
  sockaddrFamily,
  sockaddrPort,
  sockaddrViews,
} from "../../lib/linux/sockaddr.ts";
import { addressText } from "../../lib/daemon/client_address.ts";
import { ipv6Bytes } from "../_util.ts";

/** The client address of `sockaddr` as the listener hands it on (bytes), or `null`. */
function sockaddrAddressBytes(sockaddr: Uint8Array): Uint8Array {
  return sockaddrAddress(sockaddrViews(sockaddr))!;
}

/** The log text of the client address in `sockaddr`, or `null` if it is not IP. */
function formatSockaddrAddress(sockaddr: Uint8Array): string | null {
  const address = sockaddrAddress(sockaddrViews(sockaddr));
  return address === null ? null : addressText(address);
}

/** A socket address as accept4(2) fills it in. */
function sockaddrOf(address: Uint8Array, port: number): Uint8Array {
  const buffer = new Uint8Array(SOCKADDR_BYTES);
  buffer.set(encodeSockaddr(address, port));
  return buffer;
}

Deno.test("sockaddr: IPv4, IPv6 and IPv4-mapped client addresses and ports", () => {
  const v4 = sockaddrOf(Uint8Array.of(203, 0, 113, 5), 51234);
  assert.equal(sockaddrFamily(v4), AF_INET);
  assert.equal(sockaddrPort(v4), 51234);
  assert.equal(formatSockaddrAddress(v4), "203.0.113.5");
  assert.deepEqual([...sockaddrAddressBytes(v4)], [203, 0, 113, 5]);

  const mapped = sockaddrOf(ipv6Bytes("::ffff:c000:201"), 1);
  assert.equal(sockaddrFamily(mapped), AF_INET6);
  assert.equal(sockaddrPort(mapped), 1);
  assert.equal(formatSockaddrAddress(mapped), "192.0.2.1");
  assert.deepEqual([...sockaddrAddressBytes(mapped)], [192, 0, 2, 1]);

  const v6 = sockaddrOf(ipv6Bytes("2001:db8::1"), 65535);
  assert.equal(sockaddrPort(v6), 65535);
  assert.equal(formatSockaddrAddress(v6), "2001:db8::1");
  assert.equal(sockaddrAddressBytes(v6).length, 16);

  // Not mapped: ::ffff:0:0/96 only, not its neighbours.
  assert.equal(
    formatSockaddrAddress(sockaddrOf(ipv6Bytes("::fffe:c000:201"), 1)),
    "::fffe:c000:201",
  );
  assert.equal(
    formatSockaddrAddress(sockaddrOf(ipv6Bytes("1::ffff:c000:201"), 1)),
    "1::ffff:c000:201",
  );
  const unknown = new Uint8Array(SOCKADDR_BYTES);
  unknown[0] = 1; // AF_UNIX
  assert.equal(formatSockaddrAddress(unknown), null);
});
