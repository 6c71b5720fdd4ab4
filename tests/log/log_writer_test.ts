import assert from "node:assert/strict";
import { NotRegularFileError } from "../../lib/errors.ts";
import { LogWriter, openLogFile, type WriteTarget } from "../../lib/log/log_writer.ts";
import {
  connectionAddresses,
  knock,
  programCommand,
  readOrEmpty,
  run,
  startProgram,
  waitFor,
  withDeadline,
  withFakeClocks,
  withTempDir,
} from "../_util.ts";

const decoder = new TextDecoder();

/** A target that records writes: `limit` bytes per call; `fail` or `failOn(call)` throws ENOSPC. */
class FakeTarget implements WriteTarget {
  writes: string[] = [];
  limit = Infinity;
  fail = false;
  failOn: (call: number) => boolean = () => false;
  calls = 0;
  closed = false;
  writeSync(data: Uint8Array): number {
    this.calls++;
    if (this.fail || this.failOn(this.calls)) {
      throw Object.assign(new Error("No space left on device (os error 28)"), { code: "ENOSPC" });
    }
    const n = Math.min(this.limit, data.length);
    this.writes.push(decoder.decode(data.subarray(0, n)));
    return n;
  }
  close(): void {
    this.closed = true;
  }
  get text(): string {
    return this.writes.join("");
  }
}

function fakeWriter(target: FakeTarget, clock = () => 0) {
  const reports: string[] = [];
  const writer = new LogWriter("/fake/x.log", {
    open: () => target,
    report: (message) => reports.push(message),
    clock,
  });
  return { writer, reports };
}

Deno.test("LogWriter writes each line at once, with one write", () => {
  const target = new FakeTarget();
  const { writer } = fakeWriter(target);
  writer.write("a\n");
  assert.deepEqual(target.writes, ["a\n"]);
  writer.write("b\n");
  assert.deepEqual(target.writes, ["a\n", "b\n"]);
});

Deno.test("LogWriter finishes short writes", () => {
  const target = new FakeTarget();
  target.limit = 3;
  const { writer } = fakeWriter(target);
  writer.write("0123456789\n");
  assert.equal(target.text, "0123456789\n");
});

Deno.test("LogWriter drops lines on a failing target with a count, reports rarely, resumes", () => {
  const target = new FakeTarget();
  let now = 1_000_000;
  const { writer, reports } = fakeWriter(target, () => now);
  target.fail = true;
  for (let i = 0; i < 100; i++) {
    writer.write(`line ${i}\n`);
    now += 10;
  }
  assert.equal(writer.dropped, 100);
  assert.equal(reports.length, 1);
  assert.equal(
    reports[0],
    'Cannot write log file "/fake/x.log": no space left on device; 1 line dropped',
  );
  target.fail = false;
  writer.write("after\n");
  assert.equal(target.text, "after\n");
  assert.equal(reports.length, 2);
  assert.equal(
    reports[1],
    'Writing log file "/fake/x.log" again; 99 more lines dropped since the last report',
  );
});

Deno.test("LogWriter completes a line cut short by a failing write, and never leaves half a line", () => {
  const target = new FakeTarget();
  const { writer } = fakeWriter(target);
  target.limit = 4;
  // The first call writes 4 bytes, the second fails: the disk filled up in mid-line.
  target.failOn = (call) => call === 2;
  writer.write("first line\nsecond line\n");
  assert.equal(target.text, "firs");
  assert.equal(writer.dropped, 1);
  target.limit = Infinity;
  writer.write("third line\n");
  assert.equal(target.text, "first line\nthird line\n");
});

