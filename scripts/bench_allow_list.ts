/**
 * Benchmark of the allow-list as it ships: the program runs with the compile task's flags (its
 * permission set and V8 flags: --jitless, as the compiled binary), a separate process, on real
 * files. For each list it prints the start-up time to the Listening line, the peak memory, the
 * time from SIGHUP to the Reloaded line, and the longest a client waited to be accepted during
 * that reload (clients one after another, as fast as the daemon closes them).
 *
 *     deno task bench:allow-list
 */
import { compileFlags } from "./compile_all.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const RUN_FLAGS = ["run", ...compileFlags().flags];

/** A list of `count` lines from `line(i)`, at most `maxBytes`. */
function writeList(path: string, line: (i: number) => string, maxBytes: number, count = Infinity) {
  const lines: string[] = [];
  let size = 0;
  for (let i = 0; i < count; i++) {
    const text = line(i) + "\n";
    if (size + text.length > maxBytes) break;
    lines.push(text);
    size += text.length;
  }
  Deno.writeTextFileSync(path, lines.join(""));
  return { lines: lines.length, bytes: size };
}

const hash = (i: number) => Math.imul(i, 2654435761) >>> 0;
const ipv4 = (a: number) => `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
const ipv4Prefix = (i: number) => `${ipv4(hash(i))}/${8 + (hash(i + 7) % 25)}`;
const ipv6Prefix = (i: number) =>
  `2001:db8:${(hash(i) & 0xffff).toString(16)}:${(hash(i + 3) & 0xffff).toString(16)}::/${
    48 + (hash(i + 5) % 81)
  }`;

function peakKiB(pid: number): number {
  return Number(/VmHWM:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${pid}/status`))![1]);
}

async function until<T>(check: () => T | null, timeoutMs = 120_000): Promise<T> {
  const end = performance.now() + timeoutMs;
  while (performance.now() < end) {
    const value = check();
    if (value !== null) return value;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error("timed out");
}

async function knock(port: number): Promise<void> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.read(new Uint8Array(1));
  } catch {
    // a reset is a close too
  } finally {
    conn.close();
  }
}

async function measure(name: string, file: string, lines: number, bytes: number) {
  const log = await Deno.makeTempFile({ suffix: ".log" });
  const read = () => Deno.readTextFileSync(log);
  const started = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: [...RUN_FLAGS, `${ROOT}main.ts`, "-p", "0", "--ignore-file", file, "-l", log],
    stdin: "null",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const port = await until(() => {
    const match = /Listening on port (\d+)/.exec(read());
    return match === null ? null : Number(match[1]);
  });
  const startup = performance.now() - started;
  const startPeak = peakKiB(child.pid);
  child.kill("SIGHUP");
  const hup = performance.now();
  let longest = 0;
  let clients = 0;
  while (!/Reloaded/.test(read())) {
    const before = performance.now();
    await knock(port);
    longest = Math.max(longest, performance.now() - before);
    clients++;
  }
  const reload = performance.now() - hup;
  const reloadPeak = peakKiB(child.pid);
  child.kill("SIGTERM");
  await child.status;
  Deno.removeSync(log);
  console.log(
    `${name}: ${lines} lines, ${(bytes / 1048576).toFixed(1)} MiB: start-up ${
      startup.toFixed(0)
    } ms, peak ${(startPeak / 1024).toFixed(0)} MB; reload ${reload.toFixed(0)} ms, peak ${
      (reloadPeak / 1024).toFixed(0)
    } MB; ${clients} clients accepted during the reload, longest wait ${longest.toFixed(1)} ms`,
  );
}

const dir = await Deno.makeTempDir({ prefix: "net-bouncer-bench-allow-list-" });
try {
  const cases: [string, (i: number) => string, number, number][] = [
    ["100,000 IPv4 prefixes", ipv4Prefix, 64 << 20, 100_000],
    [
      "100,000 prefixes, half IPv6",
      (i) => i % 2 ? ipv6Prefix(i) : ipv4Prefix(i),
      64 << 20,
      100_000,
    ],
    ["16 MiB of IPv4 /32 (the cap)", (i) => `${ipv4(hash(i))}/32`, 16 << 20, Infinity],
  ];
  for (const [name, line, maxBytes, count] of cases) {
    const file = `${dir}/list.txt`;
    const { lines, bytes } = writeList(file, line, maxBytes, count);
    await measure(name, file, lines, bytes);
  }
} finally {
  Deno.removeSync(dir, { recursive: true });
}
