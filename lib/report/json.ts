/**
 * The report as JSON, for scripts. The shape is stable (documented in README.md, section
 * "Report"): fields may be added, none is renamed or removed while `report_version` is 1.
 */
import type { SourceRow, Summary } from "./stats.ts";

/** The version of the JSON shape. */
export const REPORT_JSON_VERSION = 1;

/** A row of `top_sources` or `top_networks`. */
export interface JsonSourceRow {
  connections: number;
  first: string;
  last: string;
  ports: number[];
  country: string | null;
  as_number: number | null;
  as_organization: string | null;
}

/** The JSON report. */
export interface JsonReport {
  report_version: number;
  time_zone: string;
  period: { first: string | null; last: string | null; since: string | null; until: string | null };
  lines: {
    read: number;
    connections: number;
    other_events: number;
    unreadable: number;
    outside_period: number;
  };
  connections: number;
  sources: number;
  ports: { distinct: number; top: { port: number; connections: number; sources: number }[] };
  top_sources: ({ address: string } & JsonSourceRow)[];
  networks: { distinct: number; top: ({ network: string; sources: number } & JsonSourceRow)[] };
  countries: { country: string; connections: number; sources: number }[] | null;
  autonomous_systems:
    | { as_number: number; as_organization: string | null; connections: number; sources: number }[]
    | null;
  timeline: { unit: Summary["unit"]; buckets: { start: string; connections: number }[] };
}

/** The JSON report of `summary`; times are RFC 3339 in the report's time zone. */
export function toJsonReport(summary: Summary): JsonReport {
  const time = (ms: number) => summary.zone.rfc3339(ms);
  const optional = (ms: number | null) => ms === null ? null : time(ms);
  const row = (source: SourceRow): JsonSourceRow => ({
    connections: source.connections,
    first: time(source.first),
    last: time(source.last),
    ports: source.ports,
    country: source.country,
    as_number: source.asNumber,
    as_organization: source.asOrganization,
  });
  return {
    report_version: REPORT_JSON_VERSION,
    time_zone: summary.zone.name,
    period: {
      first: optional(summary.first),
      last: optional(summary.last),
      since: optional(summary.since),
      until: optional(summary.until),
    },
    lines: {
      read: summary.counts.lines,
      connections: summary.counts.connections,
      other_events: summary.counts.otherEvents,
      unreadable: summary.counts.unreadable,
      outside_period: summary.outside,
    },
    connections: summary.connections,
    sources: summary.sources,
    ports: { distinct: summary.portCount, top: summary.ports },
    top_sources: summary.topSources.map((source) => ({ address: source.name, ...row(source) })),
    networks: {
      distinct: summary.networkCount,
      top: summary.topNetworks.map((network) => ({
        network: network.name,
        sources: network.sources,
        ...row(network),
      })),
    },
    countries: summary.countries,
    autonomous_systems: summary.autonomousSystems?.map((system) => ({
      as_number: system.asNumber,
      as_organization: system.asOrganization,
      connections: system.connections,
      sources: system.sources,
    })) ?? null,
    timeline: {
      unit: summary.unit,
      buckets: summary.buckets.map((bucket) => ({
        start: time(bucket.start),
        connections: bucket.connections,
      })),
    },
  };
}
