/**
 * The metrics registry: counters and gauges with bounded label values (ports the program listens
 * on, two families, a fixed set of reasons; never a client address), rendered in the Prometheus
 * text exposition format 0.0.4.
 */

import { RESOURCE_ERRORS } from "../accept_error.ts";
import { type ProcessStats, processStats } from "./process_stats.ts";

/** Why an accept failed, as counted: the resource errors (lower case), and the rest. */
export const ACCEPT_ERROR_REASONS: readonly string[] = [
  ...RESOURCE_ERRORS.map((code) => code.toLowerCase()),
  "other",
];
/** The IP version of a client. */
export type IpVersion = 4 | 6;
/** The `Content-Type` of {@linkcode Metrics.render}'s text. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Options of {@linkcode Metrics}. */
export interface MetricsOptions {
  /** The program's version, for `net_bouncer_build_info`. */
  version: string;
  /** Milliseconds since the epoch (default `Date.now`); read once, for the start time. */
  clock?: () => number;
  /** What the `process_*` series show (default: lib/metrics/process_stats.ts, through Deno). */
  process?: () => ProcessStats;
}

/** Counters of one port; the daemon's hot path only increments numbers in it. */
interface PortCounters {
  /** Connections logged from IPv4 clients. */
  ipv4: number;
  /** Connections logged from IPv6 clients. */
  ipv6: number;
  /** Connections closed without a line (allow-listed, or IPv4 dropped under `-6`). */
  ignored: number;
  /** Connections reset before their address could be read (portable listener). */
  resets: number;
}

/**
 * The program's counters and gauges. The increment methods run on the hot path: each is a map
 * lookup by port and an addition, with no allocation. A port's counters are made once, by
 * {@linkcode addPort} when it is bound (so its series read 0 before its first connection).
 */
export class Metrics {
  #ports = new Map<number, PortCounters>();
  #acceptErrors = new Map<string, number>(ACCEPT_ERROR_REASONS.map((reason) => [reason, 0]));
  /** When the last connection was logged, in ms since the epoch (0: none yet). */
  #lastConnectionMs = 0;
  #process: () => ProcessStats;
  #writeFailures = 0;
  #droppedLines = 0;
  #reopens = 0;
  #allowListSize = 0;
  #startSeconds: number;
  #version: string;

  /** Creates the registry; the process start time is `clock()` now. */
  constructor(options: MetricsOptions) {
    this.#version = options.version;
    this.#startSeconds = (options.clock ?? Date.now)() / 1000;
    this.#process = options.process ?? processStats();
  }

