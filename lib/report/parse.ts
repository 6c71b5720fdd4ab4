/**
 * Reads net-bouncer log lines (text and JSON, see lib/log/format.ts) from chunks of bytes.
 *
 * Built for the flags the program ships with: V8 without its JIT, where every step of JavaScript
 * is interpreted but builtins (TextDecoder, String indexOf/startsWith/slice, Map) run natively.
 * So a chunk is decoded once, lines are found with indexOf, and a connection line in the same
 * minute as the one before costs about a dozen builtin calls: the minute's instant is cached
 * (one time-zone look-up a minute), seconds and milliseconds are added arithmetically, and an
 * address already counted is looked up by its text as is; only a new source's text is parsed
 * (and canonicalised, lib/report/network.ts). The layout comes from lib/log/format.ts.
 */
import { CONNECTION_LAYOUT } from "../log/format.ts";
import type { Zone } from "./zone.ts";

/** Bytes decoded at a time: the text stays in V8's young generation, which frees it cheaply. */
const DECODE_BYTES = 64 * 1024;
/** Bytes read from a file at a time. */
export const READ_CHUNK_BYTES = 1 << 20;
/** Connections handed to the sink at a time. */
export const BATCH_SIZE = 4096;

/**
 * Connection lines read and not yet counted, handed over in batches: the sink counts them in one
 * loop, without a call per line (calls are dear in V8's interpreter).
 */
export class ConnectionBatch {
  /** Connections in the batch. */
  length = 0;
  /** Per connection: its time (epoch milliseconds). */
  readonly times: Float64Array = new Float64Array(BATCH_SIZE);
  /** Per connection: the source address as the line spells it (not checked yet). */
  readonly addresses: string[] = new Array(BATCH_SIZE).fill("");
  /** Per connection: the port connected to. */
  readonly ports: Int32Array = new Int32Array(BATCH_SIZE);
}

/** Receives the connection lines read. */
export interface ConnectionSink {
  /**
   * Counts the connections of `batch`; returns how many it could not count because their source
   * is not an IP address (lib/report/network.ts), which are then unreadable lines.
   */
  addBatch(batch: ConnectionBatch): number;
}

/** Counts of the lines read. */
export interface LineCounts {
  /** All lines, including a cut last line. */
  lines: number;
  /** Connection lines. */
  connections: number;
  /** Log lines of other events (listening, stopped, error, ...). */
  otherEvents: number;
  /** Lines that are neither: garbage, cut lines, lines of other programs, absurd dates. */
  unreadable: number;
  /** Of the unreadable lines, those dated outside EARLIEST_TIME_MS to LATEST_TIME_MS. */
  outOfRange: number;
}

/** Adds the counts `from` to `into`. */
export function addCounts(into: LineCounts, from: LineCounts): void {
  into.lines += from.lines;
  into.connections += from.connections;
  into.otherEvents += from.otherEvents;
  into.unreadable += from.unreadable;
  into.outOfRange += from.outOfRange;
}

/**
 * Lines dated before this (1970-01-01 UTC) are unreadable: no clock that logged a real
 * connection is that wrong, and one such line would stretch the report's period over centuries.
 */
export const EARLIEST_TIME_MS = Date.UTC(1970, 0, 1);
/** Lines dated from this on (2100-01-01 UTC) are unreadable, for the same reason. */
export const LATEST_TIME_MS = Date.UTC(2100, 0, 1);

/** Longer lines are unreadable; their text is not kept (memory stays bounded). */
const MAX_LINE_LENGTH = 4096;

