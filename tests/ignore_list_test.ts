import assert from "node:assert/strict";
import { UsageError } from "../lib/errors.ts";
import { loadIgnoreList } from "../lib/ignore_list.ts";
import {
  CONNECTION_LINE,
  freePort,
  knock,
  linesMatching,
  runProgram,
  startProgram,
  withTempDir,
} from "./_util.ts";

Deno.test("loadIgnoreList() reads values and a file with comments and blank lines", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(
      `${dir}/ignore`,
      "# monitoring\n192.0.2.0/24\n\n  2001:db8::/48   # bastion\n198.51.100.9\n",
    );
    const set = loadIgnoreList(["10.0.0.0/8"], { file: `${dir}/ignore` });
    assert.equal(set.size, 4);
    assert.ok(set.has("10.1.2.3"));
    assert.ok(set.has("192.0.2.77"));
    assert.ok(set.has("2001:db8:0:1::5"));
    assert.ok(set.has("198.51.100.9"));
    assert.ok(!set.has("198.51.100.10"));
  });
});

Deno.test("loadIgnoreList() names the file and line of a bad entry", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/ignore`, "# ok\n192.0.2.0/24\nexample.com\n");
    assert.throws(
      () => loadIgnoreList([], { file: `${dir}/ignore` }),
      new UsageError(
        `Cannot ignore "example.com" in "${dir}/ignore" line 3: not an IP address or CIDR prefix`,
      ),
    );
    assert.throws(
      () => loadIgnoreList([], { file: `${dir}/missing` }),
      new UsageError(`Cannot read ignore file "${dir}/missing": no such file or directory`),
    );
  });
});

Deno.test("a bad --ignore-file is a usage error naming file and line", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/ignore`, "10.0.0.0/8\n10.0.0.0/99\n");
    const { code, stderr } = await runProgram(["-p", "2222", "--ignore-file", `${dir}/ignore`]);
    assert.equal(code, 2);
    assert.equal(
      stderr,
      `net-bouncer: error: Cannot ignore "10.0.0.0/99" in "${dir}/ignore" line 2: not an IP address or CIDR prefix\n`,
    );
  });
});

Deno.test("ignored sources get no line, others do; the Stopped line counts them", async () => {
  await withTempDir(async (dir) => {
    const port = freePort();
    // 127.0.0.1 reaches the dual-stack listener as ::ffff:127.0.0.1: the IPv4 prefix matches.
    const program = await startProgram(["-p", String(port), "--ignore", "127.0.0.0/8"], {
      logFile: `${dir}/log`,
    });
    try {
      assert.equal(await knock("127.0.0.1", port), 0);
      assert.equal(await knock("127.0.0.1", port), 0);
      await knock("::1", port);
      await program.waitForLines(CONNECTION_LINE, 1);
    } finally {
      assert.equal((await program.stop()).code, 0);
    }
    const log = program.log();
    assert.deepEqual(linesMatching(log, CONNECTION_LINE).map((l) => l.split(" ")[5]), ["::1"]);
    assert.match(log, /Stopped after 1 connection, 2 ignored connections\n$/);
  });
});

Deno.test("SIGHUP reloads --ignore-file; a bad reload keeps the previous list", async () => {
  await withTempDir(async (dir) => {
    const port = freePort();
    const file = `${dir}/ignore`;
    await Deno.writeTextFile(file, "::1\n");
    const program = await startProgram(["-p", String(port), "--ignore-file", file], {
      logFile: `${dir}/log`,
    });
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
        /\[ERROR\] Cannot ignore "not an address" .* line 1: .*; keeping the previous list/,
        1,
      );
      await knock("127.0.0.1", port); // still ignored
      await knock("::1", port); // logged
      await program.waitForLines(CONNECTION_LINE, 3);
    } finally {
      assert.equal((await program.stop()).code, 0);
    }
    const log = program.log();
    assert.deepEqual(linesMatching(log, CONNECTION_LINE).map((l) => l.split(" ")[5]), [
      "127.0.0.1",
      "::1",
      "::1",
    ]);
    assert.match(log, /Stopped after 3 connections, 3 ignored connections\n$/);
  });
});
