/** The daemon: listeners that accept, log one line and close. Nothing is read or sent. */
import { isOsError, reason, reasonOfCode, withMessage } from "../errors.ts";
import type { EventLog } from "../log/event_log.ts";
import { type Formatter, MAX_CONNECTION_LINE_BYTES } from "../log/format.ts";
import type { AcceptFailure, ConnectionSink, ListenerSet } from "./listener_set.ts";
import type { Metrics } from "../metrics/metrics.ts";
import type { Family } from "../config/cli.ts";
import type { PrefixSet } from "../config/prefix_set.ts";
import { Throttle } from "../log/throttle.ts";

/** The shortest interval between two log lines about failing accepts, in milliseconds. */
export const ACCEPT_ERROR_REPORT_INTERVAL_MS = 1_000;

const ANY_IPV6 = "::";
const ANY_IPV4 = "0.0.0.0";
const PRIVILEGE_HINT = "ports below 1024 need privileges: run as root, give the binary the " +
  'capability with "setcap cap_net_bind_service=+ep", or use systemd\'s ' +
  '"AmbientCapabilities=CAP_NET_BIND_SERVICE"';

/** Room for the connection lines of one round of accepts; a fuller round writes more often. */
export const LINE_BATCH_BYTES = 64 * 1024;

/** Where connection lines go: lib/log/log_writer.ts's `LogWriter` in production. */
export interface ConnectionLineWriter {
  /** Takes complete lines as UTF-8 (the buffer may be reused once this returns). */
  writeBytes(lines: Uint8Array): void;
}

/** Options of {@linkcode Bouncer}. */
export interface BouncerOptions {
  /** Which clients the any-address listeners take (default `"dual"`). */
  family?: Family;
  /** Listen on these addresses only (canonical text); default: any address. */
  addresses?: readonly string[];
  /** Connections from these prefixes are closed without a line. */
  allowList?: PrefixSet | null;
  /** Milliseconds since the epoch, for connection lines (default `Date.now`). */
  clock?: () => number;
  /** Milliseconds of a monotonic clock, for report intervals (default `performance.now`). */
  monotonicClock?: () => number;
  /** Counts what happens, for `--metrics` (default: nothing is counted). */
  metrics?: Metrics | null;
}

/** A bound listener, for the Listening line. */
interface Bound {
  port: number;
  /** What the listener takes; empty for a second socket of a port already announced. */
  scope: string;
}

/** Accepts connections on many ports, writes one line for each and closes it at once. */
export class Bouncer implements ConnectionSink {
  /** Connections logged. */
  connections = 0;
  /** Connections closed without a line (allow-listed, or IPv4 on an IPv6-only listener). */
  ignored = 0;
  /** Connections whose client reset before its address could be read (portable path only). */
  resets = 0;
  /** Failed accepts, of every kind. */
  acceptErrors = 0;
  /** The allow-list; replace it to reload. */
  allowList: PrefixSet | null;
  #listeners: ListenerSet;
  #lines: ConnectionLineWriter;
  #formatter: Formatter;
  #log: EventLog;
  #family: Family;
  #addresses: readonly string[];
  #clock: () => number;
  #bound: Bound[] = [];
  /** How many of {@linkcode #bound} have had their Listening line. */
  #announced = 0;
  #closed = false;
  #ipv6Missing = false;
  #acceptReports: Throttle;
  /** The lines of this round of accepts, written with one system call by {@linkcode flush}. */
  #batch = new Uint8Array(LINE_BATCH_BYTES);
  #batchLength = 0;
  #metrics: Metrics | null;

