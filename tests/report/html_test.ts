/**
 * The HTML report opened in a real headless Chromium (Debian's `chromium`): the page makes no
 * network request (Chromium's NetLog shows none; a control page shows that it would), the charts
 * and tables are in the DOM, and screenshots at desktop and phone widths are not blank.
 */
import assert from "node:assert/strict";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import geoPackage from "@ip-location-db/geo-whois-asn-country-mmdb/package.json" with {
  type: "json",
};
import { report } from "../../lib/report/report.ts";
import { needsTools, run, withTempDir } from "../_util.ts";

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

async function htmlReport(log: string): Promise<string> {
  let html = "";
  const code = await report(["--format", "html", "--geoip", GEO_DATABASE], {
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
