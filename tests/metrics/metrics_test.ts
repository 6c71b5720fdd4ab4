import assert from "node:assert/strict";
import { Bouncer } from "../../lib/daemon/bouncer.ts";
import { EventLog } from "../../lib/log/event_log.ts";
import { createFormatter } from "../../lib/log/format.ts";
import type { ConnectionSink, ListenerSet } from "../../lib/daemon/listener_set.ts";
import { LogWriter, type WriteTarget } from "../../lib/log/log_writer.ts";
import { ACCEPT_ERROR_REASONS, Metrics, METRICS_CONTENT_TYPE } from "../../lib/metrics/metrics.ts";
import { PrefixSet } from "../../lib/config/prefix_set.ts";
import {
  isLoopback,
  MAX_CONNECTIONS,
  MetricsServer,
  REQUEST_TIMEOUT_MS,
} from "../../lib/metrics/metrics_server.ts";
import {
  CONNECTION_LINE,
  knockFrom,
  linesMatching,
  LISTENERS,
  needsTools,
  type Program,
  readOrEmpty,
  ROOT,
  runKnock,
  runProgram,
  startProgram,
  waitFor,
  withTempDir,
} from "../_util.ts";

const START_MS = 1_764_000_000_123;
const VERSION: string = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)).version;

function newMetrics(): Metrics {
  return new Metrics({ version: "1.2.3", clock: () => START_MS });
}

/** The sample lines of an exposition text (no comments, no blank lines). */
function samples(text: string): string[] {
  return text.split("\n").filter((line) => line !== "" && !line.startsWith("#"));
}

/** The value of the one sample named `series` (name with labels, exactly as rendered). */
function sample(text: string, series: string): number {
  const found = samples(text).filter((line) => line.startsWith(`${series} `));
  assert.equal(found.length, 1, `one sample ${series} in:\n${text}`);
  return Number(found[0].slice(series.length + 1));
}

Deno.test("Metrics renders every series with HELP and TYPE, zero before any event", () => {
  const metrics = newMetrics();
  metrics.addPort(23);
  metrics.addPort(22);
  assert.equal(
    metrics.render(),
    [
      "# HELP net_bouncer_connections_total Connections logged, by port and family.",
      "# TYPE net_bouncer_connections_total counter",
      'net_bouncer_connections_total{port="22",family="ipv4"} 0',
      'net_bouncer_connections_total{port="22",family="ipv6"} 0',
      'net_bouncer_connections_total{port="23",family="ipv4"} 0',
      'net_bouncer_connections_total{port="23",family="ipv6"} 0',
      "# HELP net_bouncer_ignored_connections_total Connections closed without a line (allow-listed), by port.",
      "# TYPE net_bouncer_ignored_connections_total counter",
      'net_bouncer_ignored_connections_total{port="22"} 0',
      'net_bouncer_ignored_connections_total{port="23"} 0',
      "# HELP net_bouncer_connections_reset_before_accept_total Connections reset before their address could be read (portable listener), by port.",
      "# TYPE net_bouncer_connections_reset_before_accept_total counter",
      'net_bouncer_connections_reset_before_accept_total{port="22"} 0',
      'net_bouncer_connections_reset_before_accept_total{port="23"} 0',
      "# HELP net_bouncer_accept_errors_total Failed accepts, by reason.",
      "# TYPE net_bouncer_accept_errors_total counter",
      'net_bouncer_accept_errors_total{reason="emfile"} 0',
      'net_bouncer_accept_errors_total{reason="enfile"} 0',
      'net_bouncer_accept_errors_total{reason="enobufs"} 0',
      'net_bouncer_accept_errors_total{reason="enomem"} 0',
      'net_bouncer_accept_errors_total{reason="other"} 0',
      "# HELP net_bouncer_log_write_failures_total Failed writes to the log.",
      "# TYPE net_bouncer_log_write_failures_total counter",
      "net_bouncer_log_write_failures_total 0",
      "# HELP net_bouncer_log_dropped_lines_total Lines dropped because the log could not be written.",
      "# TYPE net_bouncer_log_dropped_lines_total counter",
      "net_bouncer_log_dropped_lines_total 0",
      "# HELP net_bouncer_log_reopens_total Reopens of the log file (SIGHUP).",
      "# TYPE net_bouncer_log_reopens_total counter",
      "net_bouncer_log_reopens_total 0",
      "# HELP net_bouncer_allow_list_prefixes Prefixes in the allow-list.",
      "# TYPE net_bouncer_allow_list_prefixes gauge",
      "net_bouncer_allow_list_prefixes 0",
      "# HELP process_start_time_seconds Start time of the process since the Unix epoch, in seconds.",
      "# TYPE process_start_time_seconds gauge",
      "process_start_time_seconds 1764000000.123",
      "# HELP net_bouncer_build_info Always 1; the version is a label.",
      "# TYPE net_bouncer_build_info gauge",
      'net_bouncer_build_info{version="1.2.3"} 1',
      "",
    ].join("\n"),
  );
});