const TEXT = CONNECTION_LAYOUT.text;
const JSON_LINE = CONNECTION_LAYOUT.json;
const TEXT_ADDRESS_START = TEXT.timeLength + TEXT.afterTime.length;
const TEXT_PORT_OFFSET = TEXT.beforePort.length;
const JSON_TIME_START = JSON_LINE.beforeTime.length;
const JSON_ADDRESS_START = JSON_TIME_START + JSON_LINE.timeLength + JSON_LINE.afterTime.length;
/** `2026-11-25 08:01:` (text) or `2026-11-25T08:01:` (JSON): the part of a time that is cached. */
const MINUTE_LENGTH = 17;
/** Where the UTC offset starts in a JSON time (`+01:00`), and its length. */
const OFFSET_START = 23;
const OFFSET_LENGTH = 6;
const MINUTE_MS = 60_000;
/** No cached minute: a key that no line starts with. */
const NO_MINUTE = "\n";
const STREAM = { stream: true };
/**
 * RFC 3339 (or ISO 8601's expanded years, `+275760-09-13T00:00:00.000Z`, to be told absurd), as
 * the slow JSON path accepts a time before Date.parse, which takes far more (`"1"` is 2001).
 */
const RFC3339 = /^(\d{4}|[+-]\d{6})-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$/;

/** Two decimal digits at `i`, or -1. */
function digits2(text: string, i: number): number {
  const a = text.charCodeAt(i) - 48;
  const b = text.charCodeAt(i + 1) - 48;
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 ? a * 10 + b : -1;
}

/** `SS.mmm` at `at` (seconds and milliseconds) in milliseconds, or -1. */
function secondsAt(text: string, at: number): number {
  const second = digits2(text, at);
  const millis = digits2(text, at + 3);
  const last = text.charCodeAt(at + 5) - 48;
  return second < 0 || second > 59 || text.charCodeAt(at + 2) !== 46 || millis < 0 || last < 0 ||
      last > 9
    ? -1
    : second * 1000 + millis * 10 + last;
}

/** The instant of `YYYY-MM-DD?HH:MM` at `at` read with `toUtc`, NaN if unreadable, -Infinity if absurd. */
function minuteAt(
  text: string,
  at: number,
  options: {
    separator: number;
    toUtc: (year: number, month: number, day: number, hour: number, minute: number) => number;
  },
): number {
  const century = digits2(text, at);
  const yy = digits2(text, at + 2);
  const month = digits2(text, at + 5);
  const day = digits2(text, at + 8);
  const hour = digits2(text, at + 11);
  const minute = digits2(text, at + 14);
  if (
    century < 0 || yy < 0 || text.charCodeAt(at + 4) !== 45 || text.charCodeAt(at + 7) !== 45 ||
    text.charCodeAt(at + 10) !== options.separator || text.charCodeAt(at + 13) !== 58 ||
    text.charCodeAt(at + 16) !== 58 || month < 1 || month > 12 || day < 1 || hour < 0 ||
    hour > 23 || minute < 0 || minute > 59
  ) return NaN;
  const year = century * 100 + yy;
  // Date.UTC reads years 0-99 as 1900-1999: out of range anyway, so never passed to it.
  if (year < 1970 || year > 2099) return -Infinity;
  if (day > new Date(Date.UTC(year, month, 0)).getUTCDate()) return NaN;
  return options.toUtc(year, month, day, hour, minute);
}

/** A port number of 1-5 digits in `text[start, end)`, or -1. */
function portAt(text: string, start: number, end: number): number {
  if (end <= start || end - start > 5) return -1;
  let value = 0;
  for (let i = start; i < end; i++) {
    const digit = text.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) return -1;
    value = value * 10 + digit;
  }
  return value <= 65535 ? value : -1;
}

/**
 * A copy of `text` that does not keep the text it was sliced from alive (a slice of 13 characters
 * or more shares it, in V8): joined to a space, flattened into a new string, sliced from that.
 * Also one byte per character, as the text it is compared with (a spread and join is not).
 */
function copy(text: string): string {
  return (" " + text).slice(1);
}

function inRange(ms: number): boolean {
  return ms >= EARLIEST_TIME_MS && ms < LATEST_TIME_MS;
}

