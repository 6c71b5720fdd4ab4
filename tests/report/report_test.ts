/**
 * `net-bouncer report` end to end: options and errors in-process, the real program's logs
 * (text and JSON, rotated and gzipped by the real logrotate), `--geoip` with a real database,
 * time zones in a subprocess, and the permissions it keeps.
 */
import assert from "node:assert/strict";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
// The CC0 country database from npm: imported so that it is downloaded and locked with the
// other dependencies; its .mmdb file sits next to this package.json.
import geoPackage from "@ip-location-db/geo-whois-asn-country-mmdb/package.json" with {
  type: "json",
};
import { report, type ReportOptions } from "../../lib/report/report.ts";
import type { JsonReport } from "../../lib/report/json.ts";
import { MAX_WORKER_SOURCES } from "../../lib/report/count_in_worker.ts";
import {
  DEADLINE_MS,
  knockFrom,
  MAIN,
  needsTools,
  productionRunArgs,
  readOrEmpty,
  ROOT,
  run,
  startProgram,
  startTask,
  waitFor,
  withTempDir,
} from "../_util.ts";
import { brokenWorker } from "./_broken_worker.ts";

/** The database file of the npm package (in Deno's npm cache or node_modules). */
const GEO_DATABASE = `${
  dirname(fileURLToPath(import.meta.resolve(`${geoPackage.name}/package.json`)))
}/geo-whois-asn-country.mmdb`;
const T0 = Date.UTC(2026, 10, 25, 8);

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the report in-process with captured output. */
async function runReport(
  args: string[],
  options: Partial<ReportOptions> & { input?: string | Uint8Array[] } = {},
): Promise<Result> {
  let stdout = "";
  let stderr = "";
  const chunks = typeof options.input === "string"
    ? [new TextEncoder().encode(options.input)]
    : options.input ?? [];
  const code = await report(args, {
    stdout: (text) => {
      stdout += text;
    },
    stderr: (text) => {
      stderr += text;
    },
    stdin: ReadableStream.from(chunks),
    isTerminal: { stdout: false, stderr: false },
    noColor: false,
    now: () => T0,
    timeZone: "UTC",
    ...options,
  });
  return { code, stdout, stderr };
}

async function jsonReport(args: string[], options: Parameters<typeof runReport>[1] = {}) {
  const result = await runReport([...args, "--format", "json"], options);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stderr, "");
  return JSON.parse(result.stdout) as JsonReport;
}

