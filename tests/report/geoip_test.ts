/**
 * `--geoip` with autonomous system data: a tiny MaxMind-format database written here (the npm
 * database the other tests use has countries only), read through mmdb-lib like any other.
 */
import assert from "node:assert/strict";
import { report } from "../../lib/report/report.ts";
import { GeoDatabase } from "../../lib/report/geoip.ts";
import type { JsonReport } from "../../lib/report/json.ts";
import { withTempDir } from "../_util.ts";

type Value = string | number | Value[] | { [key: string]: Value };

const encoder = new TextEncoder();

/** The control bytes of a field of `type` (MaxMind DB format 2.0) and `size` (below 285). */
function control(type: number, size: number): number[] {
  // Sizes from 29 take one more byte after the type bytes: size - 29.
  const [bits, extra] = size < 29 ? [size, []] : [29, [size - 29]];
  const head = type <= 7 ? [(type << 5) | bits] : [bits, type - 7];
  return [...head, ...extra];
}

/** A value in the MaxMind DB data format: strings, uint32, arrays and maps. */
function encode(value: Value): number[] {
  if (typeof value === "string") {
    const bytes = [...encoder.encode(value)];
    return [...control(2, bytes.length), ...bytes];
  }
  if (typeof value === "number") {
    const bytes: number[] = [];
    for (let rest = value; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest % 256);
    return [...control(6, bytes.length), ...bytes];
  }
  if (Array.isArray(value)) return [...control(11, value.length), ...value.flatMap(encode)];
  const entries = Object.entries(value);
  return [
    ...control(7, entries.length),
    ...entries.flatMap(([k, v]) => [...encode(k), ...encode(v)]),
  ];
}

/** An IPv4 MaxMind DB (24-bit records) mapping each `a.b.c.d/len` to its record. */
function mmdb(networks: Record<string, Value>): Uint8Array {
  // Nodes of a binary trie; a record is a node index, a data offset, or empty.
  type Slot = { node: number } | { data: number } | null;
  const nodes: [Slot, Slot][] = [[null, null]];
  const data: number[] = [];
  for (const [cidr, record] of Object.entries(networks)) {
    const [address, length] = cidr.split("/");
    const bits = address.split(".").reduce((sum, octet) => sum * 256 + Number(octet), 0);
    const offset = data.length;
    data.push(...encode(record));
    let node = 0;
    for (let depth = 0; depth < Number(length); depth++) {
      const bit = Math.floor(bits / 2 ** (31 - depth)) % 2;
      if (depth === Number(length) - 1) {
        nodes[node][bit] = { data: offset };
      } else {
        const next = nodes[node][bit];
        if (next !== null && "node" in next) {
          node = next.node;
        } else {
          nodes.push([null, null]);
          nodes[node][bit] = { node: nodes.length - 1 };
          node = nodes.length - 1;
        }
      }
    }
  }
  const count = nodes.length;
  const value = (slot: Slot) =>
    slot === null ? count : "node" in slot ? slot.node : count + 16 + slot.data;
  const tree = nodes.flatMap(([left, right]) =>
    [value(left), value(right)].flatMap((v) => [(v >> 16) & 255, (v >> 8) & 255, v & 255])
  );
  const metadata = encode({
    binary_format_major_version: 2,
    binary_format_minor_version: 0,
    build_epoch: 1_700_000_000,
    database_type: "Test-Country-ASN",
    description: { en: "net-bouncer test database" },
    ip_version: 4,
    languages: ["en"],
    node_count: count,
    record_size: 24,
  });
  const marker = [0xab, 0xcd, 0xef, ...encoder.encode("MaxMind.com")];
  return new Uint8Array([...tree, ...new Array(16).fill(0), ...data, ...marker, ...metadata]);
}

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
};

Deno.test("report geoip: the test database reads back through mmdb-lib", async () => {
  await withTempDir((dir) => {
    Deno.writeFileSync(`${dir}/test.mmdb`, mmdb(DATABASE));
    const geo = GeoDatabase.open(`${dir}/test.mmdb`);
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
    return Promise.resolve();
  });
});

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