Deno.test("LogWriter.reopen() writes later lines to the new file at the path, none lost", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/sub/dir/net-bouncer.log`;
    const writer = new LogWriter(path);
    writer.write("one\n");
    await Deno.rename(path, `${path}.1`);
    writer.write("two\n");
    writer.reopen();
    writer.write("three\n");
    writer.close();
    assert.equal(await Deno.readTextFile(`${path}.1`), "one\ntwo\n");
    assert.equal(await Deno.readTextFile(path), "three\n");
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o640);
    assert.equal((await Deno.stat(`${dir}/sub`)).mode! & 0o777, 0o750);
    assert.equal((await Deno.stat(`${dir}/sub/dir`)).mode! & 0o777, 0o750);
  });
});

Deno.test("LogWriter.reopen() keeps the old file when the path cannot be opened", () => {
  const first = new FakeTarget();
  let opens = 0;
  const reports: string[] = [];
  const writer = new LogWriter("/x.log", {
    open: () => {
      if (opens++ === 0) return first;
      throw new Deno.errors.PermissionDenied('Cannot open log file "/x.log": permission denied');
    },
    report: (message) => reports.push(message),
  });
  writer.reopen();
  writer.write("still here\n");
  assert.equal(first.text, "still here\n");
  assert.equal(first.closed, false);
  assert.deepEqual(reports, [
    'Cannot open log file "/x.log": permission denied; still writing to the previous file',
  ]);
});

Deno.test("openLogFile() names the path and the reason", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/file`, "");
    assert.throws(() => openLogFile(`${dir}/file/x.log`), {
      message: `Cannot open log file "${dir}/file/x.log": "${dir}/file" is not a directory`,
    });
    await Deno.mkdir(`${dir}/dir.log`);
    assert.throws(() => openLogFile(`${dir}/dir.log`), {
      name: "IsADirectory",
      message: `Cannot open log file "${dir}/dir.log": is a directory`,
    });
  });
});

Deno.test("LogWriter keeps the unfinished line while the target keeps failing", () => {
  const target = new FakeTarget();
  const { writer } = fakeWriter(target);
  target.limit = 4;
  // Only the first call succeeds (4 bytes); the next three fail.
  target.failOn = (call) => call >= 2 && call <= 4;
  writer.write("first line\n");
  writer.write("second line\n");
  writer.write("third line\n");
  target.limit = Infinity;
  writer.write("fourth line\n");
  assert.equal(target.text, "first line\nfourth line\n");
  assert.equal(writer.dropped, 2);
});

Deno.test("LogWriter.reopen() finishes a cut line in the old file, or drops it, never in the new", () => {
  for (const oldFileRecovers of [true, false]) {
    const old = new FakeTarget();
    const fresh = new FakeTarget();
    const targets = [old, fresh];
    const writer = new LogWriter("/x.log", { open: () => targets.shift()!, report: () => {} });
    old.limit = 4;
    old.failOn = (call) => call === 2 || (call >= 3 && !oldFileRecovers);
    writer.write("first line\n");
    writer.reopen();
    writer.write("second line\n");
    assert.equal(old.text, oldFileRecovers ? "first line\n" : "firs");
    assert.equal(fresh.text, "second line\n");
    assert.equal(writer.dropped, oldFileRecovers ? 0 : 1);
  }
});

Deno.test("LogWriter treats a write of 0 bytes as a failure instead of retrying forever", () => {
  const target = new FakeTarget();
  const { writer, reports } = fakeWriter(target);
  target.limit = 0;
  writer.write("stuck\n");
  assert.equal(writer.dropped, 1);
  assert.match(
    reports[0],
    /^Cannot write log file "\/fake\/x.log": write returned 0 bytes; 1 line/,
  );
  target.limit = Infinity;
  writer.write("free\n");
  assert.equal(target.text, "free\n");
});

Deno.test("LogWriter's first report counts what failed: a line cut short is not '0 dropped since the last report'", () => {
  const target = new FakeTarget();
  const { writer, reports } = fakeWriter(target);
  target.limit = 4;
  target.failOn = (call) => call === 2; // the disk fills up after 4 bytes of the line
  writer.write("first line\n");
  assert.deepEqual(reports, [
    'Cannot write log file "/fake/x.log": no space left on device; ' +
    "0 lines dropped, 1 cut short (finished when writing works again)",
  ]);
});

