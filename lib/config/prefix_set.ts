/**
 * The allow-list's lookup: IPv4 and IPv6 prefixes kept as sorted, merged address ranges, so
 * that a client is checked with a binary search on its address bytes. The cost per connection
 * grows with the logarithm of the list's size: 100,000 prefixes cost about what 10 do.
 */
import ipaddr from "ipaddr.js";
import { quote } from "../errors.ts";

/** Where an IPv4 address sits in IPv4-mapped IPv6 space (::ffff:0:0/96). */
const MAPPED_BITS = 96;

function maskOf(bits: number, word: number): number {
  const covered = Math.min(32, Math.max(0, bits - 32 * word));
  return covered === 0 ? 0 : covered === 32 ? 0xffffffff : (0xffffffff << (32 - covered)) >>> 0;
}

function wordsOf(bytes: ArrayLike<number>, count: number): number[] {
  const words: number[] = [];
  for (let i = 0; i < count; i++) {
    words.push(
      ((bytes[4 * i] << 24) | (bytes[4 * i + 1] << 16) | (bytes[4 * i + 2] << 8) |
        bytes[4 * i + 3]) >>> 0,
    );
  }
  return words;
}

function compare(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  return 0;
}

/** Sorted, disjoint ranges of addresses of one family, each `words` 32-bit words wide. */
class Ranges {
  #words: number;
  #pending: [number[], number[]][] = [];
  /** Range i is starts[i*w .. i*w+w) to ends[...], merged and sorted. */
  #starts = new Uint32Array(0);
  #ends = new Uint32Array(0);
  #count = 0;
  #probe: number[];

  constructor(words: number) {
    this.#words = words;
    this.#probe = new Array(words).fill(0);
  }

  add(bytes: ArrayLike<number>, bits: number): void {
    const words = wordsOf(bytes, this.#words);
    const start = words.map((word, i) => (word & maskOf(bits, i)) >>> 0);
    const end = start.map((word, i) => (word | ~maskOf(bits, i)) >>> 0);
    this.#pending.push([start, end]);
  }

  #build(): void {
    const w = this.#words;
    const all: [number[], number[]][] = this.#pending;
    for (let i = 0; i < this.#count; i++) {
      all.push([
        [...this.#starts.subarray(i * w, i * w + w)],
        [...this.#ends.subarray(i * w, i * w + w)],
      ]);
    }
    all.sort((a, b) => compare(a[0], b[0]));
    const merged: [number[], number[]][] = [];
    for (const range of all) {
      const last = merged.at(-1);
      if (last !== undefined && compare(range[0], last[1]) <= 0) {
        if (compare(range[1], last[1]) > 0) last[1] = range[1];
      } else {
        merged.push(range);
      }
    }
    this.#starts = new Uint32Array(merged.length * w);
    this.#ends = new Uint32Array(merged.length * w);
    merged.forEach(([start, end], i) => {
      this.#starts.set(start, i * w);
      this.#ends.set(end, i * w);
    });
    this.#count = merged.length;
    this.#pending = [];
  }

  /** Sorts and merges the ranges added since the last lookup. */
  prepare(): void {
    if (this.#pending.length > 0) this.#build();
  }

  /** Whether the address in `bytes` (4 or 16 of them) is in a range. */
  has(bytes: ArrayLike<number>): boolean {
    this.prepare();
    const w = this.#words;
    const probe = this.#probe;
    for (let i = 0; i < w; i++) {
      probe[i] = ((bytes[4 * i] << 24) | (bytes[4 * i + 1] << 16) | (bytes[4 * i + 2] << 8) |
        bytes[4 * i + 3]) >>> 0;
    }
    // The last range that starts at or before the address.
    let low = 0;
    let high = this.#count - 1;
    let found = -1;
    while (low <= high) {
      const middle = (low + high) >> 1;
      if (this.#compareAt(this.#starts, middle, probe) <= 0) {
        found = middle;
        low = middle + 1;
      } else {
        high = middle - 1;
      }
    }
    return found !== -1 && this.#compareAt(this.#ends, found, probe) >= 0;
  }

  /** Compares range `index` of `array` with `probe`. */
  #compareAt(array: Uint32Array, index: number, probe: number[]): number {
    const w = this.#words;
    for (let i = 0; i < w; i++) {
      const value = array[index * w + i];
      if (value !== probe[i]) return value < probe[i] ? -1 : 1;
    }
    return 0;
  }
}

/** A set of IPv4 and IPv6 prefixes to test client addresses against. */
export class PrefixSet {
  #v4 = new Ranges(1);
  #v6 = new Ranges(4);
  #count = 0;

  /**
   * Adds a prefix in CIDR notation (a plain address means a single host).
   *
   * @throws {RangeError} if `cidr` is not a valid address or prefix.
   */
  add(cidr: string): void {
    const text = cidr.trim();
    const [host, bitsText, extra] = text.split("/");
    const isV4 = ipaddr.IPv4.isValidFourPartDecimal(host);
    const max = isV4 ? 32 : 128;
    const valid = extra === undefined &&
      (isV4 || (!host.includes("%") && ipaddr.IPv6.isValid(host))) &&
      (bitsText === undefined || (/^\d{1,3}$/.test(bitsText) && Number(bitsText) <= max));
    if (!valid) {
      throw new RangeError(`Cannot ignore ${quote(cidr)}: not an IP address or CIDR prefix`);
    }
    const address = ipaddr.parse(host);
    const bits = bitsText === undefined ? max : Number(bitsText);
    // Clients on a dual-stack socket are logged and matched as IPv4: so are mapped prefixes.
    // A shorter one reaches beyond ::ffff:0:0/96 into IPv6 space: surely not what was meant.
    if (address instanceof ipaddr.IPv6 && address.isIPv4MappedAddress()) {
      if (bits < MAPPED_BITS) {
        throw new RangeError(
          `Cannot ignore ${quote(cidr)}: an IPv4-mapped prefix needs /96 or more`,
        );
      }
      this.#v4.add(address.toIPv4Address().toByteArray(), bits - MAPPED_BITS);
    } else if (address.kind() === "ipv4") {
      this.#v4.add(address.toByteArray(), bits);
    } else {
      this.#v6.add(address.toByteArray(), bits);
    }
    this.#count++;
  }

  /**
   * Builds the lookup now rather than at the first connection (100,000 prefixes take a few
   * hundred milliseconds), and returns the set.
   */
  prepare(): this {
    this.#v4.prepare();
    this.#v6.prepare();
    return this;
  }

  /** The number of prefixes added. */
  get size(): number {
    return this.#count;
  }

  /** Whether a client address, as 4 (IPv4) or 16 (IPv6) bytes, is in one of the prefixes. */
  hasBytes(bytes: Uint8Array): boolean {
    return bytes.length === 4 ? this.#v4.has(bytes) : this.#v6.has(bytes);
  }

  /** Whether a canonical address (as the log shows it) is in one of the prefixes. */
  has(address: string): boolean {
    if (this.#count === 0) return false;
    return this.hasBytes(Uint8Array.from(ipaddr.parse(address).toByteArray()));
  }
}
