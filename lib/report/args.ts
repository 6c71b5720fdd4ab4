/**
 * The command line of `net-bouncer report`: options, dates and times ago. Tokens come from
 * node:util's parseArgs (non-strict: its own messages never reach the user); every check and
 * message is here, in the daemon's wording (lib/config/cli.ts).
 */
import { parseArgs } from "node:util";
import { quote, UsageError } from "../errors.ts";
import { EARLIEST_TIME_MS, LATEST_TIME_MS } from "./parse.ts";
import { DEFAULT_TOP } from "./stats.ts";
import { rangeOf } from "./table.ts";
import { utcTime, type Zone } from "./zone.ts";

/** The names of the report formats. */
export const REPORT_FORMATS = ["text", "json", "html"] as const;
/** A report format name. */
export type ReportFormat = typeof REPORT_FORMATS[number];

/** What the report's command line asks for. */
export interface ReportArgs {
  /** Files to read; `-` is standard input; empty means standard input. */
  files: string[];
  format: ReportFormat;
  top: number;
  /** `--since` and `--until` as epoch milliseconds. */
  since?: number;
  until?: number;
  /** `--geoip` database, or `null`. */
  geoip: string | null;
  /** `--help`: print the usage and exit 0. */
  help: boolean;
}

/** The usage text of `net-bouncer report`. */
export const REPORT_USAGE = `Usage: net-bouncer report [options] [FILE ...]

Summarises net-bouncer log files (text or JSON lines, plain or gzip; standard input with "-" or
when no file is given): connections per port, top sources and /24 or /48 networks, connections
over time.

Options:
  --format text|json|html  output format (default: text)
  --top N                  rows in each top table (default: ${DEFAULT_TOP})
  --since TIME             only connections at or after TIME
  --until TIME             only connections before TIME
  --geoip FILE             country and AS from a MaxMind-format database (.mmdb)
  -h, --help               print this help and exit

TIME is a date or date and time in local time (2026-11-25, 2026-11-25T08:00, "2026-11-25 08:00:00"),
one with an offset (2026-11-25T08:00:00Z, ...+01:00), or a time ago: 30m, 24h, 7d, 2w; years 1970
to 2099, as the lines read (others count as unreadable).

Local time is the system's time zone (TZ, /etc/localtime); a zone name the system does not know
(TZ=Foo/Bar, in which the daemon writes UTC too) is taken as UTC, with a warning on standard error.

Example: net-bouncer report --since 7d /var/log/net-bouncer/net-bouncer.log*
`;

const UNIT_MS: Record<string, number> = {
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
};
/** The largest `--top`. */
const TOP_MAX = 999_999;
/** `1970 to 2099`: the years of the lines the parser reads (others are unreadable). */
const RANGE = rangeOf(EARLIEST_TIME_MS, LATEST_TIME_MS);

const RELATIVE = /^(\d{1,9})([smhdw])$/;
const ABSOLUTE =
  /^(\d{4})-(\d\d)-(\d\d)(?:[T ](\d\d):(\d\d)(?::(\d\d)(?:\.(\d{1,3}))?)?(Z|[+-]\d\d:\d\d)?)?$/;

/** The options of the report, by long name, with the name of their value for messages. */
const OPTIONS = {
  format: { type: "string", value: "text|json|html" },
  top: { type: "string", value: "N" },
  since: { type: "string", value: "TIME" },
  until: { type: "string", value: "TIME" },
  geoip: { type: "string", value: "FILE" },
  help: { type: "boolean", short: "h" },
} as const;

/** The message of an option's bad value, as the daemon words it. */
function badValue(option: string, value: string, why: string): UsageError {
  return new UsageError(`Option ${quote(option)} cannot be ${quote(value)}: ${why}`);
}

/**
 * The instant `text` names: a date or date-time (local in `zone` unless it has an offset), or a
 * time ago (`24h`) counted back from `now`; within the years of the lines the parser reads.
 *
 * @throws {UsageError} when it is neither, or out of range.
 */
export function parseTime(
  text: string,
  options: { option: string; now: number; zone: Zone },
): number {
  const { option } = options;
  const ms = instantOf(text, options);
  if (!(ms >= EARLIEST_TIME_MS && ms <= LATEST_TIME_MS)) {
    throw badValue(option, text, `out of range (${RANGE})`);
  }
  return ms;
}