/** Parses lines from chunks and passes connections to a sink. */
export class LogParser {
  /** The counts so far. */
  readonly counts: LineCounts = {
    lines: 0,
    connections: 0,
    otherEvents: 0,
    unreadable: 0,
    outOfRange: 0,
  };
  /** Bytes read so far. */
  bytes = 0;
  #sink: ConnectionSink;
  #zone: Zone;
  #decoder = new TextDecoder();
  #carry = "";
  #overlong = false;
  // The local minute of the last text line (`2026-11-25 08:01:`) and its instant.
  #minute = NO_MINUTE;
  #minuteMs = NaN;
  // The same for JSON lines, whose minute holds with its UTC offset.
  #jsonMinute = NO_MINUTE;
  #jsonOffset = NO_MINUTE;
  #jsonMinuteMs = NaN;
  // For the hot loop: `{"time":"` and the minute; the offset and the text up to the address.
  #jsonHead = NO_MINUTE;
  #jsonTail = NO_MINUTE;
  #toLocal: (year: number, month: number, day: number, hour: number, minute: number) => number;
  #batch = new ConnectionBatch();
  // Port texts (`22`) and `SS.mmm` texts read before, to their values: at most 111,110 and
  // 60,000 entries (only valid texts are kept).
  #portTexts = new Map<string, number>();
  #secondTexts = new Map<string, number>();

  /** A parser that passes connections to `sink`; text lines are local time in `zone`. */
  constructor(sink: ConnectionSink, zone: Zone) {
    this.#sink = sink;
    this.#zone = zone;
    this.#toLocal = (year, month, day, hour, minute) =>
      this.#zone.toUtc({ year, month, day, hour, minute });
  }

  /** Reads the complete lines in `chunk` and keeps the rest for the next one. */
  push(chunk: Uint8Array): void {
    this.bytes += chunk.length;
    for (let at = 0; at < chunk.length; at += DECODE_BYTES) {
      this.#text(this.#decoder.decode(chunk.subarray(at, at + DECODE_BYTES), STREAM));
    }
    this.#flush();
  }

  /** Ends the input: a last line without its newline was cut, and is unreadable. */
  end(): void {
    const rest = this.#decoder.decode();
    if (rest !== "") this.#keep(rest, 0);
    if (this.#carry !== "" || this.#overlong) {
      this.counts.lines++;
      this.counts.unreadable++;
    }
    this.#carry = "";
    this.#overlong = false;
    this.#flush();
  }

