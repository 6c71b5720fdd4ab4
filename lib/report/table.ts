/**
 * What the text and HTML reports share: counts, port lists, AS names and the columns of the
 * sources and networks tables (each format draws them its own way).
 */
import { plural } from "../errors.ts";
import type { SourceRow, Summary } from "./stats.ts";
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
  const skipped = [
    countOf(counts.otherEvents, "other event"),
    `${formatCount(counts.unreadable)} unreadable`,
  ];
  if (summary.since !== null || summary.until !== null) {
    skipped.push(`${formatCount(summary.outside)} outside the period`);
  }
  return `${countOf(counts.lines, "line")} read; skipped: ${skipped.join(", ")}`;
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
