/** One fake listener set for the tests of Bouncer and of what it counts: no socket is made. */
import type { ConnectionSink, ListenerSet } from "../../lib/daemon/listener_set.ts";

/**
 * A listener set that records binds (port 0 binds 40001, 40002, ...), fails where told, hands
 * the sink to the test when served, and serves until closed.
 */
export class FakeListeners implements ListenerSet {
  /** The binds, in order. */
  binds: { hostname: string; port: number; v6only: boolean }[] = [];
  /** Whether close() was called. */
  closed = false;
  /** The sink that serve() was given. */
  sink: ConnectionSink | null = null;
  readonly dualStackInOneSocket: boolean;
  #stop = () => {};
  #fail: (hostname: string, port: number) => Error | null;

  /** A set whose binds fail where `fail` returns an error. */
  constructor(
    dualStackInOneSocket = true,
    fail: (hostname: string, port: number) => Error | null = () => null,
  ) {
    this.dualStackInOneSocket = dualStackInOneSocket;
    this.#fail = fail;
  }

  /** Records the bind (or throws the error `fail` gives). */
  bind(hostname: string, port: number, { v6only }: { v6only: boolean }): number {
    const error = this.#fail(hostname, port);
    if (error !== null) throw error;
    this.binds.push({ hostname, port, v6only });
    return port === 0 ? 40000 + this.binds.length : port;
  }

  /** Keeps the sink; resolves when closed. */
  serve(sink: ConnectionSink): Promise<void> {
    this.sink = sink;
    return new Promise((resolve) => this.#stop = resolve);
  }

  /** Stops serving. */
  close(): void {
    this.closed = true;
    this.#stop();
  }
}
