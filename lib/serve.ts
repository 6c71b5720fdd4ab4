/**
 * The daemon's wiring: parses the options, builds the log, the listeners, the metrics and the
 * systemd notifier, handles the signals (SIGTERM, SIGINT stop; SIGHUP reopens and reloads) and
 * gives up permissions once the ports are bound. The accept loop itself is in lib/daemon/.
 *
 * @module
 */
import denoConfig from "../deno.json" with { type: "json" };
import { Bouncer } from "./daemon/bouncer.ts";
import { type Config, parseArgs } from "./config/cli.ts";
import { escapeControls, plural, quote, RuntimeError, UsageError } from "./errors.ts";
import { EventLog } from "./log/event_log.ts";
import { createFormatter } from "./log/format.ts";
import { type Libc, openLibc, unixDatagramSender } from "./linux/libc.ts";
import type { ListenerSet } from "./daemon/listener_set.ts";
import { LogWriter } from "./log/log_writer.ts";
import { Metrics } from "./metrics/metrics.ts";
import { listenMetrics, MetricsServer } from "./metrics/metrics_server.ts";
import { NativeListeners } from "./daemon/native_listener.ts";
import { PortableListeners } from "./daemon/portable_listener.ts";
import type { PrefixSet } from "./config/prefix_set.ts";
import type { Environment } from "./systemd/environment.ts";
import { type ListenFd, takeListenFds } from "./systemd/listen_fds.ts";
import { createNotifier, type Notifier } from "./systemd/notifier.ts";

/** `FileDescriptorName=` of a socket that systemd passes for the metrics endpoint. */
export const METRICS_FD_NAME = "metrics";

/** The program's version, from deno.json. */
export const VERSION: string = denoConfig.version;

/** Options of {@linkcode serve} (and of main.ts's `main`): what tests control. */
export interface ServeOptions {
  /** Receives text for standard output (help, version). */
  stdout?: (text: string) => void;
  /** Receives one-line error messages meant for standard error (without a newline). */
  stderr?: (line: string) => void;
  /** The environment (socket activation, sd_notify); default `Deno.env`. */
  env?: Environment;
  /** This process's id, to match `LISTEN_PID` (default `Deno.pid`). */
  pid?: number;
  /** Milliseconds since the epoch, for log lines (default `Date.now`). */
  clock?: () => number;
  /** Loads the C library for the native listener (default {@linkcode openLibc}). */
  openLibc?: () => Libc;
  /** Gives up permissions once listening (default: revokes them); tests in-process skip it. */
  dropPermissions?: (options: { keepRead: boolean }) => Promise<void>;
  /** Called once the listeners are bound and permissions dropped, before serving. */
  onReady?: () => void | Promise<void>;
  /** Stops the daemon as SIGTERM does, when aborted (for tests in-process). */
  signal?: AbortSignal;
}

/** The exit code of an error: 2 for a usage error, 1 for everything else (never a stack trace). */
export function exitCodeOf(error: unknown): number {
  if (error instanceof UsageError) return 2;
  return 1; // OS errors, runtime errors, and anything unexpected: never a stack trace
}

/** One line, never a stack trace; control characters (a newline too) are shown escaped. */
export function errorLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return `net-bouncer: error: ${escapeControls(message)}`;
}

/** Gives up what the running daemon no longer needs once its ports are bound. */
async function dropPermissions({ keepRead }: { keepRead: boolean }): Promise<void> {
  // Accepting on a bound listener needs no permission; any new connection or bind would.
  await Deno.permissions.revoke({ name: "net" });
  // The C library's functions are loaded; no other library may be.
  await Deno.permissions.revoke({ name: "ffi" });
  // systemd's variables were read and unset.
  await Deno.permissions.revoke({ name: "env" });
  // Reading is needed to reload --ignore-file on SIGHUP, and to check that the log path is
  // still a regular file before it is reopened (a FIFO there would block the daemon). Writing
  // stays: SIGHUP reopens the log file by path (Deno cannot narrow a grant to one path at run
  // time).
  if (!keepRead) await Deno.permissions.revoke({ name: "read" });
}

interface AddressConfig {
  /** `-b` addresses, canonical and distinct. */
  addresses: string[];
  /** The allow-list, or `null` for none. */
  allowList: PrefixSet | null;
  /** Reads the allow-list again (with `--ignore-file`), or `null`. */
  reload: (() => PrefixSet) | null;
}

/**
 * Parses `-b` and the allow-list. They need ipaddr.js, which costs about 5 MB of memory, so it
 * is loaded only when one of them is given.
 *
 * @throws {UsageError} on a bad address, prefix or ignore file.
 */