Deno.test("LogWriter spaces its reports on the monotonic clock: a wall clock step back does not silence them", () => {
  const HOUR_MS = 3_600_000;
  let wall = Date.UTC(2024, 6, 8, 21, 26, 48);
  let monotonic = 5_000;
  const target = new FakeTarget();
  target.fail = true;
  const reports: string[] = [];
  withFakeClocks({ wall: () => wall, monotonic: () => monotonic }, () => {
    // No clock given: the daemon's default.
    const writer = new LogWriter("/fake/x.log", {
      open: () => target,
      report: (message) => reports.push(message),
    });
    // 13 s of failing writes, one line every 100 ms; the wall clock goes back an hour at once.
    for (let tenth = 0; tenth < 130; tenth++) {
      writer.write(`line ${tenth}\n`);
      if (tenth === 0) wall -= HOUR_MS;
      wall += 100;
      monotonic += 100;
    }
    target.fail = false;
    writer.write("back\n");
  });
  assert.deepEqual(reports, [
    'Cannot write log file "/fake/x.log": no space left on device; 1 line dropped',
    'Cannot write log file "/fake/x.log": no space left on device; ' +
    "100 more lines dropped since the last report",
    'Writing log file "/fake/x.log" again; 29 more lines dropped since the last report',
  ]);
  assert.equal(target.text, "back\n");
});

Deno.test("LogWriter writes to standard output for -l - and /dev/stdout, to standard error for /dev/stderr", () => {
  for (
    const [path, stream] of [
      ["-", "stdout"],
      ["/dev/stdout", "stdout"],
      ["/dev/stderr", "stderr"],
      [
        null,
        "stderr",
      ],
    ] as const
  ) {
    const stdout = new FakeTarget();
    const stderr = new FakeTarget();
    const writer = new LogWriter(path, {
      stdout,
      stderr,
      open: () => assert.fail(`${path} was opened as a file`),
    });
    assert.equal(writer.stream, stream);
    assert.equal(writer.path, null);
    writer.write("one\n");
    writer.reopen(); // SIGHUP: nothing to reopen
    writer.write("two\n");
    writer.close();
    assert.equal((stream === "stdout" ? stdout : stderr).text, "one\ntwo\n", String(path));
    assert.equal((stream === "stdout" ? stderr : stdout).text, "", String(path));
    assert.ok(!stdout.closed && !stderr.closed);
  }
});

Deno.test("-l /dev/stdout and -l - write the log to standard output, with the production permissions", async () => {
  for (const path of ["/dev/stdout", "-"]) {
    const [cmd, ...args] = programCommand(["-p", "0", "-l", path]);
    const child = new Deno.Command(cmd, { args, stdin: "null", stdout: "piped", stderr: "piped" })
      .spawn();
    let stdout = "";
    const reading = (async () => {
      for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) stdout += chunk;
    })();
    const stderr = new Response(child.stderr).text();
    let exited = false;
    const status = child.status.finally(() => exited = true);
    try {
      await waitFor(`the Listening line on standard output (-l ${path})`, () => {
        if (exited) throw new Error(`net-bouncer exited early: ${stdout}`);
        return /\[INFO\] Listening on port \d+/.test(stdout);
      });
    } finally {
      if (!exited) child.kill("SIGTERM");
    }
    const { code } = await status;
    await reading;
    assert.equal(await stderr, "");
    assert.equal(code, 0);
    assert.match(stdout, /\[INFO\] Stopped after 0 connections\n$/);
  }
});

/** Runs `code` (TypeScript using `LOG_WRITER`, the module's URL) in a fresh Deno; killed after 10 s. */
function runScript(code: string) {
  const url = new URL("../../lib/log/log_writer.ts", import.meta.url).href;
  return run(Deno.execPath(), ["eval", `const LOG_WRITER = ${JSON.stringify(url)};\n${code}`], {
    timeoutMs: 10_000,
  });
}

Deno.test("openLogFile() refuses a FIFO without blocking, and a device", async () => {
  await withTempDir(async (dir) => {
    const fifo = `${dir}/fifo.log`;
    assert.equal((await run("mkfifo", [fifo])).code, 0);
    // In a process of its own: opening a FIFO for writing would block until a reader comes.
    const result = await runScript(`
      const { openLogFile } = await import(LOG_WRITER);
      try { openLogFile(${
      JSON.stringify(fifo)
    }); } catch (error) { console.log(error.name, error.message); }
    `);
    assert.equal(result.signal, null, "openLogFile() blocked on a FIFO");
    assert.equal(
      result.stdout,
      `NotRegularFileError Cannot open log file "${fifo}": not a regular file\n`,
    );
    assert.throws(
      () => openLogFile("/dev/null"),
      new NotRegularFileError('Cannot open log file "/dev/null": not a regular file'),
    );
  });
});

