/**
 * SIGHUP with a large allow-list and with paths that change under the daemon: the real program
 * as a subprocess. A reload never holds up accepting, a SIGHUP during the start-up parse is
 * handled, and a FIFO swapped in at the log path or the allow-list path never blocks it.
 */
import assert from "node:assert/strict";
import {
  CONNECTION_LINE,
  knock,
  linesMatching,
  LISTENERS,
  needsTools,
  startProgram,
  waitFor,
  withTempDir,
} from "../_util.ts";

/** Writes an allow-list of distinct /32 prefixes of just under the 16 MiB cap; returns the count. */
function writeLargeAllowList(path: string): number {
  const lines: string[] = [];
  let size = 0;
  for (let i = 0;; i++) {
    const a = Math.imul(i, 2654435761) >>> 0;
    const line = `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}/32\n`;
    if (size + line.length > 16 * 1024 * 1024) break;
    lines.push(line);
    size += line.length;
  }
  Deno.writeTextFileSync(path, lines.join(""));
  return lines.length;
}

/** CPU time the process has used, in milliseconds (utime + stime from /proc). */
function cpuMs(pid: number): number {
  const fields = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10; // clock ticks of 10 ms
}

const RELOADED = /\[INFO\] Reloaded ".*": \d+ prefixes$/m;

Deno.test("a 16 MiB allow-list: the daemon starts within the deadline; a SIGHUP during its parse is handled", async () => {
  await withTempDir(async (dir) => {
    const count = writeLargeAllowList(`${dir}/allow.txt`);
    const program = await startProgram(["-p", "0", "--ignore-file", `${dir}/allow.txt`], {
      logFile: `${dir}/log`,
      listening: 0,
    });
    try {
      // Start-up without an allow-list takes about 40 ms of CPU, the parse of this one about a
      // second: past 300 ms the daemon is parsing, and a SIGHUP must not end it (exit 129).
      await waitFor("300 ms of CPU", () => cpuMs(program.child.pid) >= 300);
      assert.equal(linesMatching(program.log(), /Listening on port/).length, 0, "parsed already");
      program.kill("SIGHUP");
      await program.waitForLines(/Listening on port/);
      const [reloaded] = await program.waitForLines(RELOADED);
      assert.match(reloaded, new RegExp(`: ${count} prefixes$`));
    } finally {
      const { code, stderr } = await program.stop();
      assert.equal(code, 0, stderr);
    }
  });
});

for (const listener of LISTENERS) {
  Deno.test(`[${listener}] a reload of 16 MiB of allow-list never holds up accepting`, async () => {
    await withTempDir(async (dir) => {
      writeLargeAllowList(`${dir}/allow.txt`);
      const program = await startProgram(
        ["--listener", listener, "-p", "0", "--ignore-file", `${dir}/allow.txt`],
        { logFile: `${dir}/log` },
      );
      try {
        program.kill("SIGHUP");
        // Clients one after another until the reload is done: each is closed only once the
        // daemon accepts it, so a reload that held up the accept loop would let none through.
        await waitFor("the Reloaded line", async () => {
          await knock("127.0.0.1", program.port);
          return RELOADED.test(program.log());
        });
      } finally {
        const { code, stderr } = await program.stop();
        assert.equal(code, 0, stderr);
      }
      const lines = program.log().split("\n");
      const reloadedAt = lines.findIndex((line) => RELOADED.test(line));
      const before = lines.slice(0, reloadedAt).filter((line) => CONNECTION_LINE.test(line));
      assert.ok(before.length >= 3, `${before.length} connections logged during the reload`);
    });
  });
}

/** Points the symbolic link argv[1] at argv[2] and argv[3] in turn, as fast as it can. */
const FLIPPER = `
import os, sys, time
link, a, b = sys.argv[1:4]
i = 0
while True:
    os.symlink(a if i % 2 else b, link + ".new")
    os.replace(link + ".new", link)
    i += 1
    time.sleep(0.0002)
`;

for (const listener of LISTENERS) {
  Deno.test({
    name:
      `[${listener}] SIGHUP while the log and allow-list paths flip between a file and a FIFO: never blocks`,
    ignore: needsTools("python3", "mkfifo"),
    async fn() {
      await withTempDir(async (dir) => {
        await Deno.writeTextFile(`${dir}/allow.real`, "192.0.2.0/24\n");
        await Deno.writeTextFile(`${dir}/log.real`, "");
        for (const fifo of ["log.fifo", "allow.fifo"]) {
          const made = await new Deno.Command("mkfifo", { args: [`${dir}/${fifo}`] }).output();
          assert.equal(made.code, 0);
        }
        Deno.symlinkSync(`${dir}/log.real`, `${dir}/log`);
        Deno.symlinkSync(`${dir}/allow.real`, `${dir}/allow`);
        const program = await startProgram(
          ["--listener", listener, "-p", "0", "-l", `${dir}/log`, "--ignore-file", `${dir}/allow`],
          // The test reads the regular file: the link may point at the FIFO.
          { readPath: () => `${dir}/log.real` },
        );
        const flippers = [["log", "log.real", "log.fifo"], ["allow", "allow.real", "allow.fifo"]]
          .map((names) =>
            new Deno.Command("python3", {
              args: ["-c", FLIPPER, ...names.map((name) => `${dir}/${name}`)],
              stdout: "null",
              stderr: "null",
            }).spawn()
          );
        const ROUNDS = 30;
        try {
          for (let round = 1; round <= ROUNDS; round++) {
            program.kill("SIGHUP");
            // Each reload ends in a line: the new list, or the previous one kept.
            await program.waitForLines(/Reloaded|keeping the previous list/, round);
            await knock("127.0.0.1", program.port);
            await program.waitForLines(CONNECTION_LINE, round);
          }
        } finally {
          for (const flipper of flippers) {
            flipper.kill();
            await flipper.status;
          }
          const { code, stderr } = await program.stop();
          assert.equal(code, 0, stderr);
          // Reopens that found the FIFO say so on standard error, and keep the file.
          for (const line of stderr.split("\n").filter(Boolean)) {
            assert.match(line, /not a regular file; still writing to the previous file$/);
          }
        }
        assert.equal(linesMatching(program.log(), CONNECTION_LINE).length, ROUNDS);
      });
    },
  });
}
