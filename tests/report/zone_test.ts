/** The report's time zones (lib/report/zone.ts): unknown zones, and years before 100. */
import assert from "node:assert/strict";
import { FALLBACK_ZONE, utcTime, Zone } from "../../lib/report/zone.ts";

Deno.test("report zone: an unknown zone falls back to UTC and says so", () => {
  for (const name of ["Foo/Bar", "Not a zone"]) {
    const zone = new Zone(name);
    assert.equal(zone.name, FALLBACK_ZONE);
    assert.equal(zone.fallback, true);
    assert.equal(zone.rfc3339(Date.UTC(2026, 10, 25, 8)), "2026-11-25T08:00:00+00:00");
  }
  const berlin = new Zone("Europe/Berlin");
  assert.equal(berlin.name, "Europe/Berlin");
  assert.equal(berlin.fallback, false);
  assert.equal(new Zone("UTC").fallback, false);
});

Deno.test("report zone: years 0000-0099 are never read or shown as 1900-1999", () => {
  const cases: [number, number, number, string][] = [
    [0, 1, 1, "0000-01-01T00:00:00.000Z"],
    [1, 1, 1, "0001-01-01T00:00:00.000Z"],
    [50, 2, 29, "0050-03-01T00:00:00.000Z"], // 50 is no leap year: Feb 29 rolls over
    [96, 2, 29, "0096-02-29T00:00:00.000Z"],
    [99, 12, 31, "0099-12-31T00:00:00.000Z"],
    [100, 1, 1, "0100-01-01T00:00:00.000Z"],
    [2026, 11, 25, "2026-11-25T00:00:00.000Z"],
  ];
  for (const [year, month, day, iso] of cases) {
    assert.equal(new Date(utcTime(year, month, day)).toISOString(), iso, `${year}-${month}-${day}`);
  }
  assert.equal(utcTime(1, 1, 1, 23, 59, 58, 7), Date.parse("0001-01-01T23:59:58.007Z"));
  const utc = new Zone("UTC");
  const first = utc.toUtc({ year: 1, month: 1, day: 1, hour: 8 });
  assert.equal(first, Date.parse("0001-01-01T08:00:00Z"));
  assert.equal(utc.dateTime(first), "0001-01-01 08:00:00");
  assert.equal(utc.date(first), "0001-01-01");
  assert.equal(utc.rfc3339(first), "0001-01-01T08:00:00+00:00");
  // The day after the last day of year 99 is in year 100, not 2000.
  const next = utc.toUtc({ year: 99, month: 12, day: 32 });
  assert.equal(utc.date(next), "0100-01-01");
  // Past year 9999, ISO 8601's expanded years, as toISOString writes them.
  assert.equal(utc.date(Date.parse("+275760-09-13T00:00:00.000Z")), "+275760-09-13");
});

Deno.test("report zone: offsets at the ends of Date's range do not throw", () => {
  const berlin = new Zone("Europe/Berlin");
  for (const ms of [8.64e15, -8.64e15]) assert.equal(typeof berlin.offsetAt(ms), "number");
});
