/**
 * Benchmark of `net-bouncer report`: writes a text log of 1,000,000 connection lines (by the
 * program's own formatter, 20,000 sources, 8 ports, one week) to a temporary file and reports it,
 * in text and JSON lines, plain and gzip, in-process. Prints the best time of each.
 *
 * Then runs `net-bouncer report` as production does on the text log read once and three times:
 * its peak RSS must not grow with lines.
 *
 *     deno task bench:report [LINES]
 */
import { createFormatter, type LogFormat } from "../lib/log/format.ts";
import { report } from "../lib/report/report.ts";

/** Lines written, unless given as the first argument. */
const DEFAULT_LINES = 1_000_000;
/** Distinct source addresses in the generated log. */
const SOURCES = 20_000;
const PORTS = [22, 23, 80, 443, 2323, 3389, 5900, 8080];
/** The generated log covers this period. */
const PERIOD_MS = 7 * 24 * 3_600_000;
/** Runs of each case; the best is reported. */
const RUNS = 3;

/** A deterministic pseudo-random sequence (xorshift32), so every run reads the same log. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 4_294_967_296;
  };
}

function sourceAddress(index: number): string {
  // Two in three IPv4; skewed so that a few sources make most connections, as scanners do.
  if (index % 3 === 2) return `2001:db8:${(index % 200).toString(16)}::${index.toString(16)}`;
  return `198.${18 + (index >> 16) % 2}.${(index >> 8) & 255}.${index & 255}`;
}

async function writeLog(path: string, format: LogFormat, lines: number): Promise<void> {
  const formatter = createFormatter(format);
  const next = random(42);
  const start = Date.UTC(2026, 10, 18);
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  const chunk = new Uint8Array(1 << 20);
  let used = 0;
  for (let i = 0; i < lines; i++) {
    const ms = start + Math.floor(i / lines * PERIOD_MS);
    const source = Math.floor(next() ** 3 * SOURCES);
    const port = PORTS[Math.floor(next() * PORTS.length)];
    const line = formatter.connection(ms, sourceAddress(source), 40_000 + (i % 20_000), port);
    if (used + line.length > chunk.length) {
      await file.write(chunk.subarray(0, used));
      used = 0;
    }
    chunk.set(line, used);
    used += line.length;
  }
  await file.write(chunk.subarray(0, used));
  file.close();
}

async function gzip(path: string): Promise<string> {
  const target = `${path}.gz`;
  const input = await Deno.open(path);
  const output = await Deno.open(target, { write: true, create: true, truncate: true });
  await input.readable.pipeThrough(new CompressionStream("gzip")).pipeTo(output.writable);
  return target;
}

async function timeReport(path: string): Promise<{ ms: number; output: string }> {
  let output = "";
  const start = performance.now();
  const code = await report([path, "--format", "json"], {
    stdout: (text) => {
      output += text;
    },
    stderr: (text) => {
      output += text;
    },
    stdin: new ReadableStream(),
    isTerminal: { stdout: false, stderr: false },
    noColor: true,
    now: Date.now,
  });
  const ms = performance.now() - start;
  if (code !== 0) throw new Error(`report exited ${code}: ${output}`);
  return { ms, output };
}

/** The `deno run` words of deno.json's `start` task: the program as production runs it. */
function productionCommand(): string[] {
  const config = JSON.parse(Deno.readTextFileSync(new URL("../deno.json", import.meta.url)));
  const words = String(config.tasks.start).trim().split(/\s+/);
  return [
    ...words.slice(1, words.indexOf("main.ts")),
    new URL("../main.ts", import.meta.url).pathname,
  ];
}

/** Peak RSS (VmHWM) of `net-bouncer report FILES` run as production runs it, in MB. */
async function peakRss(paths: string[]): Promise<number> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [...productionCommand(), "report", "--format", "json", ...paths],
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  let peak = 0;
  let done = false;
  const status = child.status.then((s) => {
    done = true;
    return s;
  });
  while (!done) {
    try {
      const text = Deno.readTextFileSync(`/proc/${child.pid}/status`);
      peak = Math.max(peak, Number(/VmHWM:\s+(\d+) kB/.exec(text)?.[1] ?? 0));
    } catch {
      // Exited between the check and the read.
    }
    // Sampling interval; VmHWM is the kernel's own high-water mark, so no peak is missed.
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  if (!(await status).success) throw new Error("report failed");
  return peak / 1000;
}

const lines = Number(Deno.args[0] ?? DEFAULT_LINES);
const dir = await Deno.makeTempDir({ prefix: "net-bouncer-bench-report-" });
try {
  for (const format of ["text", "json"] as const) {
    const plain = `${dir}/net-bouncer-${format}.log`;
    await writeLog(plain, format, lines);
    const compressed = await gzip(plain);
    for (const path of [plain, compressed]) {
      let best = Infinity;
      let connections = 0;
      for (let run = 0; run < RUNS; run++) {
        const { ms, output } = await timeReport(path);
        best = Math.min(best, ms);
        connections = JSON.parse(output).connections;
      }
      if (connections !== lines) throw new Error(`counted ${connections} of ${lines} lines`);
      const size = (await Deno.stat(path)).size / 1e6;
      const rate = (lines / best * 1000 / 1e6).toFixed(2);
      console.log(
        `${format.padEnd(4)} ${path.endsWith(".gz") ? "gzip " : "plain"} ${lines} lines ` +
          `(${size.toFixed(1)} MB): ${best.toFixed(0)} ms (${rate} M lines/s)`,
      );
    }
  }
  // Memory grows with sources, not lines: the same log read once and three times.
  const plain = `${dir}/net-bouncer-text.log`;
  const once = await peakRss([plain]);
  const thrice = await peakRss([plain, plain, plain]);
  console.log(
    `report process peak RSS: ${once.toFixed(0)} MB for ${lines} lines, ` +
      `${thrice.toFixed(0)} MB for ${3 * lines} lines (same sources)`,
  );
} finally {
  await Deno.remove(dir, { recursive: true });
}
