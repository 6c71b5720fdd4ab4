/** The report's line parser (lib/report/parse.ts) and its time zones (lib/report/zone.ts). */
import assert from "node:assert/strict";
import { createFormatter } from "../../lib/log/format.ts";
import { parseSourceAddress } from "../../lib/report/network.ts";
import { LogParser } from "../../lib/report/parse.ts";
import { Zone } from "../../lib/report/zone.ts";
import { withTimeZone } from "../_util.ts";

const encoder = new TextEncoder();

interface Parsed {
  connections: [number, string, number][];
  counts: LogParser["counts"];
}

/** Parses `text`, given in chunks of `chunk` bytes (all at once by default). */
function parse(text: string, options: { zone?: string; chunk?: number } = {}): Parsed {
  const connections: [number, string, number][] = [];
  const parser = new LogParser(
    {
      // As ConnectionStats does: a source that is not an IP address is not counted.
      addBatch: (batch) => {
        let rejected = 0;
        for (let i = 0; i < batch.length; i++) {
          const source = parseSourceAddress(batch.addresses[i]);
          if (source === null) rejected++;
          else connections.push([batch.times[i], source.text, batch.ports[i]]);
        }
        return rejected;
      },
    },
    new Zone(options.zone ?? "UTC"),
  );
  const bytes = encoder.encode(text);
  const size = options.chunk ?? bytes.length;
  for (let i = 0; i < bytes.length; i += size) parser.push(bytes.subarray(i, i + size));
  parser.end();
  return { connections, counts: { ...parser.counts } };
}

const TEXT_LINE = "2026-11-25 08:01:02.345 [INFO] Connection from 203.0.113.5 on port 22\n";
const JSON_LINE =
  '{"time":"2026-11-25T08:01:02.345+01:00","level":"info","event":"connection","src_ip":"2001:db8::1","src_port":51234,"dst_port":2222}\n';

Deno.test("report parse: a text connection line, local time in the zone", () => {
  assert.deepEqual(parse(TEXT_LINE), {
    connections: [[Date.UTC(2026, 10, 25, 8, 1, 2, 345), "203.0.113.5", 22]],
    counts: { lines: 1, connections: 1, otherEvents: 0, unreadable: 0, outOfRange: 0 },
  });
  // The same wall time in Berlin (UTC+1 in November) is an hour earlier in UTC.
  assert.deepEqual(parse(TEXT_LINE, { zone: "Europe/Berlin" }).connections, [
    [Date.UTC(2026, 10, 25, 7, 1, 2, 345), "203.0.113.5", 22],
  ]);
});

Deno.test("report parse: a JSON connection line, by its offset", () => {
  assert.deepEqual(parse(JSON_LINE), {
    connections: [[Date.UTC(2026, 10, 25, 7, 1, 2, 345), "2001:db8::1", 2222]],
    counts: { lines: 1, connections: 1, otherEvents: 0, unreadable: 0, outOfRange: 0 },
  });
  // Another key order and a Z offset take the slow path and give the same kind of result.
  const other = '{"event":"connection","dst_port":23,"src_ip":"192.0.2.7",' +
    '"time":"2026-11-25T08:00:00.000Z","level":"info"}\n';
  assert.deepEqual(parse(other).connections, [[Date.UTC(2026, 10, 25, 8), "192.0.2.7", 23]]);
});

/** The hour that Berlin's clocks repeat in 2026 (the second 02:00-03:00, in CET). */
const REPEATED_HOUR = [Date.UTC(2026, 9, 25, 1), Date.UTC(2026, 9, 25, 2)];

Deno.test("report parse: every line the program's formatter writes reads back exactly", () => {
  withTimeZone("Europe/Berlin", readBack);
});

function readBack(): void {
  const zone = new Zone();
  assert.equal(zone.name, "Europe/Berlin");
  for (const format of ["text", "json"] as const) {
    const formatter = createFormatter(format);
    let text = "";
    const expected: [number, string, number][] = [];
    const addresses = [
      "1.2.3.4",
      "255.255.255.255",
      "2001:db8:ffff::abcd",
      "::1",
      "::ffff:1.2.3.4",
    ];
    for (let i = 0; i < 500; i++) {
      // Spread over a year, so both DST offsets occur (text lines are local time).
      const ms = Date.UTC(2026, 0, 1) + i * 63_072_123 + (i % 1000);
      // A text line in the repeated hour cannot be told from one an hour earlier.
      if (ms >= REPEATED_HOUR[0] && ms < REPEATED_HOUR[1]) continue;
      const address = addresses[i % addresses.length];
      const port = [1, 22, 65535, 8080][i % 4];
      text += new TextDecoder().decode(formatter.connection(ms, address, 40_000 + i, port));
      // An IPv4-mapped address is the IPv4 source it maps.
      expected.push([ms, address.replace(/^::ffff:/, ""), port]);
    }
    const got = parse(text, { zone: zone.name, chunk: 997 });
    assert.deepEqual(got.connections, expected, format);
    assert.equal(got.counts.connections, expected.length);
    assert.ok(expected.length > 490);
  }
}