Deno.test("Metrics counts each event in its own series", () => {
  const metrics = newMetrics();
  metrics.addPort(22);
  metrics.addPort(2323);
  for (let i = 0; i < 3; i++) metrics.connection(22, 4);
  metrics.connection(22, 6);
  metrics.connection(2323, 6);
  metrics.ignored(2323);
  metrics.ignored(2323);
  metrics.resetBeforeAccept(22);
  metrics.acceptError("emfile");
  metrics.acceptError("other");
  metrics.acceptError("other");
  metrics.writeFailure();
  metrics.droppedLines(5);
  metrics.droppedLines(2);
  metrics.reopen();
  metrics.allowListSize(7);
  metrics.allowListSize(4); // a gauge: the last value
  const text = metrics.render();
  assert.equal(sample(text, 'net_bouncer_connections_total{port="22",family="ipv4"}'), 3);
  assert.equal(sample(text, 'net_bouncer_connections_total{port="22",family="ipv6"}'), 1);
  assert.equal(sample(text, 'net_bouncer_connections_total{port="2323",family="ipv4"}'), 0);
  assert.equal(sample(text, 'net_bouncer_connections_total{port="2323",family="ipv6"}'), 1);
  assert.equal(sample(text, 'net_bouncer_ignored_connections_total{port="22"}'), 0);
  assert.equal(sample(text, 'net_bouncer_ignored_connections_total{port="2323"}'), 2);
  assert.equal(sample(text, 'net_bouncer_connections_reset_before_accept_total{port="22"}'), 1);
  assert.equal(sample(text, 'net_bouncer_connections_reset_before_accept_total{port="2323"}'), 0);
  assert.equal(sample(text, 'net_bouncer_accept_errors_total{reason="emfile"}'), 1);
  assert.equal(sample(text, 'net_bouncer_accept_errors_total{reason="enfile"}'), 0);
  assert.equal(sample(text, 'net_bouncer_accept_errors_total{reason="other"}'), 2);
  assert.equal(sample(text, "net_bouncer_log_write_failures_total"), 1);
  assert.equal(sample(text, "net_bouncer_log_dropped_lines_total"), 7);
  assert.equal(sample(text, "net_bouncer_log_reopens_total"), 1);
  assert.equal(sample(text, "net_bouncer_allow_list_prefixes"), 4);
});

