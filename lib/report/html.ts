/**
 * The report as one self-contained HTML page: inline CSS and SVG charts, no script, no font or
 * image from anywhere (a Content-Security-Policy forbids every request), readable on a phone.
 */
import type { Bucket, SourceRow, Summary } from "./stats.ts";
import { formatCount, formatPorts } from "./text.ts";

/** Width of one bar of the chart over time in SVG units (the chart stretches to the page). */
const BUCKET_WIDTH = 10;
/** Height of the charts' SVG coordinate system; CSS sets the size on the page. */
const CHART_UNITS = 100;

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
main { max-width: 1040px; margin: 0 auto; padding: 20px 14px 40px; }
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
@media (max-width: 600px) { .chart svg { height: 160px; } }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; white-space: nowrap; }
th, td { padding: 6px 10px; text-align: left; border-bottom: 1px solid var(--line); }
th { color: var(--muted); font-weight: 600; font-size: .78rem; text-transform: uppercase;
  letter-spacing: .03em; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
td.addr { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .85rem; }
td.ports { white-space: normal; min-width: 8em; }
table.narrow { width: auto; min-width: min(100%, 420px); }
tr:last-child td { border-bottom: 0; }
.note { color: var(--muted); font-size: .85rem; margin: 8px 0 0; }
footer { color: var(--muted); font-size: .85rem; text-align: center; }
@media (max-width: 600px) { .card b { font-size: 1.3rem; } section { padding: 12px; } }
`;

function card(value: number, label: string): string {
  return `<div class="card"><b>${formatCount(value)}</b><span>${escapeHtml(label)}</span></div>`;
}

/**
 * A bar chart of connections over time: the bars in inline SVG stretched to the width of the
 * page, the axis labels in HTML, so that they stay readable on a phone.
 */
function timelineChart(summary: Summary): string {
  const buckets: Bucket[] = summary.buckets;
  const max = Math.max(1, ...buckets.map((bucket) => bucket.connections));
  const width = buckets.length * BUCKET_WIDTH;
  const gap = buckets.length > 200 ? 0 : BUCKET_WIDTH * 0.15;
  const label = (ms: number) =>
    summary.unit === "hour"
      ? summary.zone.dateTime(ms).slice(0, 13) + ":00"
      : summary.zone.date(ms);
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
  const max = Math.max(1, ...summary.ports.map((row) => row.connections));
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

function sourceTable(
  summary: Summary,
  options: { rows: SourceRow[]; networks: boolean; id: string },
): string {
  const { rows, networks, id } = options;
  const country = summary.countries !== null;
  const as = summary.autonomousSystems !== null;
  const head = [
    `<th>${networks ? "Network" : "Address"}</th>`,
    `<th class="n">Connections</th>`,
    networks ? `<th class="n">Sources</th>` : "",
    "<th>First seen</th><th>Last seen</th><th>Ports</th>",
    country ? "<th>Country</th>" : "",
    as ? "<th>AS</th>" : "",
  ].join("");
  const body = rows.map((row) =>
    "<tr>" + [
      `<td class="addr">${escapeHtml(row.name)}</td>`,
      `<td class="n">${formatCount(row.connections)}</td>`,
      networks ? `<td class="n">${formatCount(row.sources)}</td>` : "",
      `<td>${summary.zone.dateTime(row.first)}</td>`,
      `<td>${summary.zone.dateTime(row.last)}</td>`,
      `<td class="ports" title="${row.ports.join(", ")}">${
        escapeHtml(formatPorts(row.ports).replaceAll(",", ", "))
      }</td>`,
      country ? `<td>${escapeHtml(row.country ?? "–")}</td>` : "",
      as ? `<td>${escapeHtml(asText(row.asNumber, row.asOrganization))}</td>` : "",
    ].join("") + "</tr>"
  ).join("\n");
  return `<div class="scroll"><table id="${id}"><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table></div>`;
}

function asText(asNumber: number | null, organization: string | null): string {
  if (asNumber === null) return "–";
  return organization === null ? `AS${asNumber}` : `AS${asNumber} ${organization}`;
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
export function formatHtmlReport(summary: Summary): string {
  const zone = summary.zone;
  const counts = summary.counts;
  const period = summary.first === null || summary.last === null
    ? "No connections"
    : `${zone.dateTime(summary.first)} to ${zone.dateTime(summary.last)}`;
  const selected = summary.since !== null || summary.until !== null
    ? ` · selected from ${summary.since === null ? "the start" : zone.dateTime(summary.since)} ` +
      `until ${summary.until === null ? "the end" : zone.dateTime(summary.until)}`
    : "";
  const sections: string[] = [];
  if (summary.connections > 0) {
    sections.push(
      `<section><h2>Connections per ${summary.unit}</h2>${timelineChart(summary)}</section>`,
      `<section><h2>Ports</h2>${portsChart(summary)}${
        summary.portCount > summary.ports.length
          ? `<p class="note">and ${
            formatCount(summary.portCount - summary.ports.length)
          } more ports</p>`
          : ""
      }</section>`,
      `<section><h2>Top sources</h2>${
        sourceTable(summary, { rows: summary.topSources, networks: false, id: "sources" })
      }</section>`,
      `<section><h2>Top networks <small>(/24 IPv4, /48 IPv6)</small></h2>${
        sourceTable(summary, { rows: summary.topNetworks, networks: true, id: "networks" })
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
                row.country,
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
                asText(row.asNumber, row.asOrganization),
                formatCount(row.connections),
                formatCount(row.sources),
              ]),
            },
          )
        }</section>`,
      );
    }
  }
  const skipped = `${formatCount(counts.lines)} lines read; skipped: ${
    formatCount(counts.otherEvents)
  } other events, ${formatCount(counts.unreadable)} unreadable${
    summary.since !== null || summary.until !== null
      ? `, ${formatCount(summary.outside)} outside the period`
      : ""
  }`;
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
<p class="period">${escapeHtml(period)} (${escapeHtml(zone.name)})${escapeHtml(selected)}</p>
<div class="cards">${card(summary.connections, "connections")}${card(summary.sources, "sources")}${
    card(summary.networkCount, "networks")
  }${card(summary.portCount, "ports")}</div>
${sections.join("\n")}
<footer>${escapeHtml(skipped)}</footer>
</main>
</body>
</html>
`;
}
