/**
 * Counts connections as they are read, in memory that grows with distinct sources, ports and
 * the hours of the period, never with lines; then summarises them for the report.
 */
import type { GeoDatabase, GeoInfo } from "./geoip.ts";
import { networkName, parseSourceAddress, type SourceAddress } from "./network.ts";
import { ConnectionBatch, type ConnectionSink, type LineCounts } from "./parse.ts";
import type { Zone } from "./zone.ts";

/** Every UTC offset is a multiple of 15 minutes: counts per slot regroup into local hours. */
const SLOT_MS = 15 * 60_000;
const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
/** Periods up to this long are charted per hour, longer ones per day, month or year. */
export const HOURLY_MAX_MS = 3 * DAY_MS;
/** The chart has at most about this many bars: the smallest unit that stays under it is used. */
export const MAX_BUCKETS = 400;
/** Rows of a top table up to which rows are kept sorted as they come, beyond it all are sorted. */
const INCREMENTAL_TOP_MAX = 1000;
/** Default number of rows in each "top" table. */
export const DEFAULT_TOP = 10;

/** Which connections count: `since <= time < until` (epoch milliseconds). */
export interface Period {
  since?: number;
  until?: number;
}

/**
 * Distinct sources at most. The columns' memory is reserved up front (address space only) so
 * that they grow in place: no copy and no half-empty spare while a column doubles.
 */
export const MAX_SOURCES = 2 ** 27;
/** The columns grow by this many rows at a time. */
const GROW_ROWS = 65_536;

/** A column of `kind` that grows in place (a resizable ArrayBuffer, length-tracking view). */
function column<T>(kind: new (buffer: ArrayBuffer) => T, bytesPerRow: number): T {
  return new kind(new ArrayBuffer(0, { maxByteLength: MAX_SOURCES * bytesPerRow }));
}
/** Ports with one of the first 32 ids are a bit in a source's mask; later ports go to a set. */
const MASK_PORTS = 32;
const NO_PORT = -1;

/** The per-source columns of {@linkcode ConnectionStats}, for {@linkcode summarize}. */
export interface SourceTable {
  /** Canonical address text to the source's row. */
  index: ReadonlyMap<string, number>;
  /** Per row: the canonical address text. */
  names: readonly string[];
  /** Per row: connections, first and last seen, port mask, network row. */
  connections: Float64Array;
  first: Float64Array;
  last: Float64Array;
  masks: Uint32Array;
  networks: Int32Array;
  /** Rows' ports beyond the mask's 32. */
  extraPorts: ReadonlyMap<number, ReadonlySet<number>>;
  /** The port of each mask bit. */
  maskPorts: readonly number[];
  /** Each network row's key (lib/report/network.ts's SourceAddress.network). */
  networkKeys: readonly string[];
}

/**
 * What a {@linkcode ConnectionStats} counted, as plain data that a worker can post (its columns
 * are transferred, not copied): for {@linkcode ConnectionStats.merge}.
 */
export interface StatsData {
  connections: number;
  outside: number;
  /** Per row: the canonical address text, connections, first and last seen, port mask, network. */
  names: string[];
  counts: Float64Array;
  first: Float64Array;
  last: Float64Array;
  masks: Uint32Array;
  networks: Int32Array;
  /** Each network row's key. */
  networkKeys: string[];
  /** The port of each port id (mask bit 0-31, then the ports beyond). */
  idPorts: number[];
  /** Rows' ports beyond the mask's 32, as [row, ports]. */
  extraPorts: [number, number[]][];
  /** Connections per port, as [port, connections]. */
  portCounts: [number, number][];
  /** Connections per 15-minute slot, as [slot, connections]. */
  slots: [number, number][];
}

/**
 * Counts connections; a {@linkcode ConnectionSink} for the parser. Per source it keeps a row in
 * typed-array columns (connections, first, last, a bit mask of ports, its network; 32 bytes), found
 * by a Map from the address text: about 110 bytes a source with the Map and the text, where an
 * object and a Set per source took over 600.
 */