Deno.test("Metrics: the series do not grow with events, only with ports", () => {
  const metrics = newMetrics();
  metrics.addPort(22);
  const before = samples(metrics.render()).length;
  for (let i = 0; i < 10_000; i++) {
    metrics.connection(22, i % 2 === 0 ? 4 : 6);
    metrics.ignored(22);
    metrics.resetBeforeAccept(22);
    metrics.acceptError(ACCEPT_ERROR_REASONS[i % ACCEPT_ERROR_REASONS.length]);
  }
  metrics.addPort(22); // known: kept, not reset
  assert.equal(samples(metrics.render()).length, before);
  assert.equal(
    sample(metrics.render(), 'net_bouncer_connections_total{port="22",family="ipv4"}'),
    5_000,
  );
  // A port that was never added still counts (once made, it is as if added).
  metrics.connection(80, 4);
  const text = metrics.render();
  assert.equal(samples(text).length, before + 4);
  assert.equal(sample(text, 'net_bouncer_connections_total{port="80",family="ipv4"}'), 1);
});

Deno.test("Metrics escapes the version label and counts beyond 2^32", () => {
  const metrics = new Metrics({ version: 'a"b\\c\nd', clock: () => 0 });
  metrics.droppedLines(2 ** 32);
  metrics.droppedLines(1);
  const text = metrics.render();
  assert.ok(text.includes('net_bouncer_build_info{version="a\\"b\\\\c\\nd"} 1\n'), text);
  assert.equal(sample(text, "net_bouncer_log_dropped_lines_total"), 2 ** 32 + 1);
  assert.equal(sample(text, "process_start_time_seconds"), 0);
});

Deno.test({
  name: "promtool check metrics accepts the exposition text",
  ignore: needsTools("promtool"),
  fn: async () => {
    const metrics = newMetrics();
    for (const port of [22, 23, 2323]) metrics.addPort(port);
    metrics.connection(22, 4);
    await promtoolCheck(metrics.render());
  },
});

