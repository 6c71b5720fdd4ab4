/** Log line formats: the classic text line and JSON lines. */
import { secondParts, Timestamps } from "./timestamp.ts";
import { writeAddress } from "../daemon/client_address.ts";

/** The names of the log formats. */
export const LOG_FORMATS = ["text", "json"] as const;
/** A log format name. */
export type LogFormat = typeof LOG_FORMATS[number];
/** The default log format. */
export const DEFAULT_FORMAT: LogFormat = "text";

/** Severity of an event; the text format writes `warning` as WARN. */
export type Level = "trace" | "debug" | "info" | "warning" | "error" | "fatal";

/** Turns events into complete log lines, each ending in a newline. */
export interface Formatter {
  /**
   * The line for one accepted connection, as UTF-8 in a buffer that the next call reuses.
   * `srcIp` must be a canonical IP address (ASCII). Four plain parameters, not an options
   * object: this runs once per connection and must not allocate.
   */
  connection(ms: number, srcIp: string, srcPort: number, dstPort: number): Uint8Array;
  /**
   * Writes the same line into `buffer` at `offset` (room for {@linkcode MAX_CONNECTION_LINE_BYTES}
   * needed) from the address's bytes (4 or 16, lib/daemon/client_address.ts); returns the offset
   * after it. The daemon's path: no string, no copy, no allocation.
   */
  writeConnection(
    buffer: Uint8Array,
    offset: number,
    ms: number,
    address: Uint8Array,
    srcPort: number,
    dstPort: number,
  ): number;
  /** The line for any other event (`listening`, `stopped`, `error`, ...) at `ms`. */
  event(ms: number, record: EventRecord): string;
}

/** An event other than a connection. */
export interface EventRecord {
  /** Its severity. */
  level: Level;
  /** Its name: `listening`, `stopped`, `error`, ... */
  event: string;
  /** The text for people. */
  message: string;
  /** Further values (JSON fields). */
  fields?: Record<string, unknown>;
}

const TEXT_LEVELS: Record<Level, string> = {
  trace: "TRACE",
  debug: "DEBUG",
  info: "INFO",
  warning: "WARN",
  error: "ERROR",
  fatal: "FATAL",
};

/**
 * The fixed text of a connection line around its fields, which readers of the log rely on (ban
 * filters, `net-bouncer report`'s parser): the formatter below writes exactly this.
 */
export const CONNECTION_LAYOUT = {
  /** `TIME [INFO] Connection from ADDRESS on port PORT`, TIME as `2026-11-25 08:01:02.345`. */
  text: {
    timeLength: 23,
    afterTime: " [INFO] Connection from ",
    beforePort: " on port ",
  },
  /** `{"time":"TIME","level":...,"src_ip":"ADDRESS","src_port":N,"dst_port":N}`. */
  json: {
    beforeTime: '{"time":"',
    /** `2026-11-25T08:01:02.345+01:00`. */
    timeLength: 29,
    afterTime: '","level":"info","event":"connection","src_ip":"',
    beforeSrcPort: '","src_port":',
    beforeDstPort: ',"dst_port":',
    end: "}",
  },
} as const;

/** Room for the longest connection line: JSON with a 45-character IPv6 address is ~160 bytes. */
export const MAX_CONNECTION_LINE_BYTES = 512;
const LINE_BUFFER_BYTES = MAX_CONNECTION_LINE_BYTES;
const ASCII_ZERO = 48;
const encoder = new TextEncoder();

/**
 * Builds connection lines as bytes in one reused buffer: the text up to the second is encoded
 * once a second, the rest is copied in. A connection costs no string, no encoding and no
 * allocation; this path runs once per connection and is measured by the benchmark.
 */
class ConnectionLines {
  readonly own = new Uint8Array(LINE_BUFFER_BYTES);
  #buffer: Uint8Array = this.own;
  #length = 0;
  #second = NaN;
  #ms = NaN;
  /** The line up to the address at `#ms`: head, milliseconds, middle. */
  #prefix: Uint8Array = new Uint8Array(0);
  #millisAt = 0;
  #partsToBytes: (second: number) => [Uint8Array, Uint8Array];

  constructor(partsToBytes: (second: number) => [Uint8Array, Uint8Array]) {
    this.#partsToBytes = partsToBytes;
  }

