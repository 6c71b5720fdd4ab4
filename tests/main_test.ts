/**
 * Integration tests: the real program as a subprocess with the production permission flags, on
 * each listener (native and portable), and `main()` in-process for what ends before serving.
 */
import assert from "node:assert/strict";
import { main, type MainOptions } from "../main.ts";
import {
  CONNECTION_LINE,
  connectionAddresses,
  freePort,
  isFile,
  knock,
  linesMatching,
  LISTENERS,
  readOrEmpty,
  ROOT,
  runProgram,
  startProgram,
  startTask,
  waitFor,
  withTempDir,
} from "./_util.ts";

const TIMESTAMP = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} /;

async function refused(hostname: string, port: number): Promise<boolean> {
  try {
    (await Deno.connect({ hostname, port })).close();
    return false;
  } catch (error) {
    if (error instanceof Deno.errors.ConnectionRefused) return true;
    throw error;
  }
}

/** Runs `main()` in-process; returns its exit code and what it wrote. */
async function runMain(
  args: string[],
  options: MainOptions = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await main(args, {
    ...options,
    stdout: (text) => stdout += `${text}\n`,
    stderr: (line) => stderr += `${line}\n`,
    env: new Map<string, string>() as unknown as Deno.Env,
    dropPermissions: () => Promise.resolve(),
  });
  return { code, stdout, stderr };
}

