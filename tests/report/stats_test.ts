/** The report's counts, networks, time buckets and JSON shape (lib/report/stats.ts and friends). */
import assert from "node:assert/strict";
import { toJsonReport } from "../../lib/report/json.ts";
import { isIpAddress, networkOf } from "../../lib/report/network.ts";
import { ConnectionStats, MAX_BUCKETS, summarize, timeBuckets } from "../../lib/report/stats.ts";
import { Zone } from "../../lib/report/zone.ts";

const COUNTS = { lines: 0, connections: 0, otherEvents: 0, unreadable: 0, outOfRange: 0 };

/** Counts a connection from the address `ip` (which must be one). */
function add(stats: ConnectionStats, ms: number, ip: string, port: number): void {
  assert.ok(stats.add(ms, ip, port), ip);
}
const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 10, 25, 8);

Deno.test("report stats: /24 and /48 networks", () => {
  assert.equal(networkOf("203.0.113.5"), "203.0.113.0/24");
  assert.equal(networkOf("10.0.0.255"), "10.0.0.0/24");
  assert.equal(networkOf("2001:db8:42:1::7"), "2001:db8:42::/48");
  assert.equal(networkOf("2001:db8:42::"), "2001:db8:42::/48");
  // Zero groups in the prefix are compressed as RFC 5952 says.
  assert.equal(networkOf("2001:db8::1"), "2001:db8::/48");
  assert.equal(networkOf("2001:0:5:ffff::1"), "2001:0:5::/48");
  assert.equal(networkOf("::1"), "::/48");
  assert.equal(networkOf("fe80:1:2:3:4:5:6:7"), "fe80:1:2::/48");
  assert.equal(networkOf("64:ff9b:1::192.0.2.1"), "64:ff9b:1::/48");
  // Not an address: its own group.
  assert.equal(networkOf("1.2.3"), "1.2.3");
  assert.equal(networkOf("1:2:3:4:5:6:7:8:9"), "1:2:3:4:5:6:7:8:9");
  assert.equal(isIpAddress("256.1.1.1"), false);
  assert.equal(isIpAddress("::ffff:1.2.3.4"), true);
});

Deno.test("report stats: counts per source, port and network, with first and last seen", () => {
  const stats = new ConnectionStats();
  const connections: [number, string, number][] = [
    [T0 + 5000, "203.0.113.5", 22],
    [T0, "203.0.113.5", 23],
    [T0 + 9000, "203.0.113.5", 22],
    [T0 + 1000, "203.0.113.9", 22],
    [T0 + 2000, "2001:db8:1:2::1", 3389],
    [T0 + 3000, "2001:db8:1:3::1", 22],
    [T0 + 4000, "198.51.100.1", 8080],
  ];
  for (const [ms, ip, port] of connections) add(stats, ms, ip, port);
  const summary = summarize(stats, COUNTS, { zone: new Zone("UTC"), top: 2 });
  assert.equal(summary.connections, 7);
  assert.equal(summary.sources, 5);
  assert.equal(summary.networkCount, 3);
  assert.equal(summary.portCount, 4);
  assert.deepEqual(summary.ports, [
    { port: 22, connections: 4, sources: 3 },
    // A tie is ordered by port.
    { port: 23, connections: 1, sources: 1 },
  ]);
  assert.deepEqual(summary.topSources.map((row) => [row.name, row.connections, row.ports]), [
    ["203.0.113.5", 3, [22, 23]],
    // Ties by address text.
    ["198.51.100.1", 1, [8080]],
  ]);
  assert.equal(summary.topSources[0].first, T0);
  assert.equal(summary.topSources[0].last, T0 + 9000);
  assert.deepEqual(
    summary.topNetworks.map((row) => [row.name, row.connections, row.sources, row.ports]),
    [
      ["203.0.113.0/24", 4, 2, [22, 23]],
      ["2001:db8:1::/48", 2, 2, [22, 3389]],
    ],
  );
  assert.equal(summary.first, T0);
  assert.equal(summary.last, T0 + 9000);
  assert.equal(summary.countries, null);
});

Deno.test("report stats: --since and --until select a half-open period", () => {
  const stats = new ConnectionStats({ since: T0, until: T0 + HOUR });
  add(stats, T0 - 1, "192.0.2.1", 22);
  add(stats, T0, "192.0.2.1", 22);
  add(stats, T0 + HOUR - 1, "192.0.2.2", 22);
  add(stats, T0 + HOUR, "192.0.2.3", 22);
  assert.equal(stats.connections, 2);
  assert.equal(stats.outside, 2);
  assert.deepEqual([...stats.table().index.keys()].sort(), ["192.0.2.1", "192.0.2.2"]);
});

/** Buckets as [local label, count] in `zone`. */
function buckets(zone: Zone, times: number[], unit: "hour" | "day"): [string, number][] {
  const stats = new ConnectionStats();
  for (const ms of times) add(stats, ms, "192.0.2.1", 22);
  return timeBuckets(stats.slots(), {
    zone,
    first: Math.min(...times),
    last: Math.max(...times),
    unit,
  }).map((bucket) => [zone.rfc3339(bucket.start), bucket.connections]);
}

