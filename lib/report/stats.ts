/**
 * Counts connections as they are read, in memory that grows with distinct sources, ports and
 * the hours of the period, never with lines; then summarises them for the report.
 */
import type { GeoDatabase, GeoInfo } from "./geoip.ts";
import { networkOf } from "./network.ts";
import type { ConnectionSink, LineCounts } from "./parse.ts";
import type { Zone } from "./zone.ts";

/** Every UTC offset is a multiple of 15 minutes: counts per slot regroup into local hours. */
const SLOT_MS = 15 * 60_000;
const HOUR_MS = 3_600_000;
/** Periods up to this long are charted per hour, longer ones per day. */
export const HOURLY_MAX_MS = 3 * 24 * HOUR_MS;
/** Default number of rows in each "top" table. */
export const DEFAULT_TOP = 10;

interface SourceCounts {
  connections: number;
  first: number;
  last: number;
  ports: Set<number>;
}

/** Which connections count: `since <= time < until` (epoch milliseconds). */
export interface Period {
  since?: number;
  until?: number;
}

/** Counts connections; a {@linkcode ConnectionSink} for the parser. */
export class ConnectionStats implements ConnectionSink {
  /** Connections in the period. */
  connections = 0;
  /** Connections outside `--since`/`--until`. */
  outside = 0;
  /** The earliest connection in the period (Infinity when none). */
  first = Infinity;
  /** The latest connection in the period (-Infinity when none). */
  last = -Infinity;
  #sources = new Map<string, SourceCounts>();
  #ports = new Float64Array(65_536);
  #slots = new Map<number, number>();
  #since: number;
  #until: number;

  /** Counts connections in `period` (all when empty). */
  constructor(period: Period = {}) {
    this.#since = period.since ?? -Infinity;
    this.#until = period.until ?? Infinity;
  }

  /** Counts one connection. */
  add(ms: number, srcIp: string, dstPort: number): void {
    if (ms < this.#since || ms >= this.#until) {
      this.outside++;
      return;
    }
    this.connections++;
    if (ms < this.first) this.first = ms;
    if (ms > this.last) this.last = ms;
    this.#ports[dstPort]++;
    const slot = Math.floor(ms / SLOT_MS);
    this.#slots.set(slot, (this.#slots.get(slot) ?? 0) + 1);
    const source = this.#sources.get(srcIp);
    if (source === undefined) {
      this.#sources.set(srcIp, { connections: 1, first: ms, last: ms, ports: new Set([dstPort]) });
    } else {
      source.connections++;
      if (ms < source.first) source.first = ms;
      if (ms > source.last) source.last = ms;
      source.ports.add(dstPort);
    }
  }

  /** The counts per source address. */
  sources(): ReadonlyMap<string, Readonly<SourceCounts>> {
    return this.#sources;
  }

