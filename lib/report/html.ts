/**
 * The report as one self-contained HTML page: inline CSS and SVG charts, no script, no font or
 * image from anywhere (a Content-Security-Policy forbids every request). Its tables fit the
 * page: narrower screens show fewer columns (CSS media queries), a phone the address, the
 * connections, the ports and the country.
 */
import type { Bucket, SourceRow, Summary } from "./stats.ts";
import {
  asText,
  bucketLabel,
  countOf,
  formatCount,
  formatPorts,
  linesText,
  maxConnections,
  type SourceColumn,
  sourceColumns,
  zoneLabel,
} from "./table.ts";

/** Width of one bar of the chart over time in SVG units (the chart stretches to the page). */
const BUCKET_WIDTH = 10;
/** Height of the charts' SVG coordinate system; CSS sets the size on the page. */
const CHART_UNITS = 100;
/** Ports listed in a cell of the HTML tables (all of them in its tooltip): one line at 1200 px. */
const HTML_PORTS_SHOWN = 4;
/** Ports listed in a cell on a phone. */
const PHONE_PORTS_SHOWN = 1;
/** What an empty cell shows (no country, no AS). */
const NONE = "–";

/** Options of {@linkcode formatHtmlReport}. */
export interface HtmlReportOptions {
  /** The name of an ISO country code (`NL`: `Netherlands`); without it, the code. */
  countryName?: (code: string) => string;
}

const ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/** `text` safe in HTML text and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => ESCAPES[char]);
}

const STYLE = `
:root { color-scheme: light dark; --bg: #f6f7f9; --card: #fff; --text: #1d2430; --muted: #5f6b7a;
  --line: #e3e7ec; --accent: #2563eb; --accent2: #93b4f5; }
@media (prefers-color-scheme: dark) { :root { --bg: #11151b; --card: #1a2029; --text: #e6e9ee;
  --muted: #98a2b0; --line: #2b333f; --accent: #5b8ef5; --accent2: #30508f; } }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text); line-height: 1.45;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
main { max-width: 1200px; margin: 0 auto; padding: 20px 14px 40px; }
h1 { font-size: 1.5rem; margin: 0 0 4px; }
h2 { font-size: 1.1rem; margin: 0 0 12px; }
.period { color: var(--muted); margin: 0 0 18px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(140px, 1fr)); gap: 12px;
  margin-bottom: 16px; }
.card, section { background: var(--card); border: 1px solid var(--line); border-radius: 10px; }
.card { padding: 12px 14px; }
.card b { display: block; font-size: 1.6rem; font-variant-numeric: tabular-nums; }
.card span { color: var(--muted); font-size: .85rem; }
section { padding: 16px; margin-bottom: 16px; }
svg { display: block; }
svg .bar { fill: var(--accent); }
svg .grid { stroke: var(--line); stroke-width: 1; }
.chart { display: grid; grid-template-columns: auto 1fr; column-gap: 8px; }
.chart svg { width: 100%; height: 220px; }
.y-axis { display: flex; flex-direction: column; justify-content: space-between; text-align: right;
  color: var(--muted); font-size: .75rem; line-height: 1; font-variant-numeric: tabular-nums; }
.x-axis { grid-column: 2; display: flex; justify-content: space-between; gap: 8px;
  color: var(--muted); font-size: .75rem; margin-top: 6px; }
.hbar { display: grid; grid-template-columns: 4.5em 1fr 5em; align-items: center; gap: 10px;
  margin: 6px 0; font-variant-numeric: tabular-nums; }
.hbar .key { text-align: right; font-weight: 600; }
.hbar .value { color: var(--muted); font-size: .85rem; }
.hbar svg { width: 100%; height: 18px; }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; }
table { border-collapse: collapse; width: 100%; font-size: .85rem; white-space: nowrap; }
th, td { padding: 6px 8px; text-align: left; border-bottom: 1px solid var(--line); }
th { color: var(--muted); font-weight: 600; font-size: .72rem; text-transform: uppercase;
  letter-spacing: .03em; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
td.c-name { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .8rem; }
td.c-first, td.c-last { font-variant-numeric: tabular-nums; }
td.c-country, td.c-as { max-width: 9em; overflow: hidden; text-overflow: ellipsis; }
.short { display: none; }
table.narrow { width: auto; min-width: min(100%, 420px); }
table.narrow td:first-child { white-space: normal; }
tr:last-child td { border-bottom: 0; }
.note { color: var(--muted); font-size: .85rem; margin: 8px 0 0; }
footer { color: var(--muted); font-size: .85rem; text-align: center; }
@media (max-width: 1180px) { .c-as { display: none; } }
@media (max-width: 1060px) {
  .c-first { display: none; }
  td.c-name { white-space: normal; overflow-wrap: anywhere; }
}
@media (max-width: 800px) { td.c-ports { white-space: normal; } }
@media (max-width: 600px) {
  .chart svg { height: 160px; }
  .card b { font-size: 1.3rem; }
  section { padding: 12px; }
  main { padding: 16px 10px 32px; }
  .c-sources, .c-last { display: none; }
  th, td { padding: 6px 5px; }
  th { font-size: .66rem; letter-spacing: 0; }
  td.c-name { min-width: 15ch; }
  td.c-ports { white-space: nowrap; }
  td .long { display: none; }
  td .short { display: inline; }
}
`;

/** A figure and its noun (`connections`, or `connection` for 1). */
function card(value: number, noun: string): string {
  const label = countOf(value, noun).slice(formatCount(value).length + 1);
  return `<div class="card"><b>${formatCount(value)}</b><span>${escapeHtml(label)}</span></div>`;
}

