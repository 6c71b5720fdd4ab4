/**
 * A local HTTP(S) receiver for the tests of webhooks and reports (AbuseIPDB, ntfy/Slack/Discord
 * JSON): run as a script, in a sandbox's network namespace or on loopback, it prints one JSON line
 * on stdout per request it receives (`{"method", "path", "headers", "body"}`, headers lowercased),
 * after a first line `{"listening": PORT}`.
 *
 *     deno run --allow-net --allow-read --allow-env tests/_receiver.ts --port 443 --cert C --key K [--hang]
 *
 * `--hang`: every request is printed, then never answered (the connection stays open until the
 * client gives up), as a receiver that hangs. Otherwise each gets `200 {"data":{}}`. Use
 * {@linkcode startReceiver} to run it and read what it received.
 */
import { parseArgs } from "node:util";
import { DEADLINE_MS, ROOT, waitFor } from "./_util.ts";

/** One request the receiver got. */
export interface ReceivedRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string;
}

/** A running receiver (a separate process). */
export interface Receiver {
  /** The port it listens on. */
  port: number;
  /** The requests received so far, in order. */
  requests(): ReceivedRequest[];
  /** Waits until at least `count` requests arrived; returns them all. */
  waitForRequests(count: number, timeoutMs?: number): Promise<ReceivedRequest[]>;
  /** Stops it. */
  stop(): Promise<void>;
}

/**
 * Starts the receiver as `deno run` on `port` (0: the system picks), with TLS when `tls` names a
 * certificate and key, in the namespaces `wrap` adds (a sandbox's), hanging when `hang`.
 */
export async function startReceiver(
  port: number,
  { tls, hang = false, wrap = (args) => args }: {
    tls?: { cert: string; key: string };
    hang?: boolean;
    wrap?: (args: string[]) => string[];
  } = {},
): Promise<Receiver> {
  const args = [
    Deno.execPath(),
    "run",
    "--quiet",
    "--allow-net",
    "--allow-read",
    "--allow-env",
    `${ROOT}tests/_receiver.ts`,
    "--port",
    String(port),
    ...(tls ? ["--cert", tls.cert, "--key", tls.key] : []),
    ...(hang ? ["--hang"] : []),
  ];
  const [cmd, ...rest] = wrap(args);
  const child = new Deno.Command(cmd, {
    args: rest,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  let exited = false;
  const stderr = new Response(child.stderr).text();
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const reading = (async () => {
    let buffer = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      const parts = buffer.split("\n");
      buffer = parts.pop()!;
      lines.push(...parts);
    }
  })();
  const first = await waitFor("the receiver's listening line", async () => {
    if (exited) throw new Error(`The receiver exited: ${await stderr}`);
    return lines[0];
  }, { timeoutMs: DEADLINE_MS * 2 });
  const listening = Number(JSON.parse(first).listening);
  const requests = () => lines.slice(1).map((line) => JSON.parse(line) as ReceivedRequest);
  return {
    port: listening,
    requests,
    waitForRequests: (count, timeoutMs = DEADLINE_MS) =>
      waitFor(`${count} request(s) at the receiver`, () => {
        if (exited) throw new Error("The receiver exited");
        const got = requests();
        return got.length >= count ? got : null;
      }, { timeoutMs }),
    stop: async () => {
      if (!exited) child.kill("SIGKILL");
      await status;
      await reading;
      await stderr;
    },
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      port: { type: "string", default: "0" },
      cert: { type: "string" },
      key: { type: "string" },
      hang: { type: "boolean", default: false },
    },
  });
  const tls = values.cert && values.key
    ? { cert: Deno.readTextFileSync(values.cert), key: Deno.readTextFileSync(values.key) }
    : {};
  const encoder = new TextEncoder();
  const print = (value: unknown) =>
    Deno.stdout.writeSync(encoder.encode(JSON.stringify(value) + "\n"));
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: Number(values.port),
    ...tls,
    onListen: ({ port }) => print({ listening: port }),
  }, async (request) => {
    const url = new URL(request.url);
    print({
      method: request.method,
      path: url.pathname + url.search,
      headers: Object.fromEntries(request.headers),
      body: await request.text(),
    });
    // Never answered: the client waits until its own timeout.
    if (values.hang) return await new Promise<Response>(() => {});
    return Response.json({ data: {} });
  });
  await server.finished;
}

if (import.meta.main) await main();
