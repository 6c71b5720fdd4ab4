/**
 * The allow-list's lookup: IPv4 and IPv6 prefixes kept as sorted, merged address ranges, so
 * that a client is checked with a binary search on its address bytes. The cost per connection
 * grows with the logarithm of the list's size: 100,000 prefixes cost about what 10 do.
 *
 * Building it is fast too, since SIGHUP rebuilds it while the daemon serves: prefixes are
 * parsed without ipaddr.js (IPv4 by hand, IPv6 by the URL parser, which is native code) and
 * sorted as numbers or strings by the engine's own sort, never with a comparator in JavaScript
 * (the program runs without a JIT: 100,000 prefixes took 1.6 s with one, see
 * scripts/bench_allow_list.ts).
 */
import { quote } from "../errors.ts";

/** Where an IPv4 address sits in IPv4-mapped IPv6 space (::ffff:0:0/96). */
const MAPPED_BITS = 96;
const TWO_32 = 2 ** 32;
/** How many ranges a build merges between two pauses. */
const RANGES_PER_SLICE = 16_384;

/** The 32-bit mask of `bits` leading ones in word `word` of an address. */
function maskOf(bits: number, word: number): number {
  const covered = Math.min(32, Math.max(0, bits - 32 * word));
  return covered === 0 ? 0 : covered === 32 ? 0xffffffff : (0xffffffff << (32 - covered)) >>> 0;
}

/** A four-part decimal IPv4 address (no leading zeros) and an optional prefix length. */
const IPV4_CIDR =
  /^(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})(?:\/(\d{1,3}))?$/;

/**
 * An IPv4 address in four-part decimal (each part 0-255) as a number, or -1. One regular
 * expression does the work: without a JIT, the engine's regular expressions are far faster
 * than a loop over the characters in JavaScript.
 */
function parseIPv4(text: string): number {
  const match = IPV4_CIDR.exec(text);
  if (match === null || match[5] !== undefined) return -1;
  return ipv4Value(match);
}

/** The address of an {@linkcode IPV4_CIDR} match, or -1 when a part is over 255. */
function ipv4Value(match: RegExpExecArray): number {
  const a = +match[1];
  const b = +match[2];
  const c = +match[3];
  const d = +match[4];
  if (a > 255 || b > 255 || c > 255 || d > 255) return -1;
  return a * 16777216 + b * 65536 + c * 256 + d;
}

/**
 * An IPv6 address as four 32-bit words written into `words`, or `false`. The URL parser
 * validates it and writes it canonically (lower-case hex, "::" for the longest zero run, an
 * embedded IPv4 address in hex), which leaves a short split to do here.
 */
function parseIPv6(text: string, words: Uint32Array): boolean {
  if (text.includes("%") || text.includes("[") || text.includes("]") || text.includes("/")) {
    return false;
  }
  let canonical: string;
  try {
    canonical = new URL(`http://[${text}]/`).hostname.slice(1, -1);
  } catch {
    return false;
  }
  const gap = canonical.indexOf("::");
  const head = gap === -1 ? canonical : canonical.slice(0, gap);
  const tail = gap === -1 ? "" : canonical.slice(gap + 2);
  const groups = new Array<number>(8).fill(0);
  const first = head === "" ? [] : head.split(":");
  const last = tail === "" ? [] : tail.split(":");
  for (let i = 0; i < first.length; i++) groups[i] = parseInt(first[i], 16);
  for (let i = 0; i < last.length; i++) groups[8 - last.length + i] = parseInt(last[i], 16);
  for (let i = 0; i < 4; i++) words[i] = groups[2 * i] * 65536 + groups[2 * i + 1];
  return true;
}

/** Sorted, disjoint IPv4 ranges. */
class IPv4Ranges {
  /** Pending prefixes as `start * 64 + host bits`: sorted as numbers, by start. */
  #pending: number[] = [];
  #starts = new Uint32Array(0);
  #ends = new Uint32Array(0);
  #count = 0;

  add(address: number, bits: number): void {
    const mask = maskOf(bits, 0);
    this.#pending.push(((address & mask) >>> 0) * 64 + (32 - bits));
  }

