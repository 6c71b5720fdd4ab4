/** The command line of `net-bouncer report`: options, dates and times ago. */
import { UsageError } from "../errors.ts";
import { DEFAULT_TOP } from "./stats.ts";
import type { Zone } from "./zone.ts";

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
one with an offset (2026-11-25T08:00:00Z, ...+01:00), or a time ago: 30m, 24h, 7d, 2w.

Example: net-bouncer report --since 7d /var/log/net-bouncer/net-bouncer.log*
`;

const UNIT_MS: Record<string, number> = {
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
};

const RELATIVE = /^(\d{1,9})([smhdw])$/;
const ABSOLUTE =
  /^(\d{4})-(\d\d)-(\d\d)(?:[T ](\d\d):(\d\d)(?::(\d\d)(?:\.(\d{1,3}))?)?(Z|[+-]\d\d:\d\d)?)?$/;

/**
 * The instant `text` names: a date or date-time (local in `zone` unless it has an offset), or a
 * time ago (`24h`) counted back from `now`.
 *
 * @throws {UsageError} when it is neither.
 */
export function parseTime(
  text: string,
  options: { option: string; now: number; zone: Zone },
): number {
  const relative = RELATIVE.exec(text);
  if (relative !== null) return options.now - Number(relative[1]) * UNIT_MS[relative[2]];
  const match = ABSOLUTE.exec(text);
  const bad = () =>
    new UsageError(
      `Invalid ${options.option} "${text}": expected a date (2026-11-25), a date and time ` +
        `(2026-11-25T08:00) or a time ago (24h, 7d)`,
    );
  if (match === null) throw bad();
  const [, y, mo, d, h = "0", mi = "0", s = "0", frac = "0", offset] = match;
  const [year, month, day, hour, minute, second] = [y, mo, d, h, mi, s].map(Number);
  const millisecond = Number(frac.padEnd(3, "0"));
  // Reject dates such as 2026-02-31 rather than roll them over.
  const check = new Date(Date.UTC(year, month - 1, day));
  if (
    check.getUTCMonth() !== month - 1 || check.getUTCDate() !== day || hour > 23 ||
    minute > 59 || second > 59
  ) throw bad();
  if (offset === undefined) {
    return options.zone.toUtc({ year, month, day, hour, minute, second, millisecond });
  }
  const offsetMinutes = offset === "Z"
    ? 0
    : (offset[0] === "-" ? -1 : 1) * (Number(offset.slice(1, 3)) * 60 + Number(offset.slice(4)));
  return Date.UTC(year, month - 1, day, hour, minute, second, millisecond) -
    offsetMinutes * 60_000;
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
  let since: string | undefined;
  let until: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      result.files.push(...args.slice(i + 1));
      break;
    }
    if (arg === "-h" || arg === "--help") {
      result.help = true;
      continue;
    }
    if (!arg.startsWith("-") || arg === "-") {
      result.files.push(arg);
      continue;
    }
    const equals = arg.indexOf("=");
    const name = equals > 0 ? arg.slice(0, equals) : arg;
    if (!["--format", "--top", "--since", "--until", "--geoip"].includes(name)) {
      throw new UsageError(`Unknown option "${name}": see "net-bouncer report --help"`);
    }
    let value: string;
    if (equals > 0) {
      value = arg.slice(equals + 1);
    } else {
      if (i + 1 >= args.length) throw new UsageError(`Option "${name}" needs a value`);
      value = args[++i];
    }
    switch (name) {
      case "--format":
        if (!(REPORT_FORMATS as readonly string[]).includes(value)) {
          throw new UsageError(
            `Invalid --format "${value}": expected one of ${REPORT_FORMATS.join(", ")}`,
          );
        }
        result.format = value as ReportFormat;
        break;
      case "--top":
        if (!/^\d{1,6}$/.test(value) || Number(value) < 1) {
          throw new UsageError(`Invalid --top "${value}": expected a whole number from 1`);
        }
        result.top = Number(value);
        break;
      case "--since":
        since = value;
        break;
      case "--until":
        until = value;
        break;
      case "--geoip":
        if (value === "") throw new UsageError('Option "--geoip" needs a file');
        result.geoip = value;
        break;
    }
  }
  if (since !== undefined) result.since = parseTime(since, { option: "--since", ...options });
  if (until !== undefined) result.until = parseTime(until, { option: "--until", ...options });
  if (result.since !== undefined && result.until !== undefined && result.since >= result.until) {
    throw new UsageError(`Invalid period: --since "${since}" is not before --until "${until}"`);
  }
  return result;
}
