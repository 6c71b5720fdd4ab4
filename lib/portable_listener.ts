/**
 * The portable listener: `Deno.listen` and its accept loop, on every OS (and on Linux when libc
 * cannot be loaded). Deno reads the client's address with getpeername(2) after accepting, which
 * fails for a client that reset at once: such a connection is counted, never logged.
 */
import { isOsError } from "./errors.ts";
import type { AcceptFailure, ConnectionSink, ListenerSet } from "./listener_set.ts";

/** When stopping, the accept queues count as drained after this long without a connection. */
export const DRAIN_IDLE_MS = 50;

/** Opens a TCP listener; `Deno.listen` in production. */
export type ListenFunction = (options: { hostname: string; port: number }) => Deno.Listener;

const MAPPED_PREFIX = "::ffff:";

/** Options of {@linkcode PortableListeners}. */
export interface PortableListenersOptions {
  /** Drop IPv4 clients of IPv6 listeners (`-6`: Deno cannot set IPV6_V6ONLY). */
  dropIPv4?: boolean;
  /** Opens listeners (default `Deno.listen`). */
  listen?: ListenFunction;
}

function cancellableDelay(ms: number): { promise: Promise<null>; cancel: () => void } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const promise = new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), ms));
  return { promise, cancel: () => clearTimeout(timer) };
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
  #listeners: { listener: Deno.Listener; port: number }[] = [];
  #closing = false;
  #stopped: () => void = () => {};
  #stopping = new Promise<null>((resolve) => this.#stopped = () => resolve(null));

  /** Creates an empty set. */
  constructor(options: PortableListenersOptions = {}) {
    this.#listen = options.listen ?? Deno.listen;
    this.#dropIPv4 = options.dropIPv4 ?? false;
  }

  /** Binds a listener; returns its port. `v6only` cannot be set through Deno and is ignored. */
  bind(hostname: string, port: number, _options: { v6only: boolean }): number {
    const listener = this.#listen({ hostname, port });
    const bound = port === 0 ? (listener.addr as Deno.NetAddr).port : port;
    this.#listeners.push({ listener, port: bound });
    return bound;
  }

  /** Accepts until {@linkcode close}, then what waits in the queues. */
  async serve(sink: ConnectionSink): Promise<void> {
    if (this.#closing) {
      this.#closeAll();
      return;
    }
    await Promise.all(
      this.#listeners.map(({ listener, port }) => this.#loop(listener, port, sink)),
    );
  }

  /** Stops serving: each loop takes the connections that wait, then closes its listener. */
  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#stopped();
  }

  #closeAll(): void {
    for (const { listener } of this.#listeners) closeListener(listener);
  }

  async #loop(listener: Deno.Listener, port: number, sink: ConnectionSink): Promise<void> {
    let pending = listener.accept();
    try {
      while (true) {
        // Until stopped, wait for a connection or the stop; then for a connection or idleness.
        const idle = this.#closing ? cancellableDelay(DRAIN_IDLE_MS) : null;
        const result = await Promise.race([
          pending.then((conn) => ({ conn }), (error: Error) => ({ error })),
          idle?.promise ?? this.#stopping,
        ]);
        idle?.cancel();
        if (result === null) {
          if (idle !== null) return; // drained
          continue; // stopping: drain what waits
        }
        if ("error" in result) {
          // The next accept only after the back-off: one that runs meanwhile fails again at
          // once, and Deno itself can panic when it finds no free descriptor.
          if (!await this.#failed(result.error, port, sink)) return;
        } else {
          this.#handle(result.conn, port, sink);
        }
        pending = listener.accept();
      }
    } finally {
      closeListener(listener);
      // An accept that completed as the listener closed still counts: log it.
      const last = await pending.then((conn) => conn, () => null);
      if (last !== null) this.#handle(last, port, sink);
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