for (const listener of LISTENERS) {
  const start = (args: string[], options: Parameters<typeof startProgram>[1] = {}) =>
    startProgram(["--listener", listener, ...args], options);
  const name = (text: string) => `[${listener}] ${text}`;

  Deno.test(
    name("IPv4 and IPv6 clients are logged once each, in order, in the exact format; 0 bytes"),
    async () => {
      await withTempDir(async (dir) => {
        const program = await start(["-p", "0"], { logFile: `${dir}/log` });
        const port = program.port;
        try {
          assert.equal(await knock("127.0.0.1", port), 0);
          await program.waitForLines(CONNECTION_LINE, 1);
          assert.equal(await knock("::1", port), 0);
          await program.waitForLines(CONNECTION_LINE, 2);
          assert.equal(await knock("127.0.0.1", port), 0);
          await program.waitForLines(CONNECTION_LINE, 3);
        } finally {
          const { code, stderr } = await program.stop();
          assert.equal(code, 0);
          assert.equal(stderr, "");
        }
        const lines = program.log().trimEnd().split("\n");
        assert.equal(lines.length, 5);
        for (const line of lines) assert.match(line, TIMESTAMP);
        assert.deepEqual(lines.map((line) => line.replace(TIMESTAMP, "")), [
          `[INFO] Listening on port ${port} (IPv4 and IPv6, any address)`,
          `[INFO] Connection from 127.0.0.1 on port ${port}`,
          `[INFO] Connection from ::1 on port ${port}`,
          `[INFO] Connection from 127.0.0.1 on port ${port}`,
          "[INFO] Stopped after 3 connections",
        ]);
      });
    },
  );

  Deno.test(
    name("a client that sends data first is still closed at once without a byte"),
    async () => {
      await withTempDir(async (dir) => {
        const program = await start(["-p", "0"], { logFile: `${dir}/log` });
        try {
          const conn = await Deno.connect({ hostname: "127.0.0.1", port: program.port });
          await conn.write(new TextEncoder().encode("SSH-2.0-OpenSSH_9.6\r\n"));
          await conn.write(new Uint8Array(64 * 1024).fill(65)).catch(() => 0);
          let received = 0;
          const buffer = new Uint8Array(1024);
          try {
            for (let n; (n = await conn.read(buffer)) !== null;) received += n;
          } catch (error) {
            if (!(error instanceof Deno.errors.ConnectionReset)) throw error;
          }
          conn.close();
          assert.equal(received, 0);
          await program.waitForLines(CONNECTION_LINE, 1);
        } finally {
          assert.equal((await program.stop()).code, 0);
        }
        assert.equal(linesMatching(program.log(), CONNECTION_LINE).length, 1);
        assert.ok(!program.log().includes("SSH-2.0"));
      });
    },
  );

  Deno.test(
    name("several ports at once, one Listening line each, lines name the port"),
    async () => {
      await withTempDir(async (dir) => {
        // Several known ports: probed the way the program binds (see freePort).
        const ports = [freePort(), freePort(), freePort()];
        const program = await start(["-p", `${ports[0]},${ports[1]}`, "-p", String(ports[2])], {
          logFile: `${dir}/log`,
          listening: 3,
        });
        try {
          for (const port of ports) assert.equal(await knock("127.0.0.1", port), 0);
          const lines = await program.waitForLines(CONNECTION_LINE, 3);
          assert.deepEqual(
            lines.map((line) => Number(CONNECTION_LINE.exec(line)![2])).sort(),
            [...ports].sort(),
          );
        } finally {
          assert.equal((await program.stop()).code, 0);
        }
      });
    },
  );

  Deno.test(name("-4 listens on IPv4 only"), async () => {
    await withTempDir(async (dir) => {
      const program = await start(["-4", "-p", "0"], { logFile: `${dir}/log` });
      try {
        assert.ok(await refused("::1", program.port));
        await knock("127.0.0.1", program.port);
        await program.waitForLines(CONNECTION_LINE, 1);
      } finally {
        await program.stop();
      }
      assert.match(program.log(), /Listening on port \d+ \(IPv4, any address\)/);
      assert.deepEqual(connectionAddresses(program.log()), ["127.0.0.1"]);
    });
  });

  for (const extra of [[], ["-b", "::"]]) {
    Deno.test(
      name(`-6 ${extra.join(" ")} logs IPv6 clients only; IPv4 clients get no line`),
      async () => {
        await withTempDir(async (dir) => {
          const program = await start(["-6", ...extra, "-p", "0"], { logFile: `${dir}/log` });
          try {
            if (listener === "native") {
              // IPV6_V6ONLY: the kernel refuses IPv4 clients.
              assert.ok(await refused("127.0.0.1", program.port));
            } else {
              // Deno cannot set IPV6_V6ONLY: they are accepted, closed and counted.
              assert.equal(await knock("127.0.0.1", program.port), 0);
            }
            await knock("::1", program.port);
            await program.waitForLines(CONNECTION_LINE, 1);
          } finally {
            await program.stop();
          }
          const log = program.log();
          assert.deepEqual(connectionAddresses(log), ["::1"]);
          const ignored = listener === "native" ? 0 : 1;
          assert.match(
            log,
            new RegExp(`Stopped after 1 connection, ${ignored} ignored connections?\n$`),
          );
        });
      },
    );
  }

  Deno.test(name("-b listens on the given addresses and nowhere else"), async () => {
    await withTempDir(async (dir) => {
      const program = await start(["-b", "127.0.0.2", "-b", "::1", "-p", "0"], {
        logFile: `${dir}/log`,
        listening: 2,
      });
      // Port 0: the system picks one port, which every address shares.
      assert.equal(program.ports.length, 1);
      const port = program.port;
      try {
        assert.ok(await refused("127.0.0.1", port));
        await knock("127.0.0.2", port);
        await knock("::1", port);
        await program.waitForLines(CONNECTION_LINE, 2);
      } finally {
        await program.stop();
      }
      const log = program.log();
      assert.match(log, new RegExp(`Listening on port ${port} \\(address 127\\.0\\.0\\.2\\)`));
      assert.match(log, new RegExp(`Listening on port ${port} \\(address ::1\\)`));
      // The kernel picks 127.0.0.1 as the source address for 127.0.0.2.
      assert.deepEqual(connectionAddresses(log), ["127.0.0.1", "::1"]);
    });
  });

  Deno.test(name("--format json writes one object per line for every event"), async () => {
    await withTempDir(async (dir) => {
      const program = await start(["--format", "json", "-p", "0"], { logFile: `${dir}/log` });
      try {
        await knock("::1", program.port);
        await program.waitForLines(/"event":"connection"/, 1);
      } finally {
        assert.equal((await program.stop()).code, 0);
      }
      const events = program.log().trimEnd().split("\n").map((line) => JSON.parse(line));
      assert.deepEqual(events.map((e) => e.event), ["listening", "connection", "stopped"]);
      for (const event of events) {
        assert.match(event.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$/);
        assert.equal(event.level, "info");
      }
      assert.equal(events[1].src_ip, "::1");
      assert.equal(events[1].dst_port, program.port);
      assert.ok(Number.isInteger(events[1].src_port) && events[1].src_port > 0);
      assert.equal(events[2].count, 1);
    });
  });

  Deno.test(name("without -l the lines go to standard error"), async () => {
    const program = await start(["-p", "0"]);
    await knock("127.0.0.1", program.port);
    await program.waitForLines(CONNECTION_LINE, 1);
    const { code, stderr, stdout } = await program.stop();
    assert.equal(code, 0);
    assert.equal(stdout, "");
    assert.equal(linesMatching(stderr, CONNECTION_LINE).length, 1);
    assert.match(stderr, /\[INFO\] Listening on port/);
    assert.match(stderr, /\[INFO\] Stopped after 1 connection\n$/);
  });

  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    Deno.test(name(`${signal} writes the Stopped line and exits 0 within a second`), async () => {
      await withTempDir(async (dir) => {
        const program = await start(["-p", "0"], { logFile: `${dir}/log` });
        let elapsed = Infinity;
        try {
          await knock("127.0.0.1", program.port);
          await program.waitForLines(CONNECTION_LINE, 1);
          const started = Date.now();
          program.kill(signal);
          await program.child.status;
          elapsed = Date.now() - started;
        } finally {
          assert.equal((await program.stop()).code, 0);
        }
        assert.ok(elapsed < 1000, `took ${elapsed} ms`);
        assert.match(program.log(), /\[INFO\] Stopped after 1 connection\n$/);
      });
    });
  }

  Deno.test(
    name("connections waiting in the queue at SIGTERM are logged before the Stopped line"),
    async () => {
      await withTempDir(async (dir) => {
        const program = await start(["-p", "0"], { logFile: `${dir}/log` });
        const CLIENTS = 100;
        try {
          // Paused, the program accepts nothing: the kernel queues the handshakes.
          program.kill("SIGSTOP");
          const conns = await Promise.all(
            Array.from(
              { length: CLIENTS },
              () => Deno.connect({ hostname: "127.0.0.1", port: program.port }),
            ),
          );
          program.kill("SIGTERM");
          program.kill("SIGCONT");
          assert.equal((await program.stop()).code, 0);
          for (const conn of conns) {
            conn.close();
          }
        } finally {
          await program.stop();
        }
        const lines = program.log().trimEnd().split("\n");
        assert.equal(linesMatching(program.log(), CONNECTION_LINE).length, CLIENTS);
        assert.match(lines.at(-1)!, new RegExp(`Stopped after ${CLIENTS} connections$`));
      });
    },
  );

  Deno.test(
    name("SIGHUP after moving the file: later lines go to the new file, none is lost"),
    async () => {
      await withTempDir(async (dir) => {
        const log = `${dir}/net-bouncer.log`;
        const program = await start(["-p", "0"], { logFile: log });
        const port = program.port;
        try {
          await knock("127.0.0.1", port);
          await program.waitForLines(CONNECTION_LINE, 1);
          await Deno.rename(log, `${log}.1`);
          await knock("::1", port); // after the move, before the HUP: goes to the old file
          await waitFor(
            "the line in the moved file",
            () => linesMatching(Deno.readTextFileSync(`${log}.1`), CONNECTION_LINE).length === 2,
          );
          program.kill("SIGHUP");
          await waitFor("the new file", () => isFile(log));
          await knock("127.0.0.1", port);
          await program.waitForLines(CONNECTION_LINE, 1);
        } finally {
          assert.equal((await program.stop()).code, 0);
        }
        assert.deepEqual(connectionAddresses(Deno.readTextFileSync(`${log}.1`)), [
          "127.0.0.1",
          "::1",
        ]);
        assert.deepEqual(connectionAddresses(Deno.readTextFileSync(log)), ["127.0.0.1"]);
        assert.equal(Deno.statSync(log).mode! & 0o777, 0o640);
      });
    },
  );

  Deno.test(
    name("a port in use gives exit 1 naming the port, and nothing is left listening"),
    async () => {
      await withTempDir(async (dir) => {
        // The first program holds a port; a second one that also wants it fails as a whole.
        const holder = await start(["-p", "0"], { logFile: `${dir}/holder.log` });
        try {
          const { code, stdout, stderr } = await runProgram(
            ["--listener", listener, "-p", "0", "-p", String(holder.port)],
          );
          assert.equal(code, 1);
          assert.equal(stdout, "");
          // Nothing else: no Listening line for the port that was bound and let go.
          assert.equal(
            stderr,
            `net-bouncer: error: Cannot listen on port "${holder.port}": address already in use\n`,
          );
        } finally {
          await holder.stop();
        }
      });
    },
  );
}