Deno.test("-l FIFO fails at start with one line and exit 1, without blocking", async () => {
  await withTempDir(async (dir) => {
    const fifo = `${dir}/net-bouncer.log`;
    assert.equal((await run("mkfifo", [fifo])).code, 0);
    const [cmd, ...args] = programCommand(["-p", "0", "-l", fifo]);
    const result = await run(cmd, args, { timeoutMs: 10_000 });
    assert.equal(result.signal, null, "the program blocked on the FIFO");
    assert.equal(result.code, 1);
    assert.equal(
      result.stderr,
      `net-bouncer: error: Cannot open log file "${fifo}": not a regular file\n`,
    );
  });
});

Deno.test("LogWriter.reopen() refuses a FIFO at the path without blocking and keeps the old file", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/net-bouncer.log`;
    const result = await runScript(`
      const { LogWriter } = await import(LOG_WRITER);
      const path = ${JSON.stringify(path)};
      const writer = new LogWriter(path, { report: (message) => console.log(message) });
      writer.write("before\\n");
      Deno.renameSync(path, path + ".1");
      if (!new Deno.Command("mkfifo", { args: [path] }).outputSync().success) throw new Error("mkfifo");
      writer.reopen();
      writer.write("after\\n");
      writer.close();
    `);
    assert.equal(result.signal, null, "reopen() blocked on a FIFO");
    assert.equal(result.stderr, "");
    assert.equal(
      result.stdout,
      `Cannot open log file "${path}": not a regular file; still writing to the previous file\n`,
    );
    assert.equal(await Deno.readTextFile(`${path}.1`), "before\nafter\n");
  });
});

Deno.test("openLogFile() follows a symbolic link to a file, and refuses one to a file that does not exist", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/target.log`, "old\n");
    await Deno.symlink("target.log", `${dir}/link.log`);
    const writer = new LogWriter(`${dir}/link.log`);
    writer.write("new\n");
    writer.close();
    assert.equal(await Deno.readTextFile(`${dir}/target.log`), "old\nnew\n");

    await Deno.symlink("missing/../gone.log", `${dir}/dangling.log`);
    assert.throws(() => openLogFile(`${dir}/dangling.log`), {
      name: "NotFound",
      message: `Cannot open log file "${dir}/dangling.log": it is a symbolic link to ` +
        `"${dir}/gone.log", which does not exist (create that file first)`,
    });
    // Refused, not created through the link.
    await assert.rejects(Deno.lstat(`${dir}/gone.log`), Deno.errors.NotFound);
  });
});

Deno.test("openLogFile() escapes control characters in the path it names", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/a\x1b[31m\nb`);
    assert.throws(() => openLogFile(`${dir}/a\x1b[31m\nb`), {
      message: `Cannot open log file "${dir}/a\\x1b[31m\\nb": is a directory`,
    });
  });
});

Deno.test("SIGHUP with a FIFO at the log path: the daemon reports it, keeps the old file, stops on SIGTERM", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/net-bouncer.log`;
    // No logFile option: the Program's log is then its stderr, where the report goes.
    const program = await startProgram(["-p", "0", "-l", path], { listening: 0 });
    let exited = false;
    try {
      const listening = await waitFor(
        "the Listening line",
        () => /Listening on port (\d+) /.exec(readOrEmpty(path)),
      );
      await Deno.rename(path, `${path}.1`);
      assert.equal((await run("mkfifo", [path])).code, 0);
      program.kill("SIGHUP");
      await program.waitForLines(
        /^net-bouncer: error: Cannot open log file ".*": not a regular file; still writing to the previous file$/,
      );
      await knock("::1", Number(listening[1]));
      await waitFor(
        "the connection line in the previous file",
        () => connectionAddresses(readOrEmpty(`${path}.1`)).length === 1,
      );
      const result = await withDeadline("the exit after SIGTERM", program.stop());
      exited = true;
      assert.equal(result.code, 0);
    } finally {
      if (!exited) {
        program.kill("SIGKILL");
        await program.stop();
      }
    }
    assert.match(await Deno.readTextFile(`${path}.1`), /\[INFO\] Stopped after 1 connection\n$/);
  });
});