/** Runs `promtool check metrics` on `text`; fails with its output unless it passes cleanly. */
export async function promtoolCheck(text: string): Promise<void> {
  const child = new Deno.Command("promtool", {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const { code, stdout, stderr } = await child.output();
  const output = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  // promtool exits 0 with lint warnings on stdout (e.g. a counter without _total): none allowed.
  assert.equal(code, 0, output);
  assert.equal(output.trim(), "", output);
}

// --- What the daemon counts: Bouncer and LogWriter feeding a Metrics ---

Deno.test("Bouncer counts into Metrics: ports when bound, each event in its series", async () => {
  let sink: ConnectionSink | null = null;
  const listeners: ListenerSet = {
    dualStackInOneSocket: true,
    bind: (_hostname, port) => port === 0 ? 40001 : port,
    serve: (s) => {
      sink = s;
      return Promise.resolve();
    },
    close: () => {},
  };
  const metrics = newMetrics();
  const formatter = createFormatter("text");
  const allowList = new PrefixSet();
  allowList.add("192.0.2.0/24");
  const server = new Bouncer(listeners, { writeBytes: () => {} }, {
    formatter,
    log: new EventLog({ write: () => {} }, formatter),
    allowList,
    metrics,
  });
  server.listen([22, 0]);
  // Bound ports have their series before any connection; port 0 is counted as the one bound.
  const bound = metrics.render();
  assert.equal(sample(bound, 'net_bouncer_connections_total{port="22",family="ipv4"}'), 0);
  assert.equal(sample(bound, 'net_bouncer_connections_total{port="40001",family="ipv6"}'), 0);
  assert.ok(!bound.includes('port="0"'));
  await server.serve();
  const s = sink! as ConnectionSink;
  s.connection("203.0.113.5", 1000, 22, null);
  s.connection("2001:db8::1", 1000, 22, null);
  s.connection("2001:db8::2", 1000, 40001, null);
  s.connection("192.0.2.7", 1000, 22, null); // allow-listed
  s.dropped(40001);
  s.reset(22);
  s.acceptFailed({ kind: "resource", code: "EMFILE" }, 22);
  s.acceptFailed({ kind: "resource", code: "ENOBUFS" }, 22);
  s.acceptFailed({ kind: "connection", code: "ECONNABORTED" }, 22);
  const text = metrics.render();
  assert.equal(sample(text, 'net_bouncer_connections_total{port="22",family="ipv4"}'), 1);
  assert.equal(sample(text, 'net_bouncer_connections_total{port="22",family="ipv6"}'), 1);
  assert.equal(sample(text, 'net_bouncer_connections_total{port="40001",family="ipv6"}'), 1);
  assert.equal(sample(text, 'net_bouncer_ignored_connections_total{port="22"}'), 1);
  assert.equal(sample(text, 'net_bouncer_ignored_connections_total{port="40001"}'), 1);
  assert.equal(sample(text, 'net_bouncer_connections_reset_before_accept_total{port="22"}'), 1);
  assert.equal(sample(text, 'net_bouncer_accept_errors_total{reason="emfile"}'), 1);
  assert.equal(sample(text, 'net_bouncer_accept_errors_total{reason="enobufs"}'), 1);
  assert.equal(sample(text, 'net_bouncer_accept_errors_total{reason="other"}'), 1);
  assert.equal(samples(text).length, samples(bound).length);
});

Deno.test("LogWriter counts into Metrics: failed writes, dropped lines, reopens", () => {
  const metrics = newMetrics();
  let full = false;
  const target = (): WriteTarget => ({
    writeSync: (data) => {
      if (full) throw Object.assign(new Error("No space left on device"), { code: "ENOSPC" });
      return data.length;
    },
    close: () => {},
  });
  const writer = new LogWriter("/nonexistent/log", {
    open: target,
    report: () => {},
    metrics,
  });
  writer.write("one\n");
  full = true;
  writer.write("two\n");
  writer.write("three\nfour\n");
  full = false;
  writer.reopen();
  writer.reopen();
  const text = metrics.render();
  assert.equal(sample(text, "net_bouncer_log_write_failures_total"), 2);
  assert.equal(sample(text, "net_bouncer_log_dropped_lines_total"), 3);
  assert.equal(sample(text, "net_bouncer_log_reopens_total"), 2);
});

// --- The HTTP endpoint, in process, with real sockets on loopback ---

Deno.test("isLoopback: 127.0.0.0/8 and ::1 (also IPv4-mapped), nothing else", () => {
  for (const address of ["127.0.0.1", "127.255.0.9", "::1", "::ffff:7f00:1", "::ffff:127.0.0.1"]) {
    assert.ok(isLoopback(address), address);
  }
  for (const address of ["0.0.0.0", "::", "10.0.0.1", "128.0.0.1", "1.127.0.0", "::2", "fe80::1"]) {
    assert.ok(!isLoopback(address), address);
  }
});

interface Served {
  server: MetricsServer;
  port: number;
  done: Promise<void>;
}

async function withServer(
  options: ConstructorParameters<typeof MetricsServer>[2],
  fn: (served: Served, metrics: Metrics) => Promise<void>,
): Promise<void> {
  const metrics = newMetrics();
  metrics.addPort(22);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const server = new MetricsServer(listener, metrics, options);
  const done = server.serve();
  try {
    await fn({ server, port: server.addr.port, done }, metrics);
  } finally {
    server.close();
    await done;
  }
}

/** Sends `request` on a new connection and reads the whole answer (until the server closes). */
async function exchange(port: number, request: string | Uint8Array): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const bytes = typeof request === "string" ? new TextEncoder().encode(request) : request;
    let written = 0;
    while (written < bytes.length) written += await conn.write(bytes.subarray(written));
    return await readAll(conn);
  } finally {
    conn.close();
  }
}

async function readAll(conn: Deno.Conn): Promise<string> {
  const decoder = new TextDecoder();
  const buffer = new Uint8Array(16 * 1024);
  let text = "";
  while (true) {
    const n = await conn.read(buffer);
    if (n === null) break;
    text += decoder.decode(buffer.subarray(0, n), { stream: true });
  }
  return text + decoder.decode();
}

