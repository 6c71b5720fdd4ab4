/**
 * What the native listener sees that Deno's accept cannot: clients that reset right after the
 * handshake (connect scans), and sockets whose IPV6_V6ONLY it sets itself. The real program as a
 * subprocess; loopback and a network namespace of the test's own. In process: when a round waits.
 */
import assert from "node:assert/strict";
import {
  buildKnock,
  CONNECTION_LINE,
  connectionAddresses,
  knock,
  linesMatching,
  LISTENERS,
  needsTools,
  readUntilClosed,
  run,
  runKnock,
  startProgram,
  waitFor,
  withDeadline,
  withTempDir,
} from "../_util.ts";
import { type Libc, type LibcSymbols, openLibc, SYS_CLOSE_RANGE } from "../../lib/linux/libc.ts";
import { COALESCE_WAIT_US, NativeListeners } from "../../lib/daemon/native_listener.ts";
import { collectingSink } from "./_collecting_sink.ts";

const RESETS = 5_000;
const SOURCES = 50;
const STOPPED_LINE =
  /Stopped after (\d+) connections?(?:, (\d+) connections? reset before their address could be read)?$/;

for (const listener of LISTENERS) {
  Deno.test({
    name: `[${listener}] clients that reset at once from ${SOURCES} sources: ${
      listener === "native" ? "each logged once, with its address" : "each logged or counted"
    }; the loop never pauses`,
    ignore: needsTools("cc"),
    async fn() {
      await withTempDir(async (dir) => {
        const program = await startProgram(["--listener", listener, "-p", "0"], {
          logFile: `${dir}/log`,
        });
        let stopped: RegExpExecArray | null = null;
        try {
          const result = await runKnock(program.port, {
            total: RESETS,
            concurrency: 64,
            sources: SOURCES,
            reset: true,
          });
          assert.equal(result.connections, RESETS);
          // A last client that does not reset: once it is logged, every earlier one was taken.
          await knock("127.0.0.1", program.port);
          await waitFor(
            "the last client's line",
            () => program.log().includes("Connection from 127.0.0.1 "),
          );
        } finally {
          assert.equal((await program.stop()).code, 0);
        }
        const log = program.log();
        stopped = STOPPED_LINE.exec(log.trimEnd().split("\n").at(-1)!);
        assert.ok(stopped, log.slice(-300));
        const logged = connectionAddresses(log);
        const resets = Number(stopped[2] ?? 0);
        // No accept error is reported for a client's reset, and there was no back-off.
        assert.deepEqual(linesMatching(log, /\[ERROR\]/), []);
        assert.equal(Number(stopped[1]), logged.length);
        if (listener === "native") {
          assert.equal(logged.length, RESETS + 1);
          assert.equal(resets, 0);
          const perSource = new Map<string, number>();
          for (const address of logged) perSource.set(address, (perSource.get(address) ?? 0) + 1);
          assert.equal(perSource.size, SOURCES);
          for (let i = 1; i <= SOURCES; i++) {
            const expected = RESETS / SOURCES + (i === 1 ? 1 : 0);
            assert.equal(perSource.get(`127.0.0.${i}`), expected, `127.0.0.${i}`);
          }
        } else {
          // Deno loses the address of a client whose reset arrived first: counted, not logged.
          assert.equal(logged.length + resets, RESETS + 1);
        }
      });
    },
  });

  Deno.test({
    name: `[${listener}] during a flood of resets every other client is logged within 1 s`,
    ignore: needsTools("cc"),
    async fn() {
      await withTempDir(async (dir) => {
        const program = await startProgram(["--listener", listener, "-p", "0"], {
          logFile: `${dir}/log`,
        });
        const delays: number[] = [];
        try {
          const flood = runKnock(program.port, {
            total: 20_000,
            concurrency: 128,
            sources: 20,
            reset: true,
            seconds: 30,
          });
          // Clients from an address the flood does not use: ::1.
          for (let i = 1; i <= 20; i++) {
            const conn = await Deno.connect({ hostname: "::1", port: program.port });
            // From the completed handshake: a SYN that the kernel dropped while the flood filled
            // the accept queue is sent again by the client a second later, which is not the
            // listener's delay.
            const started = Date.now();
            await waitFor(
              "the client's line",
              () => connectionAddresses(program.log()).filter((a) => a === "::1").length === i,
              {
                timeoutMs: 5_000,
              },
            );
            delays.push(Date.now() - started);
            assert.equal(await readUntilClosed(conn), 0);
          }
          await flood;
        } finally {
          assert.equal((await program.stop()).code, 0);
        }
        assert.ok(Math.max(...delays) < 1_000, `delays: ${delays.join(", ")} ms`);
      });
    },
  });
}

