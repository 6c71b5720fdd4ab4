/**
 * net-bouncer: a honeypot listener. It accepts TCP connections, logs one line for each and
 * closes it at once, so that fail2ban or CrowdSec can ban the address.
 *
 * @module
 */
import { configureSync, getLogger, resetSync } from "@logtape/logtape";
import denoConfig from "./deno.json" with { type: "json" };
import { type Config, parseArgs } from "./lib/cli.ts";
import { isOsError, plural, UsageError } from "./lib/errors.ts";
import { createFormatter } from "./lib/format.ts";
import { getLineSink } from "./lib/log_sink.ts";
import { LogWriter } from "./lib/log_writer.ts";
import { Bouncer } from "./lib/server.ts";
import type { PrefixSet } from "./lib/ip.ts";

/** The program's version, from deno.json. */
export const VERSION: string = denoConfig.version;

const logger = getLogger(["net-bouncer"]);

function printError(message: string): void {
  // One line, never a stack trace.
  console.error(`net-bouncer: error: ${message.split("\n")[0]}`);
}

/** Gives up what the running daemon no longer needs once its ports are bound. */
async function dropPermissions(keepRead: boolean): Promise<void> {
  // Accepting on a bound listener needs no permission; any new connection or bind would.
  await Deno.permissions.revoke({ name: "net" });
  // Reading is needed only to reload --ignore-file on SIGHUP. Writing stays: SIGHUP reopens
  // the log file by path (Deno cannot narrow a global grant to one path at run time).
  if (!keepRead) await Deno.permissions.revoke({ name: "read" });
}

interface AddressConfig {
  /** `-b` addresses, canonical and distinct. */
  addresses: string[];
  /** The allow-list, or `null` for none. */
  ignore: PrefixSet | null;
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
    return { addresses: [], ignore: null, reload: null };
  }
  const [{ parseBindAddress }, { loadIgnoreList }] = await Promise.all([
    import("./lib/ip.ts"),
    import("./lib/ignore_list.ts"),
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
  const load = () => loadIgnoreList(config.ignore, { file: config.ignoreFile });
  const ignore = load();
  return {
    addresses,
    ignore: ignore.size > 0 ? ignore : null,
    reload: config.ignoreFile === null ? null : load,
  };
}

/** Options of {@linkcode main}, for tests. */
export interface MainOptions {
  /** Called once the listeners are bound and permissions dropped, before serving. */
  onReady?: () => void | Promise<void>;
}

/** Runs net-bouncer with the command-line `args`; resolves to the exit code. */
export async function main(args: string[], options: MainOptions = {}): Promise<number> {
  let invocation;
  try {
    invocation = parseArgs(args, { version: VERSION });
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    printError(error.message);
    return 2;
  }
  if (invocation.action === "print") {
    console.log(invocation.text.trimEnd());
    return 0;
  }
  const config = invocation.config;
  let addressConfig: AddressConfig;
  try {
    addressConfig = await loadAddressConfig(config);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    printError(error.message);
    return 2;
  }

  let writer: LogWriter;
  try {
    writer = new LogWriter(config.logFile, { report: printError });
  } catch (error) {
    if (!isOsError(error)) throw error;
    printError(error.message);
    return 1;
  }
  const formatter = createFormatter(config.format);
  configureSync({
    sinks: { log: getLineSink(writer, formatter) },
    loggers: [
      { category: ["net-bouncer"], sinks: ["log"], lowestLevel: "info" },
      { category: ["logtape", "meta"], sinks: [], lowestLevel: "warning" },
    ],
  });
  const server = new Bouncer(writer, formatter, {
    family: config.family,
    addresses: addressConfig.addresses,
    ignore: addressConfig.ignore ?? undefined,
  });
  const signals: [Deno.Signal, () => void][] = [
    ["SIGTERM", () => server.close()],
    ["SIGINT", () => server.close()],
    ["SIGHUP", () => {
      writer.reopen();
      if (addressConfig.reload === null) return;
      try {
        server.ignore = addressConfig.reload();
        logger.info(`Reloaded "{file}": ${plural(server.ignore.size, "prefix", "prefixes")}`, {
          event: "reloaded",
          file: config.ignoreFile,
          count: server.ignore.size,
        });
      } catch (error) {
        if (!(error instanceof UsageError)) throw error;
        logger.error("{reason}; keeping the previous list", {
          event: "error",
          reason: error.message,
        });
      }
    }],
  ];
  // Before listening: a SIGTERM right after the Listening line must not find the default action.
  for (const [signal, handler] of signals) Deno.addSignalListener(signal, handler);
  try {
    try {
      server.listen(config.ports);
    } catch (error) {
      if (!isOsError(error)) throw error;
      printError(error.message);
      return 1;
    }
    await dropPermissions(config.ignoreFile !== null);
    await options.onReady?.();
    await server.serve();
    const ignores = config.ignore.length > 0 || config.ignoreFile !== null ||
      config.family === "ipv6";
    const ignored = ignores ? `, ${plural(server.ignored, "ignored connection")}` : "";
    logger.info(
      `Stopped after ${plural(server.connections, "connection")}${ignored}`,
      {
        event: "stopped",
        count: server.connections,
        ignored: server.ignored,
      },
    );
    return 0;
  } finally {
    for (const [signal, handler] of signals) Deno.removeSignalListener(signal, handler);
    server.close();
    writer.close();
    resetSync();
  }
}

if (import.meta.main) {
  let code: number;
  try {
    code = await main(Deno.args);
  } catch (error) {
    printError(error instanceof Error ? error.message : String(error));
    code = 1;
  }
  Deno.exit(code);
}
