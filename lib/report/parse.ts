/**
 * Reads net-bouncer log lines (text and JSON, see lib/log/format.ts) from chunks of bytes. The fixed
 * layout of connection lines is checked byte by byte: no regular expression, no string per line
 * except the address, so a million lines take well under a second.
 */
import type { Zone } from "./zone.ts";

/** Receives each connection line read. */
export interface ConnectionSink {
  /** A connection at `ms` (epoch milliseconds) from `srcIp` to `dstPort`. */
  add(ms: number, srcIp: string, dstPort: number): void;
}

/** Counts of the lines read. */
export interface LineCounts {
  /** All lines, including a cut last line. */
  lines: number;
  /** Connection lines. */
  connections: number;
  /** Log lines of other events (listening, stopped, error, ...). */
  otherEvents: number;
  /** Lines that are neither: garbage, cut lines, lines of other programs. */
  unreadable: number;
}

/** Longer lines are unreadable; their bytes are not kept (memory stays bounded). */
const MAX_LINE_BYTES = 4096;
/** The longest canonical IPv6 address (with an embedded IPv4 address) has 45 characters. */
const MAX_ADDRESS_LENGTH = 45;

const NEWLINE = 10;
const CR = 13;
const ZERO = 48;
const NINE = 57;
const SPACE = 32;
const OPEN_BRACE = 123;
const OPEN_BRACKET = 91;
const CLOSE_BRACKET = 93;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
// The helpers below take plain positional parameters, not an options object: they run several
// times per line and must not allocate (as lib/log/format.ts's connection()).

/** `2026-11-25 08:01:02.345` is 23 bytes; this follows it in a text connection line. */
const TEXT_CONNECTION = encoder.encode(" [INFO] Connection from ");
const TEXT_PORT = encoder.encode(" on port ");
const TEXT_ADDRESS_START = 23 + TEXT_CONNECTION.length;
const JSON_START = encoder.encode('{"time":"');
/** `2026-11-25T08:01:02.345+01:00` is 29 bytes; this follows it in a JSON connection line. */
const JSON_CONNECTION = encoder.encode('","level":"info","event":"connection","src_ip":"');
const JSON_SRC_PORT = encoder.encode('","src_port":');
const JSON_DST_PORT = encoder.encode(',"dst_port":');
const JSON_TIME_START = JSON_START.length;
const JSON_ADDRESS_START = JSON_TIME_START + 29 + JSON_CONNECTION.length;

function isDigit(byte: number): boolean {
  return byte >= ZERO && byte <= NINE;
}

/** Two decimal digits at `i`, or -1. */
function digits2(bytes: Uint8Array, i: number): number {
  const a = bytes[i] - ZERO;
  const b = bytes[i + 1] - ZERO;
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 ? a * 10 + b : -1;
}

/** Whether `bytes` at `at` hold `expected`. */
function matches(bytes: Uint8Array, at: number, expected: Uint8Array): boolean {
  if (at + expected.length > bytes.length) return false;
  for (let i = 0; i < expected.length; i++) {
    if (bytes[at + i] !== expected[i]) return false;
  }
  return true;
}

/** A byte that may appear in a canonical IP address: digits, hex letters, `.` and `:`. */
function isAddressByte(byte: number): boolean {
  return (byte >= ZERO && byte <= 58) || byte === 46 || (byte >= 97 && byte <= 102) ||
    (byte >= 65 && byte <= 70);
}

/** The address in `bytes[start, end)`, or `null` if it cannot be one. */
function address(bytes: Uint8Array, start: number, end: number): string | null {
  const length = end - start;
  if (length < 2 || length > MAX_ADDRESS_LENGTH) return null;
  let separators = 0;
  for (let i = start; i < end; i++) {
    const byte = bytes[i];
    if (!isAddressByte(byte)) return null;
    if (byte === 46 || byte === 58) separators++;
  }
  if (separators === 0) return null;
  // ASCII only (checked above), so char codes are the bytes.
  return String.fromCharCode.apply(null, bytes.subarray(start, end) as unknown as number[]);
}

/** A port number of 1-5 digits in `bytes[start, end)`, or -1. */
function port(bytes: Uint8Array, start: number, end: number): number {
  if (end <= start || end - start > 5) return -1;
  let value = 0;
  for (let i = start; i < end; i++) {
    const digit = bytes[i] - ZERO;
    if (digit < 0 || digit > 9) return -1;
    value = value * 10 + digit;
  }
  return value <= 65535 ? value : -1;
}

