/**
 * The portable listener: `Deno.listen` and its accept loop, on every OS (and on Linux when libc
 * cannot be loaded). Deno reads the client's address with getpeername(2) after accepting, which
 * fails for a client that reset at once: such a connection is counted, never logged.
 */
import { isOsError } from "../errors.ts";
import { acceptErrorCode, acceptErrorKind, backOff } from "../accept_error.ts";
import { addressBytes } from "./client_address.ts";
import type { AcceptFailure, ConnectionSink, ListenerSet } from "./listener_set.ts";

/** When stopping, the accept queues count as drained after this long without a connection. */
export const DRAIN_IDLE_MS = 50;
/**
 * When stopping, a listener is closed after this long whatever the arrival rate (Deno cannot
 * tell how many connections wait in a queue), in milliseconds: a stop ends in bounded time.
 */
export const DRAIN_MAX_MS = 1_000;

/** Opens a TCP listener; `Deno.listen` in production. */
export type ListenFunction = (options: { hostname: string; port: number }) => Deno.Listener;

const MAPPED_PREFIX = "::ffff:";

/** A listener, its port, and when it last accepted while stopping (`performance.now`). */
interface Entry {
  listener: Deno.Listener;
  port: number;
  lastAccept: number;
}

/** Options of {@linkcode PortableListeners.close}'s drain, for tests. */
interface DrainTimes {
  idleMs: number;
  maxMs: number;
}

/** Options of {@linkcode PortableListeners}. */
export interface PortableListenersOptions {
  /** Drop IPv4 clients of IPv6 listeners (`-6`: Deno cannot set IPV6_V6ONLY). */
  dropIPv4?: boolean;
  /** Opens listeners (default `Deno.listen`). */
  listen?: ListenFunction;
}

/** How a failed `accept()` is handled: sorted by its errno (lib/accept_error.ts). */
export function portableAcceptFailure(error: Error): AcceptFailure | "reset" {
  const code = acceptErrorCode(error);
  // getpeername(2) failed: the client reset the connection before Deno asked for its address.
  if (code === "ENOTCONN") return "reset";
  const kind = acceptErrorKind(code);
  return { kind: kind === "empty" || kind === "interrupted" ? "connection" : kind, code };
}

/** Listeners made with `Deno.listen` (see the module documentation). */
export class PortableListeners implements ListenerSet {
  /** Deno cannot set IPV6_V6ONLY: `::` may or may not take IPv4 clients. */
  readonly dualStackInOneSocket = false;
  #listen: ListenFunction;
  #dropIPv4: boolean;
  #listeners: Entry[] = [];
  #closing = false;
  #drain: DrainTimes;

  /** Creates an empty set. */
  constructor(options: PortableListenersOptions & { drain?: DrainTimes } = {}) {
    this.#drain = options.drain ?? { idleMs: DRAIN_IDLE_MS, maxMs: DRAIN_MAX_MS };
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
   * so the connections waiting in its queue are taken first, and at the latest after
   * {@linkcode DRAIN_MAX_MS}, so clients that keep coming cannot hold the stop.
   */
  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    const deadline = performance.now() + this.#drain.maxMs;
    for (const entry of this.#listeners) {
      entry.lastAccept = performance.now();
      this.#closeWhenIdle(entry, deadline);
    }
  }

  #closeWhenIdle(entry: Entry, deadline: number): void {
    // A timer per listener while stopping, not a race on every accept: a promise raced
    // against on every accept keeps a reaction for each, and memory grew without bound.
    const { idleMs } = this.#drain;
    setTimeout(() => {
      const now = performance.now();
      if (now - entry.lastAccept >= idleMs || now >= deadline) closeListener(entry.listener);
      else this.#closeWhenIdle(entry, deadline);
    }, Math.max(0, Math.min(idleMs, deadline - performance.now())));
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
    // The address text Deno gives is canonical; mapped IPv4 gives the 4 bytes of IPv4.
    sink.connection(addressBytes(hostname), srcPort, port);
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
    if (failure.kind !== "connection" && !this.#closing) await backOff();
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