  /** Creates a daemon that accepts on `listeners` and writes lines to `lines`. */
  constructor(
    listeners: ListenerSet,
    lines: ConnectionLineWriter,
    options: BouncerOptions & { formatter: Formatter; log: EventLog },
  ) {
    this.#listeners = listeners;
    this.#lines = lines;
    this.#formatter = options.formatter;
    this.#log = options.log;
    this.#family = options.family ?? "dual";
    this.#addresses = options.addresses ?? [];
    this.allowList = options.allowList ?? null;
    this.#clock = options.clock ?? Date.now;
    this.#metrics = options.metrics ?? null;
    this.#acceptReports = new Throttle(ACCEPT_ERROR_REPORT_INTERVAL_MS, {
      clock: options.monotonicClock ?? (() => performance.now()),
    });
  }

  /**
   * Binds every port (on every address), logging a line for each listener.
   *
   * @throws {Error} of the OS error's class, naming the port and the reason; nothing is left
   *   listening then.
   */
  listen(ports: readonly number[]): void {
    if (this.#closed) return; // stopped by a signal during start-up
    try {
      for (const port of ports) {
        if (this.#addresses.length > 0) {
          // "::" next to an IPv4 address of the same port takes IPv6 clients only.
          const v6only = this.#family === "ipv6" || this.#addresses.some((a) => !a.includes(":"));
          // Port 0: the system picks one for the first address, the others share it.
          let shared = port;
          for (const address of this.#addresses) {
            const bound = this.#bind(address, shared, { v6only, scope: `address ${address}` });
            if (shared === 0) shared = bound;
          }
        } else if (this.#family === "ipv4") {
          this.#bind(ANY_IPV4, port, { v6only: false, scope: "IPv4, any address" });
        } else if (this.#family === "ipv6") {
          this.#bind(ANY_IPV6, port, { v6only: true, scope: "IPv6, any address" });
        } else {
          this.#bindDualStack(port);
        }
      }
    } catch (error) {
      this.close();
      throw error;
    }
    this.#announce();
  }

  /** Serves listeners that systemd passed (already bound); logs a line for each. */
  adopt(listeners: readonly { port: number; scope: string }[]): void {
    this.#bound.push(...listeners);
    for (const { port } of listeners) this.#metrics?.addPort(port);
    this.#announce();
  }

  /** Accepts connections until {@linkcode close} is called and the queues are drained. */
  async serve(): Promise<void> {
    await this.#listeners.serve(this);
  }

  /** Stops: connections waiting in the queues are still logged; {@linkcode serve} then resolves. */
  close(): void {
    this.#closed = true;
    this.#listeners.close();
  }

  /** {@inheritDoc ConnectionSink.connection} */
  connection(address: Uint8Array, srcPort: number, port: number): void {
    if (this.#acceptReports.open) this.#acceptResumed();
    const allowList = this.allowList;
    if (allowList !== null && allowList.hasBytes(address)) {
      this.ignored++;
      this.#metrics?.ignored(port);
      return;
    }
    this.connections++;
    const ms = this.#clock();
    this.#metrics?.connection(port, address.length === 4 ? 4 : 6, ms);
    if (this.#batchLength + MAX_CONNECTION_LINE_BYTES > LINE_BATCH_BYTES) this.flush();
    // The line is written in place: no string, no copy.
    this.#batchLength = this.#formatter.writeConnection(
      this.#batch,
      this.#batchLength,
      ms,
      address,
      srcPort,
      port,
    );
  }

  /** {@inheritDoc ConnectionSink.flush} */
  flush(): void {
    if (this.#batchLength === 0) return;
    // The lines are in the log before this turn of the event loop ends.
    this.#lines.writeBytes(this.#batch.subarray(0, this.#batchLength));
    this.#batchLength = 0;
  }

  /** {@inheritDoc ConnectionSink.dropped} */
  dropped(port: number): void {
    this.ignored++;
    this.#metrics?.ignored(port);
  }

  /** {@inheritDoc ConnectionSink.reset} */
  reset(port: number): void {
    this.resets++;
    this.#metrics?.resetBeforeAccept(port);
  }

  /** {@inheritDoc ConnectionSink.acceptFailed} */
  acceptFailed(failure: AcceptFailure, _port: number): void {
    this.acceptErrors++;
    this.#metrics?.acceptError(failure.code);
    // A connection that went away before it was accepted says nothing about the daemon.
    if (failure.kind === "connection") return;
    const count = this.#acceptReports.fail();
    if (count === null) return;
    this.flush(); // lines in the order of events
    this.#log.error(
      "error",
      `Cannot accept connections: ${reasonOfCode(failure.code)} (${count} failed since the ` +
        "last report)",
      { reason: reasonOfCode(failure.code), count },
    );
  }

  #announce(): void {
    // Only once every port is bound: a failed start says nothing of ports it let go again.
    // Each listener once: listen() after adopt() announces only its own.
    const fresh = this.#bound.slice(this.#announced);
    this.#announced = this.#bound.length;
    for (const { port, scope } of fresh.filter((bound) => bound.scope !== "")) {
      this.#log.info("listening", `Listening on port ${port} (${scope})`, { port, scope });
    }
  }

  #bindDualStack(port: number): void {
    if (this.#ipv6Missing) {
      this.#bind(ANY_IPV4, port, { v6only: false, scope: "IPv4 only, any address" });
      return;
    }
    let bound: number;
    try {
      bound = this.#bind(ANY_IPV6, port, { v6only: false, scope: "IPv4 and IPv6, any address" });
    } catch (error) {
      // A host without IPv6 (disabled in the kernel) cannot bind "::": serve IPv4 alone.
      const code = ((error as Error).cause as { code?: string } | undefined)?.code;
      if (code !== "EAFNOSUPPORT" && code !== "EADDRNOTAVAIL") throw error;
      this.#ipv6Missing = true;
      this.#log.warn(
        "warning",
        `IPv6 is not available on this host (${reason(error)}): listening on IPv4 only`,
        { reason: reason(error) },
      );
      this.#bind(ANY_IPV4, port, { v6only: false, scope: "IPv4 only, any address" });
      return;
    }
    if (this.#listeners.dualStackInOneSocket) return;
    // Where "::" takes IPv6 clients only (net.ipv6.bindv6only=1, Windows), "0.0.0.0" binds
    // too and takes the IPv4 clients; on a dual-stack socket it is already taken.
    try {
      this.#bind(ANY_IPV4, bound, { v6only: false, scope: "" });
    } catch (error) {
      const code = ((error as Error).cause as { code?: string } | undefined)?.code;
      if (code !== "EADDRINUSE") throw error;
    }
  }

  /** Binds one listener; returns its port (the one the system picked for port 0). */
  #bind(hostname: string, port: number, options: { v6only: boolean; scope: string }): number {
    try {
      const bound = this.#listeners.bind(hostname, port, options);
      this.#bound.push({ port: bound, scope: options.scope });
      this.#metrics?.addPort(bound);
      return bound;
    } catch (error) {
      throw this.#cannotListen(error, hostname, port);
    }
  }

  #cannotListen(error: unknown, hostname: string, port: number): unknown {
    if (!isOsError(error)) return error;
    const where = hostname === ANY_IPV4 || hostname === ANY_IPV6
      ? `port "${port}"`
      : `"${hostname}" port "${port}"`;
    const denied = error instanceof Deno.errors.PermissionDenied || error.code === "EACCES";
    const detail = denied && port < 1024 ? `permission denied (${PRIVILEGE_HINT})` : reason(error);
    return withMessage(error, `Cannot listen on ${where}: ${detail}`);
  }

  #acceptResumed(): void {
    const count = this.#acceptReports.recover();
    if (count === null) return;
    this.flush();
    const more = count === 0 ? "" : ` (${count} more failed since the last report)`;
    // Good news, not an error: an info line with an event of its own.
    this.#log.info("accepting", `Accepting connections again${more}`, { count });
  }
}