const BAD_INPUT: [string[], RegExp][] = [
  [[], /Missing "-p PORT"/],
  [["-p", "0-5"], /Cannot listen on port "0": value must be 1-65535/],
  [["-p", "65536"], /"65536"/],
  [["-p", "abc"], /"abc"/],
  [["-p", "22-"], /"22-"/],
  [["-p", "10-5"], /"10-5"/],
  [["-p", "-1"], /"-1"/],
  [["-p", "1e3"], /"1e3"/],
  [["-p", "2222", "--frobnicate"], /Unknown option "--frobnicate"/],
  [["-p", "2222", "-4", "-6"], /"-4" and "-6"/],
  [["-p", "2222", "--format", "xml"], /"xml"/],
  [["-p", "2222", "--listener", "fast"], /"fast"/],
  [["-p", "2222", "-b", "example.com"], /Cannot bind to "example.com": not an IP address/],
  [["-p", "2222", "--ignore", "10.0.0.0/33"], /Cannot ignore "10.0.0.0\/33"/],
  [["-p", "2222", "-4", "-b", "::1"], /Cannot bind to "::1": it contradicts "-4"/],
  [["-p", "2222", "-6", "-b", "::ffff:127.0.0.1"], /"127.0.0.1": it contradicts "-6"/],
];

