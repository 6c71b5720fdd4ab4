/**
 * The command line: options, help and version.
 *
 * The parser is written by hand: Commander cost about 2.4 MB of RSS in every process (it is
 * the first npm package and pulls in Deno's Node.js compatibility layer), for what is a short
 * loop here. It takes one pass over the arguments and pushes repeated values into arrays:
 * Commander copied the collected array for each repetition, so 80,000 repeated `-p` options took
 * 24 s before the first error; here they take milliseconds.
 */
import { escapeControls, quote, UsageError } from "../errors.ts";
import { DEFAULT_FORMAT, LOG_FORMATS, type LogFormat } from "../log/format.ts";
import { parsePorts } from "./ports.ts";

/** Which accept loop serves the ports (for tests and troubleshooting). */
export type ListenerKind = "auto" | "native" | "portable";
/** The `--listener` values: native is the Linux libc listener, portable uses `Deno.listen`. */
export const LISTENER_KINDS: readonly ListenerKind[] = ["auto", "native", "portable"];

/** Which clients the default listeners take: both IP versions, IPv4 only, or IPv6 only. */
export type Family = "dual" | "ipv4" | "ipv6";

/** What the command line asks for. */
export interface Config {
  /** Distinct ports, ascending (0: one port the system picks). */
  ports: number[];
  /**
   * The log file (`-` and `/dev/stdout` name standard output, `/dev/stderr` standard error), or
   * `null` for standard error.
   */
  logFile: string | null;
  /** Which clients the any-address listeners take. */
  family: Family;
  /** `-b` values as given (parsed by lib/config/ip.ts); empty for any address. */
  bind: string[];
  /** The log format. */
  format: LogFormat;
  /** `--ignore` prefixes: the allow-list's values. */
  ignore: string[];
  /** `--ignore-file`: the allow-list's file, or `null`. */
  ignoreFile: string | null;
  /** `--listener`: which accept loop serves the ports. */
  listener: ListenerKind;
  /** `--metrics`: where to serve the metrics (an IP address, never a host name), or `null`. */
  metrics: { hostname: string; port: number } | null;
}

/** The result of parsing: run with a configuration, or print text (help, version) and exit 0. */
export type Invocation = { action: "run"; config: Config } | { action: "print"; text: string };

/** The usage synopsis, as README.md shows it too. */
export const USAGE =
  `net-bouncer -p PORT [-p PORT ...] [-l FILE] [-4 | -6] [-b ADDRESS] [--format text|json]
            [--ignore CIDR ...] [--ignore-file FILE] [--listener auto|native|portable]
            [--metrics ADDRESS:PORT]
net-bouncer report [FILE ...]   (net-bouncer report --help)
net-bouncer --help | --version`;

/** One option: its names, and the name of its value if it takes one. */
interface OptionSpec {
  long: string;
  short?: string;
  value?: string;
  help: string;
}

const OPTIONS: readonly OptionSpec[] = [
  {
    long: "port",
    short: "p",
    value: "SPEC",
    help:
      "port, list or range: 22, 23,2323, 8000-8010 (repeatable); 0 for one port the system picks",
  },
  {
    long: "log-file",
    short: "l",
    value: "FILE",
    help: 'append to FILE; "-" for standard output (default: standard error)',
  },
  { long: "4", short: "4", help: "IPv4 clients only (listen on 0.0.0.0)" },
  { long: "6", short: "6", help: "IPv6 clients only" },
  {
    long: "bind",
    short: "b",
    value: "ADDRESS",
    help: "listen on this IP address only (repeatable)",
  },
  {
    long: "format",
    value: "FORMAT",
    help: `log line format: ${LOG_FORMATS.join(" or ")} (default: ${DEFAULT_FORMAT})`,
  },
  {
    long: "ignore",
    value: "CIDR",
    help: "allow-list: close connections from this prefix without a line (repeatable)",
  },
  {
    long: "ignore-file",
    value: "FILE",
    help: "read allow-list prefixes from FILE, one per line; SIGHUP reloads it",
  },
  {
    long: "listener",
    value: "KIND",
    help: "auto, native (Linux, libc) or portable (Deno.listen); default: auto",
  },
  {
    long: "metrics",
    value: "ADDRESS:PORT",
    help: "serve /metrics on this IP address and port: 127.0.0.1:9100, [::1]:9100",
  },
  { long: "help", short: "h", help: "print this help and exit" },
  { long: "version", short: "V", help: "print the version and exit" },
];

