/** The real program with `--metrics`: promtool and a real Prometheus server. */
import {
  exchange,
  promtoolCheck,
  readAll,
  sample,
  samples,
  statusOf,
  VERSION,
} from "../metrics/_metrics_util.ts";
import assert from "node:assert/strict";
import { METRICS_CONTENT_TYPE } from "../../lib/metrics/metrics.ts";
import { MAX_CONNECTIONS, REQUEST_TIMEOUT_MS } from "../../lib/metrics/metrics_server.ts";
import {
  CONNECTION_LINE,
  knockFrom,
  linesMatching,
  LISTENERS,
  needsTools,
  type Program,
  readOrEmpty,
  runKnock,
  runProgram,
  startProgram,
  waitFor,
  withTempDir,
} from "../_util.ts";

// --- The real program: `--metrics`, promtool and a real Prometheus server ---

/** The metrics port that the program announces in its log. */
const SERVING_LINE = /\[INFO\] Serving metrics on (\S+) port (\d+)$/m;

/**
 * Starts the program with `--listener LISTENER -p 0 --metrics 127.0.0.1:0` (and `args`); returns
 * it, its port and the metrics port it announced.
 */
async function startWithMetrics(
  logFile: string,
  listener: string,
  args: string[] = [],
): Promise<{ program: Program; port: number; metricsPort: number }> {
  const program = await startProgram(
    ["--listener", listener, "-p", "0", "--metrics", "127.0.0.1:0", ...args],
    { logFile },
  );
  try {
    const [line] = await program.waitForLines(SERVING_LINE);
    return { program, port: program.port, metricsPort: Number(SERVING_LINE.exec(line)![2]) };
  } catch (error) {
    await program.stop();
    throw error;
  }
}

async function scrape(metricsPort: number): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), METRICS_CONTENT_TYPE);
  return await response.text();
}

/** Makes `count` connections from `source` to the honeypot and waits until each is closed. */
async function knockMany(source: string, port: number, count: number): Promise<void> {
  for (let i = 0; i < count; i++) assert.equal((await knockFrom(source, port)).bytes, 0);
}

/** A Prometheus server of its own (config and data in a temp dir) on a port it picked. */
interface Prometheus {
  /** Its HTTP port on 127.0.0.1. */
  port: number;
  /** Runs an instant query; returns the vector's samples as label sets with their value. */
  query(expression: string): Promise<{ labels: Record<string, string>; value: number }[]>;
  /** Stops it. */
  stop(): Promise<void>;
}

/**
 * The TCP ports that process `pid` listens on, from /proc: its socket descriptors' inodes,
 * looked up in its network namespace's TCP tables.
 */
function listeningPortsOf(pid: number): number[] {
  const inodes = new Set<string>();
  for (const entry of Deno.readDirSync(`/proc/${pid}/fd`)) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(Deno.readLinkSync(`/proc/${pid}/fd/${entry.name}`));
      if (match) inodes.add(match[1]);
    } catch {
      // Closed meanwhile.
    }
  }
  const ports: number[] = [];
  for (const table of ["tcp", "tcp6"]) {
    for (const line of readOrEmpty(`/proc/${pid}/net/${table}`).split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      // local_address is "ADDR:PORT" in hex; st 0A is LISTEN; the inode is field 9.
      if (fields.length > 9 && fields[3] === "0A" && inodes.has(fields[9])) {
        ports.push(parseInt(fields[1].split(":")[1], 16));
      }
    }
  }
  return ports;
}

/**
 * Starts Prometheus scraping `target` (HOST:PORT) every 200 ms. Its port cannot race with other
 * tests: it binds port 0 itself (Prometheus 2.42 accepts `--web.listen-address=127.0.0.1:0`
 * but does not log the port), and the test reads the port it got from /proc.
 */
