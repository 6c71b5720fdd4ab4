/**
 * The daemon's wiring, in the order it runs: the options, the C library, the allow-list, the
 * log, the listeners, the systemd notifier and the metrics; the signals' actions (SIGTERM,
 * SIGINT stop; SIGHUP reopens the log and reloads the allow-list, see lib/signals.ts), and the
 * permissions given up once the ports are bound. The accept loop itself is in lib/daemon/.
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
import { callerDirectory, resolvePath } from "./config/resolve_path.ts";
import { Signals } from "./signals.ts";
import type { ListenerSet } from "./daemon/listener_set.ts";
import { logFileOpener, LogWriter, standardStream } from "./log/log_writer.ts";
import { Metrics } from "./metrics/metrics.ts";
import { processStats } from "./metrics/process_stats.ts";
import { listenMetrics, MetricsServer } from "./metrics/metrics_server.ts";
import { NativeListeners } from "./daemon/native_listener.ts";
import { PortableListeners } from "./daemon/portable_listener.ts";
import type { PrefixSet } from "./config/prefix_set.ts";
import type { Environment } from "./systemd/environment.ts";
import { type ListenFd, takeListenFds } from "./systemd/listen_fds.ts";
import { createNotifier } from "./systemd/notifier.ts";

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
  /**
   * Loads the C library (default {@linkcode openLibc}): the native listener, files opened
   * without blocking, and sd_notify use it.
   */
  openLibc?: () => Libc;
  /** Gives up permissions once listening (default: revokes them); tests in-process skip it. */
  dropPermissions?: (options: { keepRead: boolean }) => Promise<void>;
  /** Called once the listeners are bound and permissions dropped, before serving. */
  onReady?: () => void | Promise<void>;
  /** Stops the daemon as SIGTERM does, when aborted (for tests in-process). */
  signal?: AbortSignal;
  /** The signal listeners, installed by main.ts before anything else (default: made here). */
  signals?: Signals;
}

/** The exit code of an error: 2 for a {@linkcode UsageError}, 1 for any other failure. */
export function exitCodeOf(error: unknown): number {
  if (error instanceof UsageError) return 2;
  return 1; // OS errors, runtime errors, and anything unexpected (bugs) alike
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
  // Without libc, reading is needed to reload --ignore-file on SIGHUP and to check the log path
  // before it is reopened (with libc, files are opened and checked through it). Writing stays:
  // a reopen may have to create the log file's directory (Deno cannot narrow a grant to one
  // path at run time).
  if (!keepRead) await Deno.permissions.revoke({ name: "read" });
}

interface AddressConfig {
  /** `-b` addresses, canonical and distinct. */
  addresses: string[];
  /** The allow-list, or `null` for none. */
  allowList: PrefixSet | null;
  /** Reads the allow-list again (with `--ignore-file`) in slices, or `null`. */
  reload: ((signal: AbortSignal) => Promise<PrefixSet>) | null;
}

/**
 * Parses `-b` and the allow-list. They need ipaddr.js, which costs about 5 MB of memory, so it
 * is loaded only when one of them is given.
 *
 * @throws {UsageError} on a bad address, prefix or allow-list file.
 */