async function loadAddressConfig(config: Config): Promise<AddressConfig> {
  if (config.bind.length === 0 && config.ignore.length === 0 && config.ignoreFile === null) {
    return { addresses: [], allowList: null, reload: null };
  }
  const [{ parseBindAddress }, { loadIgnoreList }] = await Promise.all([
    import("./config/ip.ts"),
    import("./config/allow_list.ts"),
  ]);
  let addresses: string[];
  try {
    addresses = [...new Set(config.bind.map(parseBindAddress))];
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    throw new UsageError(error.message, { cause: error });
  }
  const wrongFamily = addresses.find((address) =>
    config.family === "ipv4"
      ? address.includes(":")
      : config.family === "ipv6" && !address.includes(":")
  );
  if (wrongFamily !== undefined) {
    const flag = config.family === "ipv4" ? "-4" : "-6";
    throw new UsageError(`Cannot bind to "${wrongFamily}": it contradicts "${flag}"`);
  }
  const load = () => loadIgnoreList(config.ignore, { file: config.ignoreFile }).prepare();
  const allowList = load();
  return {
    addresses,
    allowList: allowList.size > 0 ? allowList : null,
    reload: config.ignoreFile === null ? null : load,
  };
}

/** The listener set the configuration asks for; `log` takes the warning of a fallback. */
function createListeners(
  config: Config,
  { log, load, activated }: { log: EventLog; load: () => Libc; activated: boolean },
): { listeners: ListenerSet; libc: Libc | null } {
  const portable = () => new PortableListeners({ dropIPv4: config.family === "ipv6" });
  if (config.listener === "portable" && !activated) return { listeners: portable(), libc: null };
  if (config.listener === "auto" && Deno.build.os !== "linux" && !activated) {
    return { listeners: portable(), libc: null };
  }
  let libc: Libc;
  try {
    libc = load();
  } catch (error) {
    const why = escapeControls(error instanceof Error ? error.message : String(error));
    if (config.listener === "native" || activated) {
      throw new RuntimeError(`Cannot use the native listener: ${why}`, { cause: error });
    }
    log.warn(
      "warning",
      `Cannot load the C library (${why}): using the portable listener, which cannot log ` +
        "clients that reset at once",
      { reason: why },
    );
    return { listeners: portable(), libc: null };
  }
  return { listeners: new NativeListeners(libc), libc };
}

/**
 * Runs the daemon: binds or adopts the listeners, serves until SIGTERM, SIGINT or `options.signal`,
 * and resolves to the exit code. Errors are thrown; main.ts turns them into one line and a code.
 */
