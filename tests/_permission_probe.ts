/**
 * Runs the real main() under the production permission flags (see permissions_test.ts) and,
 * once it is ready, tries what an exploited daemon would try: prints one JSON line of results.
 */
import { main } from "../main.ts";

async function attempt(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
    return "allowed";
  } catch (error) {
    return error instanceof Deno.errors.NotCapable ? "denied" : `failed: ${error}`;
  }
}

const [target, file, ...args] = Deno.args;
const code = await main(args, {
  onReady: async () => {
    const results = {
      connect: await attempt(async () =>
        (await Deno.connect({ hostname: "127.0.0.1", port: Number(target) })).close()
      ),
      listen: await attempt(() =>
        Promise.resolve(Deno.listen({ hostname: "127.0.0.1", port: 0 }).close())
      ),
      read: await attempt(() => Deno.readTextFile(file)),
      env: await attempt(() => Promise.resolve(Deno.env.get("HOME"))),
      run: await attempt(() => new Deno.Command("true").output()),
      ffi: await attempt(() =>
        Promise.resolve(Deno.dlopen("libc.so.6", { getpid: { parameters: [], result: "i32" } }))
      ),
    };
    console.log(JSON.stringify(results));
  },
});
Deno.exit(code);
