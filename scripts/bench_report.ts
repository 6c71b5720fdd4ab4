/**
 * Benchmark of `net-bouncer report` as users run it: a separate process, `deno run` with the
 * compile task's flags (read from deno.json, the flags the release binary has compiled in), on
 * real files. Beside it, in the same run and on the same files: the same report with V8's JIT
 * (not what ships), awk and GoAccess. Prints wall time, CPU time (user and system, all threads:
 * the report reads a large file in two halves at once) and peak RSS (GNU time) of each.
 *
 *     deno task bench:report [--lines N] [--runs N] [--keep DIR]
 *
 * Two generated text logs, written by the program's own formatter:
 * - "20k sources": N lines from 20,000 sources (Zipf-like, 2/3 IPv4, 1/3 IPv6), 8 ports, 5 days;
 *   also as JSON lines, gzip, and read three times (memory must not grow with lines);
 * - "1M sources": N lines from random 10.x.x.x addresses (about 970,000 distinct), 8 ports.
 *
 * Needs awk, GNU time (`/usr/bin/time`) and GoAccess (`apt-get install -y time goaccess`). A
 * benchmark, not a test: it checks only that the report counted what was written. Every command
 * runs once per round, `--runs` rounds; each figure is its best wall and CPU time and highest
 * peak RSS.
 */
import { parseArgs } from "node:util";
import { createFormatter, type LogFormat } from "../lib/log/format.ts";
import { compileFlags, ROOT } from "./compile_all.ts";

/** Lines in each generated log, by default. */
const DEFAULT_LINES = 1_000_000;
/** Runs of each command, by default; the best wall time is reported. */
const DEFAULT_RUNS = 3;
/** Distinct sources of the first log. */
const ZIPF_SOURCES = 20_000;
const PORTS = [22, 23, 80, 443, 2323, 3389, 5900, 8080];
/** Each generated log covers this period. */
const PERIOD_MS = 5 * 24 * 3_600_000;
const TIME = "/usr/bin/time";
/** GoAccess reading the classic text line (the command line). */
const GOACCESS_FORMAT = [
  "--log-format=%d %t.%^ [%^] Connection from %h on port %U",
  "--date-format=%Y-%m-%d",
  "--time-format=%H:%M:%S",
];
/** awk: distinct sources and distinct ports of connection lines. */
const AWK_SOURCES_PORTS = '$4 == "Connection" { s[$6]++; p[$9]++ } ' +
  "END { for (k in s) n++; for (k in p) m++; print n, m }";
/** awk: count, first and last seen per source. */
const AWK_FIRST_LAST = '$4 == "Connection" { k = $6; t = $1 " " $2; ' +
  "if (!(k in c)) f[k] = t; c[k]++; l[k] = t } END { for (k in c) n++; print n }";

/** A deterministic pseudo-random sequence (xorshift32), so every run reads the same logs. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 4_294_967_296;
  };
}

/** Ranks 0..n-1 drawn with probability proportional to 1 / (rank + 1) (Zipf, s = 1). */
function zipf(n: number, next: () => number): () => number {
  const cumulative = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) cumulative[i] = sum += 1 / (i + 1);
  return () => {
    const target = next() * sum;
    let low = 0;
    let high = n - 1;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (cumulative[middle] < target) low = middle + 1;
      else high = middle;
    }
    return low;
  };
}

/** The address of the Zipf log's source `index`: two in three IPv4. */
function zipfAddress(index: number): string {
  if (index % 3 === 2) return `2001:db8:${(index % 200).toString(16)}::${index.toString(16)}`;
  return `198.${18 + (index >> 16) % 2}.${(index >> 8) & 255}.${index & 255}`;
}

/** Writes `lines` connection lines in `format`, addresses from `address(i)`. */
async function writeLog(
  path: string,
  options: { format: LogFormat; lines: number; address: () => string },
): Promise<void> {
  const { format, lines, address } = options;
  const formatter = createFormatter(format);
  const next = random(7);
  const start = Date.UTC(2026, 10, 18);
  using file = await Deno.open(path, { write: true, create: true, truncate: true });
  const chunk = new Uint8Array(1 << 20);
  let used = 0;
  for (let i = 0; i < lines; i++) {
    const ms = start + Math.floor(i / lines * PERIOD_MS);
    const port = PORTS[Math.floor(next() * PORTS.length)];
    const line = formatter.connection(ms, address(), 40_000 + (i % 20_000), port);
    if (used + line.length > chunk.length) {
      await file.write(chunk.subarray(0, used));
      used = 0;
    }
    chunk.set(line, used);
    used += line.length;
  }
  await file.write(chunk.subarray(0, used));
}

