/**
 * The suite's load generator, tests/testdata/knock.c, against listeners of the test's own: it
 * counts what it claims (connections, failures, bytes), binds the source addresses it is given,
 * ends each connection the way its mode says (wait for the server, RST, FIN), keeps its time
 * limit, and refuses bad usage.
 */
import assert from "node:assert/strict";
import { buildKnock, needsTools, run, runKnock } from "../_util.ts";

const IGNORE = needsTools("cc");
/** Exit status of knock for bad usage. */
const USAGE_EXIT = 2;

/** How a test listener ends a connection it accepted. */
type Serve = "close" | "send" | "hold";

/** How the test listener saw its connections end. */
interface Seen {
  /** Client addresses of the accepted connections, in order. */
  addresses: string[];
  /** Connections the client ended with a FIN (the read gave end of file). */
  fins: number;
  /** Connections the client reset (the read or the accept failed with a reset). */
  resets: number;
}

/**
 * A dual-stack listener that accepts `count` connections and ends each one as `serve` says:
 * close it at once, send one byte and close it, or hold it open and read until the client ends it.
 */
function listen(count: number, serve: Serve): { port: number; done: Promise<Seen> } {
  const listener = Deno.listen({ hostname: "::", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const done = (async () => {
    const seen: Seen = { addresses: [], fins: 0, resets: 0 };
    const reads: Promise<void>[] = [];
    try {
      for (let i = 0; i < count; i++) {
        let conn: Deno.TcpConn;
        try {
          conn = await listener.accept();
        } catch (error) {
          // Deno asks getpeername(2) after accept, which fails once the client's RST arrived.
          if (!(error instanceof Deno.errors.NotConnected)) throw error;
          seen.resets++;
          continue;
        }
        seen.addresses.push((conn.remoteAddr as Deno.NetAddr).hostname);
        if (serve === "hold") {
          reads.push(readUntilEnd(conn, seen));
          continue;
        }
        if (serve === "send") await conn.write(new Uint8Array([0x21]));
        conn.close();
      }
      await Promise.all(reads);
    } finally {
      listener.close();
    }
    return seen;
  })();
  return { port, done };
}

/** Reads until the client ends the connection; counts a FIN or a reset. */
async function readUntilEnd(conn: Deno.TcpConn, seen: Seen): Promise<void> {
  const buffer = new Uint8Array(64);
  try {
    while ((await conn.read(buffer)) !== null) {
      // knock sends nothing.
    }
    seen.fins++;
  } catch (error) {
    if (!(error instanceof Deno.errors.ConnectionReset)) throw error;
    seen.resets++;
  } finally {
    conn.close();
  }
}

/** Strips IPv4-mapped IPv6 addresses of a dual-stack listener to their IPv4 form. */
function plain(address: string): string {
  return address.replace(/^::ffff:/, "");
}

Deno.test({
  name: "knock: waits for the server's close; counts connections, bytes and source addresses",
  ignore: IGNORE,
  async fn() {
    const total = 200;
    const server = listen(total, "close");
    const summary = await runKnock(server.port, { total, concurrency: 16, sources: 4 });
    const seen = await server.done;
    assert.deepEqual(
      { connections: summary.connections, failed: summary.failed, bytes: summary.bytes },
      { connections: total, failed: 0, bytes: 0 },
    );
    // Connection i comes from 127.0.0.(1 + i % 4): 50 from each.
    const counts = new Map<string, number>();
    for (const address of seen.addresses.map(plain)) {
      counts.set(address, (counts.get(address) ?? 0) + 1);
    }
    assert.deepEqual(
      [...counts].sort(),
      [["127.0.0.1", 50], ["127.0.0.2", 50], ["127.0.0.3", 50], ["127.0.0.4", 50]],
    );
  },
});

Deno.test({
  name: "knock: over IPv6 to ::1, and every byte the server sends is counted (exit 1)",
  ignore: IGNORE,
  async fn() {
    const total = 20;
    const server = listen(total, "send");
    const knock = await buildKnock();
    const result = await run(knock, ["-n", String(total), "-c", "4", "::1", String(server.port)]);
    const seen = await server.done;
    assert.match(result.stdout, new RegExp(`^connections=${total} failed=0 bytes=${total} `));
    assert.equal(result.code, 1, "bytes received must fail the run");
    assert.deepEqual(new Set(seen.addresses), new Set(["::1"]));
  },
});

Deno.test({
  name: "knock: -m reset ends each connection with a RST, -m close with a FIN, neither waits",
  ignore: IGNORE,
  async fn() {
    const total = 50;
    for (const reset of [true, false]) {
      // The listener holds every connection open: only the client can end it.
      const server = listen(total, "hold");
      const mode = reset ? "reset" : "close";
      const knock = await buildKnock();
      const result = await run(knock, [
        "-n",
        String(total),
        "-m",
        mode,
        "127.0.0.1",
        `${server.port}`,
      ]);
      const seen = await server.done;
      assert.equal(result.code, 0, `${mode}: ${result.stdout}${result.stderr}`);
      assert.match(result.stdout, new RegExp(`^connections=${total} failed=0 bytes=0 `), mode);
      assert.deepEqual(
        { fins: seen.fins, resets: seen.resets },
        reset ? { fins: 0, resets: total } : { fins: total, resets: 0 },
        mode,
      );
    }
  },
});

Deno.test({
  name: "knock: a refused port counts every connection as failed",
  ignore: IGNORE,
  async fn() {
    // A port that was just released and is not listened on: connections are refused.
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    listener.close();
    const summary = await runKnock(port, { total: 30, concurrency: 8 });
    assert.deepEqual(
      { connections: summary.connections, failed: summary.failed },
      { connections: 0, failed: 30 },
    );
  },
});

Deno.test({
  name: "knock: -t stops a run whose server never closes and counts the unfinished as failed",
  ignore: IGNORE,
  async fn() {
    const total = 10;
    const server = listen(total, "hold");
    const knock = await buildKnock();
    const result = await run(knock, [
      "-n",
      "10",
      "-c",
      "10",
      "-t",
      "1",
      "127.0.0.1",
      `${server.port}`,
    ]);
    // knock's exit closed the held connections (without SO_LINGER: FINs).
    const seen = await server.done;
    assert.equal(result.code, 1);
    assert.match(result.stdout, /^connections=0 failed=10 bytes=0 seconds=1\.\d{3}$/m);
    assert.match(result.stderr, /time limit of 1 s reached with 10 connections unfinished/);
    assert.equal(seen.fins, total);
  },
});

Deno.test({
  name: "knock: bad usage exits 2 with a message and makes no connection",
  ignore: IGNORE,
  async fn() {
    const knock = await buildKnock();
    const cases: [string[], RegExp][] = [
      [[], /^usage: knock /],
      [["127.0.0.1"], /^usage: knock /],
      [["-n", "0", "127.0.0.1", "22"], /-n must be 1-\d+, not "0"/],
      [["-n", "12x", "127.0.0.1", "22"], /-n must be 1-\d+, not "12x"/],
      [["-c", "-1", "127.0.0.1", "22"], /-c must be 1-\d+, not "-1"/],
      [["-s", "255", "127.0.0.1", "22"], /-s must be 1-254, not "255"/],
      [["-s", "2", "::1", "22"], /-s applies to IPv4 only/],
      [["-m", "slow", "127.0.0.1", "22"], /-m must be wait, reset or close, not "slow"/],
      [["-t", "0", "127.0.0.1", "22"], /-t must be 1-\d+ seconds, not "0"/],
      [["localhost", "22"], /HOST must be a numeric IPv4 or IPv6 address, not "localhost"/],
      [["127.0.0.1", "65536"], /PORT must be 1-65535, not "65536"/],
      [["-x", "127.0.0.1", "22"], /^usage: knock /m],
    ];
    for (const [args, message] of cases) {
      const result = await run(knock, args);
      assert.equal(result.code, USAGE_EXIT, args.join(" "));
      assert.match(result.stderr, message, args.join(" "));
      assert.equal(result.stdout, "", args.join(" "));
    }
  },
});