/** Parses lines from chunks and passes connections to a sink. */
export class LogParser {
  /** The counts so far. */
  readonly counts: LineCounts = { lines: 0, connections: 0, otherEvents: 0, unreadable: 0 };
  #sink: ConnectionSink;
  #zone: Zone;
  #carry = new Uint8Array(MAX_LINE_BYTES);
  #carryLength = 0;
  #overlong = false;
  // The local minute of the previous text line and its instant: one time-zone look-up a minute.
  #minuteKey = new Uint8Array(16);
  #minuteMs = NaN;

  /** A parser that passes connections to `sink`; text lines are local time in `zone`. */
  constructor(sink: ConnectionSink, zone: Zone) {
    this.#sink = sink;
    this.#zone = zone;
  }

  /** Reads the complete lines in `chunk` and keeps the rest for the next one. */
  push(chunk: Uint8Array): void {
    let start = 0;
    if (this.#carryLength > 0 || this.#overlong) {
      const newline = chunk.indexOf(NEWLINE);
      if (newline < 0) {
        this.#keep(chunk, 0);
        return;
      }
      this.#keep(chunk.subarray(0, newline), 0);
      this.#endCarried();
      start = newline + 1;
    }
    let newline: number;
    while ((newline = chunk.indexOf(NEWLINE, start)) >= 0) {
      this.#line(chunk, start, newline);
      start = newline + 1;
    }
    if (start < chunk.length) this.#keep(chunk, start);
  }

  /** Ends the input: a last line without its newline was cut, and is unreadable. */
  end(): void {
    if (this.#carryLength > 0 || this.#overlong) {
      this.counts.lines++;
      this.counts.unreadable++;
    }
    this.#carryLength = 0;
    this.#overlong = false;
  }

  #keep(chunk: Uint8Array, start: number): void {
    const length = chunk.length - start;
    if (this.#overlong || this.#carryLength + length > MAX_LINE_BYTES) {
      this.#overlong = true;
      this.#carryLength = 0;
      return;
    }
    this.#carry.set(chunk.subarray(start), this.#carryLength);
    this.#carryLength += length;
  }

  #endCarried(): void {
    if (this.#overlong) {
      this.counts.lines++;
      this.counts.unreadable++;
    } else {
      this.#line(this.#carry, 0, this.#carryLength);
    }
    this.#carryLength = 0;
    this.#overlong = false;
  }

  /** One line, `bytes[start, end)` without its newline. */
  #line(bytes: Uint8Array, start: number, end: number): void {
    const counts = this.counts;
    counts.lines++;
    if (end > start && bytes[end - 1] === CR) end--;
    const line = bytes.subarray(start, end);
    if (line.length === 0) {
      counts.unreadable++;
    } else if (line[0] === OPEN_BRACE) {
      this.#json(line);
    } else {
      this.#text(line);
    }
  }

  #text(line: Uint8Array): void {
    const counts = this.counts;
    const ms = this.#textTime(line);
    if (Number.isNaN(ms)) {
      counts.unreadable++;
      return;
    }
    if (matches(line, 23, TEXT_CONNECTION)) {
      // `ADDRESS on port N`: the port is the digits at the end.
      let i = line.length;
      while (i > TEXT_ADDRESS_START && isDigit(line[i - 1])) i--;
      const dstPort = port(line, i, line.length);
      const addressEnd = i - TEXT_PORT.length;
      const srcIp = dstPort < 0 || addressEnd < TEXT_ADDRESS_START ||
          !matches(line, addressEnd, TEXT_PORT)
        ? null
        : address(line, TEXT_ADDRESS_START, addressEnd);
      if (srcIp === null) {
        counts.unreadable++;
        return;
      }
      counts.connections++;
      this.#sink.add(ms, srcIp, dstPort);
      return;
    }
    // Any other line of the program: ` [LEVEL] message`.
    if (line[23] === SPACE && line[24] === OPEN_BRACKET && line.indexOf(CLOSE_BRACKET, 25) > 0) {
      counts.otherEvents++;
    } else {
      counts.unreadable++;
    }
  }

  /** The instant of a text line's `YYYY-MM-DD HH:MM:SS.mmm` (local time), or NaN. */
  #textTime(line: Uint8Array): number {
    if (line.length < 25) return NaN;
    const key = this.#minuteKey;
    let same = true;
    for (let i = 0; i < 16; i++) {
      if (line[i] !== key[i]) {
        same = false;
        break;
      }
    }
    const second = digits2(line, 17);
    const millis = digits2(line, 20) * 10 + line[22] - ZERO;
    if (
      line[16] !== 58 || line[19] !== 46 || second < 0 || second > 59 || millis < 0 ||
      !isDigit(line[21]) || !isDigit(line[22])
    ) return NaN;
    if (!same) {
      const year = digits2(line, 0) * 100 + digits2(line, 2);
      const month = digits2(line, 5);
      const day = digits2(line, 8);
      const hour = digits2(line, 11);
      const minute = digits2(line, 14);
      if (
        year < 0 || digits2(line, 0) < 0 || digits2(line, 2) < 0 || line[4] !== 45 ||
        line[7] !== 45 || line[10] !== SPACE || line[13] !== 58 || month < 1 || month > 12 ||
        day < 1 || day > 31 || hour < 0 || hour > 23 || minute < 0 || minute > 59
      ) return NaN;
      this.#minuteMs = this.#zone.toUtc({ year, month, day, hour, minute });
      key.set(line.subarray(0, 16));
    }
    return this.#minuteMs + second * 1000 + millis;
  }

  #json(line: Uint8Array): void {
    const counts = this.counts;
    // The layout lib/log/format.ts writes; anything else goes through JSON.parse.
    if (matches(line, 0, JSON_START) && matches(line, JSON_TIME_START + 29, JSON_CONNECTION)) {
      const ms = jsonTime(line, JSON_TIME_START);
      const addressEnd = line.indexOf(34, JSON_ADDRESS_START); // the closing quote
      const srcPortStart = addressEnd + JSON_SRC_PORT.length;
      const dstPortMark = line.indexOf(44, srcPortStart); // the comma after src_port
      if (
        !Number.isNaN(ms) && addressEnd > 0 && matches(line, addressEnd, JSON_SRC_PORT) &&
        dstPortMark > 0 && port(line, srcPortStart, dstPortMark) >= 0 &&
        matches(line, dstPortMark, JSON_DST_PORT) && line[line.length - 1] === 125
      ) {
        const dstPort = port(line, dstPortMark + JSON_DST_PORT.length, line.length - 1);
        const srcIp = address(line, JSON_ADDRESS_START, addressEnd);
        if (dstPort >= 0 && srcIp !== null) {
          counts.connections++;
          this.#sink.add(ms, srcIp, dstPort);
          return;
        }
      }
    }
    this.#jsonSlow(line);
  }

  #jsonSlow(line: Uint8Array): void {
    const counts = this.counts;
    let value: unknown;
    try {
      value = JSON.parse(decoder.decode(line));
    } catch {
      counts.unreadable++;
      return;
    }
    if (typeof value !== "object" || value === null || typeof (value as Event).event !== "string") {
      counts.unreadable++;
      return;
    }
    const event = value as Event;
    if (event.event !== "connection") {
      counts.otherEvents++;
      return;
    }
    const ms = typeof event.time === "string" ? Date.parse(event.time) : NaN;
    const ip = typeof event.src_ip === "string" ? encoder.encode(event.src_ip) : null;
    const srcIp = ip === null ? null : address(ip, 0, ip.length);
    const dstPort = event.dst_port;
    if (
      Number.isNaN(ms) || srcIp === null || typeof dstPort !== "number" ||
      !Number.isInteger(dstPort) || dstPort < 0 || dstPort > 65535
    ) {
      counts.unreadable++;
      return;
    }
    counts.connections++;
    this.#sink.add(ms, srcIp, dstPort);
  }
}

