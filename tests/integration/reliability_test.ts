/**
 * Reliability under floods, fd exhaustion, a full disk and rotation: the real program as a
 * subprocess on each listener, driven by the load generator in tests/testdata/knock.c.
 * Loopback only.
 */
import assert from "node:assert/strict";
import {
  CONNECTION_LINE,
  connectionAddresses,
  IN_CI,
  isFile,
  knock,
  type KnockSummary,
  linesMatching,
  LISTENERS,
  needsTools,
  runKnock,
  startProgram,
  waitFor,
  withTempDir,
} from "../_util.ts";

const LISTENING_LINE =
  /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \[INFO\] Listening on port \d+ \(.*\)$/;
const STOPPED_LINE =
  /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \[INFO\] Stopped after (\d+) connections?$/;

/** The load generator's counts without its duration. */
function counts({ connections, failed, bytes }: KnockSummary) {
  return { connections, failed, bytes };
}

/** Every line is a whole, known line; returns the connection lines. */
function assertWellFormed(text: string): string[] {
  assert.ok(text === "" || text.endsWith("\n"), "the log ends in mid-line");
  const lines = text.split("\n").slice(0, -1);
  for (const line of lines) {
    assert.ok(
      CONNECTION_LINE.test(line) || LISTENING_LINE.test(line) || STOPPED_LINE.test(line),
      `malformed line: ${JSON.stringify(line)}`,
    );
  }
  return lines.filter((line) => CONNECTION_LINE.test(line));
}

function vmRssKiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]);
}

async function setLimit(pid: number, files: number): Promise<void> {
  const { code, stderr } = await new Deno.Command("prlimit", {
    args: ["--pid", String(pid), `--nofile=${files}:`],
  }).output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
}

