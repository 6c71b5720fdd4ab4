/**
 * What the text and HTML reports share: counts, port lists, AS names and the columns of the
 * sources and networks tables (each format draws them its own way).
 */
import { plural } from "../errors.ts";
import { EARLIEST_TIME_MS, LATEST_TIME_MS } from "./parse.ts";
import type { ChartUnit, SourceRow, Summary } from "./stats.ts";
import type { Zone } from "./zone.ts";

/** Ports listed in a row of a table; the rest are counted. */
export const PORTS_SHOWN = 6;

/** `12,345`. */
export function formatCount(value: number): string {
  return String(value).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** `1 connection`, `12,345 connections`: a count with its noun, thousands separated. */
export function countOf(count: number, noun: string, nouns?: string): string {
  // plural() writes the count first: only its digits are replaced.
  return plural(count, noun, nouns).replace(String(count), formatCount(count));
}

/** `22,23,80 +4`: the first `shown` ports of a row and how many more. */
export function formatPorts(
  ports: readonly number[],
  options: { shown?: number; separator?: string } = {},
): string {
  const { shown = PORTS_SHOWN, separator = "," } = options;
  const head = ports.slice(0, shown).join(separator);
  return ports.length > shown ? `${head} +${ports.length - shown}` : head;
}

/** `Europe/Berlin`; `UTC, as the time zone is unknown` after a fallback (an unknown `TZ`). */
export function zoneLabel(zone: Zone): string {
  return zone.fallback ? `${zone.name}, as the time zone is unknown` : zone.name;
}

/**
 * `6 lines read; skipped: 1 other event, 1 unreadable`, and how many were outside `--since` and
 * `--until` when given.
 */
export function linesText(summary: Summary): string {
  const { counts } = summary;
  const unreadable = counts.outOfRange > 0
    ? `${formatCount(counts.unreadable)} unreadable (${
      formatCount(counts.outOfRange)
    } dated outside ${rangeOf(EARLIEST_TIME_MS, LATEST_TIME_MS)})`
    : `${formatCount(counts.unreadable)} unreadable`;
  const skipped = [countOf(counts.otherEvents, "other event"), unreadable];
  if (summary.since !== null || summary.until !== null) {
    skipped.push(`${formatCount(summary.outside)} outside the period`);
  }
  return `${countOf(counts.lines, "line")} read; skipped: ${skipped.join(", ")}`;
}

/**
 * The label of a bar of the chart that starts at `ms`: `2026-11-25 08:00` for an hour,
 * `2026-11-25` for a day, `2026-11` for a month, `2026` for a year.
 */
export function bucketLabel(zone: Zone, options: { unit: ChartUnit; start: number }): string {
  const { unit, start } = options;
  switch (unit) {
    case "hour":
      return `${zone.dateTime(start).slice(0, 13)}:00`;
    case "day":
      return zone.date(start);
    case "month":
      return zone.date(start).slice(0, -3);
    case "year":
      return zone.date(start).slice(0, -6);
  }
}

/** `AS64500 Example Net`, `AS64500`, or `null` without an AS number. */
export function asText(asNumber: number | null, organization: string | null): string | null {
  if (asNumber === null) return null;
  return organization === null ? `AS${asNumber}` : `AS${asNumber} ${organization}`;
}

/**
 * The largest `connections` of `rows`, at least 1 (a scale's maximum): a loop, because
 * `Math.max(...rows)` exceeds the call stack for long arrays (a chart of many days).
 */
export function maxConnections(rows: readonly { connections: number }[]): number {
  let max = 1;
  for (const row of rows) if (row.connections > max) max = row.connections;
  return max;
}

/** Which column of a sources or networks table. */
export type SourceColumnKey =
  | "name"
  | "connections"
  | "sources"
  | "first"
  | "last"
  | "ports"
  | "country"
  | "as";

/** A column of the sources or networks table. */
export interface SourceColumn {
  key: SourceColumnKey;
  /** `First seen`: each format sets the case. */
  header: string;
  /** Numbers, aligned right. */
  right: boolean;
  /** The cell's text, or `null` where there is nothing (no country, no AS). */
  text(row: SourceRow): string | null;
}

/**
 * The columns of the top sources table, or with `networks` of the top networks table: country
 * and AS only with a database that gives them.
 */
export function sourceColumns(summary: Summary, options: { networks: boolean }): SourceColumn[] {
  const { zone } = summary;
  const columns: SourceColumn[] = [
    {
      key: "name",
      header: options.networks ? "Network" : "Address",
      right: false,
      text: (row) => row.name,
    },
    {
      key: "connections",
      header: "Connections",
      right: true,
      text: (row) => formatCount(row.connections),
    },
  ];
  if (options.networks) {
    columns.push({
      key: "sources",
      header: "Sources",
      right: true,
      text: (row) => formatCount(row.sources),
    });
  }
  columns.push(
    { key: "first", header: "First seen", right: false, text: (row) => zone.dateTime(row.first) },
    { key: "last", header: "Last seen", right: false, text: (row) => zone.dateTime(row.last) },
    { key: "ports", header: "Ports", right: false, text: (row) => formatPorts(row.ports) },
  );
  if (summary.countries !== null) {
    columns.push({ key: "country", header: "Country", right: false, text: (row) => row.country });
  }
  if (summary.autonomousSystems !== null) {
    columns.push({
      key: "as",
      header: "AS",
      right: false,
      text: (row) => asText(row.asNumber, row.asOrganization),
    });
  }
  return columns;
}

/** `1970 to 2099`: the years from `earliest` to before `latest` (epoch milliseconds, UTC). */
export function rangeOf(earliest: number, latest: number): string {
  return `${new Date(earliest).getUTCFullYear()} to ${new Date(latest - 1).getUTCFullYear()}`;
}