/** Options that may be given more than once; every other option with a value may not. */
const REPEATABLE = new Set(["port", "bind", "ignore"]);

const BY_LONG = new Map(
  OPTIONS.filter((option) => option.short !== option.long).map((option) => [
    `--${option.long}`,
    option,
  ]),
);
const BY_SHORT = new Map(
  OPTIONS.filter((option) => option.short !== undefined).map((option) => [
    `-${option.short}`,
    option,
  ]),
);

/** The width of the help text, in columns. */
const HELP_WIDTH = 100;

/** `text` broken at spaces into lines of at most `width` columns (longer words stay whole). */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line !== "" && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line === "" ? word : `${line} ${word}`;
    }
  }
  lines.push(line);
  return lines;
}

function helpText(version: string): string {
  const names = OPTIONS.map((option) => {
    const name = option.short === undefined
      ? `--${option.long}`
      : option.short === option.long
      ? `-${option.short}`
      : `-${option.short}, --${option.long}`;
    return option.value === undefined ? name : `${name} ${option.value}`;
  });
  const width = Math.max(...names.map((name) => name.length)) + 2;
  const lines = OPTIONS.map((option) =>
    wrap(option.help, HELP_WIDTH - width - 2).join(`\n  ${" ".repeat(width)}`)
  ).map((help, i) => `  ${names[i].padEnd(width)}${help}`);
  return [
    `Usage: ${USAGE.replaceAll("\n", "\n       ")}`,
    "",
    `net-bouncer ${version}: a honeypot listener.`,
    "It accepts TCP connections, logs one line per connection and closes it at once, without reading",
    "or sending a byte, so that fail2ban or CrowdSec can ban the address.",
    "",
    "Options:",
    ...lines,
    "",
    "Signals: SIGTERM/SIGINT stop (exit 0), SIGHUP reopens the log file and reloads the allow-list.",
    "Exit codes: 0 stopped, 1 runtime error, 2 usage error.",
    "Example: net-bouncer -p 22 -p 23,2323 -l /var/log/net-bouncer/net-bouncer.log",
    "",
  ].join("\n");
}

/** The option that `arg` names and the value written into it (`--opt=value`, `-pVALUE`). */
function splitOption(arg: string): { name: string; spec?: OptionSpec; inline?: string } {
  if (arg.startsWith("--")) {
    const equals = arg.indexOf("=");
    const name = equals === -1 ? arg : arg.slice(0, equals);
    const inline = equals === -1 ? undefined : arg.slice(equals + 1);
    return { name, spec: BY_LONG.get(name), inline };
  }
  const name = arg.slice(0, 2);
  const spec = BY_SHORT.get(name);
  // Only an option that takes a value has one glued on: "-46" is not "-4 -6".
  if (arg.length === 2 || spec?.value === undefined) return { name: arg, spec: BY_SHORT.get(arg) };
  return { name, spec, inline: arg.slice(2) };
}

/** Values as given on the command line, by long option name. */
type Values = Map<string, string[]>;

function readArgs(args: readonly string[]): Values | "help" | "version" {
  const values: Values = new Map();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      // Options end here; net-bouncer takes no other arguments.
      if (i + 1 < args.length) throw unexpected(args[i + 1]);
      break;
    }
    if (!arg.startsWith("-") || arg === "-") throw unexpected(arg);
    const { name, spec, inline } = splitOption(arg);
    if (spec === undefined) {
      throw new UsageError(`Unknown option ${quote(name)}: see "net-bouncer --help"`);
    }
    if (spec.value === undefined && inline !== undefined) {
      throw new UsageError(`Option ${quote(name)} takes no value`);
    }
    if (spec.long === "help") return "help";
    if (spec.long === "version") return "version";
    let value: string;
    if (spec.value === undefined) {
      value = "";
    } else if (inline !== undefined) {
      value = inline;
    } else if (i + 1 < args.length) {
      value = args[++i];
    } else {
      throw new UsageError(`Option ${quote(name)} needs a value: ${spec.value}`);
    }
    const list = values.get(spec.long);
    if (list === undefined) {
      values.set(spec.long, [value]);
    } else if (spec.value !== undefined && !REPEATABLE.has(spec.long)) {
      throw new UsageError(
        `Option ${quote(name)} given twice: ${quote(list[0])} and ${quote(value)}`,
      );
    } else {
      list.push(value);
    }
  }
  return values;
}

