/**
 * net-bouncer: a honeypot listener. It accepts TCP connections, logs one line for each and
 * closes it at once, so that fail2ban or CrowdSec can ban the address.
 *
 * This file only dispatches: `report` to lib/report/report.ts, everything else to lib/serve.ts.
 *
 * @module
 */
import { Signals } from "./lib/signals.ts";
import type { ServeOptions } from "./lib/serve.ts";

/** Options of {@linkcode main}: what tests control. */
export type MainOptions = ServeOptions;

/** Runs net-bouncer with the command-line `args`; resolves to the exit code. */
export async function main(args: string[], options: MainOptions = {}): Promise<number> {
  if (args[0] === "report") {
    // Loaded only for the report: the daemon never holds its code.
    const { denoReportOptions, report } = await import("./lib/report/report.ts");
    return await report(args.slice(1), denoReportOptions());
  }
  // Before the daemon's code is even loaded: a SIGHUP from now on never kills it.
  const signals = options.signals ?? new Signals();
  const stderr = options.stderr ?? ((line: string) => console.error(line));
  const { errorLine, exitCodeOf, serve } = await import("./lib/serve.ts");
  try {
    return await serve(args, { ...options, stderr, signals });
  } catch (error) {
    stderr(errorLine(error));
    return exitCodeOf(error);
  } finally {
    signals.close();
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
