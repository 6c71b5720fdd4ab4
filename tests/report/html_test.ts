/**
 * The HTML report opened in a real headless Chromium (Debian's `chromium`): the page makes no
 * network request (Chromium's NetLog shows none; a control page shows that it would), the charts
 * and tables are in the DOM, screenshots at desktop and phone widths are not blank, and the
 * tables fit the page at 1200 and 390 px (measured in the page by a script added to a copy).
 */
import assert from "node:assert/strict";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import geoPackage from "@ip-location-db/geo-whois-asn-country-mmdb/package.json" with {
  type: "json",
};
import { formatHtmlReport } from "../../lib/report/html.ts";
import { report } from "../../lib/report/report.ts";
import { ConnectionStats, summarize } from "../../lib/report/stats.ts";
import { formatTextReport } from "../../lib/report/text.ts";
import { Zone } from "../../lib/report/zone.ts";
import { needsTools, run, withTempDir } from "../_util.ts";
import { mmdb } from "./_mmdb.ts";

const GEO_DATABASE = `${
  dirname(fileURLToPath(import.meta.resolve(`${geoPackage.name}/package.json`)))
}/geo-whois-asn-country.mmdb`;
/** Chromium gets this long for each run. */
const CHROMIUM_TIMEOUT_MS = 60_000;
const T0 = Date.UTC(2026, 10, 23, 6);
const HOUR = 3_600_000;

/** A two-day log: hourly chart; several sources, networks, ports and countries. */
function sampleLog(): { log: string; hours: Set<number> } {
  const sources = [
    "193.0.6.139",
    "8.8.8.8",
    "81.169.145.1",
    "2001:67c:2e8::1",
    "1.1.1.1",
    "203.0.113.5",
  ];
  const ports = [22, 23, 2323, 3389];
  let log = "";
  const hours = new Set<number>();
  for (let i = 0; i < 400; i++) {
    // Hours 0-47 with a gap at hours 10-13 (empty buckets draw no bar).
    let hour = (i * 7) % 48;
    if (hour >= 10 && hour <= 13) hour += 4;
    hours.add(hour);
    const iso = new Date(T0 + hour * HOUR + i * 1000).toISOString();
    log += `${iso.slice(0, 10)} ${iso.slice(11, 23)} [INFO] Connection from ${
      sources[i % sources.length]
    } on port ${ports[(i * 3) % ports.length]}\n`;
  }
  return { log, hours };
}

async function htmlReport(log: string, database = GEO_DATABASE): Promise<string> {
  let html = "";
  const code = await report(["--format", "html", "--geoip", database], {
    stdout: (text) => {
      html += text;
    },
    stderr: (text) => {
      throw new Error(`unexpected stderr: ${text}`);
    },
    stdin: ReadableStream.from([new TextEncoder().encode(log)]),
    isTerminal: { stdout: false, stderr: false },
    noColor: true,
    now: () => T0,
    timeZone: "UTC",
  });
  assert.equal(code, 0);
  return html;
}

/**
 * A TCP listener that closes every connection: Chromium's proxy, so that nothing it sends leaves
 * the machine (Chromium's own background services still try: update checks, network time).
 */
function deadEndProxy(): { url: string; close: () => void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  (async () => {
    for await (const conn of listener) conn.close();
  })().catch(() => {});
  return {
    url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    close: () => listener.close(),
  };
}

/**
 * Runs Chromium on `url`; returns its result and the URLs that the page requested, from its
 * NetLog: a page's requests name the page's origin as initiator ("null" for a file: page), the
 * browser's own background requests have none ("not an origin").
 */
async function chromium(dir: string, url: string, args: string[]) {
  const proxy = deadEndProxy();
  const netLog = `${dir}/netlog-${crypto.randomUUID()}.json`;
  try {
    const result = await run("chromium", [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-dev-shm-usage",
      "--no-first-run",
      "--hide-scrollbars",
      `--user-data-dir=${dir}/profile`,
      // Every request, loopback included, goes to the dead-end proxy.
      `--proxy-server=${proxy.url}`,
      "--proxy-bypass-list=<-loopback>",
      `--log-net-log=${netLog}`,
      ...args,
      url,
    ], { timeoutMs: CHROMIUM_TIMEOUT_MS });
    return { ...result, pageRequests: pageRequests(Deno.readTextFileSync(netLog)) };
  } finally {
    proxy.close();
  }
}