/**
 * A bar chart of connections over time: the bars in inline SVG stretched to the width of the
 * page, the axis labels in HTML, so that they stay readable on a phone.
 */
function timelineChart(summary: Summary): string {
  const buckets: Bucket[] = summary.buckets;
  const max = maxConnections(buckets);
  const width = buckets.length * BUCKET_WIDTH;
  const gap = buckets.length > 200 ? 0 : BUCKET_WIDTH * 0.15;
  const label = (ms: number) => bucketLabel(summary.zone, { unit: summary.unit, start: ms });
  const parts: string[] = [];
  for (const fraction of [0, 0.5, 1]) {
    const y = CHART_UNITS * (1 - fraction);
    parts.push(
      `<line class="grid" x1="0" x2="${width}" y1="${y}" y2="${y}" ` +
        `vector-effect="non-scaling-stroke"/>`,
    );
  }
  buckets.forEach((bucket, i) => {
    if (bucket.connections === 0) return;
    const height = Math.max(0.5, bucket.connections / max * CHART_UNITS);
    parts.push(
      `<rect class="bar" x="${i * BUCKET_WIDTH + gap / 2}" y="${
        (CHART_UNITS - height).toFixed(2)
      }" width="${BUCKET_WIDTH - gap}" height="${height.toFixed(2)}">` +
        `<title>${escapeHtml(label(bucket.start))}: ${
          formatCount(bucket.connections)
        }</title></rect>`,
    );
  });
  const first = buckets[0].start;
  const middle = buckets[Math.floor((buckets.length - 1) / 2)].start;
  const last = buckets[buckets.length - 1].start;
  const ticks = buckets.length < 3 ? [first, last] : [first, middle, last];
  return `<div class="chart"><div class="y-axis"><span>${formatCount(max)}</span><span>${
    formatCount(Math.round(max / 2))
  }</span><span>0</span></div>` +
    `<svg id="timeline" viewBox="0 0 ${width} ${CHART_UNITS}" preserveAspectRatio="none" ` +
    `role="img" aria-label="Connections per ${summary.unit}">${parts.join("")}</svg>` +
    `<div class="x-axis">${
      [...new Set(ticks)].map((ms) => `<span>${escapeHtml(label(ms))}</span>`).join("")
    }</div></div>`;
}

/** Connections per port: one row each, the bar in inline SVG, the numbers in HTML. */
function portsChart(summary: Summary): string {
  const max = maxConnections(summary.ports);
  const rows = summary.ports.map((row) => {
    const width = Math.max(0.5, row.connections / max * CHART_UNITS).toFixed(2);
    return `<div class="hbar"><span class="key">${row.port}</span>` +
      `<svg viewBox="0 0 ${CHART_UNITS} 10" preserveAspectRatio="none" role="img" ` +
      `aria-label="port ${row.port}: ${formatCount(row.connections)}">` +
      `<rect class="bar port" width="${width}" height="10"/></svg>` +
      `<span class="value">${formatCount(row.connections)}</span></div>`;
  });
  return `<div id="ports-chart">${rows.join("")}</div>`;
}

/**
 * A cell of the sources or networks table. Times are to the minute (the second is in their
 * tooltip and `datetime`); ports, country and AS give in a tooltip what the cell cannot show.
 */
function sourceCell(
  column: SourceColumn,
  row: SourceRow,
  options: { summary: Summary; countryName: (code: string) => string },
): string {
  const { summary, countryName } = options;
  const classes = `c-${column.key}${column.right ? " n" : ""}`;
  switch (column.key) {
    case "first":
    case "last": {
      const ms = column.key === "first" ? row.first : row.last;
      const text = summary.zone.dateTime(ms);
      return `<td class="${classes}"><time datetime="${summary.zone.rfc3339(ms)}" title="${text}">${
        text.slice(0, -3)
      }</time></td>`;
    }
    case "ports":
      return `<td class="${classes}" title="${row.ports.join(", ")}"><span class="long">${
        formatPorts(row.ports, { shown: HTML_PORTS_SHOWN, separator: ", " })
      }</span><span class="short">${
        formatPorts(row.ports, { shown: PHONE_PORTS_SHOWN, separator: ", " })
      }</span></td>`;
    case "country": {
      if (row.country === null) return `<td class="${classes}">${NONE}</td>`;
      const code = escapeHtml(row.country);
      const name = escapeHtml(countryName(row.country));
      return `<td class="${classes}" title="${name} (${code})"><span class="long">${name}</span>` +
        `<span class="short">${code}</span></td>`;
    }
    default: {
      const text = escapeHtml(column.text(row) ?? NONE);
      return `<td class="${classes}"${column.key === "as" ? ` title="${text}"` : ""}>${text}</td>`;
    }
  }
}