function textLine(ms: number, ip: string, port: number): string {
  const iso = new Date(ms).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 23)} [INFO] Connection from ${ip} on port ${port}\n`;
}

/** A small log in UTC: three sources, two ports, one other event and one garbage line. */
const SAMPLE = textLine(T0, "203.0.113.5", 22) + textLine(T0 + 1000, "203.0.113.5", 23) +
  textLine(T0 + 2000, "2001:db8::1", 22) + textLine(T0 + 3000, "198.51.100.1", 22) +
  "2026-11-25 08:00:04.000 [INFO] Stopped after 4 connections\nnot a log line\n";

async function gzip(text: string): Promise<Uint8Array> {
  return new Uint8Array(
    await new Response(
      ReadableStream.from([new TextEncoder().encode(text)])
        .pipeThrough(new CompressionStream("gzip")),
    ).arrayBuffer(),
  );
}

/** Asserts a failed run: one error line, the exit code, nothing on stdout. */
function assertError(result: Result, code: number, message: string | RegExp): void {
  assert.equal(result.code, code, result.stderr);
  assert.equal(result.stdout, "");
  assert.match(result.stderr, /^net-bouncer: error: [^\n]+\n$/);
  if (typeof message === "string") assert.equal(result.stderr, `net-bouncer: error: ${message}\n`);
  else assert.match(result.stderr, message);
}

Deno.test("report: usage errors are one line and exit 2", async () => {
  const timeHelp = "expected a date (2026-11-25), a date and time (2026-11-25T08:00) or a time " +
    "ago (24h, 7d)";
  const cases: [string[], string][] = [
    [["--bogus"], 'Unknown option "--bogus": see "net-bouncer report --help"'],
    [["--bogus=1"], 'Unknown option "--bogus": see "net-bouncer report --help"'],
    [["-x"], 'Unknown option "-x": see "net-bouncer report --help"'],
    [["-help"], 'Unknown option "-help": see "net-bouncer report --help"'],
    [["--help=yes"], 'Option "--help" takes no value'],
    [
      ["--format", "xml"],
      'Option "--format" cannot be "xml": expected one of text, json, html',
    ],
    [["--format", "json", "--format=html"], 'Option "--format" given twice: "json" and "html"'],
    [["--top", "0"], 'Option "--top" cannot be "0": expected a whole number from 1 to 999999'],
    [["--top=x"], 'Option "--top" cannot be "x": expected a whole number from 1 to 999999'],
    [["--since"], 'Option "--since" needs a value: TIME'],
    [["--geoip="], 'Option "--geoip" needs a file path, not an empty value'],
    [["--since", "yesterday"], `Option "--since" cannot be "yesterday": ${timeHelp}`],
    [["--until", "2026-02-30"], `Option "--until" cannot be "2026-02-30": ${timeHelp}`],
    [["--since", "x\x1b[2J"], `Option "--since" cannot be "x\\x1b[2J": ${timeHelp}`],
    [
      ["--since", "1h", "--until", "2h"],
      'Options "--since" and "--until" select nothing: "1h" is not before "2h"',
    ],
    // Past what a date holds (Date: "Invalid time value", exit 1, before).
    [
      ["--since", "999999999w"],
      'Option "--since" cannot be "999999999w": out of range (1970 to 2099)',
    ],
    [
      ["--since", "999999999d"],
      'Option "--since" cannot be "999999999d": out of range (1970 to 2099)',
    ],
    [
      ["--until", "1970-01-01T00:00:00+00:01"],
      'Option "--until" cannot be "1970-01-01T00:00:00+00:01": out of range (1970 to 2099)',
    ],
    [
      ["--since", "0050-01-01"],
      'Option "--since" cannot be "0050-01-01": out of range (1970 to 2099)',
    ],
    [
      ["--since", "999999999m"],
      'Option "--since" cannot be "999999999m": out of range (1970 to 2099)',
    ],
    // RFC 3339 offsets: hours 00-23, minutes 00-59.
    [
      ["--since", "2026-11-25T08:00+99:99"],
      'Option "--since" cannot be "2026-11-25T08:00+99:99": the offset must be from -23:59 to ' +
      "+23:59",
    ],
    [
      ["--since", "2026-11-25T08:00-24:00"],
      'Option "--since" cannot be "2026-11-25T08:00-24:00": the offset must be from -23:59 to ' +
      "+23:59",
    ],
    [
      ["--since", "2026-11-25T08:00+01:60"],
      'Option "--since" cannot be "2026-11-25T08:00+01:60": the offset must be from -23:59 to ' +
      "+23:59",
    ],
  ];
  for (const [args, message] of cases) assertError(await runReport(args), 2, message);
});

Deno.test("report: option values that are accepted", async () => {
  // The largest offsets, "--" before files named like options, "-" and values that start with
  // "-" (as the hand-written parser took them).
  const result = await runReport([
    "--format",
    "json",
    "--since",
    "2026-11-25T08:00:00+23:59",
    "--until=2026-11-25T08:00:00-23:59",
    "--",
    "-",
  ], { input: SAMPLE });
  assert.equal(result.code, 0, result.stderr);
  const offsets = JSON.parse(result.stdout) as JsonReport;
  assert.equal(offsets.period.since, "2026-11-24T08:01:00+00:00");
  assert.equal(offsets.period.until, "2026-11-26T07:59:00+00:00");
  assert.equal(offsets.connections, 4);
  // The years of the lines the parser reads; before, Date.UTC read 0050 as 1950.
  const ends = await jsonReport(
    ["--since", "1970-01-01T00:00Z", "--until", "2100-01-01T00:00Z"],
    { input: SAMPLE },
  );
  assert.equal(ends.connections, 4);
  assert.equal(ends.period.until, "2100-01-01T00:00:00+00:00");
  const hours = Math.floor((T0 - Date.UTC(1970, 0, 1)) / 3_600_000);
  const ago = await jsonReport(["--since", `${hours}h`], { input: SAMPLE });
  assert.match(ago.period.since ?? "", /^1970-01-01T0/);
  const help = await runReport(["--top", "999999", "-h"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Usage: net-bouncer report /);
});

Deno.test("report: an unknown time zone falls back to UTC, with one warning line", async () => {
  const warning =
    'net-bouncer: warning: Unknown time zone "Foo/Bar": times are read and shown in UTC\n';
  const text = await runReport([], { input: SAMPLE, timeZone: "Foo/Bar" });
  assert.equal(text.code, 0);
  assert.equal(text.stderr, warning);
  assert.match(
    text.stdout,
    /^net-bouncer report {2}2026-11-25 08:00:00 to 2026-11-25 08:00:03 \(UTC, as the time zone is unknown\)$/m,
  );
  const json = await runReport(["--format", "json"], { input: SAMPLE, timeZone: "Foo/Bar" });
  assert.equal(json.stderr, warning);
  const parsed = JSON.parse(json.stdout) as JsonReport;
  assert.equal(parsed.time_zone, "UTC");
  assert.equal(parsed.period.first, "2026-11-25T08:00:00+00:00");
  const html = await runReport(["--format", "html"], { input: SAMPLE, timeZone: "Foo/Bar" });
  assert.equal(html.code, 0);
  assert.equal(html.stderr, warning);
  assert.ok(html.stdout.includes("(UTC, as the time zone is unknown)"));
  // --help says nothing about time zones.
  assert.equal((await runReport(["--help"], { timeZone: "Foo/Bar" })).stderr, "");
});

Deno.test("report: runtime errors (files, database) are one line and exit 1", async () => {
  await withTempDir(async (dir) => {
    assertError(
      await runReport([`${dir}/missing.log`]),
      1,
      `Cannot open log file "${dir}/missing.log": no such file or directory`,
    );
    assertError(await runReport([dir]), 1, `Cannot open log file "${dir}": is a directory`);
    Deno.writeTextFileSync(`${dir}/a.log`, SAMPLE);
    // A missing file fails before any other is read.
    assertError(
      await runReport([`${dir}/a.log`, `${dir}/b.log`]),
      1,
      `Cannot open log file "${dir}/b.log": no such file or directory`,
    );
    const corrupt = await gzip(SAMPLE.repeat(100));
    Deno.writeFileSync(`${dir}/cut.gz`, corrupt.subarray(0, corrupt.length - 20));
    assertError(
      await runReport([`${dir}/cut.gz`]),
      1,
      /^net-bouncer: error: Cannot read "[^"]+cut\.gz": /,
    );
    Deno.writeTextFileSync(`${dir}/bad.mmdb`, "not a database");
    assertError(
      await runReport(["--geoip", `${dir}/bad.mmdb`, `${dir}/a.log`]),
      1,
      new RegExp(
        `^net-bouncer: error: Cannot read GeoIP database "${dir}/bad\\.mmdb": not a MaxMind-format database`,
      ),
    );
    assertError(
      await runReport(["--geoip", `${dir}/none.mmdb`, `${dir}/a.log`]),
      1,
      `Cannot read GeoIP database "${dir}/none.mmdb": no such file or directory`,
    );
  });
});

Deno.test("report: relative paths are the caller's (INIT_CWD under deno task)", async () => {
  await withTempDir(async (dir) => {
    Deno.mkdirSync(`${dir}/logs`);
    Deno.writeTextFileSync(`${dir}/logs/a.log`, SAMPLE);
    Deno.copyFileSync(GEO_DATABASE, `${dir}/geo.mmdb`);
    const json = await jsonReport(["--geoip", "geo.mmdb", "logs/a.log", "-"], {
      cwd: dir,
      input: SAMPLE,
    });
    assert.equal(json.connections, 8);
    assert.notEqual(json.countries, null);
    assertError(
      await runReport(["logs/missing.log"], { cwd: dir }),
      1,
      `Cannot open log file "${dir}/logs/missing.log": no such file or directory`,
    );
  });
});

Deno.test("report: `deno task start report FILE` reads FILE where the caller stands", async () => {
  await withTempDir(async (dir) => {
    Deno.writeTextFileSync(`${dir}/here.log`, SAMPLE);
    const { args, ...task } = startTask(["report", "--format=json", "here.log"]);
    const result = await run(Deno.execPath(), args, { ...task, cwd: dir, timeoutMs: DEADLINE_MS });
    assert.equal(result.code, 0, result.stderr);
    assert.equal((JSON.parse(result.stdout) as JsonReport).connections, 4);
  });
});

Deno.test("report: --help prints the usage and exits 0", async () => {
  const result = await runReport(["--help"]);
  assert.equal(result.code, 0);
  assert.match(result.stdout, /^Usage: net-bouncer report \[options\] \[FILE \.\.\.\]/);
  for (const option of ["--format", "--top", "--since", "--until", "--geoip"]) {
    assert.ok(result.stdout.includes(option), option);
  }
});

Deno.test("report: standard input, '-', plain and gzip files give the same counts", async () => {
  await withTempDir(async (dir) => {
    Deno.writeTextFileSync(`${dir}/plain.log`, SAMPLE);
    Deno.writeFileSync(`${dir}/rotated.log.1.gz`, await gzip(SAMPLE));
    // Gzip is told by its magic bytes, not by the name.
    Deno.writeFileSync(`${dir}/gzip-without-suffix`, await gzip(SAMPLE));
    const expected = await jsonReport([], { input: SAMPLE });
    assert.equal(expected.connections, 4);
    assert.deepEqual(expected.lines, {
      read: 6,
      connections: 4,
      other_events: 1,
      unreadable: 1,
      outside_period: 0,
    });
    assert.deepEqual(await jsonReport(["-"], { input: SAMPLE }), expected);
    assert.deepEqual(await jsonReport([`${dir}/plain.log`]), expected);
    assert.deepEqual(await jsonReport([`${dir}/rotated.log.1.gz`]), expected);
    assert.deepEqual(await jsonReport([`${dir}/gzip-without-suffix`]), expected);
    // Standard input in one-byte chunks, gzip too.
    const bytes = await gzip(SAMPLE);
    const oneByte = [...bytes].map((byte) => new Uint8Array([byte]));
    assert.deepEqual(await jsonReport(["-"], { input: oneByte }), expected);
    // Two gzip members in one file (`cat a.gz b.gz`) are read one after the other.
    const member = await gzip(SAMPLE);
    const twoMembers = new Uint8Array(2 * member.length);
    twoMembers.set(member);
    twoMembers.set(member, member.length);
    Deno.writeFileSync(`${dir}/two-members.gz`, twoMembers);
    assert.equal((await jsonReport([`${dir}/two-members.gz`])).connections, 8);
    // Several files add up; a cut last line of one does not join the next file's first line.
    Deno.writeTextFileSync(`${dir}/cut.log`, SAMPLE + "2026-11-25 08:00:05.000 [INFO] Connec");
    const both = await jsonReport([`${dir}/cut.log`, `${dir}/rotated.log.1.gz`]);
    assert.equal(both.connections, 8);
    assert.equal(both.lines.unreadable, 3);
    assert.equal(both.lines.read, 13);
  });
});

Deno.test("report: --since and --until, as dates and as times ago", async () => {
  const now = T0 + 10_000;
  // Relative to the injected clock: 5 s ago is T0 + 5000.
  const recent = await jsonReport(["--since", "5s"], { input: SAMPLE, now: () => now });
  assert.equal(recent.connections, 0);
  assert.equal(recent.lines.outside_period, 4);
  const hour = await jsonReport(["--since", "1h"], { input: SAMPLE, now: () => now });
  assert.equal(hour.connections, 4);
  // Local time (UTC here) to the millisecond, and with an offset.
  const window = await jsonReport(
    ["--since", "2026-11-25 08:00:01", "--until", "2026-11-25T09:00:03+01:00"],
    { input: SAMPLE },
  );
  assert.equal(window.connections, 2);
  assert.deepEqual(window.top_sources.map((row) => row.address), ["2001:db8::1", "203.0.113.5"]);
  assert.equal(window.period.since, "2026-11-25T08:00:01+00:00");
  assert.equal(window.period.until, "2026-11-25T08:00:03+00:00");
  // A date alone is local midnight.
  const day = await jsonReport(["--until", "2026-11-25"], { input: SAMPLE });
  assert.equal(day.connections, 0);
});

Deno.test("report: text shows the tables and chart; colour only on a terminal without NO_COLOR", async () => {
  const plain = await runReport([], { input: SAMPLE });
  assert.equal(plain.code, 0);
  for (
    const expected of [
      "4 connections from 3 sources in 3 networks on 2 ports",
      "6 lines read; skipped: 1 other event, 1 unreadable",
      "Ports",
      "Top sources",
      "Top networks (/24 IPv4, /48 IPv6)",
      "Connections per hour",
    ]
  ) assert.ok(plain.stdout.includes(expected), `${expected} in:\n${plain.stdout}`);
  assert.match(
    plain.stdout,
    /^ {2}203\.0\.113\.5 +2 +2026-11-25 08:00:00 +2026-11-25 08:00:01 +22,23$/m,
  );
  assert.match(plain.stdout, /^ {2}2001:db8::\/48 +1 +1 +/m);
  assert.ok(!plain.stdout.includes("\x1b["), "no escape codes when not a terminal");
  const terminal = await runReport([], {
    input: SAMPLE,
    isTerminal: { stdout: true, stderr: false },
  });
  assert.ok(terminal.stdout.includes("\x1b[1mPorts\x1b[22m"));
  const noColor = await runReport([], {
    input: SAMPLE,
    isTerminal: { stdout: true, stderr: false },
    noColor: true,
  });
  assert.equal(noColor.stdout, plain.stdout);
});

Deno.test("report: lines dated outside the parser's years are unreadable, and said so", async () => {
  const log = SAMPLE + "0001-01-01 00:00:00.000 [INFO] Connection from 192.0.2.9 on port 22\n" +
    "9999-12-31 23:59:59.999 [INFO] Connection from 192.0.2.9 on port 22\n";
  const text = await runReport([], { input: log });
  assert.equal(text.code, 0, text.stderr);
  assert.ok(
    text.stdout.includes(
      "8 lines read; skipped: 1 other event, 3 unreadable (2 dated outside 1970 to 2099)",
    ),
    text.stdout,
  );
  // Before, the period ran from 1901 (Date.UTC's two-digit years) to 9999.
  assert.match(text.stdout, /^net-bouncer report {2}2026-11-25 08:00:00 to 2026-11-25 08:00:03 /);
  const html = await runReport(["--format", "html"], { input: log });
  assert.ok(html.stdout.includes("3 unreadable (2 dated outside 1970 to 2099)"));
  assert.ok(html.stdout.includes("skipped: 1 other event,"), "not 1 other events");
});

Deno.test("report: a progress line on a terminal for long inputs, cleared at the end", async () => {
  let clock = T0;
  const chunks = Array.from({ length: 20 }, () => new TextEncoder().encode(SAMPLE));
  // Each look at the clock is 300 ms later: past the 1 s delay, then every 250 ms.
  const now = () => clock += 300;
  const result = await runReport(["--format", "json"], {
    input: chunks,
    now,
    isTerminal: { stdout: false, stderr: true },
  });
  assert.equal(result.code, 0);
  const clear = "\r\x1b[K";
  const updates = result.stderr.split(clear);
  // "", then one or more updates, then "" after the final clear.
  assert.equal(updates.at(0), "");
  assert.equal(updates.at(-1), "");
  assert.ok(updates.length >= 3, JSON.stringify(result.stderr));
  for (const update of updates.slice(1, -1)) {
    assert.match(update, /^reading standard input: [\d,]+ lines, [\d.]+ MB\/s$/);
  }
  const quiet = await runReport(["--format", "json"], { input: chunks, now });
  assert.equal(quiet.stderr, "", "no progress when stderr is not a terminal");
});

Deno.test("report: --geoip with the npm country database names the countries", async () => {
  const log = textLine(T0, "193.0.6.139", 22) + textLine(T0 + 1, "193.0.6.139", 22) +
    textLine(T0 + 2, "8.8.8.8", 22) + textLine(T0 + 3, "2001:67c:2e8::1", 23) +
    textLine(T0 + 4, "127.0.0.1", 22);
  const result = await jsonReport(["--geoip", GEO_DATABASE], { input: log });
  assert.deepEqual(
    result.top_sources.map((row) => [row.address, row.country, row.as_number]),
    [
      ["193.0.6.139", "NL", null],
      ["127.0.0.1", null, null],
      ["2001:67c:2e8::1", "NL", null],
      ["8.8.8.8", "US", null],
    ],
  );
  assert.deepEqual(result.countries, [
    { country: "NL", connections: 3, sources: 2 },
    { country: "US", connections: 1, sources: 1 },
  ]);
  // A country database has no AS data: no AS table.
  assert.equal(result.autonomous_systems, null);
  const text = await runReport(["--geoip", GEO_DATABASE], { input: log });
  assert.match(text.stdout, /^ {2}193\.0\.6\.139 +2 +.* +22 +NL$/m);
  assert.ok(text.stdout.includes("Countries"));
});

Deno.test("report: the permission drop keeps only read", async () => {
  const code = `
    import { dropReportPermissions } from "./lib/report/report.ts";
    await dropReportPermissions();
    const names = ["read", "write", "net", "env", "run", "ffi", "sys"];
    const states = await Promise.all(names.map((name) => Deno.permissions.query({ name })));
    console.log(JSON.stringify(Object.fromEntries(names.map((n, i) => [n, states[i].state]))));
  `;
  const result = await run(Deno.execPath(), ["eval", "--frozen", code], { cwd: ROOT });
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(JSON.parse(result.stdout), {
    read: "granted",
    write: "prompt",
    net: "prompt",
    env: "prompt",
    run: "prompt",
    ffi: "prompt",
    sys: "prompt",
  });
});

/** Runs `net-bouncer report` as production runs the program. */
function runProductionReport(args: string[], env?: Record<string, string>): Promise<Result> {
  return run(Deno.execPath(), [...productionRunArgs(), MAIN, "report", ...args], { env });
}

Deno.test("report: the real program's report in Berlin time across the autumn DST change", async () => {
  await withTempDir(async (dir) => {
    // Text lines are local time: 23:30 on the 24th to 03:30 on the 25th, Berlin wall clock;
    // the 02:xx lines of the repeated hour need the JSON format's offset to be told apart.
    const log = [
      "2026-10-24 23:30:00.000 [INFO] Connection from 192.0.2.1 on port 22",
      "2026-10-25 00:30:00.000 [INFO] Connection from 192.0.2.1 on port 22",
      '{"time":"2026-10-25T02:30:00.000+02:00","level":"info","event":"connection","src_ip":"192.0.2.1","src_port":1,"dst_port":22}',
      '{"time":"2026-10-25T02:30:00.000+01:00","level":"info","event":"connection","src_ip":"192.0.2.1","src_port":1,"dst_port":22}',
      '{"time":"2026-10-25T02:45:00.000+01:00","level":"info","event":"connection","src_ip":"192.0.2.1","src_port":1,"dst_port":22}',
      "2026-10-25 03:30:00.000 [INFO] Connection from 192.0.2.1 on port 22",
    ].join("\n") + "\n";
    Deno.writeTextFileSync(`${dir}/net-bouncer.log`, log);
    const result = await runProductionReport(
      ["--format", "json", `${dir}/net-bouncer.log`],
      { TZ: "Europe/Berlin" },
    );
    assert.equal(result.code, 0, result.stderr);
    const json = JSON.parse(result.stdout) as JsonReport;
    assert.equal(json.time_zone, "Europe/Berlin");
    assert.equal(json.period.first, "2026-10-24T23:30:00+02:00");
    assert.equal(json.period.last, "2026-10-25T03:30:00+01:00");
    assert.deepEqual(json.timeline, {
      unit: "hour",
      buckets: [
        { start: "2026-10-24T23:00:00+02:00", connections: 1 },
        { start: "2026-10-25T00:00:00+02:00", connections: 1 },
        { start: "2026-10-25T01:00:00+02:00", connections: 0 },
        { start: "2026-10-25T02:00:00+02:00", connections: 1 },
        { start: "2026-10-25T02:00:00+01:00", connections: 2 },
        { start: "2026-10-25T03:00:00+01:00", connections: 1 },
      ],
    });
    // The same log in New York time: the text lines move, the JSON lines keep their instants.
    const newYork = await runProductionReport(
      ["--format", "json", `${dir}/net-bouncer.log`],
      { TZ: "America/New_York" },
    );
    const shifted = JSON.parse(newYork.stdout) as JsonReport;
    assert.equal(shifted.period.first, "2026-10-24T20:30:00-04:00");
    assert.equal(shifted.period.last, "2026-10-25T03:30:00-04:00");
  });
});

Deno.test("report: the real program with an unknown TZ reports in UTC and says so", async () => {
  await withTempDir(async (dir) => {
    Deno.writeTextFileSync(`${dir}/net-bouncer.log`, SAMPLE);
    const warning = "net-bouncer: warning: Unknown time zone (see TZ and /etc/localtime): times " +
      "are read and shown in UTC\n";
    const outputs: Record<string, string> = {};
    for (const format of ["text", "json", "html"]) {
      const result = await runProductionReport(
        ["--format", format, `${dir}/net-bouncer.log`],
        { TZ: "Foo/Bar" },
      );
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stderr, warning);
      outputs[format] = result.stdout;
    }
    assert.ok(outputs.text.includes("(UTC, as the time zone is unknown)"), outputs.text);
    assert.ok(!outputs.text.includes("undefined"));
    const json = JSON.parse(outputs.json) as JsonReport;
    assert.equal(json.time_zone, "UTC");
    // The text lines were written in UTC: the daemon's Date falls back to UTC too.
    assert.equal(json.period.first, "2026-11-25T08:00:00+00:00");
    assert.ok(outputs.html.includes("(UTC, as the time zone is unknown)"));
  });
});

Deno.test("report: the real program refuses a --geoip that is not a regular file, at once", async () => {
  await withTempDir(async (dir) => {
    Deno.writeTextFileSync(`${dir}/net-bouncer.log`, SAMPLE);
    const fifo = `${dir}/fifo`;
    assert.equal((await run("mkfifo", [fifo])).code, 0);
    for (const path of ["/dev/zero", fifo]) {
      // Before, /dev/zero grew without bound and a FIFO hung: a deadline.
      const result = await run(
        Deno.execPath(),
        [...productionRunArgs(), MAIN, "report", "--geoip", path, `${dir}/net-bouncer.log`],
        { timeoutMs: DEADLINE_MS },
      );
      assert.equal(result.code, 1, result.stderr);
      assert.equal(result.stdout, "");
      assert.equal(
        result.stderr,
        `net-bouncer: error: Cannot read GeoIP database "${path}": not a regular file\n`,
      );
    }
  });
});

/** The text of a log file, decompressed when it is gzip. */
async function readLog(path: string): Promise<string> {
  const bytes = Deno.readFileSync(path);
  if (bytes[0] !== 0x1f || bytes[1] !== 0x8b) return new TextDecoder().decode(bytes);
  return await new Response(
    ReadableStream.from([bytes]).pipeThrough(new DecompressionStream("gzip")),
  ).text();
}

/** contrib/logrotate/net-bouncer for `dir`, signalling `pid`, with numbered rotations. */
function logrotateConfig(dir: string, pid: number): string {
  let text = Deno.readTextFileSync(`${ROOT}contrib/logrotate/net-bouncer`);
  const replacements: [string, string][] = [
    ["/var/log/net-bouncer/*.log {", `${dir}/*.log {`],
    [
      "systemctl try-reload-or-restart net-bouncer.service net-bouncer-activated.service >/dev/null 2>&1 || true",
      `kill -HUP ${pid}`,
    ],
    // Numbered names (.1, .2.gz): dateext would need a new second for each rotation.
    ["    dateext\n", ""],
  ];
  for (const [from, to] of replacements) {
    assert.ok(
      text.includes(from),
      `the logrotate config no longer contains ${JSON.stringify(from)}`,
    );
    text = text.replace(from, to);
  }
  return text;
}

for (const format of ["text", "json"] as const) {
  Deno.test({
    name:
      `report: a ${format} log of the real program, rotated and gzipped by logrotate, counts exactly`,
    ignore: needsTools("logrotate"),
    async fn() {
      await withTempDir(async (dir) => {
        const logFile = `${dir}/net-bouncer.log`;
        const program = await startProgram(["-p", "0", "--format", format], { logFile });
        const made = new Map<string, number>();
        const knocks = async (sources: string[]) => {
          for (const source of sources) {
            await knockFrom(source, program.port);
            made.set(source, (made.get(source) ?? 0) + 1);
          }
        };
        const config = `${dir}/logrotate.conf`;
        Deno.writeTextFileSync(config, logrotateConfig(dir, program.child.pid));
        // logrotate ignores a config that group or others may write.
        Deno.chmodSync(config, 0o600);
        const rotate = async () => {
          const result = await run("logrotate", ["-f", "-s", `${dir}/state`, config]);
          assert.equal(result.stderr, "");
          assert.equal(result.code, 0);
        };
        try {
          await knocks(["127.0.0.1", "127.0.0.1", "127.0.0.2", "::1"]);
          await rotate();
          await knocks(["127.0.0.3", "127.0.0.1", "::1"]);
          // notifempty: the next rotation needs a connection line in the new file, which the
          // program writes to once it has handled the SIGHUP; until then lines go to the old one.
          await waitFor("a connection line in the reopened log", async () => {
            if (/Connection from|"event":"connection"/.test(readOrEmpty(logFile))) return true;
            await knocks(["127.0.0.3"]);
            return false;
          });
          await rotate();
          await knocks(["127.0.0.2", "127.0.0.2"]);
        } finally {
          const stopped = await program.stop();
          assert.equal(stopped.code, 0, stopped.stderr);
        }
        const files = [...Deno.readDirSync(dir)].map((entry) => entry.name)
          .filter((name) => name.startsWith("net-bouncer.log")).sort();
        // delaycompress: the newest rotated file is plain, the older one gzipped.
        assert.deepEqual(files, ["net-bouncer.log", "net-bouncer.log.1", "net-bouncer.log.2.gz"]);
        const paths = files.map((name) => `${dir}/${name}`);
        const lines = (await Promise.all(paths.map(readLog))).join("").split("\n")
          .filter((line) => line !== "");
        const other = lines.filter((line) => !/Connection from|"event":"connection"/.test(line));

        const json = await jsonReport(paths, { timeZone: undefined });
        const total = [...made.values()].reduce((a, b) => a + b, 0);
        assert.equal(json.connections, total);
        assert.deepEqual(json.lines, {
          read: lines.length,
          connections: total,
          other_events: other.length,
          unreadable: 0,
          outside_period: 0,
        });
        assert.deepEqual(
          Object.fromEntries(json.top_sources.map((row) => [row.address, row.connections])),
          Object.fromEntries(made),
        );
        assert.deepEqual(json.ports.top, [{
          port: program.port,
          connections: total,
          sources: made.size,
        }]);
        assert.deepEqual(
          json.networks.top.map((row) => [row.network, row.connections, row.sources]),
          [["127.0.0.0/24", total - made.get("::1")!, made.size - 1], ["::/48", 2, 1]],
        );
        assert.equal(json.timeline.buckets.reduce((sum, b) => sum + b.connections, 0), total);

        // The same files through the real entry, with the production permissions.
        const text = await runProductionReport(paths);
        assert.equal(text.code, 0, text.stderr);
        assert.equal(text.stderr, "");
        assert.ok(
          text.stdout.includes(
            `${total} connections from ${made.size} sources in 2 networks on 1 port`,
          ),
          text.stdout,
        );
        if (Deno.env.get("REPORT_SHOW") === "1") console.log(text.stdout);
      });
    },
  });
}

Deno.test("report: a file read in two halves at once (a worker reads the second) reads as one", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/big.log`;
    const lines: string[] = [];
    for (let i = 0; i < 20_000; i++) {
      const ms = T0 + i * 17_000;
      const ip = i % 3 === 0 ? `2001:db8:${i % 50}::${i % 7}` : `198.51.${i % 40}.${i % 250}`;
      lines.push(i % 101 === 0 ? "not a line\n" : textLine(ms, ip, 1000 + (i % 40)));
    }
    // Then more sources than a worker takes (MAX_WORKER_SOURCES): it stops, this thread reads on.
    for (let i = 0; i < 2 * MAX_WORKER_SOURCES; i++) {
      lines.push(
        textLine(T0 + 4 * 86_400_000 + i, `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`, 22),
      );
    }
    await Deno.writeTextFile(path, lines.join(""));
    for (const args of [[path], [path, "--since", "2026-11-26", "--top", "50"]]) {
      const one = await runReport(args, { parallelMinBytes: Infinity });
      const halves = await runReport(args, { parallelMinBytes: 0 });
      assert.equal(one.code, 0, one.stderr);
      assert.equal(halves.stdout, one.stdout);
      assert.equal(halves.stderr, one.stderr);
      assert.deepEqual(
        await jsonReport(args, { parallelMinBytes: 0 }),
        await jsonReport(args, { parallelMinBytes: Infinity }),
      );
    }
  });
});

Deno.test("report: a worker that cannot start is a warning; the file is read on one thread", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/big.log`;
    const lines: string[] = [];
    for (let i = 0; i < 1_000; i++) lines.push(textLine(T0 + i * 1_000, `192.0.2.${i % 200}`, 22));
    await Deno.writeTextFile(path, lines.join(""));
    const one = await runReport([path], { parallelMinBytes: Infinity });
    const result = await runReport([path], {
      parallelMinBytes: 0,
      workerUrl: await brokenWorker(dir),
    });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, one.stdout);
    assert.match(
      result.stderr,
      /^net-bouncer: warning: The report's second thread failed \(.*Broken worker\): reading on one\n$/,
    );
  });
});
