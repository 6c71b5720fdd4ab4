/**
 * The `/metrics` endpoint: a small HTTP/1.1 responder (one request per connection, then
 * `Connection: close`) on a listener bound before the network permission is dropped. Accepting
 * and answering on it needs no permission. Everything is asynchronous, each connection has a
 * deadline and a size bound, and the number of connections is bounded, so clients that hang,
 * flood or send garbage cost little and never stall the honeypot's accept loop.
 */
import { isOsError, reason, withMessage } from "../errors.ts";
import type { EventLog } from "../log/event_log.ts";
import { METRICS_CONTENT_TYPE } from "./metrics.ts";
import { ACCEPT_ERROR_BACKOFF_MS, acceptErrorCode, acceptErrorKind } from "../accept_error.ts";
import { writeAll } from "../write_all.ts";

/** The largest request head (request line and headers) read, in bytes; more is answered 431. */
export const MAX_REQUEST_BYTES = 8 * 1024;
/**
 * Time a client has to send its request, in milliseconds (then 408); the same again bounds
 * sending the response and the lingering close.
 */
export const REQUEST_TIMEOUT_MS = 5_000;
/** Metrics connections served at once; further ones are closed at once. */
export const MAX_CONNECTIONS = 16;
/** The path that serves the metrics. */
export const METRICS_PATH = "/metrics";

/** What the endpoint serves: lib/metrics/metrics.ts's `Metrics` in production. */
export interface MetricsSource {
  /** The exposition text. */
  render(): string;
}

/** Options of {@linkcode MetricsServer}, for tests. */
export interface MetricsServerOptions {
  /** See {@linkcode REQUEST_TIMEOUT_MS}. */
  timeoutMs?: number;
  /** See {@linkcode MAX_CONNECTIONS}. */
  maxConnections?: number;
  /** See {@linkcode MAX_REQUEST_BYTES}. */
  maxRequestBytes?: number;
}

/** Counts of what the endpoint did, for tests and troubleshooting. */
export interface MetricsServerStats {
  /** Requests answered with 200. */
  served: number;
  /** Requests answered with an error status (4xx). */
  rejected: number;
  /** Connections closed at once because {@linkcode MAX_CONNECTIONS} were open. */
  refused: number;
}

/** One parsed request head, or the status that answers a bad one. */
type Request = { method: string; path: string } | { status: number };

// RFC 9110 token characters (methods, header names).
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([\x21-\x7e]+) HTTP\/1\.[01]$/;
const HEADER_LINE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*$/;
const ABSOLUTE_FORM = /^https?:\/\/[^/?#]*/i;
const REASONS: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  414: "URI Too Long",
  431: "Request Header Fields Too Large",
};
const encoder = new TextEncoder();

/** Whether `hostname` (canonical IP text) is a loopback address: 127.0.0.0/8 or ::1. */
export function isLoopback(hostname: string): boolean {
  return /^127\./.test(hostname) || hostname === "::1" ||
    /^::ffff:(127\.|7f[0-9a-f]{2}:)/.test(hostname);
}

/**
 * Binds the endpoint on `address` (port 0: the system picks one). Call it before the network
 * permission is dropped; serving needs none.
 *
 * @throws {Error} of the OS error's class, naming the address and the reason.
 */
export function listenMetrics(
  address: { hostname: string; port: number },
  source: MetricsSource,
  options: MetricsServerOptions = {},
): MetricsServer {
  let listener: Deno.Listener;
  try {
    listener = Deno.listen({ hostname: address.hostname, port: address.port, transport: "tcp" });
  } catch (error) {
    if (!isOsError(error)) throw error;
    throw withMessage(
      error,
      `Cannot serve metrics on "${address.hostname}" port "${address.port}": ${reason(error)}`,
    );
  }
  return new MetricsServer(listener, source, options);
}

