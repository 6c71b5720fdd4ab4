import assert from "node:assert/strict";
import { ACCEPT_ERROR_REASONS, Metrics, METRICS_CONTENT_TYPE } from "../lib/metrics.ts";
import { MetricsServer } from "../lib/metrics_server.ts";
import { needsTools, waitFor } from "./_util.ts";

const START_MS = 1_764_000_000_123;

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

// --- The HTTP endpoint, in process, with real sockets on loopback ---

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