function sourceTable(
  summary: Summary,
  options: {
    rows: SourceRow[];
    networks: boolean;
    id: string;
    countryName: (code: string) => string;
  },
): string {
  const { rows, networks, id, countryName } = options;
  const columns = sourceColumns(summary, { networks });
  const head = columns.map((column) =>
    `<th class="c-${column.key}${column.right ? " n" : ""}">${escapeHtml(column.header)}</th>`
  ).join("");
  const cell = { summary, countryName };
  const body = rows.map((row) =>
    "<tr>" + columns.map((column) => sourceCell(column, row, cell)).join("") + "</tr>"
  ).join("\n");
  return `<div class="scroll"><table id="${id}"><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table></div>`;
}

function simpleTable(id: string, table: { headers: string[]; rows: string[][] }): string {
  const { headers, rows } = table;
  const head = headers.map((header, i) => `<th${i > 0 ? ' class="n"' : ""}>${header}</th>`).join(
    "",
  );
  const body = rows.map((row) =>
    "<tr>" +
    row.map((cell, i) => `<td${i > 0 ? ' class="n"' : ""}>${escapeHtml(cell)}</td>`).join("") +
    "</tr>"
  ).join("\n");
  return `<div class="scroll"><table id="${id}" class="narrow"><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table></div>`;
}

/** The HTML page of `summary`. */
export function formatHtmlReport(summary: Summary, options: HtmlReportOptions = {}): string {
  const { countryName = (code: string) => code } = options;
  const zone = summary.zone;
  const period = summary.first === null || summary.last === null
    ? "No connections"
    : `${zone.dateTime(summary.first)} to ${zone.dateTime(summary.last)}`;
  const selected = summary.since !== null || summary.until !== null
    ? ` · selected from ${summary.since === null ? "the start" : zone.dateTime(summary.since)} ` +
      `until ${summary.until === null ? "the end" : zone.dateTime(summary.until)}`
    : "";
  const sections: string[] = [];
  if (summary.connections > 0) {
    const more = summary.portCount - summary.ports.length;
    sections.push(
      `<section><h2>Connections per ${summary.unit}</h2>${timelineChart(summary)}</section>`,
      `<section><h2>Ports</h2>${portsChart(summary)}${
        more > 0 ? `<p class="note">and ${countOf(more, "more port")}</p>` : ""
      }</section>`,
      `<section><h2>Top sources</h2>${
        sourceTable(summary, {
          rows: summary.topSources,
          networks: false,
          id: "sources",
          countryName,
        })
      }</section>`,
      `<section><h2>Top networks <small>(/24 IPv4, /48 IPv6)</small></h2>${
        sourceTable(summary, {
          rows: summary.topNetworks,
          networks: true,
          id: "networks",
          countryName,
        })
      }</section>`,
    );
    if (summary.countries !== null && summary.countries.length > 0) {
      sections.push(
        `<section><h2>Countries</h2>${
          simpleTable(
            "countries",
            {
              headers: ["Country", "Connections", "Sources"],
              rows: summary.countries.map((row) => [
                `${countryName(row.country)} (${row.country})`,
                formatCount(row.connections),
                formatCount(row.sources),
              ]),
            },
          )
        }</section>`,
      );
    }
    if (summary.autonomousSystems !== null) {
      sections.push(
        `<section><h2>Autonomous systems</h2>${
          simpleTable(
            "autonomous-systems",
            {
              headers: ["AS", "Connections", "Sources"],
              rows: summary.autonomousSystems.map((row) => [
                asText(row.asNumber, row.asOrganization) ?? NONE,
                formatCount(row.connections),
                formatCount(row.sources),
              ]),
            },
          )
        }</section>`,
      );
    }
  }
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>net-bouncer report</title>
<style>${STYLE}</style>
</head>
<body>
<main>
<h1>net-bouncer report</h1>
<p class="period">${escapeHtml(period)} (${escapeHtml(zoneLabel(zone))})${escapeHtml(selected)}</p>
<div class="cards">${card(summary.connections, "connection")}${card(summary.sources, "source")}${
    card(summary.networkCount, "network")
  }${card(summary.portCount, "port")}</div>
${sections.join("\n")}
<footer>${escapeHtml(linesText(summary))}</footer>
</main>
</body>
</html>
`;
}