/** Serves `/metrics` from a source on an already-bound listener, until {@linkcode close}. */
export class MetricsServer {
  /** What the endpoint did so far. */
  readonly stats: MetricsServerStats = { served: 0, rejected: 0, refused: 0 };
  #listener: Deno.Listener;
  #source: MetricsSource;
  #timeoutMs: number;
  #maxConnections: number;
  #maxRequestBytes: number;
  #open = new Set<Deno.Conn>();
  #handlers = new Set<Promise<void>>();
  #closed = false;
  #wake: (() => void) | null = null;

  /** Creates a server that answers with `source.render()` on `listener`. */
  constructor(listener: Deno.Listener, source: MetricsSource, options: MetricsServerOptions = {}) {
    this.#listener = listener;
    this.#source = source;
    this.#timeoutMs = options.timeoutMs ?? REQUEST_TIMEOUT_MS;
    this.#maxConnections = options.maxConnections ?? MAX_CONNECTIONS;
    this.#maxRequestBytes = options.maxRequestBytes ?? MAX_REQUEST_BYTES;
  }

  /** The address the endpoint listens on. */
  get addr(): Deno.NetAddr {
    return this.#listener.addr as Deno.NetAddr;
  }

  /** Logs where the endpoint serves, with a warning if that is not a loopback address. */
  announce(log: Pick<EventLog, "info" | "warn">): void {
    const { hostname, port } = this.addr;
    log.info("metrics", `Serving metrics on ${hostname} port ${port}`, { address: hostname, port });
    if (isLoopback(hostname)) return;
    log.warn(
      "warning",
      `Serving metrics on ${hostname}, not a loopback address: whoever reaches port ${port} can ` +
        "read them",
      { address: hostname, port },
    );
  }

  /** Accepts and answers until {@linkcode close}; resolves once every connection is finished. */
  async serve(): Promise<void> {
    while (!this.#closed) {
      let conn: Deno.Conn;
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        // Closed by close(), or an OS error, sorted as the honeypot's listeners sort them: a
        // client that reset before it was accepted costs nothing (an RST flood must not slow
        // scrapes); out of descriptors or anything else pauses briefly, so it does not spin.
        if (this.#closed) break;
        const kind = acceptErrorKind(acceptErrorCode(error as Error));
        if (kind === "connection" || kind === "interrupted" || kind === "empty") continue;
        let timer: ReturnType<typeof setTimeout> | undefined;
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
          timer = setTimeout(resolve, ACCEPT_ERROR_BACKOFF_MS);
        });
        clearTimeout(timer);
        this.#wake = null;
        continue;
      }
      if (this.#closed || this.#open.size >= this.#maxConnections) {
        this.stats.refused++;
        closeQuietly(conn);
        continue;
      }
      this.#open.add(conn);
      const handler = this.#handle(conn).finally(() => {
        this.#open.delete(conn);
        this.#handlers.delete(handler);
      });
      this.#handlers.add(handler);
    }
    await Promise.all(this.#handlers);
  }

  /** Stops accepting and closes every open connection; {@linkcode serve} then resolves. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeQuietly(this.#listener);
    for (const conn of this.#open) closeQuietly(conn);
    this.#wake?.();
  }

  async #handle(conn: Deno.Conn): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const expired = new Promise<"expired">((resolve) => {
        timer = setTimeout(() => resolve("expired"), this.#timeoutMs);
      });
      const head = await this.#readHead(conn, expired);
      clearTimeout(timer);
      // A connection closed before a byte (a port check, or close()) gets no answer.
      if (head === "eof" || this.#closed) return;
      // From here a hard deadline: a client that does not read its answer is cut off.
      timer = setTimeout(() => closeQuietly(conn), this.#timeoutMs);
      const request: Request = typeof head === "number" ? { status: head } : parseHead(head);
      const response = this.#respond(request);
      await writeAll(conn, response);
      // Lingering close: after our FIN, read (and discard) what the client still sends until it
      // closes, so that closing with unread bytes does not reset the connection and lose the
      // answer. A timed-out client has a read pending already: close at once.
      if (head === 408) return;
      await conn.closeWrite();
      await drain(conn);
    } catch {
      // The client went away, or the deadline closed the connection: nothing to answer.
    } finally {
      clearTimeout(timer);
      closeQuietly(conn);
    }
  }

  /**
   * Reads up to the end of the request head; returns its bytes, "eof" if the client closed
   * without a byte, or the status of an answer: 400 (closed mid-head), 408 (deadline),
   * 414 or 431 (too long).
   */
  async #readHead(
    conn: Deno.Conn,
    expired: Promise<"expired">,
  ): Promise<Uint8Array | "eof" | number> {
    const buffer = new Uint8Array(this.#maxRequestBytes);
    let length = 0;
    while (length < buffer.length) {
      const read = conn.read(buffer.subarray(length));
      // On the deadline this read stays pending until the connection is closed.
      read.catch(() => {});
      const n = await Promise.race([read, expired]);
      if (n === "expired") return 408;
      if (n === null) return length === 0 ? "eof" : 400;
      const start = Math.max(0, length - 3);
      length += n;
      const end = headEnd(buffer, start, length);
      if (end !== -1) return buffer.subarray(0, end);
    }
    return buffer.indexOf(0x0a) === -1 ? 414 : 431;
  }

  #respond(request: Request): Uint8Array {
    if ("status" in request) return errorResponse(request.status, this.stats);
    if (request.method !== "GET" && request.method !== "HEAD") {
      return errorResponse(405, this.stats, "Allow: GET, HEAD\r\n");
    }
    if (request.path !== METRICS_PATH) return errorResponse(404, this.stats);
    this.stats.served++;
    const body = encoder.encode(this.#source.render());
    return response(200, METRICS_CONTENT_TYPE, body, { head: request.method === "HEAD" });
  }
}