export async function serve(
  args: string[],
  options: ServeOptions & { stderr: (line: string) => void },
): Promise<number> {
  const env = options.env ?? Deno.env;
  const pid = options.pid ?? Deno.pid;
  const listenFds = takeListenFds(env, { pid });
  const invocation = parseArgs(args, { version: VERSION, portsRequired: listenFds === null });
  if (invocation.action === "print") {
    (options.stdout ?? ((text) => console.log(text)))(invocation.text.trimEnd());
    return 0;
  }
  const config = invocation.config;
  const addressConfig = await loadAddressConfig(config);
  const metricsFd = listenFds?.find((passed) => passed.name === METRICS_FD_NAME) ?? null;
  if (metricsFd !== null && config.metrics !== null) {
    throw new UsageError(
      'Option "--metrics" and a metrics socket passed by systemd exclude each other',
    );
  }
  const metrics = config.metrics === null && metricsFd === null
    ? null
    : new Metrics({ version: VERSION, clock: options.clock });
  metrics?.allowListSize(addressConfig.allowList?.size ?? 0);
  const writer = new LogWriter(config.logFile, {
    report: (message) => options.stderr(errorLine(message)),
    metrics: metrics ?? undefined,
  });
  const formatter = createFormatter(config.format);
  const clock = options.clock ?? Date.now;
  const log = new EventLog(writer, formatter, { clock });
  let notifier: Notifier | null = null;
  const timers: ReturnType<typeof setInterval>[] = [];
  try {
    const { listeners, libc } = createListeners(config, {
      log,
      load: options.openLibc ?? openLibc,
      activated: listenFds !== null,
    });
    if (libc !== null) {
      notifier = createNotifier(env, () => unixDatagramSender(libc), {
        pid,
        report: (message) => log.warn("warning", message),
      });
    }
    const server = new Bouncer(listeners, writer, {
      formatter,
      log,
      clock,
      family: config.family,
      addresses: addressConfig.addresses,
      allowList: addressConfig.allowList,
      metrics,
    });
    const stop = () => {
      // Closed first: the queued connections are still logged, and a failed send cannot keep
      // the listeners open.
      server.close();
      notifier?.notify({ STOPPING: "1" });
    };
    const signals: [Deno.Signal, () => void][] = [
      ["SIGTERM", stop],
      ["SIGINT", stop],
      ["SIGHUP", () => reload(server, writer, { log, addressConfig, config, metrics })],
    ];
    // Before listening: a signal right after the Listening line must not find the default action.
    for (const [signal, handler] of signals) Deno.addSignalListener(signal, handler);
    options.signal?.addEventListener("abort", stop, { once: true });
    if (options.signal?.aborted) stop();
    let metricsServer: MetricsServer | null = null;
    let metricsServed: Promise<void> | undefined;
    try {
      // Bound first, announced last: a failed start names no socket it let go again.
      if (metrics !== null && config.metrics !== null) {
        metricsServer = listenMetrics(config.metrics, metrics);
      } else if (metrics !== null && metricsFd !== null) {
        // node:net, which can listen on a descriptor, costs 6 MB: loaded only for this.
        const { listenOnDescriptor } = await import("./systemd/listen_on_descriptor.ts");
        metricsServer = new MetricsServer(await listenOnDescriptor(metricsFd.fd), metrics);
      }
      if (listenFds !== null) {
        adoptListenFds(server, listeners, listenFds.filter((passed) => passed !== metricsFd));
      }
      if (config.ports.length > 0) server.listen(config.ports);
      metricsServer?.announce(log);
      await (options.dropPermissions ?? dropPermissions)({
        keepRead: config.ignoreFile !== null || writer.path !== null,
      });
      notifier?.notify({ READY: "1" });
      const interval = notifier?.watchdogIntervalMs ?? null;
      if (interval !== null) {
        // From the event loop: a loop that is stuck sends nothing, and systemd restarts it.
        timers.push(setInterval(() => notifier?.notify({ WATCHDOG: "1" }), interval));
      }
      metricsServed = metricsServer?.serve();
      await options.onReady?.();
      await server.serve();
    } finally {
      for (const [signal, handler] of signals) Deno.removeSignalListener(signal, handler);
      options.signal?.removeEventListener("abort", stop);
      for (const timer of timers) clearInterval(timer);
      server.close();
      metricsServer?.close();
      await metricsServed;
    }
    log.info("stopped", stoppedMessage(server, config), {
      count: server.connections,
      ignored: server.ignored,
      resets: server.resets,
    });
    return 0;
  } finally {
    writer.close();
  }
}

/** Serves the sockets systemd passed as honeypot ports. */
function adoptListenFds(server: Bouncer, listeners: ListenerSet, fds: ListenFd[]): void {
  if (!(listeners instanceof NativeListeners)) {
    throw new RuntimeError("Sockets passed by systemd need the native listener");
  }
  const scopes = { ipv4: "IPv4", ipv6: "IPv6", dual: "IPv4 and IPv6" };
  server.adopt(fds.map(({ fd }) => {
    const { port, family } = listeners.adopt(fd);
    return { port, scope: `${scopes[family]}, socket from systemd` };
  }));
}

/** SIGHUP: reopens the log file and reloads the allow-list; never ends the process. */
function reload(
  server: Bouncer,
  writer: LogWriter,
  { log, addressConfig, config, metrics }: {
    log: EventLog;
    addressConfig: AddressConfig;
    config: Config;
    metrics: Metrics | null;
  },
): void {
  writer.reopen();
  if (addressConfig.reload === null) return;
  try {
    const allowList = addressConfig.reload();
    server.allowList = allowList.size > 0 ? allowList : null;
    metrics?.allowListSize(allowList.size);
    log.info(
      "reloaded",
      `Reloaded ${quote(config.ignoreFile ?? "")}: ${plural(allowList.size, "prefix", "prefixes")}`,
      { file: config.ignoreFile, count: allowList.size },
    );
  } catch (error) {
    // Whatever went wrong, the previous list stays and the daemon goes on.
    const why = escapeControls(error instanceof Error ? error.message : String(error));
    log.error("error", `${why}; keeping the previous list`, { reason: why });
  }
}

function stoppedMessage(server: Bouncer, config: Config): string {
  const ignores = config.ignore.length > 0 || config.ignoreFile !== null ||
    config.family === "ipv6";
  const parts = [`Stopped after ${plural(server.connections, "connection")}`];
  if (ignores) parts.push(plural(server.ignored, "ignored connection"));
  if (server.resets > 0) {
    parts.push(`${plural(server.resets, "connection")} reset before their address could be read`);
  }
  return parts.join(", ");
}
