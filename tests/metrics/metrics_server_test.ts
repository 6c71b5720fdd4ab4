/** The `/metrics` HTTP endpoint in process, with real sockets on loopback. */
import { exchange, newMetrics, readAll, START_MS, statusOf } from "./_metrics_util.ts";
import assert from "node:assert/strict";
import { Metrics, METRICS_CONTENT_TYPE } from "../../lib/metrics/metrics.ts";
import { isLoopback, MetricsServer } from "../../lib/metrics/metrics_server.ts";
import { waitFor } from "../_util.ts";

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

Deno.test("MetricsServer answers GET /metrics with the exposition text", async () => {
  await withServer({}, async ({ server, port }, metrics) => {
    metrics.connection(22, 6, START_MS);
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

/** A listener whose first `count` accepts fail as a client's reset makes them fail in Deno. */
function resettingListener(listener: Deno.Listener, count: number): Deno.Listener {
  let failures = 0;
  return new Proxy(listener, {
    get(target, property) {
      if (property === "accept") {
        return () =>
          failures++ < count
            ? Promise.reject(new Deno.errors.NotConnected("Socket is not connected"))
            : target.accept();
      }
      const value = Reflect.get(target, property);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

Deno.test("MetricsServer: 3,000 clients that reset before accept do not delay a scrape", async () => {
  const listener = resettingListener(Deno.listen({ hostname: "127.0.0.1", port: 0 }), 3_000);
  const server = new MetricsServer(listener, newMetrics());
  const done = server.serve();
  try {
    // Each reset used to cost a 10 ms pause: 30 s before the scrape was accepted.
    let answer = "";
    const scraped = exchange(server.addr.port, "GET /metrics HTTP/1.1\r\n\r\n").then((text) =>
      answer = text
    );
    await waitFor("the scrape's answer", () => answer !== "", { timeoutMs: 3_000 });
    await scraped;
    assert.equal(statusOf(answer), 200);
  } finally {
    server.close();
    await done;
  }
});
