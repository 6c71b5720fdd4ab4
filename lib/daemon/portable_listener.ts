/**
 * The portable listener: `Deno.listen` and its accept loop, on every OS (and on Linux when libc
 * cannot be loaded). Deno reads the client's address with getpeername(2) after accepting, which
 * fails for a client that reset at once: such a connection is counted, never logged.
 */
import { isOsError } from "../errors.ts";
import type { AcceptFailure, ConnectionSink, ListenerSet } from "./listener_set.ts";

/** When stopping, the accept queues count as drained after this long without a connection. */
export const DRAIN_IDLE_MS = 50;

/** Opens a TCP listener; `Deno.listen` in production. */
export type ListenFunction = (options: { hostname: string; port: number }) => Deno.Listener;

const MAPPED_PREFIX = "::ffff:";

/** A listener, its port, and when it last accepted while stopping (`performance.now`). */
interface Entry {
  listener: Deno.Listener;
  port: number;
  lastAccept: number;
}

/** Options of {@linkcode PortableListeners}. */
export interface PortableListenersOptions {
  /** Drop IPv4 clients of IPv6 listeners (`-6`: Deno cannot set IPV6_V6ONLY). */
  dropIPv4?: boolean;
  /** Opens listeners (default `Deno.listen`). */
  listen?: ListenFunction;
}

/** How a failed `accept()` is handled, by the error's class and code. */
export function portableAcceptFailure(error: Error): AcceptFailure | "reset" {
  const code = (error as { code?: unknown }).code;
  // getpeername(2) failed: the client reset the connection before Deno asked for its address.
  if (error instanceof Deno.errors.NotConnected || code === "ENOTCONN") return "reset";
  const name = typeof code === "string" ? code : error.name;
  if (
    error instanceof Deno.errors.ConnectionAborted || error instanceof Deno.errors.ConnectionReset
  ) {
    return { kind: "connection", code: name };
  }
  if (["EMFILE", "ENFILE", "ENOBUFS", "ENOMEM"].includes(name)) {
    return { kind: "resource", code: name };
  }
  return { kind: "other", code: name };
}

/** Listeners made with `Deno.listen` (see the module documentation). */
export class PortableListeners implements ListenerSet {
  /** Deno cannot set IPV6_V6ONLY: `::` may or may not take IPv4 clients. */
  readonly dualStackInOneSocket = false;
  #listen: ListenFunction;
  #dropIPv4: boolean;
  #listeners: Entry[] = [];
  #closing = false;

  /** Creates an empty set. */
  constructor(options: PortableListenersOptions = {}) {
    this.#listen = options.listen ?? Deno.listen;
    this.#dropIPv4 = options.dropIPv4 ?? false;
  }

  /** Binds a listener; returns its port. `v6only` cannot be set through Deno and is ignored. */
  bind(hostname: string, port: number, _options: { v6only: boolean }): number {
    const listener = this.#listen({ hostname, port });
    const bound = port === 0 ? (listener.addr as Deno.NetAddr).port : port;
    this.#listeners.push({ listener, port: bound, lastAccept: 0 });
    return bound;
  }

  /** Accepts until {@linkcode close}, then what waits in the queues. */
  async serve(sink: ConnectionSink): Promise<void> {
    if (this.#closing) {
      for (const { listener } of this.#listeners) closeListener(listener);
      return;
    }
    await Promise.all(this.#listeners.map((entry) => this.#loop(entry, sink)));
  }

  /**
   * Stops serving: each listener is closed once no connection came for {@linkcode DRAIN_IDLE_MS},
   * so the connections waiting in its queue are taken first.
   */
  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    for (const entry of this.#listeners) {
      entry.lastAccept = performance.now();
      this.#closeWhenIdle(entry);
    }
  }

  #closeWhenIdle(entry: Entry): void {
    // A timer per listener while stopping, not a race on every accept: a promise raced
    // against on every accept keeps a reaction for each, and memory grew without bound.
    setTimeout(() => {
      if (performance.now() - entry.lastAccept >= DRAIN_IDLE_MS) closeListener(entry.listener);
      else this.#closeWhenIdle(entry);
    }, DRAIN_IDLE_MS);
  }

  async #loop(entry: Entry, sink: ConnectionSink): Promise<void> {
    const { listener, port } = entry;
    while (true) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        // The next accept only after the back-off: one that runs meanwhile fails again at
        // once, and Deno itself can panic when it finds no free descriptor.
        if (!await this.#failed(error as Error, port, sink)) return;
        continue;
      }
      if (this.#closing) entry.lastAccept = performance.now();
      this.#handle(conn, port, sink);
    }
  }

  #handle(conn: Deno.Conn, port: number, sink: ConnectionSink): void {
    // The hot path: no read, no write to the socket; close first to free the descriptor.
    const { hostname, port: srcPort } = conn.remoteAddr as Deno.NetAddr;
    conn.close();
    const mapped = hostname.startsWith(MAPPED_PREFIX) && hostname.includes(".");
    if (mapped && this.#dropIPv4) {
      sink.dropped(port);
      return;
    }
    sink.connection(mapped ? hostname.slice(MAPPED_PREFIX.length) : hostname, srcPort, port, null);
    // Deno accepts one connection per listener and turn: there is no round to batch.
    sink.flush();
  }

  /** Handles a failed accept; false if the listener is gone. */
  async #failed(error: Error, port: number, sink: ConnectionSink): Promise<boolean> {
    if (error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted) {
      return false;
    }
    if (!isOsError(error)) throw error;
    const failure = portableAcceptFailure(error);
    if (failure === "reset") {
      sink.reset(port);
      return true;
    }
    sink.acceptFailed(failure, port);
    if (failure.kind !== "connection" && !this.#closing) await sink.backOff();
    return true;
  }
}

function closeListener(listener: Deno.Listener): void {
  try {
    listener.close();
  } catch (error) {
    if (!(error instanceof Deno.errors.BadResource)) throw error;
  }
}