Deno.test("report parse: other events are counted apart from garbage", () => {
  const text = [
    "2026-11-25 08:01:02.345 [INFO] Listening on port 22 (IPv4 and IPv6, any address)",
    "2026-11-25 08:01:09.002 [INFO] Stopped after 1 connection",
    "2026-11-25 08:01:09.002 [ERROR] Cannot accept: too many open files",
    '{"time":"2026-11-25T08:01:02.345+00:00","level":"info","event":"listening","port":22}',
    '{"time":"2026-11-25T08:01:02.345+00:00","level":"info","event":"stopped","count":1}',
    "garbage",
    "",
    "{not json",
    '{"no":"event"}',
    "2026-13-25 08:01:02.345 [INFO] Connection from 203.0.113.5 on port 22", // month 13
    "2026-11-25 08:01:02.345 [INFO] Connection from 203.0.113.5 on port 65536",
    "2026-11-25 08:01:02.345 [INFO] Connection from 203.0.113.5 on port ",
    "2026-11-25 08:01:02.345 [INFO] Connection from <script> on port 22",
    "2026-11-25 08:01:02.345 [INFO] Connection from 203.0.113.5 on port 22 trailing",
    '{"time":"2026-11-25T08:01:02.345+00:00","event":"connection","src_ip":"x","dst_port":1}',
    '{"time":"bad","event":"connection","src_ip":"1.2.3.4","dst_port":1}',
    "2026-11-25 08:01:02.345 [INFO] Connection from 203.0.113.5 on port 22\r", // CRLF is fine
    // A cut last line: no newline.
    "2026-11-25 08:01:02.345 [INFO] Connection from 203.0.113.5 on po",
  ].join("\n");
  assert.deepEqual(parse(text).counts, {
    lines: 18,
    connections: 1,
    otherEvents: 5,
    unreadable: 12,
    outOfRange: 0,
  });
});

Deno.test("report parse: lines split anywhere across chunks read the same", () => {
  const text = (TEXT_LINE + JSON_LINE + "junk\n").repeat(7);
  const whole = parse(text);
  for (const chunk of [1, 2, 3, 17, 64]) assert.deepEqual(parse(text, { chunk }), whole);
  assert.equal(whole.counts.connections, 14);
  assert.equal(whole.counts.unreadable, 7);
});

Deno.test("report parse: an overlong line is unreadable and not kept", () => {
  const long = "x".repeat(100_000);
  assert.deepEqual(parse(`${long}\n${TEXT_LINE}`, { chunk: 4096 }).counts, {
    lines: 2,
    connections: 1,
    otherEvents: 0,
    unreadable: 1,
    outOfRange: 0,
  });
  // Also when it ends the input without a newline.
  assert.deepEqual(parse(`${TEXT_LINE}${long}`, { chunk: 1000 }).counts, {
    lines: 2,
    connections: 1,
    otherEvents: 0,
    unreadable: 1,
    outOfRange: 0,
  });
});