Deno.test({
  name: "[native] nmap -sT over IPv4 and IPv6 on several ports: one line per port scanned",
  ignore: needsTools("nmap"),
  async fn() {
    await withTempDir(async (dir) => {
      // Three ports the system picked: one program each (-p 0 gives one port per program).
      const program = await startProgram(["--listener", "native", "-p", "0"], {
        logFile: `${dir}/log`,
      });
      const others = [
        await startProgram(["--listener", "native", "-p", "0"], { logFile: `${dir}/log2` }),
        await startProgram(["--listener", "native", "-p", "0"], { logFile: `${dir}/log3` }),
      ];
      const programs = [program, ...others];
      const ports = programs.map((p) => p.port).join(",");
      try {
        for (const [flag, address] of [["-4", "127.0.0.1"], ["-6", "::1"]]) {
          const scan = await run("nmap", ["-sT", "-Pn", "-n", flag, "-p", ports, address], {
            timeoutMs: 60_000,
          });
          assert.equal(scan.code, 0, scan.stderr);
          for (const p of programs) {
            assert.match(scan.stdout, new RegExp(`^${p.port}/tcp\\s+open`, "m"));
          }
        }
        for (const p of programs) {
          await p.waitForLines(CONNECTION_LINE, 2);
        }
      } finally {
        for (const p of programs) assert.equal((await p.stop()).code, 0);
      }
      for (const p of programs) {
        assert.deepEqual(connectionAddresses(p.log()), ["127.0.0.1", "::1"]);
        assert.deepEqual(linesMatching(p.log(), /\[ERROR\]/), []);
      }
    });
  },
});

Deno.test({
  name: "[native] -b 0.0.0.0 -b :: coexist on one port: IPv4 and IPv6 clients each on their own",
  async fn() {
    await withTempDir(async (dir) => {
      // -p 0: the system picks one port, which both addresses share.
      const program = await startProgram(
        ["--listener", "native", "-b", "0.0.0.0", "-b", "::", "-p", "0"],
        { logFile: `${dir}/log`, listening: 2 },
      );
      try {
        assert.equal(program.ports.length, 1);
        await knock("127.0.0.1", program.port);
        await knock("::1", program.port);
        await program.waitForLines(CONNECTION_LINE, 2);
      } finally {
        assert.equal((await program.stop()).code, 0);
      }
      assert.deepEqual(connectionAddresses(program.log()), ["127.0.0.1", "::1"]);
      // Both on one port (the one the first program just let go): "::" is IPv6-only then, so
      // the second bind succeeds.
      const port = program.ports[0];
      const both = await startProgram(
        ["--listener", "native", "-b", "0.0.0.0", "-b", "::", "-p", String(port)],
        { logFile: `${dir}/both`, listening: 2 },
      );
      try {
        await knock("127.0.0.1", port);
        await knock("::1", port);
        await both.waitForLines(CONNECTION_LINE, 2);
      } finally {
        assert.equal((await both.stop()).code, 0);
      }
      assert.deepEqual(connectionAddresses(both.log()).sort(), ["127.0.0.1", "::1"]);
    });
  },
});

Deno.test({
  name: "[native] in a namespace where net.ipv6.bindv6only=1 the default listener still takes IPv4",
  ignore: needsTools("unshare", "nsenter", "ip", "sysctl", "cc") ||
    (Deno.uid() !== 0 && (console.warn("ignored: needs root for a network namespace"), true)),
  async fn() {
    await withTempDir(async (dir) => {
      const setup = 'ip link set lo up && sysctl -qw net.ipv6.bindv6only=1 && exec "$@"';
      const program = await startProgram(["--listener", "native", "-p", "0"], {
        logFile: `${dir}/log`,
        wrapper: ["unshare", "--net", "sh", "-c", setup, "sh"],
      });
      try {
        const knockBinary = await buildKnock();
        const inside = ["-t", String(program.child.pid), "-n"];
        const sysctl = await run("nsenter", [...inside, "sysctl", "-n", "net.ipv6.bindv6only"]);
        assert.equal(sysctl.stdout.trim(), "1");
        for (const host of ["127.0.0.1", "::1"]) {
          const result = await run("nsenter", [
            ...inside,
            knockBinary,
            "-n",
            "1",
            host,
            String(program.port),
          ]);
          assert.match(result.stdout, /^connections=1 failed=0 bytes=0/, result.stderr);
        }
        await program.waitForLines(CONNECTION_LINE, 2);
      } finally {
        assert.equal((await program.stop()).code, 0);
      }
      assert.deepEqual(connectionAddresses(program.log()), ["127.0.0.1", "::1"]);
      assert.match(program.log(), /Listening on port \d+ \(IPv4 and IPv6, any address\)/);
    });
  },
});