interface NetLog {
  constants: { logEventTypes: Record<string, number> };
  events: { type: number; params?: { url?: string; initiator?: string } }[];
}

/** The URLs of requests that a page started, from a NetLog. */
function pageRequests(text: string): string[] {
  // A NetLog cut by an abrupt exit lacks its closing brackets.
  const log: NetLog = JSON.parse(
    text.trimEnd().endsWith("}") ? text : `${text.replace(/,\s*$/, "")}]}`,
  );
  const start = log.constants.logEventTypes.URL_REQUEST_START_JOB;
  return log.events.filter((event) =>
    event.type === start && event.params?.url !== undefined &&
    event.params.initiator !== "not an origin"
  ).map((event) => event.params!.url!);
}

/** Width, height and RGBA pixels of an 8-bit RGB or RGBA PNG. */
async function decodePng(
  bytes: Uint8Array,
): Promise<{ width: number; height: number; rgba: Uint8Array }> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let width = 0, height = 0, channels = 0;
  const idat: Uint8Array<ArrayBuffer>[] = [];
  for (let at = 8; at < bytes.length;) {
    const length = view.getUint32(at);
    const type = new TextDecoder().decode(bytes.subarray(at + 4, at + 8));
    const data = bytes.subarray(at + 8, at + 8 + length);
    if (type === "IHDR") {
      width = view.getUint32(at + 8);
      height = view.getUint32(at + 12);
      assert.equal(data[8], 8, "bit depth");
      assert.ok(data[9] === 2 || data[9] === 6, `colour type ${data[9]}`);
      channels = data[9] === 6 ? 4 : 3;
    } else if (type === "IDAT") {
      idat.push(data.slice());
    }
    at += 12 + length;
  }
  const raw = new Uint8Array(
    await new Response(ReadableStream.from(idat).pipeThrough(new DecompressionStream("deflate")))
      .arrayBuffer(),
  );
  const stride = width * channels;
  const pixels = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const out = pixels.subarray(y * stride, (y + 1) * stride);
    const prior = y > 0 ? pixels.subarray((y - 1) * stride, y * stride) : new Uint8Array(stride);
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? out[x - channels] : 0;
      const b = prior[x];
      const c = x >= channels ? prior[x - channels] : 0;
      let predictor = 0;
      if (filter === 1) predictor = a;
      else if (filter === 2) predictor = b;
      else if (filter === 3) predictor = (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
        predictor = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      out[x] = (line[x] + predictor) & 255;
    }
  }
  const rgba = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    rgba.set(pixels.subarray(i * channels, i * channels + 3), i * 4);
    rgba[i * 4 + 3] = channels === 4 ? pixels[i * channels + 3] : 255;
  }
  return { width, height, rgba };
}

/** Distinct colours and the share of pixels unlike the page background (the corner pixel). */
function inkOf(png: { width: number; height: number; rgba: Uint8Array }) {
  const colours = new Set<number>();
  const view = new DataView(png.rgba.buffer);
  const background = view.getUint32(0);
  let ink = 0;
  for (let i = 0; i < png.width * png.height; i++) {
    const pixel = view.getUint32(i * 4);
    colours.add(pixel);
    if (pixel !== background) ink++;
  }
  return { colours: colours.size, share: ink / (png.width * png.height) };
}