export class ConnectionStats implements ConnectionSink {
  /** Connections in the period. */
  connections = 0;
  /** Connections outside `--since`/`--until`. */
  outside = 0;
  #since: number;
  #until: number;
  #index = new Map<string, number>();
  #names: string[] = [];
  #size = 0;
  #connections = column(Float64Array, 8);
  #first = column(Float64Array, 8);
  #last = column(Float64Array, 8);
  #masks = column(Uint32Array, 4);
  #networks = column(Int32Array, 4);
  #extraPorts = new Map<number, Set<number>>();
  #portIds = new Int32Array(65_536).fill(NO_PORT);
  #idPorts: number[] = [];
  #ports = new Float64Array(65_536);
  #networkIndex = new Map<string, number>();
  #networkKeys: string[] = [];
  // Connections per 15-minute slot; the current slot is counted apart (lines come in order).
  #slots = new Map<number, number>();
  #slot = NaN;
  #slotCount = 0;

  /** Counts connections in `period` (all when empty). */
  constructor(period: Period = {}) {
    this.#since = period.since ?? -Infinity;
    this.#until = period.until ?? Infinity;
  }

  /** Counts the connections of `batch`; returns how many have no IP address as source. */
  addBatch(batch: ConnectionBatch): number {
    const { times, addresses, ports: batchPorts } = batch;
    const index = this.#index;
    const since = this.#since;
    const until = this.#until;
    const portIds = this.#portIds;
    const ports = this.#ports;
    // Length-tracking views: they stay valid as the columns grow.
    const connections = this.#connections;
    const firsts = this.#first;
    const lasts = this.#last;
    const masks = this.#masks;
    let slotStart = this.#slot * SLOT_MS;
    let slotEnd = slotStart + SLOT_MS;
    let slotCount = this.#slotCount;
    let counted = 0;
    let rejected = 0;
    // One loop, all in local variables: this runs once per connection line.
    for (let i = 0; i < batch.length; i++) {
      const ms = times[i];
      let row = index.get(addresses[i]);
      if (row === undefined) {
        const source = parseSourceAddress(addresses[i]);
        if (source === null) {
          rejected++;
          continue;
        }
        if (ms < since || ms >= until) continue;
        // A text that was canonical already is not in the index: no second look-up.
        row = (source.text === addresses[i] ? undefined : index.get(source.text)) ??
          this.#insert(source, ms);
      } else if (ms < since || ms >= until) {
        continue;
      }
      counted++;
      if (!(ms >= slotStart && ms < slotEnd)) {
        this.#slotCount = slotCount;
        this.#flushSlot();
        this.#slot = Math.floor(ms / SLOT_MS);
        slotStart = this.#slot * SLOT_MS;
        slotEnd = slotStart + SLOT_MS;
        slotCount = 0;
      }
      slotCount++;
      connections[row]++;
      if (ms > lasts[row]) lasts[row] = ms;
      else if (ms < firsts[row]) firsts[row] = ms;
      const port = batchPorts[i];
      ports[port]++;
      let id = portIds[port];
      if (id === NO_PORT) id = this.#portId(port);
      if (id < MASK_PORTS) masks[row] |= 1 << id;
      else this.#extraPort(row, port);
    }
    this.#slotCount = slotCount;
    this.connections += counted;
    this.outside += batch.length - rejected - counted;
    return rejected;
  }

  /** Counts one connection from `srcIp`; false if that is not an IP address. */
  add(ms: number, srcIp: string, dstPort: number): boolean {
    const batch = new ConnectionBatch();
    batch.length = 1;
    batch.times[0] = ms;
    batch.addresses[0] = srcIp;
    batch.ports[0] = dstPort;
    return this.addBatch(batch) === 0;
  }