for (const listener of LISTENERS) {
  const start = (args: string[], options: Parameters<typeof startProgram>[1] = {}) =>
    startProgram(["--listener", listener, ...args], options);

  Deno.test({
    name:
      `[${listener}] flood: 200,000 connections from 64 clients over many sources, exactly 200,000 lines`,
    ignore: needsTools("cc"),
    async fn() {
      await withTempDir(async (dir) => {
        const program = await start(["-p", "0"], { logFile: `${dir}/log` });
        const port = program.port;
        let result: KnockSummary;
        try {
          result = await runKnock(port, { total: 200_000, concurrency: 64, sources: 200 });
          assert.deepEqual(counts(result), { connections: 200_000, failed: 0, bytes: 0 });
          await program.waitForLines(CONNECTION_LINE, 200_000, 30_000);
        } finally {
          const exit = await program.stop();
          assert.equal(exit.code, 0, exit.stderr);
        }
        const lines = assertWellFormed(program.log());
        assert.equal(lines.length, 200_000);
        const sources = new Set(lines.map((line) => CONNECTION_LINE.exec(line)![1]));
        assert.equal(sources.size, 200);
        assert.match(program.log(), /Stopped after 200000 connections\n$/);
      });
    },
  });

  Deno.test({
    name:
      `[${listener}] fd exhaustion: accept errors are reported rate-limited, every accepted connection logged`,
    ignore: needsTools("cc") || needsTools("prlimit"),
    async fn() {
      await withTempDir(async (dir) => {
        const program = await start(["-p", "0"], {
          logFile: `${dir}/log`,
          wrapper: ["prlimit", "--nofile=64:1024", "--"],
        });
        const port = program.port;
        const pid = program.child.pid;
        try {
          // Leave no descriptor free, so that every accept fails with EMFILE until the limit rises.
          // RLIMIT_NOFILE bounds descriptor numbers: the lowest free number is the limit to set.
          const used = new Set([...Deno.readDirSync(`/proc/${pid}/fd`)].map((e) => Number(e.name)));
          let lowestFree = 0;
          while (used.has(lowestFree)) lowestFree++;
          await setLimit(pid, lowestFree);
          const start = Date.now();
          const flood = runKnock(port, { total: 500, concurrency: 500, sources: 10, seconds: 60 });
          await program.waitForLines(/\[ERROR\] Cannot accept connections: too many open files/, 2);
          const seconds = (Date.now() - start) / 1000;
          await setLimit(pid, 64);
          const result = await flood;
          assert.equal(result.bytes, 0);
          assert.equal(result.connections + result.failed, 500);
          await program.waitForLines(CONNECTION_LINE, result.connections);
          // Rate-limited: about one report a second, each with a count.
          const reports = linesMatching(program.log(), /\[ERROR\] Cannot accept connections/);
          assert.ok(reports.length <= seconds + 3, `${reports.length} reports in ${seconds} s`);
          for (const report of reports) {
            assert.match(report, /\((\d+) failed since the last report\)/);
          }
          // It serves normally once the load stops.
          assert.equal(await knock("127.0.0.1", port), 0);
          await program.waitForLines(CONNECTION_LINE, result.connections + 1);
        } finally {
          const exit = await program.stop();
          assert.equal(exit.code, 0, exit.stderr);
        }
        const lines = linesMatching(program.log(), CONNECTION_LINE);
        const stopped = Number(/Stopped after (\d+) connections/.exec(program.log())![1]);
        assert.equal(lines.length, stopped);
      });
    },
  });

  Deno.test({
    name:
      `[${listener}] full disk: keeps accepting, reports without flooding, drops with a count, resumes`,
    ignore: needsTools("cc") || needsTools("unshare", "mount") ||
      (Deno.uid() !== 0 && !IN_CI && (console.warn("ignored: needs root for a tmpfs"), true)),
    async fn() {
      await withTempDir(async (dir) => {
        // A 64 KiB tmpfs in a private mount namespace; the test sees it through /proc/PID/root.
        const mountThenExec = 'mount -t tmpfs -o size=64k net-bouncer-test "$0" && exec "$@"';
        const program = await start(["-p", "0"], {
          logFile: `${dir}/net-bouncer.log`,
          wrapper: ["unshare", "-m", "--propagation", "private", "sh", "-c", mountThenExec, dir],
          readPath: (pid) => `/proc/${pid}/root${dir}/net-bouncer.log`,
        });
        const inside = `/proc/${program.child.pid}/root${dir}`;
        const port = program.port;
        try {
          // Fill half of the disk, so that freeing it later makes room again.
          Deno.writeFileSync(`${inside}/filler`, new Uint8Array(32 * 1024));
          const full = await runKnock(port, { total: 3000, concurrency: 32 });
          assert.deepEqual(counts(full), { connections: 3000, failed: 0, bytes: 0 });
          const rss = vmRssKiB(program.child.pid);
          const more = await runKnock(port, { total: 20_000, concurrency: 32 });
          assert.deepEqual(counts(more), { connections: 20_000, failed: 0, bytes: 0 });
          // Dropped lines are not kept: memory does not follow the 20,000 lost lines.
          assert.ok(vmRssKiB(program.child.pid) - rss < 32 * 1024, "memory grew by 32 MiB or more");
          Deno.removeSync(`${inside}/filler`);
          await knock("::1", port); // the flood came from 127.0.0.1: this line is new
          await waitFor("the log to grow again", () => {
            const lines = linesMatching(
              Deno.readTextFileSync(`${inside}/net-bouncer.log`),
              CONNECTION_LINE,
            );
            return lines.at(-1)?.includes("Connection from ::1 ");
          });
          const log = Deno.readTextFileSync(`${inside}/net-bouncer.log`);
          const logged = assertWellFormed(log).length;
          // The mount goes away with the process: the Stopped line cannot be read after exit.
          const { code, stderr } = await program.stop();
          assert.equal(code, 0);
          const reports = stderr.trimEnd().split("\n");
          // One report when the disk filled (a second one only if the flood outlasted the 10 s
          // interval), one when writing resumed.
          assert.ok(reports.length >= 2 && reports.length <= 3, stderr);
          assert.match(
            reports[0],
            /^net-bouncer: error: Cannot write log file ".*": no space left on device; \d+ lines? dropped(?:, 1 cut short \(finished when writing works again\))?$/,
          );
          assert.match(
            reports.at(-1)!,
            /^net-bouncer: error: Writing log file ".*" again; \d+ more lines? dropped since the last report$/,
          );
          // Every connection is either in the file or counted as dropped in a report.
          const dropped = reports.reduce((sum, r) => sum + Number(/; (\d+) /.exec(r)![1]), 0);
          assert.equal(logged + dropped, 23_001);
        } finally {
          await program.stop();
        }
      });
    },
  });

  Deno.test(`[${listener}] log file deleted without SIGHUP, then SIGHUP: writing resumes in a new file`, async () => {
    await withTempDir(async (dir) => {
      const log = `${dir}/net-bouncer.log`;
      const program = await start(["-p", "0"], { logFile: log });
      const port = program.port;
      try {
        await knock("127.0.0.1", port);
        await program.waitForLines(CONNECTION_LINE, 1);
        await Deno.remove(log);
        program.kill("SIGHUP");
        await waitFor("the new log file", () => isFile(log));
        await knock("::1", port);
        await program.waitForLines(CONNECTION_LINE, 1);
      } finally {
        const exit = await program.stop();
        assert.equal(exit.code, 0, exit.stderr);
      }
      assert.deepEqual(connectionAddresses(program.log()), ["::1"]);
    });
  });

  Deno.test({
    name:
      `[${listener}] SIGHUP storm with rotations during a flood, then SIGTERM during a flood: nothing lost`,
    ignore: needsTools("cc"),
    async fn() {
      await withTempDir(async (dir) => {
        const log = `${dir}/net-bouncer.log`;
        const program = await start(["-p", "0"], { logFile: log });
        const port = program.port;
        let exit: { code: number; stderr: string };
        try {
          const flood = runKnock(port, { total: 30_000, concurrency: 32, sources: 50 });
          let flooding = true;
          flood.finally(() => flooding = false);
          const size = () => {
            try {
              return Deno.statSync(log).size;
            } catch {
              return 0;
            }
          };
          for (let i = 0; i < 100; i++) {
            if (i % 10 === 0) {
              // The previous HUP may not have reopened the file yet (once the flood is over,
              // nothing below waits for it): rename only the file the program writes to now.
              await waitFor("the reopened log file", () => isFile(log));
              await Deno.rename(log, `${log}.${i}`);
            }
            const before = size();
            program.kill("SIGHUP");
            // Spread the signals over the flood: each waits until the program wrote more.
            await waitFor("more lines after SIGHUP", () => !flooding || size() > before);
          }
          const first = await flood;
          assert.deepEqual(counts(first), { connections: 30_000, failed: 0, bytes: 0 });
          // SIGTERM in the middle of a second flood.
          const second = runKnock(port, {
            total: 100_000,
            concurrency: 32,
            sources: 50,
            seconds: 20,
          });
          const already = linesMatching(program.log(), CONNECTION_LINE).length;
          await program.waitForLines(CONNECTION_LINE, already + 1000);
          program.kill("SIGTERM");
          exit = await program.stop();
          await second;
        } finally {
          await program.stop();
        }
        assert.equal(exit.code, 0);
        assert.equal(exit.stderr, "");
        let connections = 0;
        let stopped = -1;
        for (const entry of Deno.readDirSync(dir)) {
          const text = Deno.readTextFileSync(`${dir}/${entry.name}`);
          connections += assertWellFormed(text).length;
          const match = /Stopped after (\d+) connections\n$/.exec(text);
          if (match) stopped = Number(match[1]);
        }
        assert.ok(connections > 31_000);
        assert.equal(connections, stopped);
      });
    },
  });
}
