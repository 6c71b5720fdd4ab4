/** The report for a terminal: aligned tables and a bar chart of connections over time. */
import type { Bucket, SourceRow, Summary } from "./stats.ts";
import {
  asText,
  bucketLabel,
  countOf,
  formatCount,
  linesText,
  maxConnections,
  sourceColumns,
  zoneLabel,
} from "./table.ts";

/** Columns of the chart over time; longer timelines put several bars in one column. */
const CHART_COLUMNS = 72;
/** Rows of the chart over time. */
const CHART_ROWS = 8;
/** Width of the bars in the ports table. */
const PORT_BAR_WIDTH = 30;
const BLOCKS = [" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"];

/** ANSI styles, or none. */
interface Style {
  bold(text: string): string;
  dim(text: string): string;
  bar(text: string): string;
}

const PLAIN: Style = { bold: (t) => t, dim: (t) => t, bar: (t) => t };
const COLOR: Style = {
  bold: (t) => `\x1b[1m${t}\x1b[22m`,
  dim: (t) => `\x1b[2m${t}\x1b[22m`,
  bar: (t) => `\x1b[36m${t}\x1b[39m`,
};

/** A table: header, rows of cells, right-aligned columns, and text after each row. */
interface Table {
  headers: string[];
  rows: string[][];
  right: boolean[];
  tails?: string[];
}

/** Rows of cells aligned in columns. */
function table(style: Style, { headers, rows, right, tails = [] }: Table): string[] {
  // A loop, not Math.max(...rows): --top may ask for more rows than the call stack holds.
  const widths = headers.map((header) => header.length);
  for (const row of rows) {
    row.forEach((cell, column) => widths[column] = Math.max(widths[column], cell.length));
  }
  const line = (cells: string[]) =>
    "  " +
    cells.map((cell, column) =>
      right[column] ? cell.padStart(widths[column]) : cell.padEnd(widths[column])
    ).join("  ").trimEnd();
  return [
    style.dim(line(headers)),
    ...rows.map((row, i) => tails[i] ? `${line(row)}  ${tails[i]}` : line(row)),
  ];
}

function sourceTable(
  summary: Summary,
  options: { style: Style; rows: SourceRow[]; title: string; networks: boolean },
): string[] {
  const { style, rows } = options;
  const columns = sourceColumns(summary, { networks: options.networks });
  return [
    "",
    style.bold(options.title),
    ...table(style, {
      headers: columns.map((column) => column.header.toUpperCase()),
      rows: rows.map((row) => columns.map((column) => column.text(row) ?? "-")),
      right: columns.map((column) => column.right),
    }),
  ];
}

/** The chart over time: columns of eighth blocks, several bars per column when there are many. */
function chart(style: Style, summary: Summary): string[] {
  const buckets = summary.buckets;
  const perColumn = Math.ceil(buckets.length / CHART_COLUMNS);
  const columns: Bucket[] = [];
  for (let i = 0; i < buckets.length; i += perColumn) {
    const group = buckets.slice(i, i + perColumn);
    columns.push({
      start: group[0].start,
      connections: group.reduce((sum, bucket) => sum + bucket.connections, 0),
    });
  }
  const max = maxConnections(columns);
  const unit = summary.unit;
  const per = perColumn === 1 ? `per ${unit}` : `per ${perColumn} ${unit}s`;
  const lines = ["", style.bold(`Connections ${per}`)];
  const width = formatCount(max).length;
  // Few bars are drawn wider, up to three characters each.
  const barWidth = Math.max(1, Math.min(3, Math.floor(CHART_COLUMNS / columns.length)));
  for (let row = CHART_ROWS - 1; row >= 0; row--) {
    let text = "";
    for (const column of columns) {
      // Eighths of a row; a column with any connection shows at least one.
      const eighths = column.connections === 0
        ? 0
        : Math.max(1, Math.round(column.connections / max * CHART_ROWS * 8));
      text += BLOCKS[Math.min(8, Math.max(0, eighths - row * 8))].repeat(barWidth);
    }
    const axis = row === CHART_ROWS - 1 ? formatCount(max) : row === 0 ? "0" : "";
    lines.push(`  ${axis.padStart(width)} ${style.dim("│")}${style.bar(text.trimEnd())}`);
  }
  const label = (ms: number) => bucketLabel(summary.zone, { unit, start: ms });
  const firstLabel = label(columns[0].start);
  const lastLabel = label(columns[columns.length - 1].start);
  const pad = " ".repeat(width + 4);
  const gap = columns.length * barWidth - firstLabel.length - lastLabel.length;
  lines.push(
    style.dim(
      columns.length === 1
        ? `${pad}${firstLabel}`
        : gap >= 1
        ? `${pad}${firstLabel}${" ".repeat(gap)}${lastLabel}`
        : `${pad}${firstLabel} … ${lastLabel}`,
    ),
  );
  return lines;
}