  /**
   * Starts a line at `ms` in `buffer` at `offset`: the text up to the address, made once a
   * millisecond (the digits of a new second's text once a second).
   */
  start(ms: number, buffer: Uint8Array = this.own, offset = 0): void {
    if (ms !== this.#ms) {
      this.#ms = ms;
      const second = Math.floor(ms / 1000);
      if (second !== this.#second) {
        this.#second = second;
        const [head, middle] = this.#partsToBytes(second);
        this.#prefix = new Uint8Array(head.length + 3 + middle.length);
        this.#prefix.set(head);
        this.#prefix.set(middle, head.length + 3);
        this.#millisAt = head.length;
      }
      const prefix = this.#prefix;
      const n = this.#millisAt;
      const millis = ms - second * 1000;
      prefix[n] = ASCII_ZERO + Math.floor(millis / 100);
      prefix[n + 1] = ASCII_ZERO + (Math.floor(millis / 10) % 10);
      prefix[n + 2] = ASCII_ZERO + (millis % 10);
    }
    buffer.set(this.#prefix, offset);
    this.#buffer = buffer;
    this.#length = offset + this.#prefix.length;
  }

  /** Writes the text up to the address at `ms` into `buffer` at `offset`; returns its end. */
  prefix(ms: number, buffer: Uint8Array, offset: number): number {
    this.start(ms, buffer, offset);
    return this.#length;
  }

  /** Appends the text of an address given as 4 or 16 bytes. */
  address(address: Uint8Array): void {
    this.#length = writeAddress(address, this.#buffer, this.#length);
  }

  /** Where the line ends (in the buffer it was started in). */
  get length(): number {
    return this.#length;
  }

  /** Appends ASCII text. */
  ascii(text: string): void {
    const buffer = this.#buffer;
    let n = this.#length;
    for (let i = 0; i < text.length; i++) buffer[n++] = text.charCodeAt(i);
    this.#length = n;
  }

  /** Appends encoded bytes. */
  bytes(bytes: Uint8Array): void {
    this.#buffer.set(bytes, this.#length);
    this.#length += bytes.length;
  }

  /** Appends a non-negative integer in decimal. */
  uint(value: number): void {
    const buffer = this.#buffer;
    let digits = 1;
    for (let rest = value; rest >= 10; rest = Math.floor(rest / 10)) digits++;
    let n = this.#length + digits;
    this.#length = n;
    do {
      buffer[--n] = ASCII_ZERO + (value % 10);
      value = Math.floor(value / 10);
    } while (value > 0);
  }

  /** The line so far. */
  end(): Uint8Array {
    return this.own.subarray(0, this.#length);
  }
}

/** Creates the formatter for `format`; timestamps are local time. */
export function createFormatter(format: LogFormat): Formatter {
  const time = new Timestamps();
  if (format === "json") {
    const lines = new ConnectionLines((second) => {
      const parts = secondParts(second);
      return [
        encoder.encode(`${CONNECTION_LAYOUT.json.beforeTime}${parts.iso}`),
        encoder.encode(`${parts.offset}${CONNECTION_LAYOUT.json.afterTime}`),
      ];
    });
    const srcPort = encoder.encode(CONNECTION_LAYOUT.json.beforeSrcPort);
    const dstPort = encoder.encode(CONNECTION_LAYOUT.json.beforeDstPort);
    const end = encoder.encode(`${CONNECTION_LAYOUT.json.end}\n`);
    return {
      connection: (ms, srcIp, clientPort, port) => {
        lines.start(ms);
        lines.ascii(srcIp);
        lines.bytes(srcPort);
        lines.uint(clientPort);
        lines.bytes(dstPort);
        lines.uint(port);
        lines.bytes(end);
        return lines.end();
      },
      writeConnection: (buffer, offset, ms, address, clientPort, port) => {
        lines.start(ms, buffer, offset);
        lines.address(address);
        lines.bytes(srcPort);
        lines.uint(clientPort);
        lines.bytes(dstPort);
        lines.uint(port);
        lines.bytes(end);
        return lines.length;
      },
      // The fixed keys last: a field of the same name cannot replace them.
      event: (ms, { level, event, message, fields }) =>
        JSON.stringify({ ...fields, time: time.rfc3339(ms), level, event, message }) + "\n",
    };
  }
  const lines = new ConnectionLines((second) => [
    encoder.encode(secondParts(second).text),
    encoder.encode(CONNECTION_LAYOUT.text.afterTime),
  ]);
  const onPort = encoder.encode(CONNECTION_LAYOUT.text.beforePort);
  const newline = encoder.encode("\n");
  let tailPort = -1;
  let tail = newline;
  return {
    connection: (ms, srcIp, _clientPort, port) => {
      lines.start(ms);
      lines.ascii(srcIp);
      lines.bytes(onPort);
      lines.uint(port);
      lines.bytes(newline);
      return lines.end();
    },
    writeConnection: (buffer, offset, ms, address, _clientPort, port) => {
      offset = writeAddress(address, buffer, lines.prefix(ms, buffer, offset));
      // The end of the line is the same for every connection to a port.
      if (port !== tailPort) {
        tailPort = port;
        tail = encoder.encode(`${CONNECTION_LAYOUT.text.beforePort}${port}\n`);
      }
      buffer.set(tail, offset);
      return offset + tail.length;
    },
    // The words "Connection from" are reserved for connection lines (ban filters match them).
    event: (ms, { level, message }) =>
      `${time.text(ms)} [${TEXT_LEVELS[level]}] ${
        message.replaceAll("Connection from", "Connection-from").replace(/[\r\n]+/g, " ")
      }\n`,
  };
}
