/**
 * Tiny MaxMind-format databases written by the tests (the npm database has countries only, no
 * AS data and no names): an IPv6 tree with IPv4 networks under `::/96`, as MaxMind's own.
 */

/** A value of the MaxMind DB data format: strings, uint32, arrays and maps. */
export type MmdbValue = string | number | MmdbValue[] | { [key: string]: MmdbValue };

import { ipv6Bytes } from "../_util.ts";

const encoder = new TextEncoder();

/** The control bytes of a field of `type` (MaxMind DB format 2.0) and `size` (below 285). */
function control(type: number, size: number): number[] {
  // Sizes from 29 take one more byte after the type bytes: size - 29.
  const [bits, extra] = size < 29 ? [size, []] : [29, [size - 29]];
  const head = type <= 7 ? [(type << 5) | bits] : [bits, type - 7];
  return [...head, ...extra];
}

function encode(value: MmdbValue): number[] {
  if (typeof value === "string") {
    const bytes = [...encoder.encode(value)];
    return [...control(2, bytes.length), ...bytes];
  }
  if (typeof value === "number") {
    const bytes: number[] = [];
    for (let rest = value; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest % 256);
    return [...control(6, bytes.length), ...bytes];
  }
  if (Array.isArray(value)) return [...control(11, value.length), ...value.flatMap(encode)];
  const entries = Object.entries(value);
  return [
    ...control(7, entries.length),
    ...entries.flatMap(([k, v]) => [...encode(k), ...encode(v)]),
  ];
}

/** The 128 bits of `address` (IPv4 as `::a.b.c.d`) and the prefix length in that tree. */
function bitsOf(cidr: string): { bits: bigint; length: number } {
  const [address, lengthText] = cidr.split("/");
  if (!address.includes(":")) {
    const v4 = address.split(".").reduce((sum, octet) => sum * 256n + BigInt(octet), 0n);
    return { bits: v4, length: 96 + Number(lengthText) };
  }
  return {
    bits: ipv6Bytes(address).reduce((sum, byte) => sum * 256n + BigInt(byte), 0n),
    length: Number(lengthText),
  };
}

/** A MaxMind DB (IPv6 tree, 24-bit records) mapping each network (`a.b.c.d/len`, `x::/len`). */
export function mmdb(networks: Record<string, MmdbValue>): Uint8Array {
  // Nodes of a binary trie; a record is a node index, a data offset, or empty.
  type Slot = { node: number } | { data: number } | null;
  const nodes: [Slot, Slot][] = [[null, null]];
  const data: number[] = [];
  for (const [cidr, record] of Object.entries(networks)) {
    const { bits, length } = bitsOf(cidr);
    const offset = data.length;
    data.push(...encode(record));
    let node = 0;
    for (let depth = 0; depth < length; depth++) {
      const bit = Number((bits >> BigInt(127 - depth)) & 1n);
      if (depth === length - 1) {
        nodes[node][bit] = { data: offset };
      } else {
        const next = nodes[node][bit];
        if (next !== null && "node" in next) {
          node = next.node;
        } else {
          nodes.push([null, null]);
          nodes[node][bit] = { node: nodes.length - 1 };
          node = nodes.length - 1;
        }
      }
    }
  }
  const count = nodes.length;
  const value = (slot: Slot) =>
    slot === null ? count : "node" in slot ? slot.node : count + 16 + slot.data;
  const tree = nodes.flatMap(([left, right]) =>
    [value(left), value(right)].flatMap((v) => [(v >> 16) & 255, (v >> 8) & 255, v & 255])
  );
  const metadata = encode({
    binary_format_major_version: 2,
    binary_format_minor_version: 0,
    build_epoch: 1_700_000_000,
    database_type: "Test-Country-ASN",
    description: { en: "net-bouncer test database" },
    ip_version: 6,
    languages: ["en"],
    node_count: count,
    record_size: 24,
  });
  const marker = [0xab, 0xcd, 0xef, ...encoder.encode("MaxMind.com")];
  return new Uint8Array([...tree, ...new Array(16).fill(0), ...data, ...marker, ...metadata]);
}
