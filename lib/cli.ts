/** The command line: options, help and version. */
import { Command, CommanderError, Option } from "commander";
import { UsageError } from "./errors.ts";
import { DEFAULT_FORMAT, LOG_FORMATS, type LogFormat } from "./format.ts";
import { parsePorts } from "./ports.ts";
import type { Family } from "./server.ts";

/** What the command line asks for. */
export interface Config {
  /** Distinct ports, ascending. */
  ports: number[];
  /** The log file, or `null` for standard error. */
  logFile: string | null;
  /** Which clients the any-address listeners take. */
  family: Family;
  /** `-b` values as given (parsed by lib/ip.ts); empty for any address. */
  bind: string[];
  /** The log format. */
  format: LogFormat;
  /** `--ignore` prefixes. */
  ignore: string[];
  /** `--ignore-file`, or `null`. */
  ignoreFile: string | null;
}

/** The result of parsing: run with a configuration, or print text (help, version) and exit 0. */
export type Invocation = { action: "run"; config: Config } | { action: "print"; text: string };

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function createCommand(version: string, output: { text: string }): Command {
  return new Command()
    .name("net-bouncer")
    .usage("-p PORT [-p PORT ...] [-l FILE] [-4 | -6] [-b ADDRESS] [--format text|json]")
    .description(
      `net-bouncer ${version}: a honeypot listener. It accepts TCP connections, logs one line ` +
        "per connection\nand closes it at once, without reading or sending a byte, so that " +
        "fail2ban or CrowdSec can ban the address.",
    )
    .version(version, "-V, --version", "print the version and exit")
    .helpOption("-h, --help", "print this help and exit")
    .option(
      "-p, --port <spec>",
      "port, list or range: 22, 23,2323, 8000-8010 (repeatable)",
      collect,
      [],
    )
    .option("-l, --log-file <file>", "append to FILE (default: standard error)")
    .option("-4", "IPv4 clients only (listen on 0.0.0.0)")
    .option("-6", "IPv6 clients only")
    .option("-b, --bind <address>", "listen on this IP address only (repeatable)", collect, [])
    .addOption(
      new Option("--format <format>", "log line format").choices(LOG_FORMATS).default(
        DEFAULT_FORMAT,
      ),
    )
    .option(
      "--ignore <cidr>",
      "close connections from this prefix without a line (repeatable)",
      collect,
      [],
    )
    .option(
      "--ignore-file <file>",
      "read --ignore prefixes from FILE, one per line; SIGHUP reloads it",
    )
    .addHelpText(
      "after",
      "\nSignals: SIGTERM/SIGINT stop (exit 0), SIGHUP reopens the log file and reloads --ignore-file." +
        "\nExit codes: 0 stopped, 1 runtime error, 2 usage error." +
        "\nExample: net-bouncer -p 22 -p 23,2323 -l /var/log/net-bouncer/net-bouncer.log",
    )
    .showSuggestionAfterError(false)
    .exitOverride()
    .configureOutput({
      writeOut: (text) => output.text += text,
      writeErr: () => {},
      // Commander reads colour settings from the environment, which the program may not access.
      getOutHasColors: () => false,
      getErrHasColors: () => false,
    });
}

/** Turns Commander's "error: unknown option '--x'" into 'Unknown option "--x"'. */
function usageMessage(message: string): string {
  const text = message.split("\n")[0].replace(/^error: /, "").replace(/'([^']*)'/g, '"$1"')
    .replace(/\.$/, "").replace(/\. (\w)/, (_, first: string) => `: ${first.toLowerCase()}`);
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/**
 * Parses the arguments (without the program name).
 *
 * @throws {UsageError} on any bad option or value.
 */
export function parseArgs(args: readonly string[], options: { version: string }): Invocation {
  const output = { text: "" };
  const command = createCommand(options.version, output);
  try {
    command.parse(args as string[], { from: "user" });
  } catch (error) {
    if (!(error instanceof CommanderError)) throw error;
    if (error.exitCode === 0) return { action: "print", text: output.text };
    throw new UsageError(usageMessage(error.message));
  }
  const opts = command.opts();
  try {
    if (opts.port.length === 0) throw new UsageError('Missing "-p PORT": give at least one port');
    if (opts["4"] && opts["6"]) throw new UsageError('Options "-4" and "-6" exclude each other');
    const family: Family = opts["4"] ? "ipv4" : opts["6"] ? "ipv6" : "dual";
    return {
      action: "run",
      config: {
        ports: parsePorts(opts.port),
        logFile: opts.logFile ?? null,
        family,
        bind: opts.bind,
        format: opts.format,
        ignore: opts.ignore,
        ignoreFile: opts.ignoreFile ?? null,
      },
    };
  } catch (error) {
    if (error instanceof RangeError) throw new UsageError(error.message, { cause: error });
    throw error;
  }
}