Deno.test("report stats: hourly buckets across midnight, empty hours included", () => {
  const zone = new Zone("Europe/Berlin");
  // 23:10 and 23:50 local, then 01:05 local the next day (Berlin is UTC+1 in November).
  const times = [
    Date.UTC(2026, 10, 24, 22, 10),
    Date.UTC(2026, 10, 24, 22, 50),
    Date.UTC(2026, 10, 25, 0, 5),
  ];
  assert.deepEqual(buckets(zone, times, "hour"), [
    ["2026-11-24T23:00:00+01:00", 2],
    ["2026-11-25T00:00:00+01:00", 0],
    ["2026-11-25T01:00:00+01:00", 1],
  ]);
});

Deno.test("report stats: hourly buckets across the autumn DST change: 02:00 twice", () => {
  const zone = new Zone("Europe/Berlin");
  // One connection every 30 minutes from 00:45 UTC+2 to 03:15 UTC+1 on 2026-10-25.
  const times = Array.from(
    { length: 7 },
    (_, i) => Date.UTC(2026, 9, 24, 22, 45) + i * 30 * 60_000,
  );
  assert.deepEqual(buckets(zone, times, "hour"), [
    ["2026-10-25T00:00:00+02:00", 1],
    ["2026-10-25T01:00:00+02:00", 2],
    ["2026-10-25T02:00:00+02:00", 2],
    ["2026-10-25T02:00:00+01:00", 2],
  ]);
});

Deno.test("report stats: daily buckets at local midnight; DST days have 23 and 25 hours", () => {
  const zone = new Zone("Europe/Berlin");
  // One connection an hour, every hour, from local 2026-03-28 00:00 to 2026-03-30 23:00 CEST.
  const spring: number[] = [];
  for (let ms = Date.UTC(2026, 2, 27, 23); ms <= Date.UTC(2026, 2, 30, 21); ms += HOUR) {
    spring.push(ms);
  }
  assert.deepEqual(buckets(zone, spring, "day"), [
    ["2026-03-28T00:00:00+01:00", 24],
    ["2026-03-29T00:00:00+01:00", 23],
    ["2026-03-30T00:00:00+02:00", 24],
  ]);
  const autumn: number[] = [];
  for (let ms = Date.UTC(2026, 9, 23, 22); ms <= Date.UTC(2026, 9, 26, 22); ms += HOUR) {
    autumn.push(ms);
  }
  assert.deepEqual(buckets(zone, autumn, "day"), [
    ["2026-10-24T00:00:00+02:00", 24],
    ["2026-10-25T00:00:00+02:00", 25],
    ["2026-10-26T00:00:00+01:00", 24],
  ]);
  // New York's day starts at 05:00 UTC in winter: 03:00 UTC belongs to the day before.
  const newYork = new Zone("America/New_York");
  assert.deepEqual(
    buckets(newYork, [Date.UTC(2026, 10, 25, 3), Date.UTC(2026, 10, 27, 6)], "day"),
    [
      ["2026-11-24T00:00:00-05:00", 1],
      ["2026-11-25T00:00:00-05:00", 0],
      ["2026-11-26T00:00:00-05:00", 0],
      ["2026-11-27T00:00:00-05:00", 1],
    ],
  );
});

Deno.test("report stats: the unit is hour up to three days, day beyond", () => {
  const zone = new Zone("UTC");
  for (const [span, unit] of [[72 * HOUR, "hour"], [72 * HOUR + 1, "day"]] as const) {
    const stats = new ConnectionStats();
    add(stats, T0, "192.0.2.1", 22);
    add(stats, T0 + span, "192.0.2.1", 22);
    const summary = summarize(stats, COUNTS, { zone });
    assert.equal(summary.unit, unit);
    assert.equal(summary.buckets.length, unit === "hour" ? 73 : 4);
  }
});