function unexpected(arg: string): UsageError {
  return new UsageError(`Unexpected argument ${quote(arg)}: net-bouncer takes options only`);
}

/** The single value of option `long`, or `null`; an empty path is refused. */
function pathValue(values: Values, long: string, short?: string): string | null {
  const value = values.get(long)?.[0];
  if (value === undefined) return null;
  if (value === "") {
    const names = short === undefined ? `"--${long}"` : `"-${short}, --${long}"`;
    throw new UsageError(`Option ${names} needs a file path, not an empty value`);
  }
  return value;
}

function choice<T extends string>(
  values: Values,
  long: string,
  choices: readonly T[],
  fallback: T,
): T {
  const value = values.get(long)?.[0];
  if (value === undefined) return fallback;
  if (!(choices as readonly string[]).includes(value)) {
    throw new UsageError(
      `Option "--${long}" cannot be ${quote(value)}: expected one of ${choices.join(", ")}`,
    );
  }
  return value as T;
}

const IPV4_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
const IPV4 = new RegExp(`^${IPV4_OCTET}(?:\\.${IPV4_OCTET}){3}$`);

/**
 * Parses `--metrics ADDRESS:PORT`. The address must be an IP literal (IPv6 in brackets): host
 * names are never resolved. It is checked here without ipaddr.js, which lib/serve.ts loads only
 * when needed; the URL parser validates and canonicalises IPv6.
 */
export function parseMetricsAddress(text: string): { hostname: string; port: number } {
  const fail = (why: string) => new UsageError(`Cannot serve metrics on ${quote(text)}: ${why}`);
  const match = /^(?:\[([^\]]*)\]|([^:[\]]*)):([^:]*)$/.exec(text);
  if (match === null) {
    throw fail(
      text.includes(":") && !text.startsWith("[")
        ? 'write an IPv6 address in brackets, as "[::1]:9100"'
        : "expected ADDRESS:PORT",
    );
  }
  const [, v6, v4, portText] = match;
  let hostname: string;
  if (v6 !== undefined) {
    try {
      hostname = new URL(`http://[${v6}]/`).hostname.slice(1, -1);
    } catch {
      throw fail("not an IP address");
    }
  } else if (IPV4.test(v4)) {
    hostname = v4;
  } else {
    throw fail("not an IP address (host names are never resolved)");
  }
  const port = /^[0-9]{1,5}$/.test(portText) ? Number(portText) : NaN;
  // 0: the system picks a port, announced in the "Serving metrics" line (as with -p 0).
  if (!(port >= 0 && port <= 65535)) throw fail("port must be 0-65535");
  return { hostname, port };
}

/**
 * Parses the arguments (without the program name).
 *
 * @throws {UsageError} on any bad option or value, with a one-line message.
 */
export function parseArgs(
  args: readonly string[],
  options: { version: string; portsRequired?: boolean },
): Invocation {
  const values = readArgs(args);
  if (values === "help") return { action: "print", text: helpText(options.version) };
  if (values === "version") return { action: "print", text: `net-bouncer ${options.version}\n` };
  const ports = values.get("port") ?? [];
  // Without -p when systemd passes the listening sockets (socket activation).
  if (ports.length === 0 && (options.portsRequired ?? true)) {
    throw new UsageError('Missing "-p PORT": give at least one port');
  }
  if (values.has("4") && values.has("6")) {
    throw new UsageError('Options "-4" and "-6" exclude each other');
  }
  const metrics = values.get("metrics")?.[0];
  return {
    action: "run",
    config: {
      ports: portsOf(ports),
      logFile: pathValue(values, "log-file", "l"),
      family: values.has("4") ? "ipv4" : values.has("6") ? "ipv6" : "dual",
      bind: values.get("bind") ?? [],
      format: choice(values, "format", LOG_FORMATS, DEFAULT_FORMAT),
      ignore: values.get("ignore") ?? [],
      ignoreFile: pathValue(values, "ignore-file"),
      listener: choice(values, "listener", LISTENER_KINDS, "auto"),
      metrics: metrics === undefined ? null : parseMetricsAddress(metrics),
    },
  };
}

function portsOf(specs: readonly string[]): number[] {
  try {
    return parsePorts(specs);
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    // lib/config/ports.ts quotes the value as given: escape it here so it cannot reach a terminal raw.
    throw new UsageError(escapeControls(error.message), { cause: error });
  }
}