Deno.test("every bad input gives exit 2 and one clear line on stderr (in-process)", async () => {
  for (const [args, message] of BAD_INPUT) {
    const { code, stdout, stderr } = await runMain(args);
    const label = `args: ${args.join(" ")}`;
    assert.equal(code, 2, label);
    assert.equal(stdout, "", label);
    assert.match(stderr, /^net-bouncer: error: [A-Z][^\n]*[^.]\n$/, label);
    assert.match(stderr, message, label);
  }
});

Deno.test("the compiled program's wiring: bad input exits 2 with one line, --version exits 0", async () => {
  const bad = await runProgram(["-p", "abc"]);
  assert.deepEqual(bad, {
    code: 2,
    stdout: "",
    stderr: 'net-bouncer: error: Cannot listen on port "abc": not a number\n',
  });
  const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  const version = await runProgram(["--version"]);
  assert.deepEqual(version, { code: 0, stdout: `net-bouncer ${config.version}\n`, stderr: "" });
});

Deno.test("--help prints to stdout and exits 0", async () => {
  const { code, stdout, stderr } = await runMain(["--help"]);
  assert.equal(code, 0);
  assert.equal(stderr, "");
  assert.match(stdout, /^net-bouncer \d+\.\d+\.\d+/m);
  assert.match(stdout, /--port/);
});

Deno.test("a low port without the privilege gives exit 1 and says how to allow it", async () => {
  const start = Number(Deno.readTextFileSync("/proc/sys/net/ipv4/ip_unprivileged_port_start"));
  assert.ok(start > 1, "this kernel lets everyone bind every port: nothing to test");
  // As root (CI), drop the one capability that allows low ports; as a user, there is none.
  const wrapper = Deno.uid() === 0 ? ["setpriv", "--bounding-set=-net_bind_service", "--"] : [];
  for (const listener of LISTENERS) {
    const { code, stderr } = await runProgram(["--listener", listener, "-p", String(start - 1)], {
      wrapper,
    });
    assert.equal(code, 1, listener);
    assert.match(
      stderr,
      new RegExp(
        `^net-bouncer: error: Cannot listen on port "${start - 1}": permission denied .*\n$`,
      ),
    );
    assert.match(stderr, /setcap cap_net_bind_service=\+ep/);
    assert.match(stderr, /AmbientCapabilities=CAP_NET_BIND_SERVICE/);
  }
});

