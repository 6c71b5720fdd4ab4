import assert from "node:assert/strict";
import { canonicalAddress, parseBindAddress } from "../../lib/config/ip.ts";
import { PrefixSet } from "../../lib/config/prefix_set.ts";
import { runProgram } from "../_util.ts";

Deno.test("canonicalAddress() logs IPv4 clients of a dual-stack socket as IPv4", () => {
  assert.equal(canonicalAddress("203.0.113.5"), "203.0.113.5");
  assert.equal(canonicalAddress("::ffff:203.0.113.5"), "203.0.113.5");
  assert.equal(canonicalAddress("0:0:0:0:0:ffff:cb00:7105"), "203.0.113.5");
  assert.equal(canonicalAddress("::FFFF:CB00:7105"), "203.0.113.5");
});

Deno.test("canonicalAddress() writes IPv6 in RFC 5952 form, whatever its length", () => {
  assert.equal(canonicalAddress("2001:0db8:0000:0000:0000:0000:0000:0001"), "2001:db8::1");
  assert.equal(canonicalAddress("2001:DB8::1"), "2001:db8::1");
  assert.equal(canonicalAddress("2001:db8:0:0:1:0:0:1"), "2001:db8::1:0:0:1");
  assert.equal(canonicalAddress("2001:db8:0:1:1:1:1:1"), "2001:db8:0:1:1:1:1:1");
  assert.equal(canonicalAddress("0:0:0:0:0:0:0:1"), "::1");
  assert.equal(canonicalAddress("::1"), "::1");
});

Deno.test("canonicalAddress() drops zone ids", () => {
  assert.equal(canonicalAddress("fe80::1%eth0"), "fe80::1");
  assert.equal(canonicalAddress("fe80:0:0:0:0:0:0:1%2"), "fe80::1");
});

Deno.test("parseBindAddress() accepts IP addresses only, never host names", () => {
  assert.equal(parseBindAddress("127.0.0.1"), "127.0.0.1");
  assert.equal(parseBindAddress("::1"), "::1");
  assert.equal(parseBindAddress("[::1]"), "::1");
  assert.equal(parseBindAddress("2001:DB8:0::1"), "2001:db8::1");
  for (
    const bad of ["localhost", "example.com", "1.2.3", "256.1.1.1", "fe80::1%eth0", "", "1.2.3.4/8"]
  ) {
    assert.throws(
      () => parseBindAddress(bad),
      /^RangeError: Cannot bind to ".*": not an IP address$/,
    );
  }
  assert.throws(
    () => parseBindAddress("local\x1b[31mhost\n"),
    new RangeError('Cannot bind to "local\\x1b[31mhost\\n": not an IP address'),
  );
});

Deno.test("parseBindAddress() refuses multicast and broadcast addresses", () => {
  const cases: [string, string][] = [
    ["224.0.0.1", "a multicast address"],
    ["239.255.255.250", "a multicast address"],
    ["255.255.255.255", "the broadcast address"],
    ["ff02::1", "a multicast address"],
    ["[FF05::1:3]", "a multicast address"],
    ["::ffff:224.0.0.251", "a multicast address"],
  ];
  for (const [text, what] of cases) {
    assert.throws(
      () => parseBindAddress(text),
      new RangeError(`Cannot bind to "${text}": ${what}, which cannot accept TCP connections`),
    );
  }
  // Their neighbours are ordinary addresses.
  assert.equal(parseBindAddress("223.255.255.255"), "223.255.255.255");
  assert.equal(parseBindAddress("255.255.255.254"), "255.255.255.254");
  assert.equal(parseBindAddress("fe80::1"), "fe80::1");
  assert.equal(parseBindAddress("0.0.0.0"), "0.0.0.0");
  assert.equal(parseBindAddress("::"), "::");
});

Deno.test("-b with a multicast address is a usage error", async () => {
  const { code, stderr } = await runProgram(["-p", "0", "-b", "ff02::1"]);
  assert.equal(
    stderr,
    'net-bouncer: error: Cannot bind to "ff02::1": a multicast address, which cannot accept TCP connections\n',
  );
  assert.equal(code, 2);
});

Deno.test("PrefixSet matches IPv4 and IPv6 prefixes at their edges", () => {
  const set = new PrefixSet();
  set.add("192.0.2.0/24");
  set.add("198.51.100.7");
  set.add("2001:db8::/32");
  set.add("::1/128");
  assert.ok(set.has("192.0.2.0"));
  assert.ok(set.has("192.0.2.255"));
  assert.ok(!set.has("192.0.3.0"));
  assert.ok(set.has("198.51.100.7"));
  assert.ok(!set.has("198.51.100.8"));
  assert.ok(set.has("2001:db8:ffff::1"));
  assert.ok(!set.has("2001:db9::1"));
  assert.ok(set.has("::1"));
  assert.ok(!set.has("::2"));
});

Deno.test("PrefixSet handles /0, /32 and /128", () => {
  const all4 = new PrefixSet();
  all4.add("0.0.0.0/0");
  assert.ok(all4.has("1.2.3.4"));
  assert.ok(all4.has("255.255.255.255"));
  assert.ok(!all4.has("::1"));
  const all6 = new PrefixSet();
  all6.add("::/0");
  assert.ok(all6.has("2001:db8::1"));
  assert.ok(!all6.has("1.2.3.4"));
  const host = new PrefixSet();
  host.add("10.1.2.3/32");
  host.add("2001:db8::5/128");
  assert.ok(host.has("10.1.2.3"));
  assert.ok(!host.has("10.1.2.4"));
  assert.ok(host.has("2001:db8::5"));
  assert.ok(!host.has("2001:db8::6"));
});

Deno.test("PrefixSet matches clients seen through a dual-stack socket by their IPv4 prefix", () => {
  const set = new PrefixSet();
  set.add("203.0.113.0/24");
  set.add("::ffff:198.51.100.0/120");
  assert.ok(set.has(canonicalAddress("::ffff:203.0.113.9")));
  assert.ok(set.has(canonicalAddress("::ffff:198.51.100.200")));
  assert.ok(!set.has(canonicalAddress("::ffff:198.51.101.1")));
});

Deno.test("PrefixSet rejects an IPv4-mapped prefix shorter than /96", () => {
  assert.throws(
    () => new PrefixSet().add("::ffff:10.0.0.0/8"),
    /^RangeError: Cannot ignore "::ffff:10.0.0.0\/8": an IPv4-mapped prefix needs \/96 or more$/,
  );
});

Deno.test("PrefixSet rejects bad prefixes", () => {
  const set = new PrefixSet();
  for (const bad of ["10.0.0.0/33", "::/129", "example.com", "10.0.0/8", "1.2.3.4/", ""]) {
    assert.throws(
      () => set.add(bad),
      /^RangeError: Cannot ignore ".*": not an IP address or CIDR prefix$/,
    );
  }
  assert.equal(set.size, 0);
});
