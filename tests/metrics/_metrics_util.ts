/** Helpers of the metrics tests: a registry with a fixed clock, samples, promtool. */
import assert from "node:assert/strict";
import { Metrics } from "../../lib/metrics/metrics.ts";
import type { ProcessStats } from "../../lib/metrics/process_stats.ts";
import { ROOT } from "../_util.ts";

export const START_MS = 1_764_000_000_123;
export const VERSION: string = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)).version;

export function newMetrics(): Metrics {
  return new Metrics({ version: "1.2.3", clock: () => START_MS, process: () => PROCESS });
}

/** The process figures {@linkcode newMetrics} shows. */
export const PROCESS: ProcessStats = {
  residentBytes: 48 * 1024 * 1024,
  cpuSeconds: 1.25,
  openFds: 9,
  maxFds: 1024,
};

/** The sample lines of an exposition text (no comments, no blank lines). */
export function samples(text: string): string[] {
  return text.split("\n").filter((line) => line !== "" && !line.startsWith("#"));
}

/** The value of the one sample named `series` (name with labels, exactly as rendered). */
export function sample(text: string, series: string): number {
  const found = samples(text).filter((line) => line.startsWith(`${series} `));
  assert.equal(found.length, 1, `one sample ${series} in:\n${text}`);
  return Number(found[0].slice(series.length + 1));
}

/** Runs `promtool check metrics` on `text`; fails with its output unless it passes cleanly. */
export async function promtoolCheck(text: string): Promise<void> {
  const child = new Deno.Command("promtool", {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const { code, stdout, stderr } = await child.output();
  const output = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  // promtool exits 0 with lint warnings on stdout (e.g. a counter without _total): none allowed.
  assert.equal(code, 0, output);
  assert.equal(output.trim(), "", output);
}

/** Sends `request` on a new connection and reads the whole answer (until the server closes). */
export async function exchange(port: number, request: string | Uint8Array): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const bytes = typeof request === "string" ? new TextEncoder().encode(request) : request;
    let written = 0;
    while (written < bytes.length) written += await conn.write(bytes.subarray(written));
    return await readAll(conn);
  } finally {
    conn.close();
  }
}

export async function readAll(conn: Deno.Conn): Promise<string> {
  const decoder = new TextDecoder();
  const buffer = new Uint8Array(16 * 1024);
  let text = "";
  while (true) {
    const n = await conn.read(buffer);
    if (n === null) break;
    text += decoder.decode(buffer.subarray(0, n), { stream: true });
  }
  return text + decoder.decode();
}

export function statusOf(answer: string): number {
  const match = /^HTTP\/1\.1 (\d{3}) /.exec(answer);
  assert.ok(match, `an HTTP status line in ${JSON.stringify(answer.slice(0, 200))}`);
  return Number(match[1]);
}