  /** Sorts and merges the ranges added since the last lookup, pausing between slices. */
  *build(): Generator<void, void> {
    if (this.#pending.length === 0) return;
    const keys = Float64Array.from(this.#pending);
    this.#pending = [];
    keys.sort(); // the engine's numeric sort of a typed array: by start
    // The sorted new ranges and the ranges already built, merged in one pass.
    const total = keys.length + this.#count;
    const starts = new Uint32Array(total);
    const ends = new Uint32Array(total);
    let count = 0;
    let old = 0;
    let next = 0;
    while (next < keys.length || old < this.#count) {
      let start: number;
      let end: number;
      const key = next < keys.length ? keys[next] : Infinity;
      if (old < this.#count && this.#starts[old] * 64 <= key) {
        start = this.#starts[old];
        end = this.#ends[old++];
      } else {
        start = Math.floor(key / 64);
        end = start + 2 ** (key - start * 64) - 1;
        next++;
      }
      if (count > 0 && start <= ends[count - 1]) {
        if (end > ends[count - 1]) ends[count - 1] = end;
      } else {
        starts[count] = start;
        ends[count++] = end;
      }
      if ((next + old) % RANGES_PER_SLICE === 0) yield;
    }
    this.#starts = starts.slice(0, count);
    this.#ends = ends.slice(0, count);
    this.#count = count;
  }

  has(address: number): boolean {
    const found = lastAtOrBefore(this.#starts, this.#count, address);
    return found !== -1 && this.#ends[found] >= address;
  }
}

/** The last index whose value is at or before `value` in sorted `array`, or -1. */
function lastAtOrBefore(array: Uint32Array, count: number, value: number): number {
  let low = 0;
  let high = count - 1;
  let found = -1;
  while (low <= high) {
    const middle = (low + high) >> 1;
    if (array[middle] <= value) {
      found = middle;
      low = middle + 1;
    } else {
      high = middle - 1;
    }
  }
  return found;
}

/** Sorted, disjoint IPv6 ranges, each four 32-bit words. */
class IPv6Ranges {
  /** Pending ranges: their start as hex (sortable), their start and end words. */
  #keys: string[] = [];
  #pendingStarts: number[] = [];
  #pendingEnds: number[] = [];
  #starts = new Uint32Array(0);
  #ends = new Uint32Array(0);
  #count = 0;
  #probe = new Uint32Array(4);

  add(words: Uint32Array, bits: number): void {
    const index = this.#keys.length;
    let key = "";
    for (let i = 0; i < 4; i++) {
      const mask = maskOf(bits, i);
      const start = (words[i] & mask) >>> 0;
      this.#pendingStarts.push(start);
      this.#pendingEnds.push((start | ~mask) >>> 0);
      key += (start + TWO_32).toString(16).slice(1);
    }
    // The 32 hex digits sort as the addresses do; the index after them finds the words again
    // (equal starts in any order: merging keeps the larger end).
    this.#keys.push(key + index.toString(36));
  }

  /** Sorts and merges the ranges added since the last lookup, pausing between slices. */
  *build(): Generator<void, void> {
    if (this.#keys.length === 0) return;
    const keys = this.#keys;
    keys.sort(); // the engine's string sort: by start
    // The sorted new ranges and the ranges already built, merged in one pass.
    const total = keys.length + this.#count;
    const starts = new Uint32Array(4 * total);
    const ends = new Uint32Array(4 * total);
    const pendingStarts = Uint32Array.from(this.#pendingStarts);
    const pendingEnds = Uint32Array.from(this.#pendingEnds);
    let count = 0;
    let old = 0;
    let next = 0;
    while (next < keys.length || old < this.#count) {
      let start: Uint32Array;
      let end: Uint32Array;
      const index = next < keys.length ? parseInt(keys[next].slice(32), 36) : -1;
      const newStart = index === -1 ? null : pendingStarts.subarray(4 * index, 4 * index + 4);
      if (
        old < this.#count && (newStart === null || compareAt(this.#starts, old, newStart) <= 0)
      ) {
        start = this.#starts.subarray(4 * old, 4 * old + 4);
        end = this.#ends.subarray(4 * old, 4 * old + 4);
        old++;
      } else {
        start = newStart!;
        end = pendingEnds.subarray(4 * index, 4 * index + 4);
        next++;
      }
      if (count > 0 && compareAt(ends, count - 1, start) >= 0) {
        if (compareAt(ends, count - 1, end) < 0) ends.set(end, 4 * (count - 1));
      } else {
        starts.set(start, 4 * count);
        ends.set(end, 4 * count);
        count++;
      }
      if ((next + old) % RANGES_PER_SLICE === 0) yield;
    }
    this.#starts = starts.slice(0, 4 * count);
    this.#ends = ends.slice(0, 4 * count);
    this.#count = count;
    this.#keys = [];
    this.#pendingStarts = [];
    this.#pendingEnds = [];
  }

  /** Whether the 16 address bytes are in a range. */
  has(bytes: ArrayLike<number>): boolean {
    const probe = this.#probe;
    for (let i = 0; i < 4; i++) {
      probe[i] = ((bytes[4 * i] << 24) | (bytes[4 * i + 1] << 16) | (bytes[4 * i + 2] << 8) |
        bytes[4 * i + 3]) >>> 0;
    }
    // The last range that starts at or before the address.
    let low = 0;
    let high = this.#count - 1;
    let found = -1;
    while (low <= high) {
      const middle = (low + high) >> 1;
      if (compareAt(this.#starts, middle, probe) <= 0) {
        found = middle;
        low = middle + 1;
      } else {
        high = middle - 1;
      }
    }
    return found !== -1 && compareAt(this.#ends, found, probe) >= 0;
  }
}

/** Compares range `index` of `array` (four words each) with the four words of `probe`. */
function compareAt(array: Uint32Array, index: number, probe: ArrayLike<number>): number {
  for (let i = 0; i < 4; i++) {
    const value = array[index * 4 + i];
    if (value !== probe[i]) return value < probe[i] ? -1 : 1;
  }
  return 0;
}

/** A set of IPv4 and IPv6 prefixes to test client addresses against. */
export class PrefixSet {
  #v4 = new IPv4Ranges();
  #v6 = new IPv6Ranges();
  #count = 0;
  #words = new Uint32Array(4);

  /**
   * Adds a prefix in CIDR notation (a plain address means a single host).
   *
   * @throws {RangeError} if `cidr` is not a valid address or prefix.
   */
  add(cidr: string): void {
    const text = cidr.trim();
    // The common case first, in one match: an IPv4 address or prefix.
    const match = IPV4_CIDR.exec(text);
    if (match !== null) {
      const address = ipv4Value(match);
      const bits = match[5] === undefined ? 32 : +match[5];
      if (address !== -1 && bits <= 32) {
        this.#v4.add(address, bits);
        this.#count++;
        return;
      }
    }
    const slash = text.indexOf("/");
    const host = slash === -1 ? text : text.slice(0, slash);
    const bitsText = slash === -1 ? undefined : text.slice(slash + 1);
    const v4 = parseIPv4(host);
    const max = v4 === -1 ? 128 : 32;
    const valid = (v4 !== -1 || parseIPv6(host, this.#words)) &&
      (bitsText === undefined || (/^\d{1,3}$/.test(bitsText) && Number(bitsText) <= max));
    if (!valid) {
      throw new RangeError(`Cannot ignore ${quote(cidr)}: not an IP address or CIDR prefix`);
    }
    const bits = bitsText === undefined ? max : Number(bitsText);
    const words = this.#words;
    if (v4 !== -1) {
      this.#v4.add(v4, bits);
    } else if (words[0] === 0 && words[1] === 0 && words[2] === 0xffff) {
      // Clients on a dual-stack socket are logged and matched as IPv4: so are mapped prefixes.
      // A shorter one reaches beyond ::ffff:0:0/96 into IPv6 space: surely not what was meant.
      if (bits < MAPPED_BITS) {
        throw new RangeError(
          `Cannot ignore ${quote(cidr)}: an IPv4-mapped prefix needs /96 or more`,
        );
      }
      this.#v4.add(words[3], bits - MAPPED_BITS);
    } else {
      this.#v6.add(words, bits);
    }
    this.#count++;
  }

  /** Builds the lookup now rather than at the first connection, and returns the set. */
  prepare(): this {
    for (const _ of this.prepareInSlices());
    return this;
  }

  /**
   * Builds the lookup in slices: each `yield` is a point where the caller may let the event
   * loop run (a reload while serving). The sorts themselves are one step each.
   */
  *prepareInSlices(): Generator<void, void> {
    yield* this.#v4.build();
    yield* this.#v6.build();
  }

  /** The number of prefixes added. */
  get size(): number {
    return this.#count;
  }

  /** Whether a client address, as 4 (IPv4) or 16 (IPv6) bytes, is in one of the prefixes. */
  hasBytes(bytes: Uint8Array): boolean {
    this.prepare();
    if (bytes.length === 4) {
      return this.#v4.has(((bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3]) >>> 0);
    }
    return this.#v6.has(bytes);
  }

  /** Whether a canonical address (as the log shows it) is in one of the prefixes. */
  has(address: string): boolean {
    if (this.#count === 0) return false;
    this.prepare();
    const v4 = parseIPv4(address);
    if (v4 !== -1) return this.#v4.has(v4);
    const words = new Uint32Array(4);
    if (!parseIPv6(address, words)) return false;
    const bytes = new Uint8Array(16);
    const view = new DataView(bytes.buffer);
    for (let i = 0; i < 4; i++) view.setUint32(4 * i, words[i]);
    return this.#v6.has(bytes);
  }
}
