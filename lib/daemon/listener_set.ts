/**
 * What the daemon's two listener implementations have in common: lib/daemon/native_listener.ts (Linux,
 * through libc) and lib/daemon/portable_listener.ts (`Deno.listen`, everywhere).
 */

/** A failed accept as the sink hears of it: its kind (lib/accept_error.ts) and errno name. */
export interface AcceptFailure {
  /**
   * `connection`: one connection went away before it was accepted (the loop accepts the next at
   * once); `resource`: out of descriptors or memory; `other`: anything else (the loop backs off).
   */
  kind: "connection" | "resource" | "other";
  /** The errno name, e.g. `EMFILE`. */
  code: string;
}

/** Receives what listeners accept: lib/daemon/bouncer.ts's `Bouncer` in production. */
export interface ConnectionSink {
  /**
   * A connection was accepted. `address` is the client's IP address as bytes: 4 for IPv4 (also
   * for an IPv4 client of a dual-stack socket), 16 for IPv6 (lib/daemon/client_address.ts); the
   * listener reuses it after the call.
   */
  connection(address: Uint8Array, srcPort: number, port: number): void;
  /** An IPv4 client reached an IPv6-only port where the kernel could not refuse it. */
  dropped(port: number): void;
  /** A client reset the connection before its address could be read (portable path). */
  reset(port: number): void;
  /** An accept failed. */
  acceptFailed(failure: AcceptFailure, port: number): void;
  /**
   * Writes the lines of the connections accepted so far: at the end of each round of accepts,
   * before the listener closes them.
   */
  flush(): void;
}

/** A set of listening sockets and the loop that accepts on them. */
export interface ListenerSet {
  /** Whether one `::` socket takes both IPv4 and IPv6 clients, whatever the host's default. */
  readonly dualStackInOneSocket: boolean;
  /**
   * Binds a listener on `hostname` (an IP address, `::` or `0.0.0.0`) and `port` (0: the
   * system picks); returns the port. `v6only` is honoured where the implementation can.
   *
   * @throws {Error} with the OS error's `code` if it cannot listen.
   */
  bind(hostname: string, port: number, options: { v6only: boolean }): number;
  /** Accepts connections into `sink` until {@linkcode close}, then what waits, and resolves. */
  serve(sink: ConnectionSink): Promise<void>;
  /** Stops serving (the queued connections are still taken); closes the listeners. */
  close(): void;
}
