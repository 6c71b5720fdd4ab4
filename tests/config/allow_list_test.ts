import assert from "node:assert/strict";
import { UsageError } from "../../lib/errors.ts";
import { loadAllowList, MAX_IGNORE_FILE_BYTES } from "../../lib/config/allow_list.ts";
import {
  CONNECTION_LINE,
  connectionAddresses,
  knock,
  programCommand,
  run,
  runProgram,
  startProgram,
  withTempDir,
} from "../_util.ts";

Deno.test("loadAllowList() reads values and a file with comments and blank lines", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(
      `${dir}/ignore`,
      "# monitoring\n192.0.2.0/24\n\n  2001:db8::/48   # bastion\r\n198.51.100.9\n",
    );
    const set = loadAllowList(["10.0.0.0/8"], { file: `${dir}/ignore` });
    assert.equal(set.size, 4);
    assert.ok(set.has("10.1.2.3"));
    assert.ok(set.has("192.0.2.77"));
    assert.ok(set.has("2001:db8:0:1::5"));
    assert.ok(set.has("198.51.100.9"));
    assert.ok(!set.has("198.51.100.10"));
  });
});

Deno.test("loadAllowList() names the file and line of a bad entry, values escaped", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/ignore`, "# ok\n192.0.2.0/24\nexample.com\n");
    assert.throws(
      () => loadAllowList([], { file: `${dir}/ignore` }),
      new UsageError(
        `Cannot ignore "example.com" in "${dir}/ignore" line 3: not an IP address or CIDR prefix`,
      ),
    );
    await Deno.writeTextFile(`${dir}/ignore`, "::ffff:10.0.0.0/8\n");
    assert.throws(
      () => loadAllowList([], { file: `${dir}/ignore` }),
      new UsageError(
        `Cannot ignore "::ffff:10.0.0.0/8" in "${dir}/ignore" line 1: an IPv4-mapped prefix needs /96 or more`,
      ),
    );
    await Deno.writeTextFile(`${dir}/ignore`, "10.0.0.0/8\n\x1b[2J\u202e10.0.0.1\n");
    assert.throws(
      () => loadAllowList([], { file: `${dir}/ignore` }),
      new UsageError(
        `Cannot ignore "\\x1b[2J\\u{202e}10.0.0.1" in "${dir}/ignore" line 2: not an IP address or CIDR prefix`,
      ),
    );
    assert.throws(
      () => loadAllowList(["10.0.0.0/8", "\x1b]0;x\x07"]),
      new UsageError('Cannot ignore "\\x1b]0;x\\x07": not an IP address or CIDR prefix'),
    );
  });
});

Deno.test("loadAllowList() reads regular files only, at most MAX_IGNORE_FILE_BYTES, naming the file", async () => {
  await withTempDir(async (dir) => {
    assert.throws(
      () => loadAllowList([], { file: `${dir}/missing` }),
      new UsageError(`Cannot read allow-list file "${dir}/missing": no such file or directory`),
    );
    assert.throws(
      () => loadAllowList([], { file: dir }),
      new UsageError(`Cannot read allow-list file "${dir}": is a directory`),
    );
    assert.throws(
      () => loadAllowList([], { file: "/dev/null" }),
      new UsageError('Cannot read allow-list file "/dev/null": not a regular file'),
    );
    // A sparse file one byte over the limit: nothing of it is read.
    const big = `${dir}/big`;
    await Deno.writeTextFile(big, "10.0.0.0/8\n#");
    await Deno.truncate(big, MAX_IGNORE_FILE_BYTES + 1);
    assert.throws(
      () => loadAllowList([], { file: big }),
      new UsageError(`Cannot read allow-list file "${big}": larger than 16 MiB`),
    );
    // At the limit it is read: a prefix, then a comment of NUL bytes to the end.
    await Deno.truncate(big, MAX_IGNORE_FILE_BYTES);
    const set = loadAllowList([], { file: big });
    assert.equal(set.size, 1);
    assert.ok(set.has("10.9.8.7"));
  });
});

Deno.test("--ignore-file: a FIFO, a device or a file over 16 MiB is a usage error at start, without blocking", async () => {
  await withTempDir(async (dir) => {
    const fifo = `${dir}/fifo`;
    assert.equal((await run("mkfifo", [fifo])).code, 0);
    const big = `${dir}/big`;
    await Deno.writeTextFile(big, "");
    await Deno.truncate(big, MAX_IGNORE_FILE_BYTES + 1);
    for (
      const [file, why] of [
        [fifo, "not a regular file"],
        ["/dev/zero", "not a regular file"],
        [big, "larger than 16 MiB"],
      ]
    ) {
      const [cmd, ...args] = programCommand(["-p", "0", "--ignore-file", file]);
      // Reading a FIFO would wait for a writer, /dev/zero would never end: the deadline tells.
      const result = await run(cmd, args, { timeoutMs: 10_000 });
      assert.equal(result.signal, null, `net-bouncer blocked on ${file}`);
      assert.equal(
        result.stderr,
        `net-bouncer: error: Cannot read allow-list file "${file}": ${why}\n`,
      );
      assert.equal(result.code, 2);
    }
  });
});

Deno.test("a bad --ignore-file is a usage error naming file and line", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/ignore`, "10.0.0.0/8\n10.0.0.0/99\n");
    const { code, stderr } = await runProgram(["-p", "0", "--ignore-file", `${dir}/ignore`]);
    assert.equal(code, 2);
    assert.equal(
      stderr,
      `net-bouncer: error: Cannot ignore "10.0.0.0/99" in "${dir}/ignore" line 2: not an IP address or CIDR prefix\n`,
    );
  });
});