  /** Hands the batch to the sink. */
  #flush(): void {
    const batch = this.#batch;
    if (batch.length === 0) return;
    const rejected = this.#sink.addBatch(batch);
    this.counts.connections += batch.length - rejected;
    this.counts.unreadable += rejected;
    batch.length = 0;
  }

  /** Adds a connection line to the batch. */
  #connection(ms: number, srcIp: string, dstPort: number): void {
    const batch = this.#batch;
    const i = batch.length++;
    batch.times[i] = ms;
    batch.addresses[i] = srcIp;
    batch.ports[i] = dstPort;
    if (batch.length === BATCH_SIZE) this.#flush();
  }

  #text(text: string): void {
    let start = 0;
    if (this.#carry !== "" || this.#overlong) {
      const newline = text.indexOf("\n");
      if (newline < 0) {
        this.#keep(text, 0);
        return;
      }
      this.counts.lines++;
      if (this.#overlong || this.#carry.length + newline > MAX_LINE_LENGTH) {
        this.counts.unreadable++;
      } else {
        const line = this.#carry + text.slice(0, newline);
        this.#line(line, 0, line.length);
      }
      this.#carry = "";
      this.#overlong = false;
      start = newline + 1;
    }
    start = this.#scan(text, start);
    if (start < text.length) this.#keep(text, start);
  }

  #keep(text: string, start: number): void {
    if (this.#overlong || this.#carry.length + text.length - start > MAX_LINE_LENGTH) {
      this.#overlong = true;
      this.#carry = "";
    } else {
      this.#carry += text.slice(start);
    }
  }

  /**
   * The lines of `text` from `from` on; returns where the last, incomplete line starts. The
   * text connection line of a known source in the cached minute is read right here (the hot
   * loop, in local variables); any other line goes to {@linkcode LogParser.#line}.
   */
  #scan(text: string, from: number): number {
    const batch = this.#batch;
    const times = batch.times;
    const addresses = batch.addresses;
    const ports = batch.ports;
    const portTexts = this.#portTexts;
    const secondTexts = this.#secondTexts;
    let minute = this.#minute;
    let minuteMs = this.#minuteMs;
    let lines = 0;
    let start = from;
    let end: number;
    while ((end = text.indexOf("\n", start)) >= 0) {
      lines++;
      // Everything inline: a call costs about as much as the rest of a line.
      fast: if (
        text.startsWith(minute, start) && text.startsWith(TEXT.afterTime, start + TEXT.timeLength)
      ) {
        const addressEnd = text.indexOf(TEXT.beforePort, start + TEXT_ADDRESS_START);
        const portStart = addressEnd + TEXT_PORT_OFFSET;
        if (addressEnd < 0 || end <= portStart || end - portStart > 5) break fast;
        // The port and `SS.mmm` by their text: two native calls each, not a loop over digits.
        const port = portTexts.get(text.slice(portStart, end)) ??
          this.#portText(text.slice(portStart, end));
        const seconds =
          secondTexts.get(text.slice(start + MINUTE_LENGTH, start + TEXT.timeLength)) ??
            this.#secondText(text.slice(start + MINUTE_LENGTH, start + TEXT.timeLength));
        if (port < 0 || seconds < 0) break fast;
        const n = batch.length++;
        times[n] = minuteMs + seconds;
        addresses[n] = text.slice(start + TEXT_ADDRESS_START, addressEnd);
        ports[n] = port;
        if (n + 1 === BATCH_SIZE) this.#flush();
        start = end + 1;
        continue;
      }
      this.#line(text, start, end);
      minute = this.#minute;
      minuteMs = this.#minuteMs;
      start = end + 1;
    }
    this.counts.lines += lines;
    return start;
  }

  /** The value of a port text not read before (and keeps it), or -1. */
  #portText(text: string): number {
    const port = portAt(text, 0, text.length);
    if (port >= 0) this.#portTexts.set(text, port);
    return port;
  }

  /** The milliseconds of an `SS.mmm` text not read before (and keeps it), or -1. */
  #secondText(text: string): number {
    const ms = secondsAt(text, 0);
    if (ms >= 0) this.#secondTexts.set(text, ms);
    return ms;
  }

  /** One line, `text[start, end)` without its newline (already counted in `lines`). */
  #line(text: string, start: number, end: number): void {
    if (end > start && text.charCodeAt(end - 1) === 13) end--;
    if (end === start) {
      this.counts.unreadable++;
    } else if (text.charCodeAt(start) === 123) {
      this.#jsonLine(text, start, end);
    } else {
      this.#textLine(text, start, end);
    }
  }

  #unreadable(ms: number): void {
    this.counts.unreadable++;
    if (!Number.isNaN(ms)) this.counts.outOfRange++;
  }

  #textLine(text: string, start: number, end: number): void {
    const counts = this.counts;
    const ms = this.#textTime(text, start, end);
    if (!inRange(ms)) {
      this.#unreadable(ms);
      return;
    }
    if (text.startsWith(TEXT.afterTime, start + TEXT.timeLength)) {
      // `ADDRESS on port N`: the port is the digits at the end.
      const portMark = text.lastIndexOf(TEXT.beforePort, end);
      const port = portMark < start + TEXT_ADDRESS_START
        ? -1
        : portAt(text, portMark + TEXT_PORT_OFFSET, end);
      if (port < 0) counts.unreadable++;
      else this.#connection(ms, text.slice(start + TEXT_ADDRESS_START, portMark), port);
      return;
    }
    // Any other line of the program: ` [LEVEL] message`.
    const close = text.indexOf("]", start + 25);
    if (
      text.charCodeAt(start + 23) === 32 && text.charCodeAt(start + 24) === 91 && close > 0 &&
      close < end
    ) {
      counts.otherEvents++;
    } else {
      counts.unreadable++;
    }
  }

  /**
   * The instant of a text line's `YYYY-MM-DD HH:MM:SS.mmm` (local time): NaN if it has none,
   * -Infinity (or another instant out of range) if it is absurd.
   */
  #textTime(text: string, start: number, end: number): number {
    if (end - start < 25) return NaN;
    let ms = this.#minuteMs;
    if (!text.startsWith(this.#minute, start)) {
      ms = minuteAt(text, start, { separator: 32, toUtc: this.#toLocal });
      // Only a minute wholly in range is cached: then no line of it needs the check.
      if (ms >= EARLIEST_TIME_MS && ms + MINUTE_MS <= LATEST_TIME_MS) {
        this.#minute = copy(text.slice(start, start + MINUTE_LENGTH));
        this.#minuteMs = ms;
      }
    }
    const seconds = secondsAt(text, start + MINUTE_LENGTH);
    return seconds < 0 ? NaN : ms + seconds;
  }

  /** The instant of a JSON line's `2026-11-25T08:01:02.345+01:00` at `at`, as #textTime. */
  #jsonTime(text: string, at: number): number {
    let ms = this.#jsonMinuteMs;
    if (
      !text.startsWith(this.#jsonMinute, at) ||
      !text.startsWith(this.#jsonOffset, at + OFFSET_START)
    ) {
      const sign = text.charCodeAt(at + OFFSET_START);
      const hours = digits2(text, at + OFFSET_START + 1);
      const minutes = digits2(text, at + OFFSET_START + 4);
      if (
        (sign !== 43 && sign !== 45) || hours < 0 || hours > 23 || minutes < 0 || minutes > 59 ||
        text.charCodeAt(at + OFFSET_START + 3) !== 58
      ) return NaN;
      const offset = (sign === 45 ? -1 : 1) * (hours * 60 + minutes) * MINUTE_MS;
      ms = minuteAt(text, at, {
        separator: 84,
        toUtc: (year, month, day, hour, minute) =>
          Date.UTC(year, month - 1, day, hour, minute) - offset,
      });
      if (ms >= EARLIEST_TIME_MS && ms + MINUTE_MS <= LATEST_TIME_MS) {
        this.#jsonMinute = copy(text.slice(at, at + MINUTE_LENGTH));
        this.#jsonOffset = copy(text.slice(at + OFFSET_START, at + OFFSET_START + OFFSET_LENGTH));
        this.#jsonMinuteMs = ms;
        this.#jsonHead = JSON_LINE.beforeTime + this.#jsonMinute;
        this.#jsonTail = this.#jsonOffset + JSON_LINE.afterTime;
      }
    }
    const seconds = secondsAt(text, at + MINUTE_LENGTH);
    return seconds < 0 ? NaN : ms + seconds;
  }

  /**
   * A JSON connection line in the cached minute and offset, as lib/log/format.ts writes it, into
   * the batch; false for any other line.
   */
  #jsonFast(text: string, start: number, end: number): boolean {
    if (
      text.startsWith(this.#jsonHead, start) &&
      text.startsWith(this.#jsonTail, start + JSON_TIME_START + OFFSET_START)
    ) {
      const secondsText = text.slice(
        start + JSON_TIME_START + MINUTE_LENGTH,
        start + JSON_TIME_START + OFFSET_START,
      );
      const seconds = this.#secondTexts.get(secondsText) ?? this.#secondText(secondsText);
      // The address ends at the first quote (one with a `\"` in it is for JSON.parse).
      const addressEnd = text.indexOf('"', start + JSON_ADDRESS_START);
      const srcPortStart = addressEnd + JSON_LINE.beforeSrcPort.length;
      const dstPortMark = text.indexOf(JSON_LINE.beforeDstPort, srcPortStart);
      if (
        seconds < 0 || addressEnd < 0 ||
        !text.startsWith(JSON_LINE.beforeSrcPort, addressEnd) ||
        dstPortMark < 0 || dstPortMark >= end ||
        text.charCodeAt(end - 1) !== 125 || dstPortMark - srcPortStart > 5 ||
        end - 1 - dstPortMark - JSON_LINE.beforeDstPort.length > 5
      ) return false;
      const srcPort = this.#portTexts.get(text.slice(srcPortStart, dstPortMark)) ??
        this.#portText(text.slice(srcPortStart, dstPortMark));
      const dstPort = this.#portTexts.get(
        text.slice(dstPortMark + JSON_LINE.beforeDstPort.length, end - 1),
      ) ?? this.#portText(text.slice(dstPortMark + JSON_LINE.beforeDstPort.length, end - 1));
      if (srcPort < 0 || dstPort < 0) return false;
      const batch = this.#batch;
      const n = batch.length++;
      batch.times[n] = this.#jsonMinuteMs + seconds;
      batch.addresses[n] = text.slice(start + JSON_ADDRESS_START, addressEnd);
      batch.ports[n] = dstPort;
      if (n + 1 === BATCH_SIZE) this.#flush();
      return true;
    }
    return false;
  }

  #jsonLine(text: string, start: number, end: number): void {
    if (this.#jsonFast(text, start, end)) return;
    // The layout lib/log/format.ts writes; anything else goes through JSON.parse.
    if (
      text.startsWith(JSON_LINE.beforeTime, start) &&
      text.startsWith(JSON_LINE.afterTime, start + JSON_TIME_START + JSON_LINE.timeLength) &&
      text.charCodeAt(end - 1) === 125
    ) {
      const ms = this.#jsonTime(text, start + JSON_TIME_START);
      const addressEnd = text.indexOf('"', start + JSON_ADDRESS_START);
      const srcPortStart = addressEnd + JSON_LINE.beforeSrcPort.length;
      const dstPortMark = text.indexOf(JSON_LINE.beforeDstPort, srcPortStart);
      const dstPort = dstPortMark < 0 || dstPortMark >= end
        ? -1
        : portAt(text, dstPortMark + JSON_LINE.beforeDstPort.length, end - 1);
      if (
        inRange(ms) && addressEnd > 0 && addressEnd < end &&
        text.startsWith(JSON_LINE.beforeSrcPort, addressEnd) && dstPort >= 0 &&
        portAt(text, srcPortStart, dstPortMark) >= 0
      ) {
        this.#connection(ms, text.slice(start + JSON_ADDRESS_START, addressEnd), dstPort);
        return;
      }
    }
    this.#jsonSlow(text.slice(start, end));
  }

  #jsonSlow(line: string): void {
    const counts = this.counts;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      counts.unreadable++;
      return;
    }
    if (typeof value !== "object" || value === null || typeof (value as Event).event !== "string") {
      counts.unreadable++;
      return;
    }
    const event = value as Event;
    const ms = typeof event.time === "string" && RFC3339.test(event.time)
      ? Date.parse(event.time)
      : NaN;
    if (!inRange(ms)) {
      // An event without a readable time is still an event; one dated absurdly is not.
      if (Number.isNaN(ms) && event.event !== "connection") counts.otherEvents++;
      else this.#unreadable(ms);
      return;
    }
    if (event.event !== "connection") {
      counts.otherEvents++;
      return;
    }
    const dstPort = event.dst_port;
    if (
      typeof event.src_ip !== "string" || typeof dstPort !== "number" ||
      !Number.isInteger(dstPort) || dstPort < 0 || dstPort > 65535
    ) {
      counts.unreadable++;
      return;
    }
    this.#connection(ms, event.src_ip, dstPort);
  }
}

interface Event {
  event?: unknown;
  time?: unknown;
  src_ip?: unknown;
  dst_port?: unknown;
}
