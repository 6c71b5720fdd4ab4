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

Deno.test("PrefixSet with 20,000 random IPv6 prefixes agrees with a linear scan, also after more adds", () => {
  let seed = 11;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const word = () => Math.floor(random() * 2 ** 32) >>> 0;
  const hex = (words: number[]) =>
    words.flatMap((w) => [(w >>> 16).toString(16), (w & 0xffff).toString(16)]).join(":");
  const prefixes: { words: number[]; bits: number }[] = [];
  const set = new PrefixSet();
  const add = (count: number) => {
    for (let i = 0; i < count; i++) {
      // Few distinct top words: many prefixes nest and overlap.
      const words = [0x20010db8, word() & 0x0f0f0000, word(), word()];
      const bits = 16 + Math.floor(random() * 113);
      prefixes.push({ words, bits });
      set.add(`${hex(words)}/${bits}`);
    }
  };
  const inside = (address: number[], { words, bits }: { words: number[]; bits: number }) => {
    for (let i = 0; i < 4; i++) {
      const covered = Math.min(32, Math.max(0, bits - 32 * i));
      const mask = covered === 0
        ? 0
        : covered === 32
        ? 0xffffffff
        : (0xffffffff << (32 - covered)) >>> 0;
      if (((address[i] & mask) >>> 0) !== ((words[i] & mask) >>> 0)) return false;
    }
    return true;
  };
  const check = () => {
    for (let i = 0; i < 1_000; i++) {
      // Half near a known prefix, half anywhere in the same /32.
      const base = prefixes[Math.floor(random() * prefixes.length)].words;
      const address = random() < 0.5
        ? [base[0], base[1], base[2], (base[3] ^ (word() & 0xff)) >>> 0]
        : [0x20010db8, word() & 0x0f0f0000, word(), word()];
      const bytes = new Uint8Array(16);
      const view = new DataView(bytes.buffer);
      address.forEach((w, j) => view.setUint32(4 * j, w));
      const expected = prefixes.some((prefix) => inside(address, prefix));
      assert.equal(set.hasBytes(bytes), expected, hex(address));
      assert.equal(set.has(hex(address)), expected, hex(address));
    }
  };
  add(10_000);
  check();
  add(10_000); // merged into the ranges built for the lookups above
  check();
  assert.equal(set.size, 20_000);
});

Deno.test("PrefixSet parses IPv6 in every written form, and refuses zones and junk", () => {
  const set = new PrefixSet();
  for (const text of ["2001:DB8::1", "2001:db8:0:0:0:0:0:2", "::", "::ffff:192.0.2.1", "1::/128"]) {
    set.add(text);
  }
  assert.ok(set.has("2001:db8::1"));
  assert.ok(set.has("2001:db8::2"));
  assert.ok(set.has("::"));
  assert.ok(set.has("192.0.2.1")); // mapped: matched as IPv4
  assert.ok(set.has("1::"));
  assert.ok(!set.has("2001:db8::3"));
  for (
    const bad of ["fe80::1%eth0", "[::1]", "1:2:3:4:5:6:7:8:9", "::g", "01.2.3.4", "1.2.3.256"]
  ) {
    assert.throws(() => set.add(bad), /not an IP address or CIDR prefix/, bad);
  }
});
