/**
 * Socket activation as systemd does it (sd_listen_fds(3)): the real program as a subprocess,
 * started by a small launcher that binds the sockets (port 0: nothing to probe), puts them at
 * descriptors 3, 4, ... and sets LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES before exec.
 */
import assert from "node:assert/strict";
import { main } from "../../main.ts";
import {
  CONNECTION_LINE,
  connectionAddresses,
  knock,
  linesMatching,
  needsTools,
  runProgram,
  startProgram,
  withTempDir,
} from "../_util.ts";

/** Binds one socket per `KIND:NAME` argument, then execs the rest of the command line. */
const LAUNCHER = `
import os, socket, sys
specs, command = sys.argv[1:sys.argv.index("--")], sys.argv[sys.argv.index("--") + 1:]
made = []
for spec in specs:
    kind, name = spec.split(":")
    if kind == "tcp4":
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM); s.bind(("127.0.0.1", 0)); s.listen(64)
    elif kind == "tcp6":
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0); s.bind(("::", 0)); s.listen(64)
    elif kind == "udp4":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0))
    elif kind == "unix":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.bind(""); s.listen(64)
    elif kind == "unbound":
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    made.append((s, name))
# Out of the way first (a socket may sit where another one goes), then to 3, 4, ...
high = [os.dup(s.fileno()) for s, _ in made]
for i, fd in enumerate(high):
    os.dup2(fd, 100 + i)
for i in range(len(made)):
    os.dup2(100 + i, 3 + i, inheritable=True)
    os.set_inheritable(3 + i, True)
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS=str(len(made)),
                  LISTEN_FDNAMES=":".join(name for _, name in made))
os.execvp(command[0], command)
`;

function launcher(sockets: string[]): string[] {
  return ["python3", "-c", LAUNCHER, ...sockets, "--"];
}

Deno.test({
  name: "socket activation: serves the passed sockets without -p, and the metrics socket by name",
  ignore: needsTools("python3"),
  async fn() {
    await withTempDir(async (dir) => {
      const program = await startProgram([], {
        logFile: `${dir}/log`,
        wrapper: launcher(["tcp4:honeypot", "tcp6:honeypot", "tcp4:metrics"]),
        listening: 2,
      });
      let metricsText = "";
      try {
        assert.match(program.log(), /Listening on port \d+ \(IPv4, socket from systemd\)/);
        assert.match(program.log(), /Listening on port \d+ \(IPv4 and IPv6, socket from systemd\)/);
        const [v4, dual] = program.ports;
        await knock("127.0.0.1", v4);
        await knock("::1", dual);
        await knock("127.0.0.1", dual);
        await program.waitForLines(CONNECTION_LINE, 3);
        const [metricsLine] = await program.waitForLines(/Serving metrics on 127\.0\.0\.1 port/);
        const metricsPort = Number(/port (\d+)$/.exec(metricsLine)![1]);
        const response = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
        metricsText = await response.text();
        assert.equal(response.status, 200);
      } finally {
        const { code, stderr } = await program.stop();
        assert.equal(code, 0, stderr);
      }
      assert.deepEqual(connectionAddresses(program.log()).sort(), [
        "127.0.0.1",
        "127.0.0.1",
        "::1",
      ]);
      const [v4, dual] = program.ports;
      assert.match(
        metricsText,
        new RegExp(`net_bouncer_connections_total\\{port="${v4}",family="ipv4"\\} 1`),
      );
      assert.match(
        metricsText,
        new RegExp(`net_bouncer_connections_total\\{port="${dual}",family="ipv6"\\} 1`),
      );
      assert.match(
        metricsText,
        new RegExp(`net_bouncer_connections_total\\{port="${dual}",family="ipv4"\\} 1`),
      );
    });
  },
});

Deno.test({
  name:
    "socket activation: a passed socket that is not a listening TCP socket is refused with exit 1",
  ignore: needsTools("python3"),
  async fn() {
    for (
      const [kind, why] of [
        ["udp4", "not a stream"],
        ["unbound", "not listening"],
      ]
    ) {
      const { code, stderr } = await runProgram([], { wrapper: launcher([`${kind}:honeypot`]) });
      assert.equal(code, 1, stderr);
      assert.equal(
        stderr,
        `net-bouncer: error: Descriptor 3 is not a listening TCP socket: ${why}\n`,
      );
    }
  },
});

Deno.test("socket activation: variables meant for another process are ignored (in-process)", async () => {
  const env = new Map([["LISTEN_PID", "1"], ["LISTEN_FDS", "1"]]);
  let stderr = "";
  const code = await main([], {
    env: env as unknown as Deno.Env,
    pid: 4242,
    stderr: (line) => stderr += `${line}\n`,
    dropPermissions: () => Promise.resolve(),
  });
  assert.equal(code, 2);
  assert.equal(stderr, 'net-bouncer: error: Missing "-p PORT": give at least one port\n');
});

Deno.test({
  name: "socket activation: every socket named metrics serves metrics, none is a honeypot port",
  ignore: needsTools("python3"),
  async fn() {
    await withTempDir(async (dir) => {
      // One socket unit with two ListenStream= lines names both sockets "metrics".
      const program = await startProgram([], {
        logFile: `${dir}/log`,
        wrapper: launcher(["tcp4:honeypot", "tcp4:metrics", "tcp6:metrics"]),
        listening: 1,
      });
      try {
        const lines = await program.waitForLines(/Serving metrics on .* port \d+$/, 2);
        for (const line of lines) {
          const port = Number(/port (\d+)$/.exec(line)![1]);
          const response = await fetch(`http://127.0.0.1:${port}/metrics`);
          assert.equal(response.status, 200);
          assert.match(await response.text(), /net_bouncer_connections_total/);
        }
      } finally {
        const { code, stderr } = await program.stop();
        assert.equal(code, 0, stderr);
      }
      const log = program.log();
      assert.equal(linesMatching(log, /Listening on port/).length, 1, log);
      assert.deepEqual(connectionAddresses(log), []);
    });
  },
});

Deno.test({
  name: "socket activation: a Unix socket named metrics is refused with one line and exit 1",
  ignore: needsTools("python3"),
  async fn() {
    const { code, stderr } = await runProgram([], {
      wrapper: launcher(["tcp4:honeypot", "unix:metrics"]),
    });
    assert.equal(code, 1, stderr);
    assert.equal(
      stderr,
      'net-bouncer: error: Descriptor 4 named "metrics" is not a listening TCP socket: ' +
        "not IPv4 or IPv6\n",
    );
  },
});

Deno.test({
  name: "socket activation with -p: each Listening line once",
  ignore: needsTools("python3"),
  async fn() {
    await withTempDir(async (dir) => {
      const program = await startProgram(["-p", "0"], {
        logFile: `${dir}/log`,
        wrapper: launcher(["tcp4:honeypot"]),
        listening: 2,
      });
      const { code, stderr } = await program.stop();
      assert.equal(code, 0, stderr);
      const log = program.log();
      assert.equal(linesMatching(log, /socket from systemd\)$/).length, 1, log);
      assert.equal(linesMatching(log, /\(IPv4 and IPv6, any address\)$/).length, 1, log);
    });
  },
});
