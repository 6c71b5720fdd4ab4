import assert from "node:assert/strict";
import { configureSync, type LogRecord, resetSync } from "@logtape/logtape";
import { createFormatter } from "../lib/format.ts";
import { Bouncer, type ListenFunction } from "../lib/server.ts";

function captureLogs(): LogRecord[] {
  const records: LogRecord[] = [];
  configureSync({
    sinks: { test: (record) => records.push(record) },
    loggers: [
      { category: ["net-bouncer"], sinks: ["test"], lowestLevel: "debug" },
      { category: ["logtape", "meta"], sinks: [], lowestLevel: "warning" },
    ],
    reset: true,
  });
  return records;
}

function osError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

interface FakeConn {
  remoteAddr: Deno.NetAddr;
  closed: boolean;
  close(): void;
}

/** A listener that plays a script: errors to throw and connections to return, then waits. */
function scriptedListener(
  script: (Error | string)[],
  hostname: string,
  port: number,
): { listener: Deno.Listener; conns: FakeConn[]; drained: Promise<void> } {
  const conns: FakeConn[] = [];
  let closed = false;
  let wake = () => {};
  let drainedResolve = () => {};
  const drained = new Promise<void>((resolve) => drainedResolve = resolve);
  const listener = {
    addr: { transport: "tcp", hostname, port },
    accept(): Promise<FakeConn> {
      const step = script.shift();
      if (step === undefined) {
        drainedResolve();
        return new Promise((_, reject) => {
          wake = () => reject(new Deno.errors.BadResource("Listener has been closed"));
          if (closed) wake();
        });
      }
      if (step instanceof Error) return Promise.reject(step);
      const conn: FakeConn = {
        remoteAddr: { transport: "tcp", hostname: step, port: 40000 + conns.length },
        closed: false,
        close() {
          this.closed = true;
        },
      };
      conns.push(conn);
      return Promise.resolve(conn);
    },
    close() {
      closed = true;
      wake();
    },
  };
  return { listener: listener as unknown as Deno.Listener, conns, drained };
}

Deno.test("Bouncer falls back to IPv4 when the host has no IPv6, and says so", async () => {
  const records = captureLogs();
  try {
    const attempts: string[] = [];
    const listen: ListenFunction = ({ hostname, port }) => {
      attempts.push(hostname);
      if (hostname === "::") {
        throw osError("EAFNOSUPPORT", "Address family not supported by protocol (os error 97)");
      }
      return scriptedListener([], hostname, port).listener;
    };
    const server = new Bouncer({ writeBytes: () => {} }, createFormatter("text"), { listen });
    server.listen([22]);
    assert.deepEqual(attempts, ["::", "0.0.0.0"]);
    const messages = records.map((r) => r.message.join(""));
    assert.match(messages[0], /IPv6 is not available on this host/);
    assert.equal(records[0].level, "warning");
    assert.match(messages[1], /Listening on port 22 \(IPv4 only, any address\)/);
    server.close();
    await server.serve();
  } finally {
    resetSync();
  }
});

Deno.test("Bouncer closes what it bound when a later port fails", () => {
  captureLogs();
  try {
    const closed: number[] = [];
    const listen: ListenFunction = ({ hostname, port }) => {
      if (port === 2) {
        throw Object.assign(new Deno.errors.AddrInUse("in use"), { code: "EADDRINUSE" });
      }
      const fake = scriptedListener([], hostname, port).listener;
      const close = fake.close.bind(fake);
      fake.close = () => {
        closed.push(port);
        close();
      };
      return fake;
    };
    const server = new Bouncer({ writeBytes: () => {} }, createFormatter("text"), { listen });
    assert.throws(
      () => server.listen([1, 2, 3]),
      /^AddrInUse: Cannot listen on port "2": address already in use$/,
    );
    // Port 1 had "::" and, as on a host without dual-stack sockets, "0.0.0.0".
    assert.deepEqual(closed, [1, 1]);
  } finally {
    resetSync();
  }
});

Deno.test("Bouncer logs accept errors at most once a second with a count, and keeps serving", async () => {
  const records = captureLogs();
  try {
    const emfile = () => osError("EMFILE", "Too many open files (os error 24)");
    let now = 0;
    const script: (Error | string)[] = [];
    for (let i = 0; i < 50; i++) script.push(emfile());
    script.push("::ffff:192.0.2.7");
    const fake = scriptedListener(script, "::", 22);
    const lines: string[] = [];
    const sink = { writeBytes: (line: Uint8Array) => lines.push(new TextDecoder().decode(line)) };
    const server = new Bouncer(sink, createFormatter("text"), {
      listen: () => fake.listener,
      clock: () => (now += 50), // each accept attempt moves the clock 50 ms
    });
    server.listen([22]);
    const serving = server.serve();
    await fake.drained;
    server.close();
    await serving;
    assert.equal(server.acceptErrors, 50);
    assert.equal(server.connections, 1);
    assert.equal(fake.conns[0].closed, true);
    assert.match(lines[0], / \[INFO\] Connection from 192\.0\.2\.7 on port 22\n$/);
    const errors = records.filter((r) => r.properties.event === "error");
    // 50 failures over 2.5 s of clock: one report per second plus the one on resuming.
    assert.ok(errors.length >= 3 && errors.length <= 4, `${errors.length} reports`);
    const counted = errors.reduce((sum, r) => sum + Number(r.properties.count), 0);
    assert.equal(counted, 50);
    assert.match(errors[0].message.join(""), /^Cannot accept connections: too many open files/);
    assert.match(errors.at(-1)!.message.join(""), /^Accepting connections again/);
  } finally {
    resetSync();
  }
});

Deno.test("Bouncer adds an IPv4 listener where '::' does not take IPv4 (bindv6only, Windows)", () => {
  for (const dualStack of [true, false]) {
    const records = captureLogs();
    try {
      const bound: string[] = [];
      const listen: ListenFunction = ({ hostname, port }) => {
        if (dualStack && hostname === "0.0.0.0" && bound.includes(`:::${port}`)) {
          throw Object.assign(new Deno.errors.AddrInUse("in use"), { code: "EADDRINUSE" });
        }
        bound.push(`${hostname}:${port}`);
        return scriptedListener([], hostname, port).listener;
      };
      const server = new Bouncer({ writeBytes: () => {} }, createFormatter("text"), { listen });
      server.listen([22, 23]);
      assert.deepEqual(
        bound,
        dualStack ? [":::22", ":::23"] : [":::22", "0.0.0.0:22", ":::23", "0.0.0.0:23"],
      );
      // One Listening line per port either way.
      assert.deepEqual(records.map((r) => r.message.join("")), [
        "Listening on port 22 (IPv4 and IPv6, any address)",
        "Listening on port 23 (IPv4 and IPv6, any address)",
      ]);
      server.close();
    } finally {
      resetSync();
    }
  }
});

Deno.test("Bouncer says once, not per port, that IPv6 is missing", () => {
  const records = captureLogs();
  try {
    const listen: ListenFunction = ({ hostname, port }) => {
      if (hostname === "::") throw osError("EAFNOSUPPORT", "Address family not supported");
      return scriptedListener([], hostname, port).listener;
    };
    const server = new Bouncer({ writeBytes: () => {} }, createFormatter("text"), { listen });
    server.listen([1, 2, 3]);
    assert.equal(records.filter((r) => r.level === "warning").length, 1);
    assert.equal(records.filter((r) => r.properties.event === "listening").length, 3);
    server.close();
  } finally {
    resetSync();
  }
});
