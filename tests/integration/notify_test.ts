/**
 * sd_notify against a service manager that misbehaves: the real program as a subprocess with
 * `NOTIFY_SOCKET` at a datagram socket of the test's (python3), which goes away after READY=1 or
 * never reads. The daemon must go on logging, report the failure once and stop on SIGTERM with
 * its Stopped line.
 */
import assert from "node:assert/strict";
import {
  CONNECTION_LINE,
  knock,
  linesMatching,
  needsTools,
  startProgram,
  withTempDir,
} from "../_util.ts";

/** Binds a datagram socket at argv[1], says "bound", then reads until READY=1 and exits, or never reads. */
const RECEIVER = `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("bound", flush=True)
if sys.argv[2] == "exit-after-ready":
    while b"READY=1" not in s.recv(4096):
        pass
else:
    sys.stdin.read()  # never reads the socket; ends when the test closes standard input
`;

/** Starts the receiver at `path`; resolves once it is bound. */
async function startReceiver(path: string, mode: "exit-after-ready" | "never-read") {
  const child = new Deno.Command("python3", {
    args: ["-c", RECEIVER, path, mode],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const { value } = await reader.read();
  assert.match(value ?? "", /^bound/);
  reader.releaseLock();
  return {
    status: child.status,
    async close() {
      await child.stdin.close().catch(() => {});
      await child.stdout.cancel().catch(() => {});
      await child.status;
    },
  };
}

const NOTIFY_FAILED = /\[WARN\] Cannot notify the service manager: /;

Deno.test({
  name: "sd_notify: a manager that went away is reported once; the daemon logs and stops cleanly",
  ignore: needsTools("python3"),
  async fn() {
    await withTempDir(async (dir) => {
      const socket = `${dir}/notify`;
      const receiver = await startReceiver(socket, "exit-after-ready");
      const program = await startProgram(["-p", "0"], {
        logFile: `${dir}/log`,
        env: { NOTIFY_SOCKET: socket, WATCHDOG_USEC: "200000" },
      });
      try {
        // Gone after READY=1: every ping (each 100 ms) now fails with ECONNREFUSED.
        assert.equal((await receiver.status).code, 0);
        await program.waitForLines(
          /\[WARN\] Cannot notify the service manager: connection refused, WATCHDOG=1 not sent/,
        );
        // Several more pings fail meanwhile; what is asserted is that the daemon still serves.
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        await knock("127.0.0.1", program.port);
        await program.waitForLines(CONNECTION_LINE, 1);
      } finally {
        const { code, stderr } = await program.stop();
        await receiver.close();
        assert.equal(code, 0, stderr);
        assert.equal(stderr, "");
      }
      const log = program.log();
      assert.equal(linesMatching(log, NOTIFY_FAILED).length, 1, log);
      assert.match(log, /\[INFO\] Stopped after 1 connection\n$/);
    });
  },
});

Deno.test({
  name: "sd_notify never blocks: a manager that never reads fills its queue, pings are dropped",
  ignore: needsTools("python3"),
  async fn() {
    await withTempDir(async (dir) => {
      const socket = `${dir}/notify`;
      const receiver = await startReceiver(socket, "never-read");
      // A ping every 10 ms: the receiver's queue (net.unix.max_dgram_qlen, 10 by default) is
      // full within a fraction of a second, and a blocking sendto would stop the daemon there.
      const program = await startProgram(["-p", "0"], {
        logFile: `${dir}/log`,
        env: { NOTIFY_SOCKET: socket, WATCHDOG_USEC: "20000" },
      });
      const CLIENTS = 20;
      let stopped = Infinity;
      try {
        await program.waitForLines(
          /\[WARN\] Cannot notify the service manager: its queue is full, WATCHDOG=1 dropped/,
        );
        for (let i = 0; i < CLIENTS; i++) await knock("127.0.0.1", program.port);
        await program.waitForLines(CONNECTION_LINE, CLIENTS);
      } finally {
        const started = Date.now();
        const { code, stderr } = await program.stop();
        stopped = Date.now() - started;
        await receiver.close();
        assert.equal(code, 0, stderr);
      }
      assert.ok(stopped < 2_000, `SIGTERM took ${stopped} ms`);
      const log = program.log();
      assert.equal(linesMatching(log, NOTIFY_FAILED).length, 1, log);
      assert.match(log, new RegExp(`\\[INFO\\] Stopped after ${CLIENTS} connections\n$`));
    });
  },
});
