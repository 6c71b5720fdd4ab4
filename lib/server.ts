/** The daemon: listeners that accept, log one line and close. Nothing is read or sent. */
import { getLogger } from "@logtape/logtape";
import { clientAddress } from "./address.ts";
import { isOsError, reason, withMessage } from "./errors.ts";
import type { Formatter } from "./format.ts";
import type { PrefixSet } from "./ip.ts";
import { Throttle } from "./throttle.ts";

/** Which clients the default listeners take: both IP versions, IPv4 only, or IPv6 only. */
export type Family = "dual" | "ipv4" | "ipv6";
/** Opens a TCP listener; `Deno.listen` in production. */
export type ListenFunction = (options: { hostname: string; port: number }) => Deno.Listener;

/** The shortest interval between two log lines about failing accepts, in milliseconds. */
export const ACCEPT_ERROR_REPORT_INTERVAL_MS = 1_000;
/** Pause after a failed accept (e.g. EMFILE), so a full fd table does not spin the CPU, in ms. */
export const ACCEPT_ERROR_BACKOFF_MS = 10;

const ANY_IPV6 = "::";
const ANY_IPV4 = "0.0.0.0";
const PRIVILEGE_HINT = "ports below 1024 need privileges: run as root, give the binary the " +
  'capability with "setcap cap_net_bind_service=+ep", or use systemd\'s ' +
  '"AmbientCapabilities=CAP_NET_BIND_SERVICE"';

/** Where connection lines go: lib/log_writer.ts's `LogWriter` in production. */
export interface LineSink {
  /** Takes one complete line as UTF-8 (the buffer may be reused once this returns). */
  writeBytes(line: Uint8Array): void;
}

/** Options of {@linkcode Bouncer}. */
export interface BouncerOptions {
  /** Which clients the any-address listeners take (default `"dual"`). */
  family?: Family;
  /** Listen on these addresses only (canonical text); default: any address. */
  addresses?: readonly string[];
  /** Connections from these prefixes are closed without a line. */
  ignore?: PrefixSet;
  /** Milliseconds since the epoch (default `Date.now`). */
  clock?: () => number;
  /** Opens listeners (default `Deno.listen`). */
  listen?: ListenFunction;
}

interface Bound {
  listener: Deno.Listener;
  port: number;
  /** What the listener takes, for the Listening line. */
  scope: string;
}

const logger = getLogger(["net-bouncer", "server"]);

/** Accepts connections on many ports, writes one line for each and closes it at once. */
export class Bouncer {
  /** Connections logged. */
  connections = 0;
  /** Connections closed without a line (allow-listed, or IPv4 on an IPv6-only listener). */
  ignored = 0;
  /** Failed accepts (e.g. too many open files). */
  acceptErrors = 0;
  /** The allow-list; replace it to reload. */
  ignore: PrefixSet | null;
  #sink: LineSink;
  #formatter: Formatter;
  #family: Family;
  #addresses: readonly string[];
  #clock: () => number;
  #listen: ListenFunction;
  #bound: Bound[] = [];
  #closed = false;
  #ipv6Missing = false;
  #acceptErrors: Throttle;

