/**
 * lib/linux/regular_file.ts against real files: what open(2) with O_NONBLOCK and statx(2) on
 * the descriptor say about a regular file, a FIFO (with and without a writer or reader), a
 * device and a directory. Nothing here may block: a FIFO would hang the test.
 */
import assert from "node:assert/strict";
import { O_APPEND, O_RDONLY, O_WRONLY, openLibc, OsError } from "../../lib/linux/libc.ts";
import { isNotRegular, openFile, openRegularFile } from "../../lib/linux/regular_file.ts";
import { withTempDir } from "../_util.ts";

const ignore = Deno.build.os !== "linux";

Deno.test({
  name: "openRegularFile() opens and reads a regular file, with its size",
  ignore,
  async fn() {
    await withTempDir(async (dir) => {
      const libc = openLibc();
      await Deno.writeTextFile(`${dir}/file`, "192.0.2.0/24\n");
      const { file, size } = openRegularFile(libc, `${dir}/file`, O_RDONLY);
      try {
        assert.equal(size, 13);
        const buffer = new Uint8Array(64);
        assert.equal(file.readSync(buffer), 13);
        assert.equal(new TextDecoder().decode(buffer.subarray(0, 13)), "192.0.2.0/24\n");
        assert.equal(file.readSync(buffer), null);
      } finally {
        file.close();
      }
      const appended = openRegularFile(libc, `${dir}/file`, O_WRONLY | O_APPEND).file;
      assert.equal(appended.writeSync(new TextEncoder().encode("x\n")), 2);
      appended.close();
      assert.equal(await Deno.readTextFile(`${dir}/file`), "192.0.2.0/24\nx\n");
    });
  },
});

Deno.test({
  name: "openRegularFile() refuses a FIFO, a device and a directory without blocking",
  ignore,
  async fn() {
    await withTempDir(async (dir) => {
      const libc = openLibc();
      const fifo = `${dir}/fifo`;
      assert.equal((await new Deno.Command("mkfifo", { args: [fifo] }).output()).code, 0);
      const refused = (path: string, flags: number, errno: string) =>
        assert.throws(() => openRegularFile(libc, path, flags), (error: unknown) => {
          assert.ok(error instanceof OsError, String(error));
          assert.equal(error.code, errno, path);
          return true;
        });
      // No writer: reading opens at once (O_NONBLOCK), then the descriptor says FIFO.
      refused(fifo, O_RDONLY, "ENXIO");
      // No reader: writing fails with ENXIO in open(2) itself.
      refused(fifo, O_WRONLY, "ENXIO");
      // With a reader waiting, writing opens, and the descriptor says FIFO.
      const reader = openFile(libc, fifo, O_RDONLY);
      refused(fifo, O_WRONLY | O_APPEND, "ENXIO");
      reader.close();
      refused("/dev/null", O_WRONLY, "ENXIO");
      refused("/dev/zero", O_RDONLY, "ENXIO");
      refused(dir, O_RDONLY, "EISDIR");
      refused(`${dir}/missing`, O_RDONLY, "ENOENT");
      assert.ok(isNotRegular(new OsError("x", { errno: 6 })));
      assert.ok(!isNotRegular(new OsError("x", { errno: 2 })));
    });
  },
});