Deno.test("on Linux without a loadable C library: one warning, then the portable listener logs (in-process)", async () => {
  await withTempDir(async (dir) => {
    const log = `${dir}/log`;
    const stop = new AbortController();
    let stderr = "";
    let client: Promise<void> | undefined;
    const code = await main(["-p", "0", "-l", log], {
      stderr: (line) => stderr += `${line}\n`,
      env: new Map<string, string>() as unknown as Deno.Env,
      dropPermissions: () => Promise.resolve(),
      openLibc: () => {
        throw new Error("libc.so.6: cannot open shared object file");
      },
      signal: stop.signal,
      // Serving starts once this returns: the client runs meanwhile.
      onReady: () => {
        client = (async () => {
          const port = Number(/Listening on port (\d+)/.exec(Deno.readTextFileSync(log))![1]);
          assert.equal(await knock("::1", port), 0);
          await waitFor(
            "the line",
            () => connectionAddresses(Deno.readTextFileSync(log)).length === 1,
          );
        })().finally(() => stop.abort());
      },
    });
    await client;
    assert.equal(code, 0);
    assert.equal(stderr, "");
    const lines = Deno.readTextFileSync(log).trimEnd().split("\n").map((l) =>
      l.replace(TIMESTAMP, "")
    );
    assert.equal(lines.length, 4);
    assert.equal(
      lines[0],
      "[WARN] Cannot load the C library (libc.so.6: cannot open shared object file): using the " +
        "portable listener, which cannot log clients that reset at once",
    );
    assert.match(lines[1], /^\[INFO\] Listening on port \d+ \(IPv4 and IPv6, any address\)$/);
    assert.match(lines[2], /^\[INFO\] Connection from ::1 on port \d+$/);
    assert.equal(lines[3], "[INFO] Stopped after 1 connection");
    // Asked for by name, the native listener is required: exit 1.
    const native = await runMain(["--listener", "native", "-p", "0"], {
      openLibc: () => {
        throw new Error("libc.so.6: cannot open shared object file");
      },
    });
    assert.equal(native.code, 1);
    assert.equal(
      native.stderr,
      "net-bouncer: error: Cannot use the native listener: libc.so.6: cannot open shared object file\n",
    );
  });
});

Deno.test("-l on a device (/dev/null, /dev/zero, /dev/tty) gives our one line, exit 1", async () => {
  for (const device of ["/dev/null", "/dev/zero", "/dev/tty"]) {
    const { code, stdout, stderr } = await runProgram(["-p", "0", "-l", device]);
    assert.equal(code, 1, device);
    assert.equal(stdout, "");
    assert.equal(
      stderr,
      `net-bouncer: error: Cannot open log file "${device}": not a regular file\n`,
    );
  }
});

Deno.test("deno task start: relative paths resolve against the caller's directory (INIT_CWD)", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/allow.txt`, "192.0.2.0/24\n");
    // Deno runs the task in the project's directory; the caller stands in `dir`.
    const task = startTask(["-p", "0", "-l", "log/net-bouncer.log", "--ignore-file", "allow.txt"]);
    const child = new Deno.Command(Deno.execPath(), {
      ...task,
      cwd: dir,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    try {
      await waitFor(
        "the Listening line in the caller's directory",
        () => /Listening on port/.test(readOrEmpty(`${dir}/log/net-bouncer.log`)),
      );
    } finally {
      child.kill("SIGTERM");
      const { code, stderr } = await child.output();
      assert.equal(code, 0, new TextDecoder().decode(stderr));
    }
    assert.equal(isFile(`${ROOT}log/net-bouncer.log`), false);
  });
});

Deno.test("the log file or its directory cannot be created: exit 1 naming the path (in-process)", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/file`, "");
    const { code, stderr } = await runMain(["-p", "0", "-l", `${dir}/file/x.log`]);
    assert.equal(code, 1);
    assert.equal(
      stderr,
      `net-bouncer: error: Cannot open log file "${dir}/file/x.log": "${dir}/file" is not a directory\n`,
    );
  });
});
