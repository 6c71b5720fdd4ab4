/** The report for a terminal: aligned tables and a bar chart of connections over time. */
import type { Bucket, SourceRow, Summary } from "./stats.ts";

/** Columns of the chart over time; longer timelines put several bars in one column. */
const CHART_COLUMNS = 72;
/** Rows of the chart over time. */
const CHART_ROWS = 8;
/** Width of the bars in the ports table. */
const PORT_BAR_WIDTH = 30;
/** Ports listed in a row of a table; the rest are counted. */
const PORTS_SHOWN = 6;
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

/** `12,345`. */
export function formatCount(value: number): string {
  return String(value).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** `22, 23, 80 +4`: the first ports of a row and how many more. */
export function formatPorts(ports: number[], shown = PORTS_SHOWN): string {
  const head = ports.slice(0, shown).join(",");
  return ports.length > shown ? `${head} +${ports.length - shown}` : head;
}

function plural(count: number, noun: string, nouns = `${noun}s`): string {
  return `${formatCount(count)} ${count === 1 ? noun : nouns}`;
}

/** A table: header, rows of cells, right-aligned columns, and text after each row. */
interface Table {
  headers: string[];
  rows: string[][];
  right: boolean[];
  tails?: string[];
}

/** Rows of cells aligned in columns. */
function table(style: Style, { headers, rows, right, tails = [] }: Table): string[] {
  const widths = headers.map((header, column) =>
    Math.max(header.length, ...rows.map((row) => row[column].length))
  );
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

function geoColumns(summary: Summary): { country: boolean; as: boolean } {
  return { country: summary.countries !== null, as: summary.autonomousSystems !== null };
}

function sourceTable(
  summary: Summary,
  options: { style: Style; rows: SourceRow[]; title: string; networks: boolean },
): string[] {
  const { style, rows } = options;
  const geo = geoColumns(summary);
  const headers = [
    options.networks ? "NETWORK" : "ADDRESS",
    "CONNECTIONS",
    ...(options.networks ? ["SOURCES"] : []),
    "FIRST SEEN",
    "LAST SEEN",
    "PORTS",
    ...(geo.country ? ["COUNTRY"] : []),
    ...(geo.as ? ["AS"] : []),
  ];
  const right = headers.map((header) => header === "CONNECTIONS" || header === "SOURCES");
  const cells = rows.map((row) => [
    row.name,
    formatCount(row.connections),
    ...(options.networks ? [formatCount(row.sources)] : []),
    summary.zone.dateTime(row.first),
    summary.zone.dateTime(row.last),
    formatPorts(row.ports),
    ...(geo.country ? [row.country ?? "-"] : []),
    ...(geo.as ? [asText(row.asNumber, row.asOrganization)] : []),
  ]);
  return ["", style.bold(options.title), ...table(style, { headers, rows: cells, right })];
}

function asText(asNumber: number | null, organization: string | null): string {
  if (asNumber === null) return "-";
  return organization === null ? `AS${asNumber}` : `AS${asNumber} ${organization}`;
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
  const max = Math.max(1, ...columns.map((column) => column.connections));
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
  const label = (ms: number) =>
    unit === "hour" ? `${summary.zone.dateTime(ms).slice(0, 13)}h` : summary.zone.date(ms);
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
  const counts = summary.counts;
  const lines: string[] = [];
  const period = summary.first === null || summary.last === null
    ? "no connections"
    : `${zone.dateTime(summary.first)} to ${zone.dateTime(summary.last)}`;
  lines.push(`${style.bold("net-bouncer report")}  ${period} ${style.dim(`(${zone.name})`)}`);
  if (summary.since !== null || summary.until !== null) {
    const since = summary.since === null ? "the start" : zone.dateTime(summary.since);
    const until = summary.until === null ? "the end" : zone.dateTime(summary.until);
    lines.push(`Selected: from ${since} until ${until}`);
  }
  lines.push(
    `${plural(summary.connections, "connection")} from ${plural(summary.sources, "source")} in ${
      plural(summary.networkCount, "network")
    } on ${plural(summary.portCount, "port")}`,
  );
  const skipped = [
    plural(counts.otherEvents, "other event"),
    `${formatCount(counts.unreadable)} unreadable`,
  ];
  if (summary.since !== null || summary.until !== null) {
    skipped.push(`${formatCount(summary.outside)} outside the period`);
  }
  lines.push(style.dim(`${plural(counts.lines, "line")} read; skipped: ${skipped.join(", ")}`));
  if (summary.connections === 0) return lines.join("\n") + "\n";

  const maxPort = Math.max(...summary.ports.map((row) => row.connections));
  lines.push("", style.bold("Ports"));
  lines.push(
    ...table(style, {
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
    lines.push(style.dim(`  and ${plural(summary.portCount - summary.ports.length, "more port")}`));
  }
  lines.push(...sourceTable(summary, {
    style,
    rows: summary.topSources,
    title: "Top sources",
    networks: false,
  }));
  lines.push(...sourceTable(summary, {
    style,
    rows: summary.topNetworks,
    title: "Top networks (/24 IPv4, /48 IPv6)",
    networks: true,
  }));
  if (summary.countries !== null && summary.countries.length > 0) {
    lines.push("", style.bold("Countries"));
    lines.push(...table(style, {
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
    lines.push(...table(style, {
      headers: ["AS", "CONNECTIONS", "SOURCES"],
      rows: summary.autonomousSystems.map((row) => [
        asText(row.asNumber, row.asOrganization),
        formatCount(row.connections),
        formatCount(row.sources),
      ]),
      right: [false, true, true],
    }));
  }
  lines.push(...chart(style, summary));
  return lines.join("\n") + "\n";
}
