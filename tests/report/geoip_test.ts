/**
 * `--geoip` with autonomous system data and country names: a tiny MaxMind-format database
 * written here (tests/report/_mmdb.ts; the npm database the other tests use has country codes
 * only), read through mmdb-lib like any other; and what is never read as a database.
 */
import assert from "node:assert/strict";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import geoPackage from "@ip-location-db/geo-whois-asn-country-mmdb/package.json" with {
  type: "json",
};
import { report } from "../../lib/report/report.ts";
import { countryNameOf, GeoDatabase, GEOIP_MAX_BYTES } from "../../lib/report/geoip.ts";
import type { JsonReport } from "../../lib/report/json.ts";
import { openLibc } from "../../lib/linux/libc.ts";
import { withTempDir } from "../_util.ts";
import { mmdb } from "./_mmdb.ts";

const GEO_DATABASE = `${
  dirname(fileURLToPath(import.meta.resolve(`${geoPackage.name}/package.json`)))
}/geo-whois-asn-country.mmdb`;
const encoder = new TextEncoder();

function textLine(ms: number, ip: string, port: number): string {
  const iso = new Date(ms).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 23)} [INFO] Connection from ${ip} on port ${port}\n`;
}

async function runReport(args: string[], log: string): Promise<string> {
  let stdout = "";
  const code = await report(args, {
    stdout: (text) => {
      stdout += text;
    },
    stderr: (text) => {
      throw new Error(`unexpected stderr: ${text}`);
    },
    stdin: ReadableStream.from([encoder.encode(log)]),
    isTerminal: { stdout: false, stderr: false },
    noColor: true,
    now: Date.now,
    timeZone: "UTC",
  });
  assert.equal(code, 0);
  return stdout;
}

const DATABASE = {
  // A country and AS database (GeoLite2 City/Country plus ASN fields, as merged databases have).
  "192.0.2.0/24": {
    country: { iso_code: "DE" },
    autonomous_system_number: 64500,
    autonomous_system_organization: "Example Net",
  },
  // An ASN-only record without an organisation.
  "198.51.100.0/25": { autonomous_system_number: 64501 },
  // ip-location-db's country field.
  "203.0.113.0/24": { country_code: "FR" },
  // GeoLite2's country with its names.
  "100.64.0.0/24": {
    country: { iso_code: "BA", names: { en: "Bosnia and Herzegovina", de: "Bosnien" } },
  },
  "2001:db8:1::/48": { country: { iso_code: "NL" }, autonomous_system_number: 64502 },
};

Deno.test("report geoip: the test database reads back through mmdb-lib", async () => {
  await withTempDir(async (dir) => {
    Deno.writeFileSync(`${dir}/test.mmdb`, mmdb(DATABASE));
    const geo = await GeoDatabase.open(`${dir}/test.mmdb`);
    assert.deepEqual(geo.lookup("192.0.2.77"), {
      country: "DE",
      asNumber: 64500,
      asOrganization: "Example Net",
    });
    assert.deepEqual(geo.lookup("198.51.100.1"), {
      country: null,
      asNumber: 64501,
      asOrganization: null,
    });
    assert.deepEqual(geo.lookup("198.51.100.200"), {
      country: null,
      asNumber: null,
      asOrganization: null,
    });
    assert.deepEqual(geo.lookup("203.0.113.9").country, "FR");
    // An IPv6 address in an IPv4-only database, and garbage: nothing, no error.
    assert.deepEqual(geo.lookup("2001:db8::1").country, null);
    assert.deepEqual(geo.lookup("not an address").country, null);
    assert.deepEqual(geo.lookup("2001:db8:1:2::3"), {
      country: "NL",
      asNumber: 64502,
      asOrganization: null,
    });
    // Names: the database's where it has them, else the English name ICU knows, else the code.
    assert.equal(geo.lookup("100.64.0.1").country, "BA");
    assert.equal(geo.countryName("BA"), "Bosnia and Herzegovina");
    assert.equal(geo.countryName("NL"), "Netherlands");
    assert.equal(countryNameOf("DE"), "Germany");
    assert.equal(countryNameOf("not a code"), "not a code");
  });
});

Deno.test("report geoip: text that is not an IP address gets no country", async () => {
  const geo = await GeoDatabase.open(GEO_DATABASE);
  assert.equal(geo.lookup("1.2.3.4").country, "PL");
  // mmdb-lib reads these as 1.2.3.4 and 1.2.0.3.
  for (const text of ["1.2.3.4.5.6.7", "1.2.3", "1.2.3.4 ", "01.2.3.4x"]) {
    assert.deepEqual(geo.lookup(text), { country: null, asNumber: null, asOrganization: null });
  }
});

for (const opener of ["Deno", "libc"] as const) {
  Deno.test({
    name: `report geoip: only a regular file up to the size limit is read (${opener})`,
    ignore: opener === "libc" && Deno.build.os !== "linux",
    fn: () => onlyRegularFiles(opener),
  });
}

async function onlyRegularFiles(opener: "Deno" | "libc"): Promise<void> {
  const libc = opener === "libc" ? openLibc() : undefined;
  await withTempDir(async (dir) => {
    const expectError = async (path: string, pattern: RegExp) => {
      await assert.rejects(GeoDatabase.open(path, { libc }), (error: Error) => {
        assert.match(error.message, pattern);
        return true;
      });
    };
    const notRegular = /^Cannot read GeoIP database "[^"]+": not a regular file$/;
    await expectError("/dev/zero", notRegular);
    await expectError(dir, /^Cannot read GeoIP database "[^"]+": is a directory$/);
    // A FIFO without a writer: opening it would block; it is refused before.
    const fifo = `${dir}/fifo`;
    const mkfifo = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    assert.ok(mkfifo.success);
    await expectError(fifo, notRegular);
    // A symbolic link to a FIFO too.
    Deno.symlinkSync(fifo, `${dir}/link`);
    await expectError(`${dir}/link`, notRegular);
    // A sparse file one byte over the limit: refused before it is read.
    const large = `${dir}/large.mmdb`;
    Deno.writeFileSync(large, new Uint8Array());
    Deno.truncateSync(large, GEOIP_MAX_BYTES + 1);
    await expectError(
      large,
      new RegExp(`: larger than ${GEOIP_MAX_BYTES / 1024 / 1024} MiB$`),
    );
    await expectError(
      `${dir}/missing.mmdb`,
      /^Cannot read GeoIP database "[^"]+": no such file or directory$/,
    );
    // A regular file reads.
    Deno.writeFileSync(`${dir}/test.mmdb`, mmdb(DATABASE));
    const geo = await GeoDatabase.open(`${dir}/test.mmdb`, { libc });
    assert.equal(geo.lookup("192.0.2.1").country, "DE");
  });
}

Deno.test("report geoip: AS numbers and organisations in the tables", async () => {
  await withTempDir(async (dir) => {
    Deno.writeFileSync(`${dir}/test.mmdb`, mmdb(DATABASE));
    const t0 = Date.UTC(2026, 10, 25, 8);
    const log = textLine(t0, "192.0.2.1", 22) + textLine(t0 + 1, "192.0.2.2", 22) +
      textLine(t0 + 2, "192.0.2.1", 23) + textLine(t0 + 3, "198.51.100.7", 22) +
      textLine(t0 + 4, "203.0.113.9", 22) + textLine(t0 + 5, "2001:db8::1", 22);
    const json = JSON.parse(
      await runReport(["--geoip", `${dir}/test.mmdb`, "--format", "json"], log),
    ) as JsonReport;
    assert.deepEqual(json.autonomous_systems, [
      { as_number: 64500, as_organization: "Example Net", connections: 3, sources: 2 },
      { as_number: 64501, as_organization: null, connections: 1, sources: 1 },
    ]);
    assert.deepEqual(json.countries, [
      { country: "DE", connections: 3, sources: 2 },
      { country: "FR", connections: 1, sources: 1 },
    ]);
    assert.deepEqual(
      json.networks.top.map((row) => [row.network, row.country, row.as_number]),
      [
        ["192.0.2.0/24", "DE", 64500],
        ["198.51.100.0/24", null, 64501],
        ["2001:db8::/48", null, null],
        ["203.0.113.0/24", "FR", null],
      ],
    );
    const text = await runReport(["--geoip", `${dir}/test.mmdb`], log);
    assert.match(text, /^ {2}192\.0\.2\.1 +2 +.* +22,23 +DE +AS64500 Example Net$/m);
    assert.match(text, /^ {2}198\.51\.100\.7 +1 +.* +22 +- +AS64501$/m);
    assert.match(text, /^Autonomous systems$/m);
    assert.match(text, /^ {2}AS64500 Example Net +3 +2$/m);
  });
});