  #portId(port: number): number {
    const id = this.#idPorts.length;
    this.#idPorts.push(port);
    this.#portIds[port] = id;
    return id;
  }

  #extraPort(row: number, port: number): void {
    const extra = this.#extraPorts.get(row);
    if (extra === undefined) this.#extraPorts.set(row, new Set([port]));
    else extra.add(port);
  }

  #insert(source: SourceAddress, ms: number): number {
    const row = this.#size++;
    if (row === this.#connections.length) this.#grow();
    this.#index.set(source.text, row);
    this.#names.push(source.text);
    this.#first[row] = ms;
    this.#last[row] = ms;
    let network = this.#networkIndex.get(source.network);
    if (network === undefined) {
      network = this.#networkKeys.length;
      this.#networkKeys.push(source.network);
      this.#networkIndex.set(source.network, network);
    }
    this.#networks[row] = network;
    return row;
  }

  #grow(): void {
    const rows = this.#connections.length + GROW_ROWS;
    if (rows > MAX_SOURCES) {
      throw new RangeError(`Cannot count more than ${MAX_SOURCES} distinct sources`);
    }
    for (const array of [this.#connections, this.#first, this.#last, this.#masks, this.#networks]) {
      (array.buffer as ArrayBuffer).resize(rows * array.BYTES_PER_ELEMENT);
    }
  }

  #flushSlot(): void {
    if (this.#slotCount === 0) return;
    this.#slots.set(this.#slot, (this.#slots.get(this.#slot) ?? 0) + this.#slotCount);
    this.#slotCount = 0;
  }

  /** What was counted, as plain data: copies of the columns' rows in use, and the lists as they are. */
  data(): StatsData {
    const size = this.#size;
    return {
      connections: this.connections,
      outside: this.outside,
      names: this.#names,
      counts: this.#connections.slice(0, size),
      first: this.#first.slice(0, size),
      last: this.#last.slice(0, size),
      masks: this.#masks.slice(0, size),
      networks: this.#networks.slice(0, size),
      networkKeys: this.#networkKeys,
      idPorts: this.#idPorts,
      extraPorts: [...this.#extraPorts].map(([row, ports]) => [row, [...ports]]),
      portCounts: this.#idPorts.map((port) => [port, this.#ports[port]]),
      slots: [...this.slots()],
    };
  }

  /**
   * Adds what another ConnectionStats counted (over other lines of the same period): the result
   * is what one would have counted over all the lines.
   */
  merge(data: StatsData): void {
    this.connections += data.connections;
    this.outside += data.outside;
    for (const [port, count] of data.portCounts) {
      if (this.#portIds[port] === NO_PORT) this.#portId(port);
      this.#ports[port] += count;
    }
    this.#flushSlot();
    for (const [slot, count] of data.slots) {
      this.#slots.set(slot, (this.#slots.get(slot) ?? 0) + count);
    }
    const extraPorts = new Map(data.extraPorts);
    const { names, counts, first, last, masks, networks, networkKeys, idPorts } = data;
    for (let other = 0; other < names.length; other++) {
      let row = this.#index.get(names[other]);
      if (row === undefined) {
        row = this.#insert(
          { text: names[other], network: networkKeys[networks[other]] },
          first[other],
        );
        this.#last[row] = last[other];
      } else {
        if (first[other] < this.#first[row]) this.#first[row] = first[other];
        if (last[other] > this.#last[row]) this.#last[row] = last[other];
      }
      this.#connections[row] += counts[other];
      for (let bits = masks[other]; bits !== 0; bits &= bits - 1) {
        this.#addPort(row, idPorts[31 - Math.clz32(bits & -bits)]);
      }
      for (const port of extraPorts.get(other) ?? []) this.#addPort(row, port);
    }
  }

  /** Marks `port` as touched by `row`. */
  #addPort(row: number, port: number): void {
    const id = this.#portIds[port] === NO_PORT ? this.#portId(port) : this.#portIds[port];
    if (id < MASK_PORTS) this.#masks[row] |= 1 << id;
    else this.#extraPort(row, port);
  }

  /** The earliest connection in the period (Infinity when none). */
  get first(): number {
    let first = Infinity;
    for (let row = 0; row < this.#size; row++) first = Math.min(first, this.#first[row]);
    return first;
  }

  /** The latest connection in the period (-Infinity when none). */
  get last(): number {
    let last = -Infinity;
    for (let row = 0; row < this.#size; row++) last = Math.max(last, this.#last[row]);
    return last;
  }

  /** Distinct sources. */
  get sourceCount(): number {
    return this.#size;
  }

  /** The per-source columns (views of the rows in use). */
  table(): SourceTable {
    const size = this.#size;
    return {
      index: this.#index,
      names: this.#names,
      connections: this.#connections.subarray(0, size),
      first: this.#first.subarray(0, size),
      last: this.#last.subarray(0, size),
      masks: this.#masks.subarray(0, size),
      networks: this.#networks.subarray(0, size),
      extraPorts: this.#extraPorts,
      maskPorts: this.#idPorts.slice(0, MASK_PORTS),
      networkKeys: this.#networkKeys,
    };
  }

  /** Connections per port, for ports with any. */
  ports(): Map<number, number> {
    const result = new Map<number, number>();
    for (const port of [...this.#idPorts].sort((a, b) => a - b)) {
      result.set(port, this.#ports[port]);
    }
    return result;
  }

  /** Connections per 15-minute slot (slot × 15 min = its start, epoch milliseconds). */
  slots(): ReadonlyMap<number, number> {
    this.#flushSlot();
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

/** The length of one bar of the chart. */
export type ChartUnit = "hour" | "day" | "month" | "year";

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
  unit: ChartUnit;
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

/**
 * The rows with most connections, ties by name: kept sorted as offered while few are asked for
 * (most offers are then one comparison, and names are asked only of candidates), else all sorted.
 */
class Top {
  #n: number;
  #rows: number[] = [];
  #counts: number[] = [];
  #names: string[] = [];

  constructor(n: number) {
    this.#n = n;
  }

  /** Offers with fewer connections than this are not taken. */
  get threshold(): number {
    const counts = this.#counts;
    return this.#n <= INCREMENTAL_TOP_MAX && counts.length === this.#n
      ? counts[counts.length - 1]
      : -Infinity;
  }

  offer(row: number, count: number, nameOf: (row: number) => string): void {
    const counts = this.#counts;
    const size = counts.length;
    const incremental = this.#n <= INCREMENTAL_TOP_MAX;
    if (incremental && size === this.#n && count < counts[size - 1]) return;
    const name = nameOf(row);
    if (!incremental) {
      this.#rows.push(row);
      counts.push(count);
      this.#names.push(name);
      return;
    }
    let at = size;
    while (
      at > 0 && (counts[at - 1] < count || (counts[at - 1] === count && this.#names[at - 1] > name))
    ) {
      at--;
    }
    if (at === this.#n) return;
    this.#rows.splice(at, 0, row);
    counts.splice(at, 0, count);
    this.#names.splice(at, 0, name);
    if (counts.length > this.#n) {
      this.#rows.pop();
      counts.pop();
      this.#names.pop();
    }
  }

  /** The rows, most connections first, with their names. */
  result(): { row: number; name: string }[] {
    const order = this.#rows.map((row, i) => ({
      row,
      name: this.#names[i],
      count: this.#counts[i],
    }));
    if (this.#n > INCREMENTAL_TOP_MAX) {
      order.sort((a, b) => b.count - a.count || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    }
    return order.slice(0, this.#n).map(({ row, name }) => ({ row, name }));
  }
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

/** The unit of the chart of a period: the smallest that gives at most about MAX_BUCKETS bars. */
export function chartUnit(first: number, last: number): ChartUnit {
  const span = last - first;
  if (span <= HOURLY_MAX_MS) return "hour";
  if (span <= (MAX_BUCKETS - 2) * DAY_MS) return "day";
  // A month has at least 28 days.
  if (span <= (MAX_BUCKETS - 2) * 28 * DAY_MS) return "month";
  return "year";
}

/** Bars from the unit that holds `first` to that of `last`, empty ones included. */
export function timeBuckets(
  slots: ReadonlyMap<number, number>,
  options: { zone: Zone; first: number; last: number; unit: ChartUnit },
): Bucket[] {
  const { zone, first, last, unit } = options;
  const startOf = (ms: number): number => {
    if (unit === "hour") return zone.hourStart(ms);
    const { year, month, day } = zone.parts(ms);
    if (unit === "day") return zone.toUtc({ year, month, day });
    return zone.toUtc({ year, month: unit === "month" ? month : 1, day: 1 });
  };
  const next = (start: number): number => {
    if (unit === "hour") return zone.hourStart(start + HOUR_MS);
    const { year, month, day } = zone.parts(start);
    if (unit === "day") return zone.toUtc({ year, month, day: day + 1 });
    if (unit === "month") return zone.toUtc({ year, month: month + 1, day: 1 });
    return zone.toUtc({ year: year + 1, month: 1, day: 1 });
  };
  const counts = new Map<number, number>();
  // Slots of one day, month or year share their bar: it is looked up once per run of them.
  let slotStart = NaN;
  let slotEnd = NaN;
  let bar = NaN;
  for (const [slot, count] of slots) {
    const ms = slot * SLOT_MS;
    if (!(ms >= slotStart && ms < slotEnd)) {
      bar = startOf(ms);
      slotStart = ms;
      slotEnd = unit === "hour" ? ms + SLOT_MS : next(bar);
    }
    counts.set(bar, (counts.get(bar) ?? 0) + count);
  }
  const buckets: Bucket[] = [];
  // Bounded whatever the zone does: a period in range has at most a few hundred bars.
  for (let start = startOf(first); start <= last && buckets.length <= 4 * MAX_BUCKETS;) {
    buckets.push({ start, connections: counts.get(start) ?? 0 });
    const following = next(start);
    if (!(following > start)) break;
    start = following;
  }
  return buckets;
}

function sortedPorts(
  mask: number,
  extra: ReadonlySet<number> | undefined,
  maskPorts: readonly number[],
): number[] {
  const ports: number[] = [];
  for (let bits = mask; bits !== 0; bits &= bits - 1) {
    ports.push(maskPorts[31 - Math.clz32(bits & -bits)]);
  }
  if (extra !== undefined) ports.push(...extra);
  return ports.sort((a, b) => a - b);
}

/** Summarises the counts for the report. */
export function summarize(
  stats: ConnectionStats,
  counts: LineCounts,
  options: SummarizeOptions,
): Summary {
  const { zone, geo } = options;
  const top = options.top ?? DEFAULT_TOP;
  const table = stats.table();
  const { maskPorts, extraPorts, networkKeys } = table;
  const lookup = (address: string): GeoInfo =>
    geo?.lookup(address) ?? { country: null, asNumber: null, asOrganization: null };

  // Per network: the sums of its sources' columns.
  const networkCount = networkKeys.length;
  const netConnections = new Float64Array(networkCount);
  const netSources = new Float64Array(networkCount);
  const netFirst = new Float64Array(networkCount).fill(Infinity);
  const netLast = new Float64Array(networkCount).fill(-Infinity);
  const netMasks = new Uint32Array(networkCount);
  const netExtra = new Map<number, Set<number>>();
  const portSources = new Float64Array(65_536);
  const countries = new Map<string, CountryRow>();
  const systems = new Map<number, AsRow>();
  const topSources = new Top(top);
  let threshold = topSources.threshold;
  const { names, connections: rowConnections, first: rowFirst, last: rowLast, masks, networks } =
    table;
  const nameOfSource = (row: number) => names[row];
  // Over the columns, once per source: a million times on a log of a million sources.
  for (let row = 0; row < names.length; row++) {
    const connections = rowConnections[row];
    const mask = masks[row];
    for (let bits = mask; bits !== 0; bits &= bits - 1) {
      portSources[maskPorts[31 - Math.clz32(bits & -bits)]]++;
    }
    const network = networks[row];
    netConnections[network] += connections;
    netSources[network]++;
    if (rowFirst[row] < netFirst[network]) netFirst[network] = rowFirst[row];
    if (rowLast[row] > netLast[network]) netLast[network] = rowLast[row];
    netMasks[network] |= mask;
    if (extraPorts.size > 0) {
      const extra = extraPorts.get(row);
      if (extra !== undefined) {
        for (const port of extra) portSources[port]++;
        const set = netExtra.get(network) ?? new Set<number>();
        for (const port of extra) set.add(port);
        netExtra.set(network, set);
      }
    }
    if (connections >= threshold) {
      topSources.offer(row, connections, nameOfSource);
      threshold = topSources.threshold;
    }
    if (geo === undefined) continue;
    const info = lookup(names[row]);
    if (info.country !== null) {
      const country = countries.get(info.country) ??
        { country: info.country, connections: 0, sources: 0 };
      country.connections += connections;
      country.sources++;
      countries.set(info.country, country);
    }
    if (info.asNumber !== null) {
      const system = systems.get(info.asNumber) ??
        {
          asNumber: info.asNumber,
          asOrganization: info.asOrganization,
          connections: 0,
          sources: 0,
        };
      system.connections += connections;
      system.sources++;
      systems.set(info.asNumber, system);
    }
  }

  const ports = [...stats.ports()].map(([port, connections]) => ({
    port,
    connections,
    sources: portSources[port],
  })).sort(byConnections((row) => row.port));

  const sourceRows: SourceRow[] = topSources.result().map(({ row, name }) => ({
    name,
    connections: table.connections[row],
    sources: 1,
    first: table.first[row],
    last: table.last[row],
    ports: sortedPorts(table.masks[row], extraPorts.get(row), maskPorts),
    ...lookup(name),
  }));

  const topNetworks = new Top(top);
  const nameOfNetwork = (network: number) => networkName(networkKeys[network]);
  threshold = topNetworks.threshold;
  for (let network = 0; network < networkCount; network++) {
    if (netConnections[network] < threshold) continue;
    topNetworks.offer(network, netConnections[network], nameOfNetwork);
    threshold = topNetworks.threshold;
  }
  const networkRows: SourceRow[] = topNetworks.result().map(({ row, name }) => ({
    name,
    connections: netConnections[row],
    sources: netSources[row],
    first: netFirst[row],
    last: netLast[row],
    ports: sortedPorts(netMasks[row], netExtra.get(row), maskPorts),
    // The network's own address: `203.0.113.0/24` is looked up as 203.0.113.0.
    ...lookup(name.replace(/\/\d+$/, "")),
  }));

  const hasData = stats.connections > 0;
  let firstMs = Infinity;
  let lastMs = -Infinity;
  for (let row = 0; row < names.length; row++) {
    if (rowFirst[row] < firstMs) firstMs = rowFirst[row];
    if (rowLast[row] > lastMs) lastMs = rowLast[row];
  }
  const first = hasData ? firstMs : null;
  const last = hasData ? lastMs : null;
  const unit = hasData ? chartUnit(firstMs, lastMs) : "hour";
  return {
    zone,
    counts,
    connections: stats.connections,
    outside: stats.outside,
    sources: stats.sourceCount,
    first,
    last,
    since: options.period?.since ?? null,
    until: options.period?.until ?? null,
    portCount: ports.length,
    ports: ports.slice(0, top),
    topSources: sourceRows,
    networkCount,
    topNetworks: networkRows,
    countries: geo === undefined
      ? null
      : [...countries.values()].sort(byConnections((row) => row.country)).slice(0, top),
    autonomousSystems: geo === undefined || systems.size === 0
      ? null
      : [...systems.values()].sort(byConnections((row) => row.asNumber)).slice(0, top),
    unit,
    buckets: hasData
      ? timeBuckets(stats.slots(), { zone, first: firstMs, last: lastMs, unit })
      : [],
  };
}