function statusOf(answer: string): number {
  const match = /^HTTP\/1\.1 (\d{3}) /.exec(answer);
  assert.ok(match, `an HTTP status line in ${JSON.stringify(answer.slice(0, 200))}`);
  return Number(match[1]);
}

Deno.test("MetricsServer answers GET /metrics with the exposition text", async () => {
  await withServer({}, async ({ server, port }, metrics) => {
    metrics.connection(22, 6);
    const response = await fetch(`http://127.0.0.1:${port}/metrics`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), METRICS_CONTENT_TYPE);
    assert.equal(await response.text(), metrics.render());
    // A query string and the absolute form name the same path.
    const query = await exchange(port, "GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
    assert.equal(statusOf(query), 200);
    assert.ok(query.endsWith(metrics.render()));
    const absolute = await exchange(port, `GET http://127.0.0.1:${port}/metrics HTTP/1.0\n\n`);
    assert.equal(statusOf(absolute), 200);
    const head = await exchange(port, "HEAD /metrics HTTP/1.1\r\n\r\n");
    assert.equal(statusOf(head), 200);
    assert.ok(head.endsWith("\r\n\r\n"), "HEAD: no body");
    assert.match(head, new RegExp(`Content-Length: ${metrics.render().length}\r\n`));
    assert.deepEqual(server.stats, { served: 4, rejected: 0, refused: 0 });
  });
});

Deno.test("MetricsServer: 404 for other paths, 405 for other methods, 400 for garbage", async () => {
  await withServer({}, async ({ server, port }) => {
    assert.equal(statusOf(await exchange(port, "GET / HTTP/1.1\r\n\r\n")), 404);
    assert.equal(statusOf(await exchange(port, "GET /metrics/x HTTP/1.1\r\n\r\n")), 404);
    const post = await exchange(port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert.equal(statusOf(post), 405);
    assert.match(post, /\r\nAllow: GET, HEAD\r\n/);
    for (
      const garbage of [
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", // a TLS hello
        "GET /metrics\r\n\r\n", // HTTP/0.9
        "GET  /metrics HTTP/1.1\r\n\r\n",
        "GET /metrics HTTP/2.0\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n",
        "GET /metrics HTTP/1.1\r\n folded: header\r\n\r\n",
        "SSH-2.0-OpenSSH_9.6\r\n\r\n",
      ]
    ) {
      assert.equal(statusOf(await exchange(port, garbage)), 400, JSON.stringify(garbage));
    }
    // A client that closes mid-request gets 400 on its half-open connection.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(new TextEncoder().encode("GET /metr"));
    await conn.closeWrite();
    assert.equal(statusOf(await readAll(conn)), 400);
    conn.close();
    assert.deepEqual(server.stats, { served: 0, rejected: 11, refused: 0 });
  });
});

Deno.test("MetricsServer: 431 for an oversized head, 414 for an oversized request line", async () => {
  await withServer({ maxRequestBytes: 1024 }, async ({ port }) => {
    const headers = "GET /metrics HTTP/1.1\r\n" + `X-Big: ${"a".repeat(60_000)}\r\n\r\n`;
    assert.equal(statusOf(await exchange(port, headers)), 431);
    const line = `GET /${"a".repeat(2_000)} HTTP/1.1\r\n\r\n`;
    assert.equal(statusOf(await exchange(port, line)), 414);
    // A head of exactly the bound is read; one byte more is not.
    const fits = "GET /metrics HTTP/1.1\r\nX: " + "a".repeat(1024 - 30) + "\r\n\r\n";
    assert.equal(new TextEncoder().encode(fits).length, 1024);
    assert.equal(statusOf(await exchange(port, fits)), 200);
    assert.equal(statusOf(await exchange(port, fits.replace("X: ", "X: a"))), 431);
  });
});

Deno.test("MetricsServer: a client that never finishes its request gets 408 at the deadline", async () => {
  await withServer({ timeoutMs: 300 }, async ({ server, port }) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const started = Date.now();
    await conn.write(new TextEncoder().encode("GET /metrics HTTP/1.1\r\nHost:"));
    const answer = await readAll(conn);
    conn.close();
    assert.equal(statusOf(answer), 408);
    assert.ok(Date.now() - started >= 250, `answered after ${Date.now() - started} ms`);
    // Meanwhile and afterwards, other clients are served.
    assert.equal(statusOf(await exchange(port, "GET /metrics HTTP/1.1\r\n\r\n")), 200);
    assert.equal(server.stats.rejected, 1);
  });
});