interface Event {
  event?: unknown;
  time?: unknown;
  src_ip?: unknown;
  dst_port?: unknown;
}

/** The instant of `2026-11-25T08:01:02.345+01:00` at `at`, or NaN. */
function jsonTime(line: Uint8Array, at: number): number {
  const century = digits2(line, at);
  const yy = digits2(line, at + 2);
  const month = digits2(line, at + 5);
  const day = digits2(line, at + 8);
  const hour = digits2(line, at + 11);
  const minute = digits2(line, at + 14);
  const second = digits2(line, at + 17);
  const millis = digits2(line, at + 20);
  const lastMilli = line[at + 22] - ZERO;
  const sign = line[at + 23];
  const offsetHours = digits2(line, at + 24);
  const offsetMinutes = digits2(line, at + 27);
  if (
    century < 0 || yy < 0 || line[at + 4] !== 45 || line[at + 7] !== 45 || line[at + 10] !== 84 ||
    line[at + 13] !== 58 || line[at + 16] !== 58 || line[at + 19] !== 46 || month < 1 ||
    month > 12 || day < 1 || day > 31 || hour < 0 || hour > 23 || minute < 0 || minute > 59 ||
    second < 0 || second > 59 || millis < 0 || lastMilli < 0 || lastMilli > 9 ||
    (sign !== 43 && sign !== 45) || offsetHours < 0 || line[at + 26] !== 58 || offsetMinutes < 0
  ) return NaN;
  const offset = (sign === 45 ? -1 : 1) * (offsetHours * 60 + offsetMinutes) * 60_000;
  return Date.UTC(
    century * 100 + yy,
    month - 1,
    day,
    hour,
    minute,
    second,
    millis * 10 + lastMilli,
  ) -
    offset;
}
