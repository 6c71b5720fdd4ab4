import assert from "node:assert/strict";
import { PrefixSet } from "../../lib/config/prefix_set.ts";

function setOf(...cidrs: string[]): PrefixSet {
  const set = new PrefixSet();
  for (const cidr of cidrs) set.add(cidr);
  return set;
}

Deno.test("PrefixSet matches IPv4 and IPv6 prefixes by their bits", () => {
  const set = setOf("10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "::1", "0.0.0.0/32");
  for (
    const address of ["10.0.0.0", "10.255.255.255", "192.0.2.7", "2001:db8::", "::1", "0.0.0.0"]
  ) {
    assert.ok(set.has(address), address);
  }
  for (
    const address of ["11.0.0.0", "9.255.255.255", "192.0.2.6", "192.0.2.8", "2001:db9::", "::2"]
  ) {
    assert.ok(!set.has(address), address);
  }
  assert.equal(set.size, 5);
});

Deno.test("PrefixSet: IPv4 prefixes never match IPv6 addresses with the same bits", () => {
  const v4 = setOf("0.0.0.0/0");
  assert.ok(v4.hasBytes(Uint8Array.of(1, 2, 3, 4)));
  assert.ok(!v4.hasBytes(new Uint8Array(16)));
  const v6 = setOf("::/0");
  assert.ok(v6.hasBytes(new Uint8Array(16)));
  assert.ok(!v6.hasBytes(Uint8Array.of(1, 2, 3, 4)));
});

Deno.test("PrefixSet: mapped prefixes match IPv4 clients; overlapping and nested prefixes merge", () => {
  const set = setOf(
    "::ffff:192.0.2.0/120",
    "10.0.0.0/16",
    "10.0.1.0/24",
    "10.0.0.0/8",
    "10.1.0.0/16",
  );
  assert.ok(set.has("192.0.2.200"));
  assert.ok(!set.has("192.0.3.1"));
  assert.ok(set.has("10.200.0.1"));
  assert.ok(!set.has("11.0.0.0"));
  assert.throws(() => set.add("::ffff:0:0/95"), /needs \/96 or more/);
  assert.throws(() => set.add("10.0.0.0/33"), /^RangeError: Cannot ignore "10.0.0.0\/33"/);
  assert.throws(() => set.add("example.com"), /not an IP address or CIDR prefix/);
});

Deno.test("PrefixSet: a prefix added after lookups is found (the ranges are rebuilt)", () => {
  const set = setOf("10.0.0.0/8");
  assert.ok(!set.has("192.0.2.1"));
  set.add("192.0.2.0/24");
  assert.ok(set.has("192.0.2.1"));
  assert.ok(set.has("10.1.2.3"));
});

Deno.test("PrefixSet with 100,000 random prefixes agrees with a linear scan", () => {
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const prefixes: [number, number][] = [];
  const set = new PrefixSet();
  for (let i = 0; i < 100_000; i++) {
    const bits = 8 + Math.floor(random() * 25);
    const address = Math.floor(random() * 2 ** 32);
    const mask = bits === 32 ? 0xffffffff : (0xffffffff << (32 - bits)) >>> 0;
    prefixes.push([(address & mask) >>> 0, mask]);
    set.add(
      `${address >>> 24}.${(address >>> 16) & 255}.${(address >>> 8) & 255}.${
        address & 255
      }/${bits}`,
    );
  }
  for (let i = 0; i < 2_000; i++) {
    const address = Math.floor(random() * 2 ** 32);
    const bytes = Uint8Array.of(
      address >>> 24,
      (address >>> 16) & 255,
      (address >>> 8) & 255,
      address & 255,
    );
    const expected = prefixes.some(([start, mask]) => ((address & mask) >>> 0) === start);
    assert.equal(set.hasBytes(bytes), expected, bytes.join("."));
  }
});