  /** Creates a server that writes lines made by `formatter` to `sink`. */
  constructor(sink: LineSink, formatter: Formatter, options: BouncerOptions = {}) {
    this.#sink = sink;
    this.#formatter = formatter;
    this.#family = options.family ?? "dual";
    this.#addresses = options.addresses ?? [];
    this.ignore = options.ignore ?? null;
    this.#clock = options.clock ?? Date.now;
    this.#listen = options.listen ?? Deno.listen;
    this.#acceptErrors = new Throttle(ACCEPT_ERROR_REPORT_INTERVAL_MS, { clock: this.#clock });
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
          for (const hostname of this.#addresses) this.#bind(hostname, port, `address ${hostname}`);
        } else if (this.#family === "ipv4") {
          this.#bind(ANY_IPV4, port, "IPv4, any address");
        } else if (this.#family === "ipv6") {
          this.#bind(ANY_IPV6, port, "IPv6, any address");
        } else {
          this.#bindDualStack(port);
        }
      }
    } catch (error) {
      this.close();
      throw error;
    }
    // Only once every port is bound: a failed start says nothing of ports it let go again.
    // A second, IPv4 listener of a dual-stack port has no scope: its port is announced once.
    for (const { port, scope } of this.#bound.filter((bound) => bound.scope !== "")) {
      logger.info("Listening on port {port} ({scope})", { event: "listening", port, scope });
    }
  }

  /** Accepts connections until {@linkcode close} is called. */
  async serve(): Promise<void> {
    await Promise.all(this.#bound.map((bound) => this.#acceptLoop(bound)));
  }

  /** Closes every listener; {@linkcode serve} then resolves. */
  close(): void {
    this.#closed = true;
    for (const { listener } of this.#bound) {
      try {
        listener.close();
      } catch (error) {
        if (!(error instanceof Deno.errors.BadResource)) throw error;
      }
    }
  }

  #bindDualStack(port: number): void {
    const scope = "IPv4 and IPv6, any address";
    if (this.#ipv6Missing) {
      this.#bind(ANY_IPV4, port, "IPv4 only, any address");
      return;
    }
    let bound: number;
    try {
      bound = this.#bind(ANY_IPV6, port, scope);
    } catch (error) {
      // A host without IPv6 (disabled in the kernel) cannot bind "::": serve IPv4 alone.
      const code = ((error as Error).cause as { code?: string } | undefined)?.code;
      if (code !== "EAFNOSUPPORT" && code !== "EADDRNOTAVAIL") throw error;
      this.#ipv6Missing = true;
      logger.warn("IPv6 is not available on this host ({reason}): listening on IPv4 only", {
        event: "warning",
        reason: reason(error),
      });
      this.#bind(ANY_IPV4, port, "IPv4 only, any address");
      return;
    }
    // Where "::" takes IPv6 clients only (net.ipv6.bindv6only=1, Windows), "0.0.0.0" binds
    // too and takes the IPv4 clients; on a dual-stack socket it is already taken.
    try {
      const listener = this.#listen({ hostname: ANY_IPV4, port: bound });
      this.#bound.push({ listener, port: bound, scope: "" });
    } catch (error) {
      if (!(error instanceof Deno.errors.AddrInUse)) {
        throw this.#cannotListen(error, ANY_IPV4, port);
      }
    }
  }

  /** Binds one listener; returns its port (the one the system picked for port 0). */
  #bind(hostname: string, port: number, scope: string): number {
    try {
      const listener = this.#listen({ hostname, port });
      const bound = port === 0 ? (listener.addr as Deno.NetAddr).port : port;
      this.#bound.push({ listener, port: bound, scope });
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
    const detail = error instanceof Deno.errors.PermissionDenied && port < 1024
      ? `permission denied (${PRIVILEGE_HINT})`
      : reason(error);
    return withMessage(error, `Cannot listen on ${where}: ${detail}`);
  }

  async #acceptLoop({ listener, port }: Bound): Promise<void> {
    // Deno cannot set IPV6_V6ONLY: with -6, IPv4 clients reach "::" and are dropped.
    const dropIPv4 = this.#family === "ipv6";
    while (true) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (this.#closed) return;
        if (!isOsError(error)) throw error;
        this.acceptErrors++;
        const count = this.#acceptErrors.fail();
        if (count !== null) {
          logger.error(
            "Cannot accept connections: {reason} ({count} failed since the last report)",
            {
              event: "error",
              reason: reason(error),
              count,
            },
          );
        }
        await new Promise((resolve) => setTimeout(resolve, ACCEPT_ERROR_BACKOFF_MS));
        continue;
      }
      // The hot path: no read, no write to the socket; close first to free the descriptor.
      const hostname = (conn.remoteAddr as Deno.NetAddr).hostname;
      const srcPort = (conn.remoteAddr as Deno.NetAddr).port;
      conn.close();
      if (this.#acceptErrors.open) this.#acceptResumed();
      const address = clientAddress(hostname);
      // clientAddress changes only an IPv4-mapped address: that is an IPv4 client.
      if (
        (dropIPv4 && address !== hostname) || (this.ignore !== null && this.ignore.has(address))
      ) {
        this.ignored++;
        continue;
      }
      this.connections++;
      this.#sink.writeBytes(this.#formatter.connection(this.#clock(), address, srcPort, port));
    }
  }

  #acceptResumed(): void {
    const count = this.#acceptErrors.recover();
    if (count === null) return;
    logger.warn("Accepting connections again ({count} more failed since the last report)", {
      event: "error",
      count,
    });
  }
}