Deno.test("MetricsServer: a client that never reads a large answer is cut off at the deadline", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  // 8 MB per answer: more than loopback's socket buffers hold, so the write blocks.
  const big = { render: () => "x".repeat(8_000_000) };
  // One connection at a time: the next client is served only once the stuck one is dropped.
  const server = new MetricsServer(listener, big, { timeoutMs: 500, maxConnections: 1 });
  const done = server.serve();
  const port = server.addr.port;
  const stuck = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await stuck.write(new TextEncoder().encode("GET /metrics HTTP/1.1\r\n\r\n"));
    await waitFor("the answer to be rendered", () => server.stats.served === 1);
    const started = Date.now();
    await waitFor("the stuck connection to be dropped", async () => {
      const answer = await exchange(port, "GET /nothing HTTP/1.1\r\n\r\n");
      return answer.startsWith("HTTP/1.1 404 ");
    });
    const waited = Date.now() - started;
    assert.ok(server.stats.refused >= 1, "refused while the stuck client held the slot");
    assert.ok(waited >= 400 && waited < 3_000, `served after ${waited} ms`);
  } finally {
    stuck.close();
    server.close();
    await done;
  }
});

Deno.test("MetricsServer: connections beyond the bound are closed at once", async () => {
  await withServer({ maxConnections: 2, timeoutMs: 10_000 }, async ({ server, port }) => {
    const hanging = [
      await Deno.connect({ hostname: "127.0.0.1", port }),
      await Deno.connect({ hostname: "127.0.0.1", port }),
    ];
    try {
      // The third is accepted and closed at once: no answer.
      const third = await Deno.connect({ hostname: "127.0.0.1", port });
      let answer = "";
      try {
        answer = await readAll(third);
      } catch (error) {
        if (!(error instanceof Deno.errors.ConnectionReset)) throw error;
      } finally {
        third.close();
      }
      assert.equal(answer, "");
      assert.equal(server.stats.refused, 1);
    } finally {
      for (const conn of hanging) conn.close();
    }
    // Once the hanging ones are gone, clients are served again.
    await waitFor("a free connection slot", async () => {
      const answer = await exchange(port, "GET /metrics HTTP/1.1\r\n\r\n");
      return answer.startsWith("HTTP/1.1 200 ");
    });
  });
});

Deno.test("MetricsServer.close ends serve while clients hang, and closes their connections", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const server = new MetricsServer(listener, newMetrics(), { timeoutMs: 60_000 });
  const done = server.serve();
  const port = server.addr.port;
  const hanging = await Deno.connect({ hostname: "127.0.0.1", port });
  await hanging.write(new TextEncoder().encode("GET /met"));
  await waitFor("the server to hold the connection", () => {
    // A second client is served, so the first one was accepted before it.
    return exchange(port, "GET /metrics HTTP/1.1\r\n\r\n").then((a) => a.startsWith("HTTP"));
  });
  const started = Date.now();
  server.close();
  await done;
  assert.ok(Date.now() - started < 1_000, "serve resolved at once");
  // The hanging client sees the close (EOF or reset), with no answer.
  let answer = "";
  try {
    answer = await readAll(hanging);
  } catch (error) {
    if (!(error instanceof Deno.errors.ConnectionReset)) throw error;
  } finally {
    hanging.close();
  }
  assert.equal(answer, "");
  await assert.rejects(() => Deno.connect({ hostname: "127.0.0.1", port }));
});

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
