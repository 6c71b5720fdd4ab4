/**
 * `net-bouncer report` on hostile logs, run as it ships (a subprocess with the production flags):
 * absurd dates, a JSON time past year 9999, addresses spelt every way. One odd line never fails
 * the report, and never stretches its chart over centuries.
 */
import assert from "node:assert/strict";
import type { JsonReport } from "../../lib/report/json.ts";
import { programCommand, run, withTempDir } from "../_util.ts";

const FORMATS = ["text", "json", "html"] as const;
/** Far more than a report of a few lines needs; the old chart of 0001-9999 wrote 973 MB. */
const MAX_OUTPUT_BYTES = 1_000_000;

function line(time: string, ip: string, port = 22): string {
  return `${time} [INFO] Connection from ${ip} on port ${port}`;
}

/** Runs the report on `lines` in each format; returns the JSON report, checks the others. */
async function reportOf(lines: string[]): Promise<JsonReport> {
  return await withTempDir(async (dir) => {
    const path = `${dir}/net-bouncer.log`;
    await Deno.writeTextFile(path, lines.join("\n") + "\n");
    let json: JsonReport | null = null;
    for (const format of FORMATS) {
      const [cmd, ...args] = programCommand(["report", "--format", format, path]);
      const result = await run(cmd, args, { env: { TZ: "UTC" }, timeoutMs: 60_000 });
      assert.equal(result.code, 0, `${format}: ${result.stderr}`);
      assert.equal(result.stderr, "", format);
      assert.ok(result.stdout.length < MAX_OUTPUT_BYTES, `${format}: ${result.stdout.length}`);
      if (format === "json") json = JSON.parse(result.stdout);
    }
    assert.ok(json !== null);
    return json;
  });
}

Deno.test("report of a hostile log: absurd dates are unreadable lines, the chart stays small", async () => {
  const json = await reportOf([
    line("2026-11-25 08:00:00.000", "192.0.2.1"),
    line("0001-01-01 00:00:00.000", "192.0.2.2"),
    line("9999-12-31 23:59:59.999", "192.0.2.3"),
    '{"time":"+275760-09-13T00:00:00.000Z","level":"info","event":"connection",' +
    '"src_ip":"192.0.2.4","src_port":1,"dst_port":22}',
    line("2026-11-25 09:30:00.000", "192.0.2.1"),
  ]);
  assert.equal(json.connections, 2);
  assert.equal(json.lines.unreadable, 3);
  assert.equal(json.timeline.unit, "hour");
  assert.equal(json.timeline.buckets.length, 2);
});

Deno.test("report of a log over 130 years: one bar a year", async () => {
  const json = await reportOf([
    line("1970-01-01 00:00:00.000", "192.0.2.1"),
    line("2026-11-25 08:00:00.000", "192.0.2.1"),
    line("2099-12-31 23:59:59.999", "192.0.2.1"),
  ]);
  assert.equal(json.connections, 3);
  assert.equal(json.timeline.unit, "year");
  assert.equal(json.timeline.buckets.length, 130);
});

Deno.test("report of a hostile log: one source however it is spelt, no source for a non-address", async () => {
  const json = await reportOf([
    line("2026-11-25 08:00:00.000", "2001:db8::1"),
    line("2026-11-25 08:00:01.000", "2001:DB8::1"),
    line("2026-11-25 08:00:02.000", "2001:db8:0:0:0:0:0:1"),
    line("2026-11-25 08:00:03.000", "1.2.3.4"),
    line("2026-11-25 08:00:04.000", "::ffff:1.2.3.4"),
    line("2026-11-25 08:00:05.000", "1.2.3.4.5.6.7"),
  ]);
  assert.equal(json.sources, 2);
  assert.equal(json.lines.unreadable, 1);
  assert.deepEqual(
    json.top_sources.map((row) => [row.address, row.connections]),
    [["2001:db8::1", 3], ["1.2.3.4", 2]],
  );
});