  /** Connections per port, for ports with any. */
  ports(): Map<number, number> {
    const result = new Map<number, number>();
    for (let port = 0; port < this.#ports.length; port++) {
      if (this.#ports[port] > 0) result.set(port, this.#ports[port]);
    }
    return result;
  }

  /** Connections per 15-minute slot (slot × 15 min = its start, epoch milliseconds). */
  slots(): ReadonlyMap<number, number> {
    return this.#slots;
  }
}

/** A row of the sources or networks table. */
export interface SourceRow extends GeoInfo {
  /** The address, or the network (`203.0.113.0/24`, `2001:db8:1::/48`). */
  name: string;
  connections: number;
  /** Distinct source addresses (1 for an address). */
  sources: number;
  first: number;
  last: number;
  /** Ports touched, ascending. */
  ports: number[];
}

/** A row of the ports table. */
export interface PortRow {
  port: number;
  connections: number;
  sources: number;
}

/** A row of the countries table. */
export interface CountryRow {
  country: string;
  connections: number;
  sources: number;
}

/** A row of the autonomous systems table. */
export interface AsRow {
  asNumber: number;
  asOrganization: string | null;
  connections: number;
  sources: number;
}

/** One bar of the chart over time. */
export interface Bucket {
  /** Its start (local hour or local midnight), epoch milliseconds. */
  start: number;
  connections: number;
}

/** Everything a report shows, before formatting. */
export interface Summary {
  /** The time zone of local times (text lines are read in it; times are shown in it). */
  zone: Zone;
  counts: LineCounts;
  /** Connections in the period. */
  connections: number;
  /** Connections outside `--since`/`--until`. */
  outside: number;
  /** Distinct source addresses. */
  sources: number;
  /** The first and last connection, or `null` when there is none. */
  first: number | null;
  last: number | null;
  /** `--since` and `--until`, when given. */
  since: number | null;
  until: number | null;
  /** Distinct ports touched. */
  portCount: number;
  /** The ports with most connections. */
  ports: PortRow[];
  /** The sources with most connections. */
  topSources: SourceRow[];
  /** Distinct networks. */
  networkCount: number;
  /** The /24 and /48 networks with most connections. */
  topNetworks: SourceRow[];
  /** Connections per country, with `--geoip` (else `null`). */
  countries: CountryRow[] | null;
  /** Connections per autonomous system, with a database that has them (else `null`). */
  autonomousSystems: AsRow[] | null;
  /** The chart over time. */
  unit: "hour" | "day";
  buckets: Bucket[];
}

/** Options of {@linkcode summarize}. */
export interface SummarizeOptions {
  zone: Zone;
  /** Rows in each top table. */
  top?: number;
  /** For country and AS columns. */
  geo?: GeoDatabase;
  /** `--since` and `--until`. */
  period?: Period;
}

function byConnections<T extends { connections: number }>(
  key: (row: T) => string | number,
): (a: T, b: T) => number {
  return (a, b) => {
    if (a.connections !== b.connections) return b.connections - a.connections;
    const x = key(a);
    const y = key(b);
    return x < y ? -1 : x > y ? 1 : 0;
  };
}

/** Whether a period this long is charted per hour. */
export function chartUnit(first: number, last: number): "hour" | "day" {
  return last - first <= HOURLY_MAX_MS ? "hour" : "day";
}

/** Bars from the hour or day of `first` to that of `last`, empty ones included. */
export function timeBuckets(
  slots: ReadonlyMap<number, number>,
  options: { zone: Zone; first: number; last: number; unit: "hour" | "day" },
): Bucket[] {
  const { zone, first, last, unit } = options;
  const startOf = (ms: number) => unit === "hour" ? zone.hourStart(ms) : zone.dayStart(ms);
  const next = (start: number) => {
    if (unit === "hour") return zone.hourStart(start + HOUR_MS);
    const { year, month, day } = zone.parts(start);
    return zone.toUtc({ year, month, day: day + 1 });
  };
  const counts = new Map<number, number>();
  for (const [slot, count] of slots) {
    const start = startOf(slot * SLOT_MS);
    counts.set(start, (counts.get(start) ?? 0) + count);
  }
  const buckets: Bucket[] = [];
  for (let start = startOf(first); start <= last; start = next(start)) {
    buckets.push({ start, connections: counts.get(start) ?? 0 });
  }
  return buckets;
}

/** Summarises the counts for the report. */
export function summarize(
  stats: ConnectionStats,
  counts: LineCounts,
  options: SummarizeOptions,
): Summary {
  const { zone, geo } = options;
  const top = options.top ?? DEFAULT_TOP;
  const sources = stats.sources();
  const lookup = (address: string): GeoInfo =>
    geo?.lookup(address) ?? { country: null, asNumber: null, asOrganization: null };

  const portSources = new Map<number, number>();
  const networks = new Map<string, SourceRow & { portSet: Set<number> }>();
  const countries = new Map<string, CountryRow>();
  const systems = new Map<number, AsRow>();
  for (const [address, source] of sources) {
    for (const port of source.ports) portSources.set(port, (portSources.get(port) ?? 0) + 1);
    const name = networkOf(address);
    const network = networks.get(name);
    if (network === undefined) {
      networks.set(name, {
        name,
        connections: source.connections,
        sources: 1,
        first: source.first,
        last: source.last,
        ports: [],
        portSet: new Set(source.ports),
        country: null,
        asNumber: null,
        asOrganization: null,
      });
    } else {
      network.connections += source.connections;
      network.sources++;
      network.first = Math.min(network.first, source.first);
      network.last = Math.max(network.last, source.last);
      for (const port of source.ports) network.portSet.add(port);
    }
    if (geo === undefined) continue;
    const info = lookup(address);
    if (info.country !== null) {
      const row = countries.get(info.country) ??
        { country: info.country, connections: 0, sources: 0 };
      row.connections += source.connections;
      row.sources++;
      countries.set(info.country, row);
    }
    if (info.asNumber !== null) {
      const row = systems.get(info.asNumber) ??
        {
          asNumber: info.asNumber,
          asOrganization: info.asOrganization,
          connections: 0,
          sources: 0,
        };
      row.connections += source.connections;
      row.sources++;
      systems.set(info.asNumber, row);
    }
  }

  const ports = [...stats.ports()].map(([port, connections]) => ({
    port,
    connections,
    sources: portSources.get(port) ?? 0,
  })).sort(byConnections((row) => row.port));

  const topSources: SourceRow[] = [...sources].map(([name, source]) => ({
    name,
    connections: source.connections,
    sources: 1,
    first: source.first,
    last: source.last,
    ports: [],
    portSet: source.ports,
  })).sort(byConnections((row) => row.name)).slice(0, top).map(({ portSet, ...row }) => ({
    ...row,
    ports: [...portSet].sort((a, b) => a - b),
    ...lookup(row.name),
  }));

  const topNetworks: SourceRow[] = [...networks.values()].sort(byConnections((row) => row.name))
    .slice(0, top).map(({ portSet, ...row }) => ({
      ...row,
      ports: [...portSet].sort((a, b) => a - b),
      // The network's own address: `203.0.113.0/24` is looked up as 203.0.113.0.
      ...lookup(row.name.replace(/\/\d+$/, "")),
    }));

  const hasData = stats.connections > 0;
  const first = hasData ? stats.first : null;
  const last = hasData ? stats.last : null;
  const unit = hasData ? chartUnit(stats.first, stats.last) : "hour";
  return {
    zone,
    counts,
    connections: stats.connections,
    outside: stats.outside,
    sources: sources.size,
    first,
    last,
    since: options.period?.since ?? null,
    until: options.period?.until ?? null,
    portCount: ports.length,
    ports: ports.slice(0, top),
    topSources,
    networkCount: networks.size,
    topNetworks,
    countries: geo === undefined
      ? null
      : [...countries.values()].sort(byConnections((row) => row.country)).slice(0, top),
    autonomousSystems: geo === undefined || systems.size === 0
      ? null
      : [...systems.values()].sort(byConnections((row) => row.asNumber)).slice(0, top),
    unit,
    buckets: hasData
      ? timeBuckets(stats.slots(), { zone, first: stats.first, last: stats.last, unit })
      : [],
  };
}
