/** The permissions the daemon gives up once its ports are bound (see lib/serve.ts dropPermissions). */
import assert from "node:assert/strict";
import {
  CONNECTION_LINE,
  knock,
  linesMatching,
  LISTENERS,
  productionRunArgs,
  ROOT,
  waitFor,
  withTempDir,
} from "../_util.ts";

/** Starts the probe (tests/_permission_probe.ts) with `args`; returns its results and log. */
async function probe(args: string[], { logFile }: { logFile?: string } = {}) {
  return await withTempDir(async (dir) => {
    const outside = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const secret = `${dir}/secret`;
    await Deno.writeTextFile(secret, "not for the daemon");
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        ...productionRunArgs(),
        `${ROOT}tests/_permission_probe.ts`,
        String((outside.addr as Deno.NetAddr).port),
        secret,
        ...args,
        ...(logFile === undefined ? [] : ["-l", logFile]),
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let stderr = "";
    const reading = (async () => {
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) stderr += chunk;
    })();
    const stdout = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    try {
      const { value } = await stdout.read();
      const results = JSON.parse(value!);
      const log = () => logFile === undefined ? stderr : Deno.readTextFileSync(logFile);
      // The Listening line was written before the results, but stderr is read as it comes.
      const [, port] = await waitFor(
        "the Listening line",
        () => /Listening on port (\d+)/.exec(log()),
      );
      assert.equal(await knock("127.0.0.1", Number(port)), 0);
      await waitFor(
        "the connection line",
        () => linesMatching(log(), CONNECTION_LINE).length === 1,
      );
      return results;
    } finally {
      child.kill("SIGTERM");
      const status = await child.status;
      await stdout.cancel();
      await reading;
      outside.close();
      assert.equal(status.code, 0, stderr);
    }
  });
}

/** What the probe finds once the daemon is serving: every permission given up. */
const EVERYTHING_DENIED = {
  connect: "denied",
  listen: "denied",
  read: "denied",
  env: "denied",
  run: "denied",
  ffi: "denied",
};

for (const listener of LISTENERS) {
  Deno.test(`[${listener}] after start-up the daemon cannot connect out, listen anew, read files, load a library, run or read the environment; it still logs`, async () => {
    const results = await probe(["--listener", listener, "-p", "0"]);
    assert.deepEqual(results, EVERYTHING_DENIED);
  });
}

Deno.test("with a log file the daemon gives up reading too: libc opens and checks it on SIGHUP", async () => {
  await withTempDir(async (dir) => {
    const results = await probe(["-p", "0"], { logFile: `${dir}/log` });
    assert.deepEqual(results, EVERYTHING_DENIED);
  });
});
