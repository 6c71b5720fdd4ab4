/**
 * The one form in which a client's address travels from a listener to its log line: its bytes,
 * 4 for IPv4 (also for an IPv4 client of a dual-stack socket) or 16 for IPv6. The log text is
 * written from them straight into the line buffer (IPv4 dotted quad, IPv6 in RFC 5952 form):
 * this runs once per connection, with no string and no allocation.
 */

const ASCII_ZERO = 48;
const DOT = 46;
const COLON = 58;
const HEX = new TextEncoder().encode("0123456789abcdef");

/** The longest address text: an IPv6 address of eight four-digit groups. */
export const MAX_ADDRESS_TEXT_BYTES = 39;

/** Writes `value` (0-255) in decimal at `offset`; returns the offset after it. */
function writeByte(buffer: Uint8Array, offset: number, value: number): number {
  if (value >= 100) {
    const hundreds = (value / 100) | 0;
    buffer[offset++] = ASCII_ZERO + hundreds;
    value -= hundreds * 100;
    buffer[offset++] = ASCII_ZERO + ((value / 10) | 0);
  } else if (value >= 10) {
    buffer[offset++] = ASCII_ZERO + ((value / 10) | 0);
  }
  buffer[offset++] = ASCII_ZERO + (value % 10);
  return offset;
}

/** Writes one IPv6 group in lower-case hex without leading zeros; returns the offset after it. */
function writeGroup(buffer: Uint8Array, offset: number, value: number): number {
  if (value >= 0x1000) buffer[offset++] = HEX[value >> 12];
  if (value >= 0x100) buffer[offset++] = HEX[(value >> 8) & 15];
  if (value >= 0x10) buffer[offset++] = HEX[(value >> 4) & 15];
  buffer[offset++] = HEX[value & 15];
  return offset;
}

/**
 * Writes the log text of `address` (4 or 16 bytes) into `buffer` at `offset`, which must have
 * room for {@linkcode MAX_ADDRESS_TEXT_BYTES}; returns the offset after it.
 */
export function writeAddress(address: Uint8Array, buffer: Uint8Array, offset: number): number {
  if (address.length === 4) {
    offset = writeByte(buffer, offset, address[0]);
    buffer[offset++] = DOT;
    offset = writeByte(buffer, offset, address[1]);
    buffer[offset++] = DOT;
    offset = writeByte(buffer, offset, address[2]);
    buffer[offset++] = DOT;
    return writeByte(buffer, offset, address[3]);
  }
  // RFC 5952: the longest run of two or more zero groups (the first of equal runs) is "::".
  let bestStart = -1;
  let bestLength = 1;
  for (let group = 0; group < 8;) {
    if ((address[2 * group] | address[2 * group + 1]) !== 0) {
      group++;
      continue;
    }
    let end = group + 1;
    while (end < 8 && (address[2 * end] | address[2 * end + 1]) === 0) end++;
    if (end - group > bestLength) {
      bestStart = group;
      bestLength = end - group;
    }
    group = end;
  }
  for (let group = 0; group < 8; group++) {
    if (group === bestStart) {
      buffer[offset++] = COLON;
      buffer[offset++] = COLON;
      group += bestLength - 1;
      continue;
    }
    if (group > 0 && group !== bestStart + bestLength) buffer[offset++] = COLON;
    offset = writeGroup(buffer, offset, (address[2 * group] << 8) | address[2 * group + 1]);
  }
  return offset;
}

const scratch = new Uint8Array(MAX_ADDRESS_TEXT_BYTES);

/** The log text of `address` (4 or 16 bytes), as a string (off the hot path). */
export function addressText(address: Uint8Array): string {
  return String.fromCharCode(...scratch.subarray(0, writeAddress(address, scratch, 0)));
}

/**
 * The bytes of a canonical IP address text (as lib/config/ip.ts makes them and Deno reports
 * them); an IPv4-mapped IPv6 address (`::ffff:1.2.3.4`) gives the 4 bytes of its IPv4 address.
 */
export function addressBytes(text: string): Uint8Array {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(text);
  if (mapped !== null) text = mapped[1];
  if (!text.includes(":")) return Uint8Array.from(text.split(".").map(Number));
  const [head, tail = null] = text.split("::");
  // A dotted quad at the end (`64:ff9b::1.2.3.4`) stands for the last two groups.
  const groups = (part: string) =>
    part === "" ? [] : part.split(":").flatMap((g) => {
      if (!g.includes(".")) return [parseInt(g, 16)];
      const [a, b, c, d] = g.split(".").map(Number);
      return [(a << 8) | b, (c << 8) | d];
    });
  const first = groups(head);
  const last = tail === null ? [] : groups(tail);
  const all = [...first, ...new Array(8 - first.length - last.length).fill(0), ...last];
  const bytes = new Uint8Array(16);
  all.forEach((group, i) => {
    bytes[2 * i] = group >> 8;
    bytes[2 * i + 1] = group & 0xff;
  });
  return bytes;
}