Deno.test("report html: self-contained, nothing that could load from the network", async () => {
  const html = await htmlReport(sampleLog().log);
  assert.match(html, /^<!DOCTYPE html>/);
  assert.ok(html.includes(`content="default-src 'none'; style-src 'unsafe-inline'"`));
  assert.ok(html.includes('<meta name="viewport" content="width=device-width, initial-scale=1">'));
  for (
    const forbidden of [/<script/i, /https?:/i, /url\(/i, /@import/i, /<link/i, /<img/i, /src=/i]
  ) {
    assert.doesNotMatch(html, forbidden);
  }
});

Deno.test({
  name: "report html: Chromium renders charts and tables, requests nothing, screenshots not blank",
  ignore: needsTools("chromium"),
  async fn() {
    await withTempDir(async (dir) => {
      const { log, hours } = sampleLog();
      const page = `${dir}/report.html`;
      Deno.writeTextFileSync(page, await htmlReport(log));
      const url = `file://${page}`;
      // The detection works: a page with an image and a style sheet from the network.
      Deno.writeTextFileSync(
        `${dir}/control.html`,
        '<!DOCTYPE html><img src="http://192.0.2.1/x.png"><link rel="stylesheet" href="https://192.0.2.1/a.css">',
      );
      const control = await chromium(dir, `file://${dir}/control.html`, ["--dump-dom"]);
      assert.deepEqual(control.pageRequests.sort(), [
        "http://192.0.2.1/x.png",
        "https://192.0.2.1/a.css",
      ]);

      const dom = await chromium(dir, url, ["--dump-dom"]);
      assert.equal(dom.code, 0, dom.stderr);
      assert.deepEqual(dom.pageRequests, [], "the report page made network requests");
      const html = dom.stdout;
      // The chart over time: 48 hourly buckets, a bar for each hour with connections.
      const timeline = /<svg id="timeline"[^]*?<\/svg>/.exec(html)?.[0] ?? "";
      assert.equal((timeline.match(/<rect class="bar"/g) ?? []).length, hours.size);
      assert.match(html, /<div class="x-axis"><span>2026-11-23 06:00<\/span>/);
      assert.match(timeline, /aria-label="Connections per hour"/);
      assert.equal((html.match(/<rect class="bar port"/g) ?? []).length, 4);
      const rows = (id: string) => {
        const table = new RegExp(`<table id="${id}"[^]*?</table>`).exec(html)?.[0] ?? "";
        return (table.match(/<tr>/g) ?? []).length - 1; // less the header row
      };
      assert.equal(rows("sources"), 6);
      assert.equal(rows("networks"), 6);
      assert.equal(rows("countries"), 4); // NL, US, DE, AU (203.0.113.5 and 1.1.1.1: AU)
      assert.match(html, /<td class="c-name">193\.0\.6\.139<\/td>/);

      for (const [name, size] of [["desktop", "1200,1800"], ["phone", "390,1600"]]) {
        const file = `${dir}/${name}.png`;
        const shot = await chromium(dir, url, [`--screenshot=${file}`, `--window-size=${size}`]);
        assert.equal(shot.code, 0, shot.stderr);
        assert.deepEqual(shot.pageRequests, []);
        const png = await decodePng(Deno.readFileSync(file));
        assert.deepEqual([png.width, png.height].join(","), size);
        const ink = inkOf(png);
        assert.ok(ink.colours > 50, `${name}: ${ink.colours} colours`);
        assert.ok(ink.share > 0.1, `${name}: ${(ink.share * 100).toFixed(1)}% ink`);
        if (Deno.env.get("REPORT_SCREENSHOTS")) {
          Deno.copyFileSync(file, `${Deno.env.get("REPORT_SCREENSHOTS")}/${name}.png`);
        }
      }
    });
  },
});

/** Long AS names and country names, as GeoLite2 City plus ASN databases have them. */
const WIDE_DATABASE = {
  "192.0.2.0/24": {
    country: { iso_code: "BA", names: { en: "Bosnia and Herzegovina" } },
    autonomous_system_number: 4_200_000_000,
    autonomous_system_organization: "Example Networks International Transit and Hosting GmbH",
  },
  "198.51.100.0/24": {
    country: { iso_code: "GB", names: { en: "United Kingdom" } },
    autonomous_system_number: 64_501,
    autonomous_system_organization: "EXAMPLE-BACKBONE No.31,Example Street",
  },
  "2001:db8::/32": {
    country: { iso_code: "CD", names: { en: "Democratic Republic of the Congo" } },
    autonomous_system_number: 64_502,
    autonomous_system_organization: "Example Cloud Services LLC",
  },
};

/**
 * The widest tables a log gives: full-length IPv6 addresses, ten ports per source (five-digit
 * ones), long country and AS names, counts in the thousands, over two years.
 */
function wideLog(): string {
  const sources = [
    "2001:db8:85a3:1234:5678:8a2e:370:7334",
    "2001:db8:ffff:ffff:ffff:ffff:ffff:fffe",
    "2001:db8:abcd:1234:5678:9abc:def0:1234",
    "192.0.2.250",
    "198.51.100.177",
    "192.0.2.1",
  ];
  const ports = [22, 23, 80, 443, 2222, 2323, 3389, 5900, 49152, 65535];
  const start = Date.UTC(2025, 11, 30, 12);
  let log = "";
  for (let i = 0; i < 6000; i++) {
    const iso = new Date(start + i * 5 * 60_000).toISOString();
    log += `${iso.slice(0, 10)} ${iso.slice(11, 23)} [INFO] Connection from ${
      sources[i % sources.length]
    } on port ${ports[i % ports.length]}\n`;
  }
  return log;
}

/** The page widths the tables are measured at: desktop, laptop, tablet, phone. */
const WIDTHS = [1200, 1024, 768, 390];

/**
 * A page that shows the report unchanged in one frame per width of {@linkcode WIDTHS} (a
 * frame's media queries see its own width; Chromium's headless window is at least 500 px wide)
 * and, once they have loaded, measures their tables into `<pre id="measure">`, which Chromium's
 * --dump-dom prints. The report keeps its own Content-Security-Policy: the script is outside.
 */
function measuringPage(report: string): string {
  const frames = WIDTHS.map((width) =>
    `<iframe width="${width}" height="1600" style="border:0;display:block" srcdoc="${
      report.replaceAll("&", "&amp;").replaceAll('"', "&quot;")
    }"></iframe>`
  ).join("");
  return `<!DOCTYPE html><body style="margin:0">${frames}<script>
addEventListener("load", () => {
  const pages = [...document.querySelectorAll("iframe")].map((frame) => {
    const page = frame.contentDocument;
    const tables = [...page.querySelectorAll("table")].map((table) => {
      const box = table.parentElement;
      const visible = [...table.querySelectorAll("th")].filter((th) => th.offsetWidth > 0);
      const lines = (td) => {
        const range = page.createRange();
        range.selectNodeContents(td);
        return new Set([...range.getClientRects()].map((rect) => Math.round(rect.top))).size;
      };
      const right = box.getBoundingClientRect().right;
      return {
        id: table.id,
        boxWidth: box.clientWidth,
        scrollWidth: box.scrollWidth,
        columns: visible.map((th) => th.className.split(" ")[0] || th.textContent),
        widths: visible.map((th) => Math.round(th.getBoundingClientRect().width)),
        cutColumns: visible.filter((th) => th.getBoundingClientRect().right > right + 0.5)
          .map((th) => th.className),
        portLines: [...table.querySelectorAll("td.c-ports")].map(lines),
      };
    });
    return { width: frame.contentWindow.innerWidth, tables };
  });
  const pre = document.createElement("pre");
  pre.id = "measure";
  pre.textContent = JSON.stringify(pages);
  document.body.append(pre);
});
</script></body>`;
}

/** What {@linkcode measuringPage} finds in one frame. */
interface Measure {
  width: number;
  tables: {
    id: string;
    boxWidth: number;
    scrollWidth: number;
    columns: string[];
    widths: number[];
    cutColumns: string[];
    portLines: number[];
  }[];
}

Deno.test({
  name: "report html: the tables fit at 1200 px (country visible, ports on one line) and 390 px",
  ignore: needsTools("chromium"),
  async fn() {
    await withTempDir(async (dir) => {
      Deno.writeFileSync(`${dir}/wide.mmdb`, mmdb(WIDE_DATABASE));
      const html = await htmlReport(wideLog(), `${dir}/wide.mmdb`);
      const page = `${dir}/wide.html`;
      Deno.writeTextFileSync(page, html);
      Deno.writeTextFileSync(`${dir}/measure.html`, measuringPage(html));
      const dom = await chromium(dir, `file://${dir}/measure.html`, [
        "--dump-dom",
        "--window-size=1300,1600",
      ]);
      assert.equal(dom.code, 0, dom.stderr);
      assert.deepEqual(dom.pageRequests, [], "the report page made network requests");
      const text = /<pre id="measure">([^<]*)<\/pre>/.exec(dom.stdout)?.[1];
      assert.ok(text !== undefined, "the measuring script ran");
      const pages: Measure[] = JSON.parse(text.replaceAll("&quot;", '"').replaceAll("&amp;", "&"));
      assert.deepEqual(pages.map((page) => page.width), WIDTHS);
      const [desktop, laptop, tablet, phone] = pages;

      assert.deepEqual(desktop.tables.map((table) => table.id), [
        "sources",
        "networks",
        "countries",
        "autonomous-systems",
      ]);
      // No table wider than its box, no column cut, at any width; columns give way instead.
      for (const page of pages) {
        for (const table of page.tables) {
          const what = `${page.width} px: ${JSON.stringify(table)}`;
          assert.ok(table.scrollWidth <= table.boxWidth, what);
          assert.deepEqual(table.cutColumns, [], what);
        }
      }
      // At 1200 px every column, the ports on one line.
      const [sources, networks] = desktop.tables;
      const all = ["c-name", "c-connections", "c-first", "c-last", "c-ports", "c-country", "c-as"];
      assert.deepEqual(sources.columns, all);
      assert.deepEqual(networks.columns, [...all.slice(0, 2), "c-sources", ...all.slice(2)]);
      assert.equal(sources.portLines.length, 6);
      for (const table of [...desktop.tables, ...laptop.tables]) {
        assert.ok(table.portLines.every((lines) => lines === 1), `${table.id} ports`);
      }
      assert.ok(laptop.tables[0].columns.includes("c-country"));
      assert.ok(tablet.tables[0].columns.includes("c-country"));
      // On a phone, more than the address: the connections, the ports and the country.
      for (const table of phone.tables.slice(0, 2)) {
        assert.deepEqual(table.columns, ["c-name", "c-connections", "c-ports", "c-country"]);
        assert.ok(table.portLines.every((lines) => lines === 1), `390 px: ${table.id} ports`);
      }

      // Country names from the database, with the code on a phone and in the tooltip.
      assert.match(
        html,
        /<td class="c-country" title="Bosnia and Herzegovina \(BA\)"><span class="long">Bosnia and Herzegovina<\/span><span class="short">BA<\/span><\/td>/,
      );
      assert.match(html, /<td>United Kingdom \(GB\)<\/td>/);
      // All ports in the tooltip, four in the cell.
      assert.ok(html.includes('title="22, 80, 2222, 3389, 49152"'), "ports tooltip");
      assert.ok(
        html.includes(
          '<span class="long">22, 80, 2222, 3389 +1</span><span class="short">22 +4',
        ),
        "ports cell",
      );

      for (const [name, size] of [["wide-desktop", "1200,1800"], ["wide-phone", "390,1600"]]) {
        const file = `${dir}/${name}.png`;
        const shot = await chromium(dir, `file://${page}`, [
          `--screenshot=${file}`,
          `--window-size=${size}`,
        ]);
        assert.equal(shot.code, 0, shot.stderr);
        if (Deno.env.get("REPORT_SCREENSHOTS")) {
          Deno.copyFileSync(file, `${Deno.env.get("REPORT_SCREENSHOTS")}/${name}.png`);
        }
      }
    });
  },
});

Deno.test("report html and text: long timelines and tables do not exceed the call stack", () => {
  // A summary of a real count, then 300,000 days (Math.max(...) throws from about 120,000).
  const stats = new ConnectionStats();
  const t0 = Date.UTC(2026, 10, 25);
  for (let i = 0; i < 3; i++) stats.add(t0 + i * 86_400_000 * 4, `192.0.2.${i}`, 22);
  const counts = { lines: 4, connections: 3, otherEvents: 1, unreadable: 0, outOfRange: 0 };
  const summary = summarize(stats, counts, { zone: new Zone("UTC") });
  const buckets = Array.from({ length: 300_000 }, (_, i) => ({
    start: t0 + i * 86_400_000,
    connections: i % 7,
  }));
  const rows = Array.from(
    { length: 300_000 },
    (_, i) => ({ ...summary.topSources[0], name: `${i}` }),
  );
  const long = { ...summary, buckets, topSources: rows };
  const html = formatHtmlReport(long);
  const bars = buckets.filter((bucket) => bucket.connections > 0).length;
  assert.equal((html.match(/<rect class="bar"/g) ?? []).length, bars);
  assert.ok(formatTextReport(long, { color: false }).includes("Connections per"));
  // "1 other event", not "1 other events".
  assert.ok(html.includes("4 lines read; skipped: 1 other event, 0 unreadable"), "footer");
});