  /** Makes the series of a bound port (its real number, not 0); a known port is kept. */
  addPort(port: number): void {
    if (!this.#ports.has(port)) this.#ports.set(port, { ipv4: 0, ipv6: 0, ignored: 0, resets: 0 });
  }

  /** Counts a connection on `port` from an IPv4 or IPv6 client, logged at `ms` (since the epoch). */
  connection(port: number, family: IpVersion, ms: number): void {
    const counters = this.#counters(port);
    if (family === 4) counters.ipv4++;
    else counters.ipv6++;
    this.#lastConnectionMs = ms;
  }

  /** Counts a connection on `port` closed without a line (allow-listed). */
  ignored(port: number): void {
    this.#counters(port).ignored++;
  }

  /** Counts a connection on `port` reset before its address could be read (portable path). */
  resetBeforeAccept(port: number): void {
    this.#counters(port).resets++;
  }

  /** Counts a failed accept by its errno name (`EMFILE`): a resource error, or "other". */
  acceptError(code: string): void {
    const reason = code.toLowerCase();
    const count = this.#acceptErrors.get(reason);
    if (count === undefined) this.#acceptErrors.set("other", this.#acceptErrors.get("other")! + 1);
    else this.#acceptErrors.set(reason, count + 1);
  }

  /** Counts a failed write to the log. */
  writeFailure(): void {
    this.#writeFailures++;
  }

  /** Counts `count` lines dropped because the log could not be written. */
  droppedLines(count: number): void {
    this.#droppedLines += count;
  }

  /** Counts a reopen of the log file (SIGHUP). */
  reopen(): void {
    this.#reopens++;
  }

  /** Sets the number of prefixes in the allow-list. */
  allowListSize(size: number): void {
    this.#allowListSize = size;
  }

  /** The exposition text: HELP and TYPE lines, then one line per series; ends with a newline. */
  render(): string {
    const ports = [...this.#ports.keys()].sort((a, b) => a - b);
    const out: string[] = [];
    const family = (name: string, type: "counter" | "gauge", help: string) => {
      out.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`);
    };
    const perPort = (name: string, value: (counters: PortCounters) => number) => {
      for (const port of ports) {
        out.push(`${name}{port="${port}"} ${formatValue(value(this.#ports.get(port)!))}`);
      }
    };

    family("net_bouncer_connections_total", "counter", "Connections logged, by port and family.");
    for (const port of ports) {
      const counters = this.#ports.get(port)!;
      out.push(
        `net_bouncer_connections_total{port="${port}",family="ipv4"} ${formatValue(counters.ipv4)}`,
        `net_bouncer_connections_total{port="${port}",family="ipv6"} ${formatValue(counters.ipv6)}`,
      );
    }
    family(
      "net_bouncer_ignored_connections_total",
      "counter",
      "Connections closed without a line (allow-listed), by port.",
    );
    perPort("net_bouncer_ignored_connections_total", (counters) => counters.ignored);
    family(
      "net_bouncer_connections_reset_before_accept_total",
      "counter",
      "Connections reset before their address could be read (portable listener), by port.",
    );
    perPort("net_bouncer_connections_reset_before_accept_total", (counters) => counters.resets);
    family("net_bouncer_accept_errors_total", "counter", "Failed accepts, by reason.");
    for (const reason of ACCEPT_ERROR_REASONS) {
      out.push(
        `net_bouncer_accept_errors_total{reason="${reason}"} ${
          formatValue(this.#acceptErrors.get(reason)!)
        }`,
      );
    }
    family("net_bouncer_log_write_failures_total", "counter", "Failed writes to the log.");
    out.push(`net_bouncer_log_write_failures_total ${formatValue(this.#writeFailures)}`);
    family(
      "net_bouncer_log_dropped_lines_total",
      "counter",
      "Lines dropped because the log could not be written.",
    );
    out.push(`net_bouncer_log_dropped_lines_total ${formatValue(this.#droppedLines)}`);
    family("net_bouncer_log_reopens_total", "counter", "Reopens of the log file (SIGHUP).");
    out.push(`net_bouncer_log_reopens_total ${formatValue(this.#reopens)}`);
    family("net_bouncer_allow_list_prefixes", "gauge", "Prefixes in the allow-list.");
    out.push(`net_bouncer_allow_list_prefixes ${formatValue(this.#allowListSize)}`);
    family(
      "net_bouncer_last_connection_timestamp_seconds",
      "gauge",
      "When the last connection was logged, since the Unix epoch, in seconds (0: none yet).",
    );
    out.push(
      `net_bouncer_last_connection_timestamp_seconds ${formatValue(this.#lastConnectionMs / 1000)}`,
    );
    const stats = this.#process();
    if (stats.cpuSeconds !== null) {
      family(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
      );
      out.push(`process_cpu_seconds_total ${formatValue(stats.cpuSeconds)}`);
    }
    if (stats.openFds !== null) {
      family("process_open_fds", "gauge", "Number of open file descriptors.");
      out.push(`process_open_fds ${formatValue(stats.openFds)}`);
    }
    if (stats.maxFds !== null) {
      family("process_max_fds", "gauge", "Maximum number of open file descriptors.");
      out.push(`process_max_fds ${formatValue(stats.maxFds)}`);
    }
    family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    out.push(`process_resident_memory_bytes ${formatValue(stats.residentBytes)}`);
    family(
      "process_start_time_seconds",
      "gauge",
      "Start time of the process since the Unix epoch, in seconds.",
    );
    out.push(`process_start_time_seconds ${formatValue(this.#startSeconds)}`);
    family("net_bouncer_build_info", "gauge", "Always 1; the version is a label.");
    out.push(`net_bouncer_build_info{version="${escapeLabelValue(this.#version)}"} 1`);
    return out.join("\n") + "\n";
  }

  #counters(port: number): PortCounters {
    const counters = this.#ports.get(port);
    if (counters !== undefined) return counters;
    // A port that was not added (a bug, not a client's doing: ports come from our listeners)
    // still counts; this allocates once per port, never per connection.
    this.addPort(port);
    return this.#ports.get(port)!;
  }
}

/** A sample value in the exposition format (Go's ParseFloat syntax). */
function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

/** Escapes a HELP text: backslash and line feed. */
function escapeHelp(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

/** Escapes a label value: backslash, double quote and line feed. */
function escapeLabelValue(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}