Deno.test("report stats: the JSON shape is stable", () => {
  const stats = new ConnectionStats({ since: T0 - HOUR });
  add(stats, T0, "203.0.113.5", 22);
  add(stats, T0 + 61_000, "2001:db8::1", 23);
  add(stats, T0 - 2 * HOUR, "203.0.113.5", 22);
  const counts = { lines: 5, connections: 3, otherEvents: 1, unreadable: 1, outOfRange: 0 };
  const summary = summarize(stats, counts, { zone: new Zone("UTC"), period: { since: T0 - HOUR } });
  assert.deepEqual(toJsonReport(summary), {
    report_version: 1,
    time_zone: "UTC",
    period: {
      first: "2026-11-25T08:00:00+00:00",
      last: "2026-11-25T08:01:01+00:00",
      since: "2026-11-25T07:00:00+00:00",
      until: null,
    },
    lines: { read: 5, connections: 3, other_events: 1, unreadable: 1, outside_period: 1 },
    connections: 2,
    sources: 2,
    ports: {
      distinct: 2,
      top: [{ port: 22, connections: 1, sources: 1 }, { port: 23, connections: 1, sources: 1 }],
    },
    top_sources: [
      {
        address: "2001:db8::1",
        connections: 1,
        first: "2026-11-25T08:01:01+00:00",
        last: "2026-11-25T08:01:01+00:00",
        ports: [23],
        country: null,
        as_number: null,
        as_organization: null,
      },
      {
        address: "203.0.113.5",
        connections: 1,
        first: "2026-11-25T08:00:00+00:00",
        last: "2026-11-25T08:00:00+00:00",
        ports: [22],
        country: null,
        as_number: null,
        as_organization: null,
      },
    ],
    networks: {
      distinct: 2,
      top: [
        {
          network: "2001:db8::/48",
          sources: 1,
          connections: 1,
          first: "2026-11-25T08:01:01+00:00",
          last: "2026-11-25T08:01:01+00:00",
          ports: [23],
          country: null,
          as_number: null,
          as_organization: null,
        },
        {
          network: "203.0.113.0/24",
          sources: 1,
          connections: 1,
          first: "2026-11-25T08:00:00+00:00",
          last: "2026-11-25T08:00:00+00:00",
          ports: [22],
          country: null,
          as_number: null,
          as_organization: null,
        },
      ],
    },
    countries: null,
    autonomous_systems: null,
    timeline: {
      unit: "hour",
      buckets: [{ start: "2026-11-25T08:00:00+00:00", connections: 2 }],
    },
  });
});

Deno.test("report stats: the same source however its address is spelt", () => {
  const stats = new ConnectionStats();
  for (
    const ip of ["2001:db8::1", "2001:DB8::1", "2001:db8:0:0:0:0:0:1", "1.2.3.4", "::ffff:1.2.3.4"]
  ) {
    add(stats, T0, ip, 22);
  }
  assert.equal(stats.add(T0, "1.2.3.4.5.6.7", 22), false);
  const summary = summarize(stats, COUNTS, { zone: new Zone("UTC") });
  assert.equal(summary.sources, 2);
  assert.deepEqual(summary.topSources.map((row) => [row.name, row.connections]), [
    ["2001:db8::1", 3],
    ["1.2.3.4", 2],
  ]);
  assert.deepEqual(summary.topNetworks.map((row) => row.name), ["2001:db8::/48", "1.2.3.0/24"]);
});

Deno.test("report stats: the chart's unit grows with the period: a few hundred bars at most", () => {
  const zone = new Zone("Europe/Berlin");
  const cases = [
    [Date.UTC(2026, 0, 1), Date.UTC(2026, 11, 31), "day", 365],
    [Date.UTC(2016, 0, 15), Date.UTC(2026, 0, 15), "month", 121],
    [Date.UTC(1970, 0, 1), Date.UTC(2099, 11, 31, 12), "year", 130],
  ] as const;
  for (const [first, last, unit, bars] of cases) {
    const stats = new ConnectionStats();
    add(stats, first, "192.0.2.1", 22);
    add(stats, last, "192.0.2.2", 22);
    const summary = summarize(stats, COUNTS, { zone });
    assert.equal(summary.unit, unit);
    assert.equal(summary.buckets.length, bars, unit);
    assert.ok(summary.buckets.length <= MAX_BUCKETS);
    assert.equal(summary.buckets.reduce((sum, bucket) => sum + bucket.connections, 0), 2);
    // Each bar starts at a local midnight, on the first of the month for months and years.
    for (const bucket of summary.buckets) {
      const parts = zone.parts(bucket.start);
      assert.deepEqual([parts.hour, parts.minute], [0, 0]);
      if (unit !== "day") assert.equal(parts.day, 1);
      if (unit === "year") assert.equal(parts.month, 1);
    }
  }
});

Deno.test("report stats: two halves merged are the whole (sources, ports beyond 32, slots, period)", () => {
  const period = { since: T0 + HOUR, until: T0 + 40 * HOUR };
  const whole = new ConnectionStats(period);
  const first = new ConnectionStats(period);
  const second = new ConnectionStats(period);
  const addresses = ["203.0.113.5", "203.0.113.9", "2001:db8:1::7", "198.51.100.1", "::1"];
  for (let i = 0; i < 600; i++) {
    // 40 ports: ids beyond the mask's 32; times in and out of the period, not in order.
    const ms = T0 + ((i * 7919) % (48 * 60)) * 60_000;
    const ip = i % 50 === 0 ? `192.0.2.${i % 200}` : addresses[i % addresses.length];
    const port = 1000 + ((i * 13) % 40);
    add(whole, ms, ip, port);
    add(i < 250 ? first : second, ms, ip, port);
  }
  first.merge(second.data());
  const zone = new Zone("UTC");
  const report = (stats: ConnectionStats) =>
    toJsonReport(summarize(stats, COUNTS, { zone, top: 100, period }));
  assert.ok(whole.outside > 0 && whole.connections > 0);
  assert.deepEqual(report(first), report(whole));
  assert.equal(first.connections, whole.connections);
  assert.equal(first.outside, whole.outside);
  assert.deepEqual([...first.ports()], [...whole.ports()]);
  assert.deepEqual([...first.slots()].sort(), [...whole.slots()].sort());
});