Deno.test("ignored sources get no line, others do; the Stopped line counts them", async () => {
  await withTempDir(async (dir) => {
    // 127.0.0.1 reaches the dual-stack listener as ::ffff:127.0.0.1: the IPv4 prefix matches.
    const program = await startProgram(["-p", "0", "--ignore", "127.0.0.0/8"], {
      logFile: `${dir}/log`,
    });
    try {
      assert.equal(await knock("127.0.0.1", program.port), 0);
      assert.equal(await knock("127.0.0.1", program.port), 0);
      await knock("::1", program.port);
      await program.waitForLines(CONNECTION_LINE, 1);
    } finally {
      assert.equal((await program.stop()).code, 0);
    }
    const log = program.log();
    assert.deepEqual(connectionAddresses(log), ["::1"]);
    assert.match(log, /Stopped after 1 connection, 2 ignored connections\n$/);
  });
});

Deno.test("SIGHUP reloads --ignore-file; a bad, oversized or non-regular one keeps the previous list", async () => {
  await withTempDir(async (dir) => {
    const file = `${dir}/ignore`;
    await Deno.writeTextFile(file, "::1\n");
    const program = await startProgram(["-p", "0", "--ignore-file", file], {
      logFile: `${dir}/log`,
    });
    const port = program.port;
    try {
      await knock("::1", port); // ignored
      await knock("127.0.0.1", port); // logged
      await program.waitForLines(CONNECTION_LINE, 1);
      await Deno.writeTextFile(file, "# now IPv4 loopback instead\n127.0.0.0/8\n");
      program.kill("SIGHUP");
      await program.waitForLines(/Reloaded .*: 1 prefix/, 1);
      await knock("127.0.0.1", port); // ignored now
      await knock("::1", port); // logged now
      await program.waitForLines(CONNECTION_LINE, 2);
      await Deno.writeTextFile(file, "not an address\n");
      program.kill("SIGHUP");
      await program.waitForLines(
        /\[ERROR\] Cannot ignore "not an address" .* line 1: .*; keeping the previous list$/,
        1,
      );
      await Deno.truncate(file, MAX_IGNORE_FILE_BYTES + 1);
      program.kill("SIGHUP");
      await program.waitForLines(
        /\[ERROR\] Cannot read allow-list file ".*": larger than 16 MiB; keeping the previous list$/,
        1,
      );
      await Deno.remove(file);
      assert.equal((await run("mkfifo", [file])).code, 0);
      program.kill("SIGHUP");
      await program.waitForLines(
        /\[ERROR\] Cannot read allow-list file ".*": not a regular file; keeping the previous list$/,
        1,
      );
      await knock("127.0.0.1", port); // still ignored
      await knock("::1", port); // logged
      await program.waitForLines(CONNECTION_LINE, 3);
    } finally {
      assert.equal((await program.stop()).code, 0);
    }
    const log = program.log();
    assert.deepEqual(connectionAddresses(log), ["127.0.0.1", "::1", "::1"]);
    assert.match(log, /Stopped after 3 connections, 3 ignored connections\n$/);
  });
});
