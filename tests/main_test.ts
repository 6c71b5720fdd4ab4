/** Integration tests: the real program as a subprocess with the production permission flags. */
import assert from "node:assert/strict";
import {
  CONNECTION_LINE,
  freePort,
  isFile,
  knock,
  linesMatching,
  runProgram,
  startProgram,
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

Deno.test("IPv4 and IPv6 clients are logged once each, in order, in the exact format; 0 bytes", async () => {
  await withTempDir(async (dir) => {
    const port = freePort();
    const program = await startProgram(["-p", String(port)], { logFile: `${dir}/log` });
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
    const body = lines.map((line) => line.replace(TIMESTAMP, ""));
    assert.deepEqual(body, [
      `[INFO] Listening on port ${port} (IPv4 and IPv6, any address)`,
      `[INFO] Connection from 127.0.0.1 on port ${port}`,
      `[INFO] Connection from ::1 on port ${port}`,
      `[INFO] Connection from 127.0.0.1 on port ${port}`,
      "[INFO] Stopped after 3 connections",
    ]);
  });
});

Deno.test("a client that sends data first is still closed at once without a byte", async () => {
  await withTempDir(async (dir) => {
    const port = freePort();
    const program = await startProgram(["-p", String(port)], { logFile: `${dir}/log` });
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
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
});

Deno.test("several ports at once, one listener line each, lines name the port", async () => {
  await withTempDir(async (dir) => {
    const ports = [freePort(), freePort(), freePort()];
    const program = await startProgram(["-p", `${ports[0]},${ports[1]}`, "-p", String(ports[2])], {
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
});

Deno.test("-4 listens on IPv4 only", async () => {
  await withTempDir(async (dir) => {
    const port = freePort();
    const program = await startProgram(["-4", "-p", String(port)], { logFile: `${dir}/log` });
    try {
      assert.ok(await refused("::1", port));
      await knock("127.0.0.1", port);
      await program.waitForLines(CONNECTION_LINE, 1);
    } finally {
      await program.stop();
    }
    assert.match(program.log(), /Listening on port \d+ \(IPv4, any address\)/);
    assert.deepEqual(linesMatching(program.log(), CONNECTION_LINE).map((l) => l.split(" ")[5]), [
      "127.0.0.1",
    ]);
  });
});

for (const extra of [[], ["-b", "::"]]) {
  Deno.test(`-6 ${extra.join(" ")} logs IPv6 clients only; IPv4 clients get no line`, async () => {
    await withTempDir(async (dir) => {
      const port = freePort();
      const program = await startProgram(["-6", ...extra, "-p", String(port)], {
        logFile: `${dir}/log`,
      });
      try {
        assert.equal(await knock("127.0.0.1", port), 0);
        await knock("::1", port);
        await program.waitForLines(CONNECTION_LINE, 1);
      } finally {
        await program.stop();
      }
      const log = program.log();
      assert.deepEqual(linesMatching(log, CONNECTION_LINE).map((l) => l.split(" ")[5]), ["::1"]);
      assert.match(log, /Stopped after 1 connection, 1 ignored connection\n$/);
    });
  });
}

Deno.test("-b listens on the given addresses and nowhere else", async () => {
  await withTempDir(async (dir) => {
    const port = freePort();
    const program = await startProgram(["-b", "127.0.0.2", "-b", "::1", "-p", String(port)], {
      logFile: `${dir}/log`,
      listening: 2,
    });
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
    assert.deepEqual(linesMatching(log, CONNECTION_LINE).map((l) => l.split(" ")[5]), [
      "127.0.0.1",
      "::1",
    ]);
  });
});

Deno.test("--format json writes one object per line for every event", async () => {
  await withTempDir(async (dir) => {
    const port = freePort();
    const program = await startProgram(["--format", "json", "-p", String(port)], {
      logFile: `${dir}/log`,
    });
    try {
      await knock("::1", port);
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
    assert.equal(events[1].dst_port, port);
    assert.ok(Number.isInteger(events[1].src_port) && events[1].src_port > 0);
    assert.equal(events[2].count, 1);
  });
});

Deno.test("without -l the lines go to standard error", async () => {
  const port = freePort();
  const program = await startProgram(["-p", String(port)], { listening: 0 });
  // Knock until it answers, then stop: the log is only readable after exit. knock() returns
  // once the server closed the connection, and the line is written in that same turn.
  let knocks = 0;
  await waitFor("the port to answer", async () => {
    try {
      await knock("127.0.0.1", port);
    } catch (error) {
      if (error instanceof Deno.errors.ConnectionRefused) return false;
      throw error;
    }
    return ++knocks;
  });
  const { code, stderr, stdout } = await program.stop();
  assert.equal(code, 0);
  assert.equal(stdout, "");
  assert.equal(linesMatching(stderr, CONNECTION_LINE).length, 1);
  assert.match(stderr, /\[INFO\] Listening on port/);
  assert.match(stderr, /\[INFO\] Stopped after \d+ connections?\n$/);
});

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  Deno.test(`${signal} closes the listeners, writes the Stopped line and exits 0 quickly`, async () => {
    await withTempDir(async (dir) => {
      const port = freePort();
      const program = await startProgram(["-p", String(port)], { logFile: `${dir}/log` });
      let elapsed = Infinity;
      try {
        await knock("127.0.0.1", port);
        await program.waitForLines(CONNECTION_LINE, 1);
        const start = Date.now();
        program.kill(signal);
        await program.child.status;
        elapsed = Date.now() - start;
      } finally {
        assert.equal((await program.stop()).code, 0);
      }
      assert.ok(elapsed < 1000, `took ${elapsed} ms`);
      assert.match(program.log(), /\[INFO\] Stopped after 1 connection\n$/);
    });
  });
}

Deno.test("SIGHUP after moving the file: later lines go to the new file, none is lost", async () => {
  await withTempDir(async (dir) => {
    const port = freePort();
    const log = `${dir}/net-bouncer.log`;
    const program = await startProgram(["-p", String(port)], { logFile: log });
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
    const old = linesMatching(Deno.readTextFileSync(`${log}.1`), CONNECTION_LINE);
    const now = linesMatching(Deno.readTextFileSync(log), CONNECTION_LINE);
    assert.deepEqual(old.map((l) => l.split(" ")[5]), ["127.0.0.1", "::1"]);
    assert.deepEqual(now.map((l) => l.split(" ")[5]), ["127.0.0.1"]);
    assert.equal(Deno.statSync(log).mode! & 0o777, 0o640);
  });
});

const BAD_INPUT: [string[], RegExp][] = [
  [[], /Missing "-p PORT"/],
  [["-p", "0"], /Cannot listen on port "0": value must be 1-65535/],
  [["-p", "65536"], /"65536"/],
  [["-p", "abc"], /"abc"/],
  [["-p", "22-"], /"22-"/],
  [["-p", "10-5"], /"10-5"/],
  [["-p", "-1"], /"-1"/],
  [["-p", "1e3"], /"1e3"/],
  [["-p", "2222", "--frobnicate"], /Unknown option "--frobnicate"/],
  [["-p", "2222", "-4", "-6"], /"-4" and "-6"/],
  [["-p", "2222", "--format", "xml"], /"xml"/],
  [["-p", "2222", "-b", "example.com"], /Cannot bind to "example.com": not an IP address/],
  [["-p", "2222", "--ignore", "10.0.0.0/33"], /Cannot ignore "10.0.0.0\/33"/],
  [["-p", "2222", "-4", "-b", "::1"], /Cannot bind to "::1": it contradicts "-4"/],
  [["-p", "2222", "-6", "-b", "::ffff:127.0.0.1"], /"127.0.0.1": it contradicts "-6"/],
];

Deno.test("every bad input gives exit 2 and one clear line on stderr", async () => {
  const results = await Promise.all(BAD_INPUT.map(([args]) => runProgram(args)));
  BAD_INPUT.forEach(([args, message], i) => {
    const { code, stdout, stderr } = results[i];
    const label = `args: ${args.join(" ")}`;
    assert.equal(code, 2, label);
    assert.equal(stdout, "", label);
    assert.match(stderr, /^net-bouncer: error: [A-Z][^\n]*[^.]\n$/, label);
    assert.match(stderr, message, label);
  });
});

Deno.test("--help and --version print to stdout and exit 0", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  const version = await runProgram(["--version"]);
  assert.deepEqual(version, { code: 0, stdout: `${config.version}\n`, stderr: "" });
  const help = await runProgram(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, new RegExp(`net-bouncer ${config.version.replaceAll(".", "\\.")}`));
  assert.match(help.stdout, /--port/);
});

Deno.test("a port in use gives exit 1 naming the port, and nothing is left listening", async () => {
  // Ports are bound in ascending order: the free one is bound first, then let go again.
  let free = freePort();
  let busy: Deno.Listener | undefined;
  for (let attempt = 0; busy === undefined; attempt++) {
    try {
      busy = Deno.listen({ hostname: "0.0.0.0", port: free + 1 });
    } catch (error) {
      if (!(error instanceof Deno.errors.AddrInUse) || attempt === 10) throw error;
      free = freePort();
    }
  }
  try {
    const { code, stderr } = await runProgram(["-p", String(free), "-p", String(free + 1)]);
    assert.equal(code, 1);
    // Nothing else: no Listening line for the port that was bound and let go.
    assert.equal(
      stderr,
      `net-bouncer: error: Cannot listen on port "${free + 1}": address already in use\n`,
    );
  } finally {
    busy.close();
  }
});

Deno.test("a low port without the privilege gives exit 1 and says how to allow it", async () => {
  const start = Number(Deno.readTextFileSync("/proc/sys/net/ipv4/ip_unprivileged_port_start"));
  assert.ok(start > 1, "this kernel lets everyone bind every port: nothing to test");
  // As root (CI), drop the one capability that allows low ports; as a user, there is none.
  const wrapper = Deno.uid() === 0 ? ["setpriv", "--bounding-set=-net_bind_service", "--"] : [];
  const { code, stderr } = await runProgram(["-p", String(start - 1)], { wrapper });
  assert.equal(code, 1);
  assert.match(
    stderr,
    new RegExp(
      `^net-bouncer: error: Cannot listen on port "${start - 1}": permission denied .*\n$`,
    ),
  );
  assert.match(stderr, /setcap cap_net_bind_service=\+ep/);
  assert.match(stderr, /AmbientCapabilities=CAP_NET_BIND_SERVICE/);
});

Deno.test("the log file or its directory cannot be created: exit 1 naming the path", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/file`, "");
    const { code, stderr } = await runProgram([
      "-p",
      String(freePort()),
      "-l",
      `${dir}/file/x.log`,
    ]);
    assert.equal(code, 1);
    assert.equal(
      stderr,
      `net-bouncer: error: Cannot open log file "${dir}/file/x.log": "${dir}/file" is not a directory\n`,
    );
  });
});

Deno.test("flood: 20,000 connections from many concurrent clients give exactly 20,000 lines", async () => {
  await withTempDir(async (dir) => {
    const port = freePort();
    const program = await startProgram(["-p", String(port)], { logFile: `${dir}/log` });
    const TOTAL = 20_000;
    const CLIENTS = 50;
    let next = 0;
    let bytes = 0;
    try {
      await Promise.all(Array.from({ length: CLIENTS }, async (_, client) => {
        while (next < TOTAL) {
          next++;
          bytes += await knock(`127.0.0.${1 + (client % 8)}`, port);
        }
      }));
      await program.waitForLines(CONNECTION_LINE, TOTAL, 30_000);
    } finally {
      assert.equal((await program.stop()).code, 0);
    }
    assert.equal(bytes, 0);
    const log = program.log();
    assert.equal(linesMatching(log, CONNECTION_LINE).length, TOTAL);
    assert.equal(linesMatching(log, /Connection from/).length, TOTAL);
    assert.match(log, new RegExp(`Stopped after ${TOTAL} connections\n$`));
  });
});