function instantOf(text: string, options: { option: string; now: number; zone: Zone }): number {
  const relative = RELATIVE.exec(text);
  if (relative !== null) return options.now - Number(relative[1]) * UNIT_MS[relative[2]];
  const match = ABSOLUTE.exec(text);
  const bad = () =>
    badValue(
      options.option,
      text,
      "expected a date (2026-11-25), a date and time (2026-11-25T08:00) or a time ago (24h, 7d)",
    );
  if (match === null) throw bad();
  const [, y, mo, d, h = "0", mi = "0", s = "0", frac = "0", offset] = match;
  const [year, month, day, hour, minute, second] = [y, mo, d, h, mi, s].map(Number);
  const millisecond = Number(frac.padEnd(3, "0"));
  // Reject dates such as 2026-02-31 rather than roll them over.
  const check = new Date(utcTime(year, month, day));
  if (
    check.getUTCMonth() !== month - 1 || check.getUTCDate() !== day || hour > 23 ||
    minute > 59 || second > 59
  ) throw bad();
  if (offset === undefined) {
    return options.zone.toUtc({ year, month, day, hour, minute, second, millisecond });
  }
  let offsetMinutes = 0;
  if (offset !== "Z") {
    const [hours, minutes] = [Number(offset.slice(1, 3)), Number(offset.slice(4))];
    // RFC 3339's time-numoffset: hours 00-23, minutes 00-59.
    if (hours > 23 || minutes > 59) {
      throw badValue(options.option, text, "the offset must be from -23:59 to +23:59");
    }
    offsetMinutes = (offset[0] === "-" ? -1 : 1) * (hours * 60 + minutes);
  }
  return utcTime(year, month, day, hour, minute, second, millisecond) - offsetMinutes * 60_000;
}

/**
 * Parses the report's arguments (after `report`).
 *
 * @throws {UsageError} on any bad option or value.
 */
export function parseReportArgs(
  args: readonly string[],
  options: { now: number; zone: Zone },
): ReportArgs {
  const result: ReportArgs = {
    files: [],
    format: "text",
    top: DEFAULT_TOP,
    geoip: null,
    help: false,
  };
  const { tokens } = parseArgs({
    args: [...args],
    options: OPTIONS,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const values = new Map<string, string>();
  for (const token of tokens) {
    if (token.kind === "positional") {
      result.files.push(token.value);
      continue;
    }
    if (token.kind === "option-terminator") continue;
    const spec = (OPTIONS as Record<string, { type: string; value?: string }>)[token.name];
    if (spec === undefined) {
      // The whole argument: parseArgs splits "-help" into -h -e -l -p.
      const raw = token.rawName.startsWith("--") ? token.rawName : args[token.index];
      throw new UsageError(`Unknown option ${quote(raw)}: see "net-bouncer report --help"`);
    }
    if (spec.type === "boolean") {
      if (token.inlineValue) throw new UsageError(`Option ${quote(token.rawName)} takes no value`);
      result.help = true;
      continue;
    }
    if (token.value === undefined) {
      throw new UsageError(`Option ${quote(token.rawName)} needs a value: ${spec.value}`);
    }
    const earlier = values.get(token.name);
    if (earlier !== undefined) {
      throw new UsageError(
        `Option ${quote(token.rawName)} given twice: ${quote(earlier)} and ${quote(token.value)}`,
      );
    }
    values.set(token.name, token.value);
  }
  const format = values.get("format");
  if (format !== undefined) {
    if (!(REPORT_FORMATS as readonly string[]).includes(format)) {
      throw badValue("--format", format, `expected one of ${REPORT_FORMATS.join(", ")}`);
    }
    result.format = format as ReportFormat;
  }
  const top = values.get("top");
  if (top !== undefined) {
    if (!/^\d{1,6}$/.test(top) || Number(top) < 1) {
      throw badValue("--top", top, `expected a whole number from 1 to ${TOP_MAX}`);
    }
    result.top = Number(top);
  }
  const geoip = values.get("geoip");
  if (geoip !== undefined) {
    if (geoip === "") {
      throw new UsageError('Option "--geoip" needs a file path, not an empty value');
    }
    result.geoip = geoip;
  }
  const since = values.get("since");
  const until = values.get("until");
  if (since !== undefined) result.since = parseTime(since, { option: "--since", ...options });
  if (until !== undefined) result.until = parseTime(until, { option: "--until", ...options });
  if (result.since !== undefined && result.until !== undefined && result.since >= result.until) {
    throw new UsageError(
      `Options "--since" and "--until" select nothing: ${quote(since!)} is not before ${
        quote(until!)
      }`,
    );
  }
  return result;
}
