import assert from "node:assert/strict";
import { LogWriter, openLogFile, type WriteTarget } from "../lib/log_writer.ts";
import { withTempDir } from "./_util.ts";

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
    'Cannot write log file "/fake/x.log": no space left on device; 1 line dropped since the last report',
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