/** The text report of `summary`; with `color`, ANSI styles. */
export function formatTextReport(summary: Summary, options: { color: boolean }): string {
  const style = options.color ? COLOR : PLAIN;
  const zone = summary.zone;
  // concat, not push(...rows): --top may ask for more rows than a call's arguments hold.
  let lines: string[] = [];
  const period = summary.first === null || summary.last === null
    ? "no connections"
    : `${zone.dateTime(summary.first)} to ${zone.dateTime(summary.last)}`;
  lines.push(`${style.bold("net-bouncer report")}  ${period} ${style.dim(`(${zoneLabel(zone)})`)}`);
  if (summary.since !== null || summary.until !== null) {
    const since = summary.since === null ? "the start" : zone.dateTime(summary.since);
    const until = summary.until === null ? "the end" : zone.dateTime(summary.until);
    lines.push(`Selected: from ${since} until ${until}`);
  }
  lines.push(
    `${countOf(summary.connections, "connection")} from ${countOf(summary.sources, "source")} in ${
      countOf(summary.networkCount, "network")
    } on ${countOf(summary.portCount, "port")}`,
  );
  lines.push(style.dim(linesText(summary)));
  if (summary.connections === 0) return lines.join("\n") + "\n";

  const maxPort = maxConnections(summary.ports);
  lines.push("", style.bold("Ports"));
  lines = lines.concat(
    table(style, {
      headers: ["PORT", "CONNECTIONS", "SOURCES"],
      rows: summary.ports.map((row) => [
        String(row.port),
        formatCount(row.connections),
        formatCount(row.sources),
      ]),
      right: [true, true, true],
      tails: summary.ports.map((row) =>
        style.bar("█".repeat(Math.max(1, Math.round(row.connections / maxPort * PORT_BAR_WIDTH))))
      ),
    }),
  );
  if (summary.portCount > summary.ports.length) {
    lines.push(
      style.dim(`  and ${countOf(summary.portCount - summary.ports.length, "more port")}`),
    );
  }
  lines = lines.concat(sourceTable(summary, {
    style,
    rows: summary.topSources,
    title: "Top sources",
    networks: false,
  }));
  lines = lines.concat(sourceTable(summary, {
    style,
    rows: summary.topNetworks,
    title: "Top networks (/24 IPv4, /48 IPv6)",
    networks: true,
  }));
  if (summary.countries !== null && summary.countries.length > 0) {
    lines.push("", style.bold("Countries"));
    lines = lines.concat(table(style, {
      headers: ["COUNTRY", "CONNECTIONS", "SOURCES"],
      rows: summary.countries.map((row) => [
        row.country,
        formatCount(row.connections),
        formatCount(row.sources),
      ]),
      right: [false, true, true],
    }));
  }
  if (summary.autonomousSystems !== null) {
    lines.push("", style.bold("Autonomous systems"));
    lines = lines.concat(table(style, {
      headers: ["AS", "CONNECTIONS", "SOURCES"],
      rows: summary.autonomousSystems.map((row) => [
        asText(row.asNumber, row.asOrganization) ?? "-",
        formatCount(row.connections),
        formatCount(row.sources),
      ]),
      right: [false, true, true],
    }));
  }
  lines = lines.concat(chart(style, summary));
  return lines.join("\n") + "\n";
}
