/**
 * The project's benchmark:
 * `deno task bench [--connections N] [--concurrency C] [--samples S] [--allow-list N] [--jit]`.
 *
 * Starts net-bouncer as it ships: a separate process with the flags of deno.json's `compile`
 * task (the release binary's, V8 flags included), writing to a real log file. `--jit` drops
 * `--jitless` from them, and the output says so: that figure is not the shipped program's. It
 * drives the program over loopback with
 * concurrent clients, then measures sequential connect-to-line latency, and prints
 * connections/s, p50/p99 latency, server CPU µs per connection and RSS as a table and as one JSON
 * line (for tracking across versions). With `--allow-list N` the program runs with an allow-list
 * of N prefixes that no client matches, so the lookup is on every connection's path: compare
 * `cpu_us_per_connection` across sizes. A benchmark, not a test: nothing is asserted. Linux only
 * (CPU and memory come from /proc). README.md's Performance section compares with a C server.
 */
import { parseArgs } from "node:util";
import denoConfig from "../deno.json" with { type: "json" };
import { compileFlags } from "./compile_all.ts";

/** Connections in the throughput run, by default. */
export const DEFAULT_CONNECTIONS = 50_000;
/** Clients in flight at once, by default. */
export const DEFAULT_CONCURRENCY = 64;
/** Sequential connections timed for latency, by default. */
export const DEFAULT_SAMPLES = 1_000;
/** Prefixes in the allow-list, by default (none). */
export const DEFAULT_ALLOW_LIST = 0;
/** How long the whole run may take before it gives up, in milliseconds. */
const DEADLINE_MS = 300_000;

const ROOT = new URL("..", import.meta.url).pathname;
const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** `run`, the compile task's flags (without `--jitless` if `jit`), and the entry point. */
export function shippedRunArgs({ jit = false }: { jit?: boolean } = {}): string[] {
  const { flags, entry } = compileFlags();
  const run = jit ? flags.map(withoutJitless).filter((flag) => flag !== "") : flags;
  return ["run", ...run, `${ROOT}${entry}`];
}

/** A flag without `--jitless` among its V8 flags (`--v8-flags=a,--jitless` gives `--v8-flags=a`). */
function withoutJitless(flag: string): string {
  if (!flag.startsWith("--v8-flags=")) return flag;
  const v8 = flag.slice("--v8-flags=".length).split(",").filter((f) => f !== "--jitless");
  return v8.length === 0 ? "" : `--v8-flags=${v8.join(",")}`;
}

function cpuTicks(pid: number): number {
  const fields = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].split(" ");
  return Number(fields[11]) + Number(fields[12]); // utime + stime
}

function rssMiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
}

function fileSize(path: string): number {
  return Deno.statSync(path).size;
}

async function knock(port: number): Promise<void> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const buffer = new Uint8Array(16);
  try {
    while ((await conn.read(buffer)) !== null) { /* a honeypot sends nothing */ }
  } catch (error) {
    if (!(error instanceof Deno.errors.ConnectionReset)) throw error;
  } finally {
    conn.close();
  }
}

/** `count` random /24 and /48 prefixes, none of them in 127.0.0.0/8 or ::1 (the clients). */
function prefixes(count: number): string {
  let seed = 1;
  const random = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    lines.push(
      i % 2 === 0
        ? `${1 + random(126)}.${random(256)}.${random(256)}.0/24`
        : `2001:${random(0x10000).toString(16)}:${random(0x10000).toString(16)}::/48`,
    );
  }
  return lines.join("\n") + "\n";
}

function progress(text: string): void {
  Deno.stderr.writeSync(new TextEncoder().encode(`\r${text}\x1b[K`));
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];
}

async function waitUntil(check: () => boolean, what: string): Promise<void> {
  const end = Date.now() + DEADLINE_MS;
  while (!check()) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

/** Runs the benchmark and prints the results. */
export async function bench(
  options: {
    connections: number;
    concurrency: number;
    samples: number;
    allowList: number;
    jit?: boolean;
  },
): Promise<Record<string, number | string>> {
  const dir = await Deno.makeTempDir({ prefix: "net-bouncer-bench-" });
  const log = `${dir}/bench.log`;
  const allowList = options.allowList > 0 ? [`--ignore-file`, `${dir}/allow-list`] : [];
  if (options.allowList > 0) {
    Deno.writeTextFileSync(`${dir}/allow-list`, prefixes(options.allowList));
  }
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const args = shippedRunArgs({ jit: options.jit });
  console.log(
    `program: deno ${args.join(" ").replace(ROOT, "")} (${
      options.jit ? "NOT as shipped: with the JIT" : "as shipped: the compile task's flags"
    }), a separate process, log file ${log}`,
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: [...args, "-p", String(port), "-l", log, ...allowList],
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  try {
    await waitUntil(() => {
      try {
        return fileSize(log) > 0;
      } catch {
        return false;
      }
    }, "the Listening line");
    const pid = child.pid;

    // Throughput: `concurrency` clients in flight until `connections` are done.
    const cpuBefore = cpuTicks(pid);
    const start = performance.now();
    let started = 0;
    let done = 0;
    const timer = setInterval(
      () => progress(`throughput: ${done}/${options.connections} connections`),
      250,
    );
    await Promise.all(Array.from({ length: options.concurrency }, async () => {
      while (started < options.connections) {
        started++;
        await knock(port);
        done++;
      }
    }));
    clearInterval(timer);
    const seconds = (performance.now() - start) / 1000;
    const cpuSeconds = (cpuTicks(pid) - cpuBefore) / TICKS_PER_SECOND;

    // Latency: sequential connections, each timed until its line is in the file.
    const latencies: number[] = [];
    for (let i = 0; i < options.samples; i++) {
      if (i % 100 === 0) progress(`latency: ${i}/${options.samples} samples`);
      const before = fileSize(log);
      const t0 = performance.now();
      await knock(port);
      while (fileSize(log) === before) { /* spin: 1 ms timers are too coarse here */ }
      latencies.push(performance.now() - t0);
    }
    progress("");
    latencies.sort((a, b) => a - b);
    return {
      version: denoConfig.version,
      flags: options.jit
        ? "compile task without --jitless (not shipped)"
        : "compile task (shipped)",
      connections: options.connections,
      concurrency: options.concurrency,
      allow_list: options.allowList,
      connections_per_second: Math.round(options.connections / seconds),
      latency_p50_ms: Number(percentile(latencies, 50).toFixed(3)),
      latency_p99_ms: Number(percentile(latencies, 99).toFixed(3)),
      cpu_us_per_connection: Number(((cpuSeconds * 1e6) / options.connections).toFixed(1)),
      rss_mb: Number(rssMiB(pid).toFixed(1)),
    };
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      connections: { type: "string", default: String(DEFAULT_CONNECTIONS) },
      concurrency: { type: "string", default: String(DEFAULT_CONCURRENCY) },
      samples: { type: "string", default: String(DEFAULT_SAMPLES) },
      "allow-list": { type: "string", default: String(DEFAULT_ALLOW_LIST) },
      jit: { type: "boolean", default: false },
    },
  });
  const result = await bench({
    connections: Number(values.connections),
    concurrency: Number(values.concurrency),
    samples: Number(values.samples),
    allowList: Number(values["allow-list"]),
    jit: values.jit,
  });
  const width = Math.max(...Object.keys(result).map((key) => key.length));
  for (const [key, value] of Object.entries(result)) console.log(`${key.padEnd(width)}  ${value}`);
  console.log(JSON.stringify(result));
}