async function gzip(path: string): Promise<string> {
  const target = `${path}.gz`;
  const input = await Deno.open(path);
  const output = await Deno.open(target, { write: true, create: true, truncate: true });
  await input.readable.pipeThrough(new CompressionStream("gzip")).pipeTo(output.writable);
  return target;
}

/** The report as it ships: `deno run <compile task's flags> main.ts report`. */
function shippedReport(): string[] {
  const { flags, entry } = compileFlags();
  return [Deno.execPath(), "run", ...flags, `${ROOT}${entry}`, "report", "--format", "json"];
}

/** The same with V8's JIT: `--jitless` removed from the V8 flags (not what ships). */
function jitReport(): string[] {
  return shippedReport().flatMap((word) => {
    if (!word.startsWith("--v8-flags=")) return [word];
    const v8 = word.slice("--v8-flags=".length).split(",").filter((flag) => flag !== "--jitless");
    return v8.length === 0 ? [] : [`--v8-flags=${v8.join(",")}`];
  });
}

interface Measured {
  seconds: number;
  cpuSeconds: number;
  rssMb: number;
  stdout: string;
}

/** One run of `argv` under GNU time: wall and CPU time, peak RSS, standard output. */
async function measureOnce(argv: string[], dir: string): Promise<Measured> {
  const timeFile = `${dir}/time.txt`;
  const output = await new Deno.Command(TIME, {
    args: ["-f", "%e %U %S %M", "-o", timeFile, ...argv],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  if (!output.success) throw new Error(`${argv.join(" ")} failed:\n${stderr}`);
  const [seconds, user, system, kb] = (await Deno.readTextFile(timeFile)).trim().split("\n")
    .at(-1)!.split(" ").map(Number);
  const stdout = new TextDecoder().decode(output.stdout);
  return { seconds, cpuSeconds: user + system, rssMb: kb / 1024, stdout };
}

/**
 * Runs every command once per round, `runs` rounds (so that a busy moment of a shared machine
 * hits all alike): per command the best wall and CPU time and the highest peak RSS.
 */
async function measureAll(argvs: string[][], runs: number, dir: string): Promise<Measured[]> {
  const best: Measured[] = argvs.map(() => ({
    seconds: Infinity,
    cpuSeconds: Infinity,
    rssMb: 0,
    stdout: "",
  }));
  for (let run = 0; run < runs; run++) {
    for (let i = 0; i < argvs.length; i++) {
      const measured = await measureOnce(argvs[i], dir);
      best[i] = {
        seconds: Math.min(best[i].seconds, measured.seconds),
        cpuSeconds: Math.min(best[i].cpuSeconds, measured.cpuSeconds),
        rssMb: Math.max(best[i].rssMb, measured.rssMb),
        stdout: measured.stdout,
      };
    }
  }
  return best;
}

function row(name: string, measured: Measured): void {
  console.log(
    `  ${name.padEnd(52)} ${measured.seconds.toFixed(2).padStart(6)} s ` +
      `${measured.cpuSeconds.toFixed(2).padStart(6)} s CPU ${
        measured.rssMb.toFixed(0).padStart(5)
      } MB`,
  );
}

/** Throws unless the report's JSON counted `lines` connections from `sources` sources. */
function check(name: string, measured: Measured, expected: { lines: number; sources: number }) {
  const json = JSON.parse(measured.stdout);
  if (json.connections !== expected.lines || json.sources !== expected.sources) {
    throw new Error(
      `${name}: counted ${json.connections} connections from ${json.sources} sources, ` +
        `expected ${expected.lines} from ${expected.sources}`,
    );
  }
}

async function requireTools(): Promise<void> {
  for (const [tool, args] of [["awk", ["BEGIN {}"]], [TIME, ["true"]], ["goaccess", ["-V"]]]) {
    try {
      const { success } = await new Deno.Command(tool as string, {
        args: args as string[],
        stdout: "null",
        stderr: "null",
      }).output();
      if (success) continue;
    } catch {
      // Not installed.
    }
    console.error(
      `bench_report: error: "${tool}" is missing (apt-get install -y gawk time goaccess)`,
    );
    Deno.exit(1);
  }
}

const { values } = parseArgs({
  args: Deno.args,
  options: {
    lines: { type: "string", default: String(DEFAULT_LINES) },
    runs: { type: "string", default: String(DEFAULT_RUNS) },
    keep: { type: "string" },
  },
});
const lines = Number(values.lines);
const runs = Number(values.runs);
await requireTools();
const dir = values.keep ?? await Deno.makeTempDir({ prefix: "net-bouncer-bench-report-" });
await Deno.mkdir(dir, { recursive: true });
const shipped = shippedReport();
const jit = jitReport();
console.log(`net-bouncer report, shipped: ${shipped.slice(1).join(" ")} FILE`);
console.log(`best of ${runs} runs; wall time, CPU time (user + system), peak RSS`);
const ratios: string[] = [];
try {
  const zipfRank = zipf(ZIPF_SOURCES, random(42));
  const logs = [
    {
      name: "20k",
      title: `${lines} lines, ${ZIPF_SOURCES} sources (Zipf-like), 8 ports, 5 days`,
      address: () => zipfAddress(zipfRank()),
    },
    {
      name: "1m",
      title: `${lines} lines, random 10.x.x.x sources, 8 ports, 5 days`,
      address: (() => {
        const next = random(4242);
        return () => {
          const n = Math.floor(next() * 16_777_216);
          return `10.${n >> 16}.${(n >> 8) & 255}.${n & 255}`;
        };
      })(),
    },
  ];
  for (const log of logs) {
    const path = `${dir}/${log.name}.log`;
    const jsonPath = `${dir}/${log.name}.json.log`;
    const fresh = !(await Deno.stat(path).then(() => true, () => false));
    if (fresh) {
      await writeLog(path, { format: "text", lines, address: log.address });
      await gzip(path);
    }
    const size = (await Deno.stat(path)).size / 1e6;
    const zipfLog = log.name === "20k";
    if (zipfLog && (fresh || !(await Deno.stat(jsonPath).then(() => true, () => false)))) {
      const zipfAgain = zipf(ZIPF_SOURCES, random(42));
      await writeLog(jsonPath, { format: "json", lines, address: () => zipfAddress(zipfAgain()) });
    }
    const goaccessArgs = [...GOACCESS_FORMAT, "--no-global-config", "-o", `${dir}/goaccess.html`];
    const cases: [string, string[]][] = [
      ["net-bouncer report (shipped flags)", [...shipped, path]],
      ["net-bouncer report with the JIT (not shipped)", [...jit, path]],
      ["awk: count sources and ports", ["awk", AWK_SOURCES_PORTS, path]],
      ["awk: count, first and last seen per source", ["awk", AWK_FIRST_LAST, path]],
      ["GoAccess", ["goaccess", path, ...goaccessArgs]],
    ];
    if (zipfLog) {
      cases.push(
        ["net-bouncer report (shipped flags), gzip", [...shipped, `${path}.gz`]],
        ["net-bouncer report (shipped flags), the file 3 times", [...shipped, path, path, path]],
        ["net-bouncer report (shipped flags), JSON lines", [...shipped, jsonPath]],
      );
    }
    const results = await measureAll(cases.map(([, argv]) => argv), runs, dir);
    const [nb, nbJit, awkSources, awkFirstLast, goaccess] = results;
    const sources = Number(awkSources.stdout.split(" ")[0]);
    console.log(`\n${log.title}: ${sources} distinct sources, ${size.toFixed(1)} MB`);
    cases.forEach(([name, argv], i) => {
      if (argv[0] === Deno.execPath()) {
        const times = argv.filter((word) => word === path).length || 1;
        check(name, results[i], { lines: times * lines, sources });
      }
      row(name, results[i]);
    });
    if (zipfLog) {
      ratios.push(
        `20k sources: shipped ${(nb.seconds / awkSources.seconds).toFixed(1)}x awk counting ` +
          `sources and ports (target <= 4), GoAccess ${
            (goaccess.seconds / nb.seconds).toFixed(1)
          }x slower (target >= 5), JIT ${(nb.seconds / nbJit.seconds).toFixed(1)}x faster; ` +
          `CPU ${nb.cpuSeconds.toFixed(2)} s (awk ${awkSources.cpuSeconds.toFixed(2)} s)`,
      );
    } else {
      ratios.push(
        `1M sources: shipped ${(nb.seconds / awkFirstLast.seconds).toFixed(1)}x awk keeping ` +
          `count/first/last (target <= 2), peak RSS ${nb.rssMb.toFixed(0)} MB (target <= 256), ` +
          `JIT ${(nb.seconds / nbJit.seconds).toFixed(1)}x faster, ${nbJit.rssMb.toFixed(0)} MB`,
      );
    }
  }
  console.log("");
  for (const line of ratios) console.log(line);
} finally {
  if (values.keep === undefined) await Deno.remove(dir, { recursive: true });
}
