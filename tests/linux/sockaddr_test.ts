import assert from "node:assert/strict";
import { AF_INET, AF_INET6, encodeSockaddr, SOCKADDR_BYTES } from "../../lib/linux/libc.ts";
import {
  formatIPv6,
  sockaddrAddress,
  sockaddrFamily,
  sockaddrPort,
  sockaddrViews,
} from "../../lib/linux/sockaddr.ts";
import { addressText } from "../../lib/daemon/client_address.ts";
import { canonicalAddress } from "../../lib/config/ip.ts";

function ipv6Bytes(text: string): Uint8Array {
  const [head, tail] = text.includes("::") ? text.split("::") : [text, null];
  const groups = (part: string) => part === "" ? [] : part.split(":").map((g) => parseInt(g, 16));
  const first = groups(head);
  const last = tail === null ? [] : groups(tail);
  const all = [...first, ...Array(8 - first.length - last.length).fill(0), ...last];
  return Uint8Array.from(all.flatMap((group) => [group >> 8, group & 0xff]));
}

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

const IPV6_VECTORS: [string, string][] = [
  ["0:0:0:0:0:0:0:0", "::"],
  ["0:0:0:0:0:0:0:1", "::1"],
  ["1:0:0:0:0:0:0:0", "1::"],
  ["2001:db8:0:0:0:0:2:1", "2001:db8::2:1"],
  ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"], // one zero group stays
  ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"], // the longest run
  ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"], // the first of equal runs
  ["2001:db8:aaaa:bbbb:cccc:dddd:eeee:aaaa", "2001:db8:aaaa:bbbb:cccc:dddd:eeee:aaaa"],
  ["ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"],
  ["fe80:0:0:0:200:5eff:fe00:5301", "fe80::200:5eff:fe00:5301"],
  ["0:0:0:0:0:0:102:304", "::102:304"], // IPv4-compatible: plain hex
  ["0:1:0:0:0:0:0:0", "0:1::"],
  ["0:0:1:0:0:0:0:0", "0:0:1::"],
  ["1:0:1:0:1:0:1:0", "1:0:1:0:1:0:1:0"],
  ["abcd:ef01:2345:6789:abcd:ef01:2345:6789", "abcd:ef01:2345:6789:abcd:ef01:2345:6789"],
  ["0:0:0:0:0:ffff:0:0", "::ffff:0:0"],
  ["2001:db8:0:0:0:0:0:0", "2001:db8::"],
  ["a:b:c:d:e:f:0:0", "a:b:c:d:e:f::"],
];

Deno.test("formatIPv6() gives RFC 5952 text for many vectors, as ipaddr.js does", () => {
  for (const [input, expected] of IPV6_VECTORS) {
    assert.equal(formatIPv6(ipv6Bytes(input)), expected, input);
    // The same text as the canonical form used for -b and the allow-list (except mapped ones).
    if (!expected.startsWith("::ffff:")) assert.equal(canonicalAddress(expected), expected);
  }
});

Deno.test("formatIPv6() agrees with ipaddr.js on 5,000 random addresses with zero runs", () => {
  let seed = 42;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let i = 0; i < 5_000; i++) {
    const bytes = new Uint8Array(16);
    for (let group = 0; group < 8; group++) {
      if (random() < 0.5) continue; // zero groups, in runs of every length
      const value = Math.floor(random() * 0x10000);
      bytes[2 * group] = value >> 8;
      bytes[2 * group + 1] = value & 0xff;
    }
    if (bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
      continue; // mapped: logged as IPv4
    }
    const text = formatIPv6(bytes);
    assert.equal(canonicalAddress(text), text);
    assert.deepEqual(ipv6Bytes(text), bytes);
  }
});
