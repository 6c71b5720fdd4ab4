/**
 * What the daemon's two listener implementations have in common: lib/daemon/native_listener.ts (Linux,
 * through libc) and lib/daemon/portable_listener.ts (`Deno.listen`, everywhere).
 */

/** How a failed accept is handled: the errno's name and what it means. */
export interface AcceptFailure {
  /**
   * `connection`: one connection went away before it was accepted (accept the next at once);
   * `resource`: the process or system is out of descriptors or memory (report, back off);
   * `other`: anything else (report, back off).
   */
  kind: "connection" | "resource" | "other";
  /** The errno name, e.g. `EMFILE`. */
  code: string;
}

/** Receives what listeners accept: lib/daemon/bouncer.ts's `Bouncer` in production. */
export interface ConnectionSink {
  /**
   * A connection was accepted and closed. `address` is the client's canonical address text,
   * `sockaddr` the socket address accept4(2) filled in (native path; reused after the call) or
   * `null` (portable path).
   */
  connection(address: string, srcPort: number, port: number, sockaddr: Uint8Array | null): void;
  /** An IPv4 client reached an IPv6-only port where the kernel could not refuse it. */
  dropped(port: number): void;
  /** A client reset the connection before its address could be read (portable path). */
  reset(port: number): void;
  /** An accept failed. */
  acceptFailed(failure: AcceptFailure, port: number): void;
  /** Writes the lines of the connections accepted so far (at the end of each round of accepts). */
  flush(): void;
  /** Waits before accepting again after a failure that is not a single connection's. */
  backOff(): Promise<void>;
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