/** The index just past the blank line ending a head in `buffer[start, length)`, or -1. */
function headEnd(buffer: Uint8Array, start: number, length: number): number {
  for (let i = start; i < length; i++) {
    if (buffer[i] !== 0x0a) continue;
    // "\n\n" or "\n\r\n" (RFC 9112 allows a bare LF as line end).
    if (i + 1 < length && buffer[i + 1] === 0x0a) return i + 2;
    if (i + 2 < length && buffer[i + 1] === 0x0d && buffer[i + 2] === 0x0a) return i + 3;
  }
  return -1;
}

/** Parses a request head (bytes as Latin-1, so any byte is one character). */
function parseHead(head: Uint8Array): Request {
  const lines = String.fromCharCode(...head).split("\n").map((line) => line.replace(/\r$/, ""));
  // The head ends with an empty line (and the split adds one after the final line feed).
  while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  const match = REQUEST_LINE.exec(lines[0] ?? "");
  if (match === null) return { status: 400 };
  if (!lines.slice(1).every((line) => HEADER_LINE.test(line))) return { status: 400 };
  const [, method, target] = match;
  const path = target.replace(ABSOLUTE_FORM, "").split("?")[0];
  return { method, path };
}

function errorResponse(status: number, stats: MetricsServerStats, extra = ""): Uint8Array {
  stats.rejected++;
  const body = encoder.encode(`${REASONS[status]}\n`);
  return response(status, "text/plain; charset=utf-8", body, { extra });
}

function response(
  status: number,
  contentType: string,
  body: Uint8Array,
  { head = false, extra = "" }: { head?: boolean; extra?: string } = {},
): Uint8Array {
  const header = encoder.encode(
    `HTTP/1.1 ${status} ${REASONS[status]}\r\nContent-Type: ${contentType}\r\n` +
      `Content-Length: ${body.length}\r\n${extra}Connection: close\r\n\r\n`,
  );
  if (head) return header;
  const bytes = new Uint8Array(header.length + body.length);
  bytes.set(header);
  bytes.set(body, header.length);
  return bytes;
}

/** Reads and discards until the client closes (bounded by the connection's deadline). */
async function drain(conn: Deno.Conn): Promise<void> {
  const buffer = new Uint8Array(1024);
  while (await conn.read(buffer) !== null) {
    // Discarded: the answer is sent.
  }
}

function closeQuietly(closer: { close(): void }): void {
  try {
    closer.close();
  } catch {
    // Already closed.
  }
}
