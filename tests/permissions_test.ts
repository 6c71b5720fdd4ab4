import assert from "node:assert/strict";
import {
  CONNECTION_LINE,
  freePort,
  knock,
  linesMatching,
  productionRunArgs,
  ROOT,
  waitFor,
  withTempDir,
} from "./_util.ts";

Deno.test("after start-up the daemon cannot connect out, listen anew or read files; it still logs", async () => {
  await withTempDir(async (dir) => {
    const outside = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = freePort();
    const secret = `${dir}/secret`;
    await Deno.writeTextFile(secret, "not for the daemon");
    const log = `${dir}/log`;
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        ...productionRunArgs(),
        `${ROOT}tests/_permission_probe.ts`,
        String((outside.addr as Deno.NetAddr).port),
        secret,
        "-p",
        String(port),
        "-l",
        log,
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stdout = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    try {
      const { value } = await stdout.read();
      assert.deepEqual(JSON.parse(value!), {
        connect: "denied",
        listen: "denied",
        read: "denied",
        env: "denied",
        run: "denied",
      });
      assert.equal(await knock("127.0.0.1", port), 0);
      await waitFor("the connection line", () => {
        const text = Deno.readTextFileSync(log);
        return linesMatching(text, CONNECTION_LINE).length === 1;
      });
    } finally {
      child.kill("SIGTERM");
      const status = await child.status;
      await stdout.cancel();
      await child.stderr.cancel();
      outside.close();
      assert.equal(status.code, 0);
    }
  });
});
