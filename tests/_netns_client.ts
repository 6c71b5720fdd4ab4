/**
 * Clients for tests/system/systemd_live_test.ts, run in the container's network namespace (nsenter -n)
 * and printing one JSON line:
 *   knock SOURCE PORT   one connection from the local address SOURCE (see knockFrom)
 *   loop PORT SOURCE... connections one after another, from each SOURCE in turn, until standard
 *                       input closes: how many completed their handshake, were refused or failed
 */
import { knockFrom } from "./_util.ts";

/** What `loop` reports. */
export interface LoopSummary {
  /** Connections whose handshake completed (each must be logged exactly once). */
  made: number;
  /** Connections refused (nothing listened). */
  refused: number;
  /** Other failures, by error code. */
  errors: Record<string, number>;
  /** The longest a connection took from connect to the server's close, in milliseconds. */
  slowestMs: number;
}

async function loop(port: number, sources: string[]): Promise<LoopSummary> {
  let open = true;
  // Standard input closing is the signal to stop (after the connection under way).
  const stdinClosed = (async () => {
    for await (const _ of Deno.stdin.readable) {
      // Nothing is sent; only the end counts.
    }
    open = false;
  })();
  const summary: LoopSummary = { made: 0, refused: 0, errors: {}, slowestMs: 0 };
  for (let i = 0; open; i++) {
    try {
      const started = performance.now();
      const knock = await knockFrom(sources[i % sources.length], port);
      summary.slowestMs = Math.max(summary.slowestMs, Math.round(performance.now() - started));
      if (knock.port !== 0) summary.made++;
      else summary.errors["no handshake"] = (summary.errors["no handshake"] ?? 0) + 1;
    } catch (error) {
      const code = String((error as { code?: unknown }).code ?? (error as Error).message);
      if (code === "ECONNREFUSED") summary.refused++;
      else summary.errors[code] = (summary.errors[code] ?? 0) + 1;
    }
  }
  await stdinClosed;
  return summary;
}

if (import.meta.main) {
  const [mode, ...args] = Deno.args;
  if (mode === "knock") {
    console.log(JSON.stringify(await knockFrom(args[0], Number(args[1]))));
  } else if (mode === "loop") {
    console.log(JSON.stringify(await loop(Number(args[0]), args.slice(1))));
  } else {
    console.error(`usage: knock SOURCE PORT | loop PORT SOURCE...`);
    Deno.exit(2);
  }
}