Deno.test({
  name: "[native] a client sees its connection close only once its line is in the log",
  async fn() {
    await withTempDir(async (dir) => {
      const program = await startProgram(["--listener", "native", "-p", "0"], {
        logFile: `${dir}/log`,
      });
      const late: number[] = [];
      try {
        const buffer = new Uint8Array(16);
        for (let i = 1; i <= 300; i++) {
          const conn = await Deno.connect({ hostname: "127.0.0.1", port: program.port });
          while (await conn.read(buffer) !== null) { /* a honeypot sends nothing */ }
          conn.close();
          // Read at once, without waiting: the close came after the line was written.
          if (linesMatching(program.log(), CONNECTION_LINE).length < i) late.push(i);
          await program.waitForLines(CONNECTION_LINE, i);
        }
      } finally {
        assert.equal((await program.stop()).code, 0);
      }
      assert.deepEqual(late, [], "clients that saw the close before their line was written");
    });
  },
});

/** The C library with some of its functions replaced (`replace` gets the real ones). */
function libcWith(replace: (real: LibcSymbols) => Partial<LibcSymbols>): Libc {
  const libc = openLibc();
  return { symbols: { ...libc.symbols, ...replace(libc.symbols) }, errno: libc.errno };
}

Deno.test({
  name: "[native] a round waits COALESCE_WAIT_US only after a round of more than one connection",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const waits: number[] = [];
    const listeners = new NativeListeners(libcWith((real) => ({
      usleep: (microseconds: number) => {
        waits.push(microseconds);
        return real.usleep(microseconds);
      },
    })));
    const port = listeners.bind("127.0.0.1", 0, { v6only: false });
    const sink = collectingSink();
    const clients: Deno.Conn[] = [];
    const connect = async () => clients.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    // Three clients wait in the queue before the loop starts: its first round takes them at once.
    for (let i = 0; i < 3; i++) await connect();
    const served = listeners.serve(sink);
    try {
      await waitFor("the first round", () => sink.addresses.length === 3);
      assert.deepEqual(waits, []);
      // The round after a busy one waits before it accepts.
      await connect();
      await waitFor("the second round", () => sink.addresses.length === 4);
      assert.deepEqual(waits, [COALESCE_WAIT_US]);
      // That round took one connection: a lone connection does not wait.
      await connect();
      await waitFor("the third round", () => sink.addresses.length === 5);
      assert.deepEqual(waits, [COALESCE_WAIT_US]);
    } finally {
      listeners.close();
      await served;
      for (const client of clients) client.close();
    }
  },
});

Deno.test({
  name:
    "[native] where close_range(2) fails (old kernel, seccomp), connections are closed one by one",
  ignore: Deno.build.os !== "linux",
  async fn() {
    let closeRanges = 0;
    const closed: number[] = [];
    const listeners = new NativeListeners(libcWith((real) => ({
      // ENOSYS or EPERM: close_range fails; every other system call goes through.
      syscall: (number: bigint, a: number, b: number, c: number) => {
        if (number !== SYS_CLOSE_RANGE) return real.syscall(number, a, b, c);
        closeRanges++;
        return -1n;
      },
      close: (fd: number) => {
        closed.push(fd);
        return real.close(fd);
      },
    })));
    const port = listeners.bind("127.0.0.1", 0, { v6only: false });
    const sink = collectingSink();
    const served = listeners.serve(sink);
    try {
      // Each client sees its connection closed; close_range is tried once, then no more.
      const closedByServer = () => withDeadline("the close", knock("127.0.0.1", port));
      assert.equal(await closedByServer(), 0);
      assert.equal(closeRanges, 1);
      assert.equal(closed.length, 1);
      assert.equal(await closedByServer(), 0);
      assert.equal(closeRanges, 1);
      assert.equal(closed.length, 2);
      assert.deepEqual(sink.addresses, ["127.0.0.1", "127.0.0.1"]);
    } finally {
      listeners.close();
      await served;
    }
  },
});