async function startPrometheus(dir: string, target: string): Promise<Prometheus> {
  const config = `${dir}/prometheus.yml`;
  Deno.writeTextFileSync(
    config,
    [
      "global:",
      "  scrape_interval: 200ms",
      "  scrape_timeout: 150ms",
      "scrape_configs:",
      "  - job_name: net-bouncer",
      "    static_configs:",
      `      - targets: ["${target}"]`,
      "",
    ].join("\n"),
  );
  const child = new Deno.Command("prometheus", {
    args: [
      `--config.file=${config}`,
      `--storage.tsdb.path=${dir}/data`,
      "--web.listen-address=127.0.0.1:0",
      "--log.level=warn",
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  let exited = false;
  const status = child.status.finally(() => exited = true);
  const stop = async () => {
    if (!exited) child.kill("SIGTERM");
    await status;
    await stderr;
  };
  try {
    const port = await waitFor("Prometheus to listen", () => {
      if (exited) throw new Error("prometheus exited early");
      return listeningPortsOf(child.pid)[0];
    });
    await waitFor("Prometheus to be ready", async () => {
      const response = await fetch(`http://127.0.0.1:${port}/-/ready`);
      await response.body?.cancel();
      return response.ok;
    });
    return {
      port,
      stop,
      query: async (expression) => {
        const url = `http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(expression)}`;
        const body = await (await fetch(url)).json();
        assert.equal(body.status, "success", JSON.stringify(body));
        return body.data.result.map((
          entry: { metric: Record<string, string>; value: [number, string] },
        ) => ({ labels: entry.metric, value: Number(entry.value[1]) }));
      },
    };
  } catch (error) {
    await stop();
    throw new Error(`${(error as Error).message}; stderr:\n${await stderr}`);
  }
}

/** The value of a query that gives one sample, or null while it gives none. */
async function scalar(prometheus: Prometheus, expression: string): Promise<number | null> {
  const result = await prometheus.query(expression);
  assert.ok(result.length <= 1, `${expression}: ${JSON.stringify(result)}`);
  return result.length === 0 ? null : result[0].value;
}

for (const listener of LISTENERS) {
  Deno.test({
    name:
      `[${listener}] --metrics: the real program's /metrics counts connections and passes promtool`,
    ignore: needsTools("promtool"),
    fn: () =>
      withTempDir(async (dir) => {
        const { program, port, metricsPort } = await startWithMetrics(`${dir}/log`, listener);
        try {
          await knockMany("127.0.0.1", port, 3);
          await knockMany("::1", port, 2);
          await program.waitForLines(CONNECTION_LINE, 5);
          const text = await scrape(metricsPort);
          await promtoolCheck(text);
          // What client libraries export, read by the daemon with its permissions dropped (it
          // keeps read for its log file), and when the last connection was logged.
          const pid = program.child.pid;
          assert.ok(sample(text, "process_resident_memory_bytes") > 10 * 1024 * 1024);
          assert.ok(sample(text, "process_cpu_seconds_total") > 0);
          const fds = [...Deno.readDirSync(`/proc/${pid}/fd`)].length;
          assert.ok(Math.abs(sample(text, "process_open_fds") - fds) <= 4, `${fds} fds`);
          const limit = /^Max open files\s+(\d+)/m.exec(
            Deno.readTextFileSync(`/proc/${pid}/limits`),
          );
          assert.equal(sample(text, "process_max_fds"), Number(limit![1]));
          const last = sample(text, "net_bouncer_last_connection_timestamp_seconds");
          assert.ok(Math.abs(last - Date.now() / 1000) < 60, `last connection at ${last}`);
          assert.equal(
            sample(text, `net_bouncer_connections_total{port="${port}",family="ipv4"}`),
            3,
          );
          assert.equal(
            sample(text, `net_bouncer_connections_total{port="${port}",family="ipv6"}`),
            2,
          );
          assert.equal(sample(text, `net_bouncer_build_info{version="${VERSION}"}`), 1);
          const started = sample(text, "process_start_time_seconds");
          assert.ok(Math.abs(started - Date.now() / 1000) < 60, `start time ${started}`);
          // Scrapes are not honeypot connections: no line for them.
          assert.equal(linesMatching(program.log(), CONNECTION_LINE).length, 5);
          assert.equal(sample(text, "net_bouncer_log_reopens_total"), 0);
          program.kill("SIGHUP");
          await waitFor("the reopen to be counted", async () => {
            return sample(await scrape(metricsPort), "net_bouncer_log_reopens_total") === 1;
          });
        } finally {
          const { code } = await program.stop();
          assert.equal(code, 0);
        }
      }),
  });

  Deno.test({
    name: `[${listener}] --metrics: clients that reset at once are each counted once`,
    ignore: needsTools("cc"),
    fn: () =>
      withTempDir(async (dir) => {
        const { program, port, metricsPort } = await startWithMetrics(`${dir}/log`, listener);
        try {
          // SO_LINGER 0 right after the handshake, as connect scanners do.
          const run = await runKnock(port, { total: 200, concurrency: 16, reset: true });
          assert.equal(run.connections, 200);
          const counted = async () => {
            const text = await scrape(metricsPort);
            return {
              logged: sample(text, `net_bouncer_connections_total{port="${port}",family="ipv4"}`),
              resets: sample(
                text,
                `net_bouncer_connections_reset_before_accept_total{port="${port}"}`,
              ),
            };
          };
          await waitFor("each reset to be counted", async () => {
            const { logged, resets } = await counted();
            return logged + resets === 200;
          });
          const { logged, resets } = await counted();
          assert.equal(linesMatching(program.log(), CONNECTION_LINE).length, logged);
          // The native listener has each address from accept4 itself: no reset loses a line.
          if (listener === "native") assert.equal(resets, 0);
        } finally {
          const { code } = await program.stop();
          assert.equal(code, 0);
        }
      }),
  });

  Deno.test({
    name:
      `[${listener}] --metrics: a real Prometheus scrapes exact counts; 500 sources add no series`,
    ignore: needsTools("prometheus"),
    fn: () =>
      withTempDir(async (dir) => {
        const { program, port, metricsPort } = await startWithMetrics(`${dir}/log`, listener, [
          "--ignore",
          "127.0.0.9/32",
        ]);
        let prometheus: Prometheus | null = null;
        try {
          await knockMany("127.0.0.1", port, 4);
          await knockMany("::1", port, 2);
          await knockMany("127.0.0.9", port, 3); // allow-listed: ignored, no line
          prometheus = await startPrometheus(dir, `127.0.0.1:${metricsPort}`);
          const p = prometheus;
          const value = (family: string) =>
            scalar(p, `net_bouncer_connections_total{port="${port}",family="${family}"}`);
          await waitFor("Prometheus to scrape the connections", async () => {
            return (await value("ipv4")) === 4 && (await value("ipv6")) === 2;
          });
          assert.equal(await scalar(p, `up{job="net-bouncer"}`), 1);
          assert.equal(await scalar(p, `net_bouncer_ignored_connections_total{port="${port}"}`), 3);
          assert.equal(await scalar(p, "net_bouncer_allow_list_prefixes"), 1);
          assert.equal(await scalar(p, `net_bouncer_build_info{version="${VERSION}"}`), 1);
          const series = await scalar(p, `scrape_samples_scraped{job="net-bouncer"}`);
          assert.equal(series, samples(await scrape(metricsPort)).length);

          // A flood from 500 distinct sources (127.0.1.1-127.0.2.250), two connections each.
          const flood = Array.from({ length: 500 }, (_, i) =>
            `127.0.${1 + (i / 250 | 0)}.${1 + i % 250}`);
          for (let round = 0; round < 2; round++) {
            for (let i = 0; i < flood.length; i += 50) {
              await Promise.all(
                flood.slice(i, i + 50).map((source) =>
                  knockFrom(source, port)
                ),
              );
            }
          }
          const lines = await program.waitForLines(CONNECTION_LINE, 4 + 2 + 1_000);
          assert.equal(lines.length, 4 + 2 + 1_000);
          const sources = new Set(lines.map((line) => CONNECTION_LINE.exec(line)![1]));
          assert.equal(sources.size, 2 + 500, "127.0.0.1, ::1 and the 500 flood sources");
          await waitFor(
            "Prometheus to scrape the flood",
            async () => (await value("ipv4")) === 1_004,
          );
          assert.equal(await value("ipv6"), 2);
          assert.equal(await scalar(p, `scrape_samples_scraped{job="net-bouncer"}`), series);
          assert.equal(
            await scalar(p, `count({job="net-bouncer"})`),
            series! + 5, // each scrape adds up, scrape_duration_seconds and 3 more scrape_* series
          );
        } finally {
          await prometheus?.stop();
          const { code } = await program.stop();
          assert.equal(code, 0);
        }
      }),
  });

  Deno.test({
    name:
      `[${listener}] --metrics: bad requests get an error or a timeout while the honeypot keeps logging`,
    fn: () =>
      withTempDir(async (dir) => {
        const { program, port, metricsPort } = await startWithMetrics(`${dir}/log`, listener);
        const hanging: Deno.Conn[] = [];
        try {
          assert.equal(statusOf(await exchange(metricsPort, "GET / HTTP/1.1\r\n\r\n")), 404);
          assert.equal(
            statusOf(await exchange(metricsPort, "DELETE /metrics HTTP/1.1\r\n\r\n")),
            405,
          );
          assert.equal(statusOf(await exchange(metricsPort, "\x00\xff garbage\r\n\r\n")), 400);
          const huge = `GET /metrics HTTP/1.1\r\nCookie: ${"a".repeat(100_000)}\r\n\r\n`;
          assert.equal(statusOf(await exchange(metricsPort, huge)), 431);

          // A client that never finishes its request, and more idle clients than are served.
          const slow = await Deno.connect({ hostname: "127.0.0.1", port: metricsPort });
          hanging.push(slow);
          await slow.write(new TextEncoder().encode("GET /metrics HTTP/1.1\r\nHost: x"));
          const started = Date.now();
          const slowAnswer = readAll(slow);
          for (let i = 0; i < MAX_CONNECTIONS + 4; i++) {
            hanging.push(await Deno.connect({ hostname: "127.0.0.1", port: metricsPort }));
          }
          // Meanwhile every honeypot connection is logged at once.
          for (let i = 0; i < 20; i++) {
            await knockFrom("127.0.0.1", port);
            await program.waitForLines(CONNECTION_LINE, i + 1, 1_000);
          }
          assert.equal(statusOf(await slowAnswer), 408);
          const waited = Date.now() - started;
          assert.ok(waited >= REQUEST_TIMEOUT_MS - 500, `408 after ${waited} ms`);
          for (const conn of hanging.splice(0)) conn.close();
          // Once they are gone, scrapes work again; none of this made a line or counted.
          const text = await waitFor(
            "a scrape to succeed",
            () => scrape(metricsPort).catch(() => ""),
          );
          assert.equal(
            sample(text, `net_bouncer_connections_total{port="${port}",family="ipv4"}`),
            20,
          );
          assert.equal(linesMatching(program.log(), CONNECTION_LINE).length, 20);
        } finally {
          for (const conn of hanging) conn.close();
          const { code } = await program.stop();
          assert.equal(code, 0);
        }
      }),
  });
}

Deno.test("--metrics on a non-loopback address is served, with one warning", async () => {
  await withTempDir(async (dir) => {
    const program = await startProgram(["-p", "0", "--metrics", "0.0.0.0:0"], {
      logFile: `${dir}/log`,
    });
    try {
      const [line] = await program.waitForLines(/Serving metrics on 0\.0\.0\.0 port \d+$/);
      const metricsPort = Number(/port (\d+)$/.exec(line)![1]);
      await scrape(metricsPort);
      const warnings = linesMatching(program.log(), /\[WARN\] .*metrics/);
      assert.equal(warnings.length, 1, program.log());
    } finally {
      await program.stop();
    }
  });
});

Deno.test("--metrics on a port in use: exit 1, one error line, nothing announced", async () => {
  await withTempDir(async (dir) => {
    // Held by the test for the whole run, so the port is certainly in use.
    const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    try {
      const { port } = taken.addr as Deno.NetAddr;
      const result = await runProgram(
        ["-p", "0", "--metrics", `127.0.0.1:${port}`, "-l", `${dir}/log`],
      );
      assert.equal(result.code, 1);
      assert.equal(
        result.stderr,
        `net-bouncer: error: Cannot serve metrics on "127.0.0.1" port "${port}": address already ` +
          "in use\n",
      );
      assert.equal(readOrEmpty(`${dir}/log`), "");
    } finally {
      taken.close();
    }
  });
});