Deno.test("report zone: wall times around DST changes map to instants like Date does", () => {
  const berlin = new Zone("Europe/Berlin");
  // Spring forward 2026-03-29 02:00 CET -> 03:00 CEST: 02:30 does not exist, moved on by an hour.
  assert.equal(
    berlin.toUtc({ year: 2026, month: 3, day: 29, hour: 1, minute: 59 }),
    Date.UTC(2026, 2, 29, 0, 59),
  );
  assert.equal(
    berlin.toUtc({ year: 2026, month: 3, day: 29, hour: 2, minute: 30 }),
    Date.UTC(2026, 2, 29, 1, 30),
  );
  assert.equal(
    berlin.toUtc({ year: 2026, month: 3, day: 29, hour: 3, minute: 0 }),
    Date.UTC(2026, 2, 29, 1, 0),
  );
  // Fall back 2026-10-25 03:00 CEST -> 02:00 CET: 02:30 happens twice, the earlier is taken.
  assert.equal(
    berlin.toUtc({ year: 2026, month: 10, day: 25, hour: 2, minute: 30 }),
    Date.UTC(2026, 9, 25, 0, 30),
  );
  assert.equal(
    berlin.toUtc({ year: 2026, month: 10, day: 25, hour: 3, minute: 0 }),
    Date.UTC(2026, 9, 25, 2, 0),
  );
  assert.equal(berlin.offsetAt(Date.UTC(2026, 9, 25, 0, 59)), 120);
  assert.equal(berlin.offsetAt(Date.UTC(2026, 9, 25, 1, 0)), 60);
  assert.equal(berlin.rfc3339(Date.UTC(2026, 9, 25, 1, 30)), "2026-10-25T02:30:00+01:00");
  // A half-hour zone.
  const kolkata = new Zone("Asia/Kolkata");
  assert.equal(kolkata.dateTime(Date.UTC(2026, 10, 25, 20, 0)), "2026-11-26 01:30:00");
  assert.equal(kolkata.dayStart(Date.UTC(2026, 10, 25, 20, 0)), Date.UTC(2026, 10, 25, 18, 30));
});

Deno.test("report parse: lines dated outside 1970-2099 are unreadable, and counted as such", () => {
  const text = [
    "0001-01-01 00:00:00.000 [INFO] Connection from 192.0.2.1 on port 22",
    "9999-12-31 23:59:59.999 [INFO] Connection from 192.0.2.1 on port 22",
    // Date.UTC would read year 75 as 1975.
    "0075-06-01 12:00:00.000 [INFO] Connection from 192.0.2.1 on port 22",
    "1969-12-31 23:59:59.999 [INFO] Connection from 192.0.2.1 on port 22",
    "2100-01-01 00:00:00.000 [INFO] Listening on port 22",
    '{"time":"+275760-09-13T00:00:00.000Z","level":"info","event":"connection",' +
    '"src_ip":"192.0.2.1","src_port":1,"dst_port":22}',
    '{"time":"9999-12-31T23:59:59.999+00:00","level":"info","event":"connection",' +
    '"src_ip":"192.0.2.1","src_port":1,"dst_port":22}',
    // Not RFC 3339 (Date.parse would take it as 2001): unreadable, not an absurd date.
    '{"time":"1","event":"connection","src_ip":"192.0.2.1","dst_port":22}',
    // February has no 30th.
    "2026-02-30 08:00:00.000 [INFO] Connection from 192.0.2.1 on port 22",
    // The edges of the range are read.
    "1970-01-01 00:00:00.000 [INFO] Connection from 192.0.2.1 on port 22",
    "2099-12-31 23:59:59.999 [INFO] Connection from 192.0.2.1 on port 22",
    "",
  ].join("\n");
  const got = parse(text);
  assert.deepEqual(got.counts, {
    lines: 11,
    connections: 2,
    otherEvents: 0,
    unreadable: 9,
    outOfRange: 7,
  });
  assert.deepEqual(got.connections.map(([ms]) => ms), [
    Date.UTC(1970, 0, 1),
    Date.UTC(2099, 11, 31, 23, 59, 59, 999),
  ]);
});

Deno.test("report parse: one source however its address is spelt; what is no address is unreadable", () => {
  const line = (ip: string) => `2026-11-25 08:01:02.345 [INFO] Connection from ${ip} on port 22`;
  const text = [
    "2001:db8::1",
    "2001:DB8::1",
    "2001:db8:0:0:0:0:0:1",
    "2001:0db8::0001",
    "1.2.3.4",
    "::ffff:1.2.3.4",
    "::FFFF:1.2.3.4",
    "1.2.3.4.5.6.7",
    "1.2.3",
    "01.2.3.4",
    "1.2.3.256",
    "2001:db8::1::2",
    "2001:db8:1:2:3:4:5:6:7",
    "fe80::1%eth0",
  ].map(line).join("\n") + "\n";
  const got = parse(text);
  assert.deepEqual(got.counts, {
    lines: 14,
    connections: 7,
    otherEvents: 0,
    unreadable: 7,
    outOfRange: 0,
  });
  assert.deepEqual(
    [...new Set(got.connections.map(([, ip]) => ip))],
    ["2001:db8::1", "1.2.3.4"],
  );
});