async function loadAddressConfig(config: Config, libc: Libc | null): Promise<AddressConfig> {
  if (config.bind.length === 0 && config.ignore.length === 0 && config.ignoreFile === null) {
    return { addresses: [], allowList: null, reload: null };
  }
  const [{ parseBindAddress }, { loadAllowList, reloadAllowList }] = await Promise.all([
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
  const source = { file: config.ignoreFile, libc };
  const allowList = loadAllowList(config.ignore, source);
  return {
    addresses,
    allowList: allowList.size > 0 ? allowList : null,
    reload: config.ignoreFile === null
      ? null
      : (signal) => reloadAllowList(config.ignore, { ...source, signal }),
  };
}

/** The C library, or why it cannot be used (`null` when the configuration does not want it). */
function loadLibc(
  config: Config,
  { load, activated }: { load: () => Libc; activated: boolean },
): { libc: Libc | null; why: string | null } {
  // Files and sd_notify use libc whatever the listener, wherever it loads.
  if (Deno.build.os !== "linux" && config.listener !== "native" && !activated) {
    return { libc: null, why: null };
  }
  try {
    return { libc: load(), why: null };
  } catch (error) {
    const why = escapeControls(error instanceof Error ? error.message : String(error));
    if (config.listener === "native" || activated) {
      throw new RuntimeError(`Cannot use the native listener: ${why}`, { cause: error });
    }
    return { libc: null, why };
  }
}

/** The listener set the configuration asks for; `log` takes the warning of a fallback. */
function createListeners(
  config: Config,
  { log, libc, why }: { log: EventLog; libc: Libc | null; why: string | null },
): ListenerSet {
  if (libc !== null && config.listener !== "portable") return new NativeListeners(libc);
  // Asked for by name, the portable listener needs no word; a fallback does.
  if (why !== null && config.listener !== "portable") {
    log.warn(
      "warning",
      `Cannot load the C library (${why}): using the portable listener, which cannot log ` +
        "clients that reset at once",
      { reason: why },
    );
  }
  return new PortableListeners({ dropIPv4: config.family === "ipv6" });
}

/** `config` with its relative paths resolved against the caller's directory (`INIT_CWD`). */
function resolvePaths(config: Config, env: Environment): Config {
  const cwd = callerDirectory(env);
  const resolve = (path: string | null) =>
    path === null || standardStream(path) !== null ? path : resolvePath(path, { cwd });
  return { ...config, logFile: resolve(config.logFile), ignoreFile: resolve(config.ignoreFile) };
}

/**
 * Runs the daemon: binds or adopts the listeners, serves until SIGTERM, SIGINT or `options.signal`,
 * and resolves to the exit code. Errors are thrown; main.ts turns them into one line and a code.
 */
export async function serve(
  args: string[],
  options: ServeOptions & { stderr: (line: string) => void },
): Promise<number> {
  // First: a signal during the start-up (a long allow-list parse) waits for its action.
  const signals = options.signals ?? new Signals();
  try {
    return await run(args, { ...options, signals });
  } finally {
    signals.close();
  }
}

/** {@linkcode serve} once the signals are caught. */
async function run(
  args: string[],
  options: ServeOptions & { stderr: (line: string) => void; signals: Signals },
): Promise<number> {
  const { signals } = options;
  const env = options.env ?? Deno.env;
  const pid = options.pid ?? Deno.pid;
  const listenFds = takeListenFds(env, { pid });
  const invocation = parseArgs(args, { version: VERSION, portsRequired: listenFds === null });
  if (invocation.action === "print") {
    (options.stdout ?? ((text) => console.log(text)))(invocation.text.trimEnd());
    return 0;
  }
  const config = resolvePaths(invocation.config, env);
  const { metricsFds, honeypotFds } = splitListenFds(listenFds, config);
  const { libc, why } = loadLibc(config, {
    load: options.openLibc ?? openLibc,
    activated: listenFds !== null,
  });
  const addressConfig = await loadAddressConfig(config, libc);
  const metrics = config.metrics === null && metricsFds.length === 0
    ? null
    : new Metrics({ version: VERSION, clock: options.clock, process: processStats({ libc }) });
  metrics?.allowListSize(addressConfig.allowList?.size ?? 0);
  const writer = new LogWriter(config.logFile, {
    report: (message) => options.stderr(errorLine(message)),
    metrics: metrics ?? undefined,
    open: logFileOpener(libc),
  });
  const formatter = createFormatter(config.format);
  const clock = options.clock ?? Date.now;
  const log = new EventLog(writer, formatter, { clock });
  const timers: ReturnType<typeof setInterval>[] = [];
  const reloads = new AbortController();
  try {
    const listeners = createListeners(config, { log, libc, why });
    const notifier = libc === null ? null : createNotifier(env, () => unixDatagramSender(libc), {
      pid,
      report: (message) => log.warn("warning", message),
    });
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
      reloads.abort();
      notifier?.notify({ STOPPING: "1" });
    };
    const reload = reloader(server, writer, {
      log,
      addressConfig,
      config,
      metrics,
      signal: reloads.signal,
    });
    // Before listening: a signal right after the Listening line must not find the default action.
    signals.onStop(stop);
    signals.onReload(reload.start);
    options.signal?.addEventListener("abort", stop, { once: true });
    if (options.signal?.aborted) stop();
    const metricsServers: MetricsServer[] = [];
    let metricsServed: Promise<void[]> | undefined;
    try {
      // Bound first, announced last: a failed start names no socket it let go again.
      if (metrics !== null && config.metrics !== null) {
        metricsServers.push(listenMetrics(config.metrics, metrics));
      }
      if (metrics !== null && metricsFds.length > 0) {
        // node:net, which can listen on a descriptor, costs 6 MB: loaded only for this.
        const { listenOnDescriptor } = await import("./systemd/listen_on_descriptor.ts");
        for (const { fd } of metricsFds) {
          metricsServers.push(new MetricsServer(await listenOnDescriptor(fd), metrics));
        }
      }
      if (honeypotFds.length > 0) adoptListenFds(server, listeners, honeypotFds);
      if (config.ports.length > 0) server.listen(config.ports);
      for (const metricsServer of metricsServers) metricsServer.announce(log);
      await (options.dropPermissions ?? dropPermissions)({
        keepRead: libc === null && (config.ignoreFile !== null || writer.path !== null),
      });
      notifier?.notify({ READY: "1" });
      const interval = notifier?.watchdogIntervalMs ?? null;
      if (interval !== null) {
        // From the event loop: a loop that is stuck sends nothing, and systemd restarts it.
        timers.push(setInterval(() => notifier?.notify({ WATCHDOG: "1" }), interval));
      }
      metricsServed = Promise.all(metricsServers.map((metricsServer) => metricsServer.serve()));
      await options.onReady?.();
      await server.serve();
    } finally {
      options.signal?.removeEventListener("abort", stop);
      for (const timer of timers) clearInterval(timer);
      server.close();
      reloads.abort();
      for (const metricsServer of metricsServers) metricsServer.close();
      await metricsServed;
      await reload.done();
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

/**
 * The sockets systemd passed, sorted: every one named {@linkcode METRICS_FD_NAME} serves the
 * metrics (a socket unit with two `ListenStream=` lines, 127.0.0.1 and ::1, names both so),
 * the others are honeypot ports. A metrics socket is never a honeypot port: its scraper would
 * be logged as an attacker, and banned.
 *
 * @throws {UsageError} when `--metrics` is given too.
 */
function splitListenFds(
  listenFds: ListenFd[] | null,
  config: Config,
): { metricsFds: ListenFd[]; honeypotFds: ListenFd[] } {
  const metricsFds = listenFds?.filter((passed) => passed.name === METRICS_FD_NAME) ?? [];
  const honeypotFds = listenFds?.filter((passed) => passed.name !== METRICS_FD_NAME) ?? [];
  if (metricsFds.length > 0 && config.metrics !== null) {
    throw new UsageError(
      'Option "--metrics" and a metrics socket passed by systemd exclude each other',
    );
  }
  return { metricsFds, honeypotFds };
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

/**
 * SIGHUP: reopens the log file at once and reloads the allow-list in slices, so that accepting
 * goes on meanwhile; the new list replaces the old one whole once it is complete. SIGHUPs during
 * a reload make one more reload after it. Never ends the process.
 */
function reloader(
  server: Bouncer,
  writer: LogWriter,
  { log, addressConfig, config, metrics, signal }: {
    log: EventLog;
    addressConfig: AddressConfig;
    config: Config;
    metrics: Metrics | null;
    signal: AbortSignal;
  },
): { start: () => void; done: () => Promise<void> } {
  let running: Promise<void> | null = null;
  let again = false;
  const reloadList = async (load: (signal: AbortSignal) => Promise<PrefixSet>) => {
    try {
      const allowList = await load(signal);
      server.allowList = allowList.size > 0 ? allowList : null;
      metrics?.allowListSize(allowList.size);
      log.info(
        "reloaded",
        `Reloaded ${quote(config.ignoreFile ?? "")}: ${
          plural(allowList.size, "prefix", "prefixes")
        }`,
        { file: config.ignoreFile, count: allowList.size },
      );
    } catch (error) {
      if (signal.aborted) return; // stopping: the list no longer matters
      // Whatever went wrong, the previous list stays and the daemon goes on.
      const why = escapeControls(error instanceof Error ? error.message : String(error));
      log.error("error", `${why}; keeping the previous list`, { reason: why });
    }
  };
  const start = () => {
    writer.reopen();
    const load = addressConfig.reload;
    if (load === null || signal.aborted) return;
    if (running !== null) {
      again = true;
      return;
    }
    running = (async () => {
      do {
        again = false;
        await reloadList(load);
      } while (again && !signal.aborted);
      running = null;
    })();
  };
  return { start, done: async () => void await running };
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
