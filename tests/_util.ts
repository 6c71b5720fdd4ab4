/**
 * Test helpers: start the real program as a subprocess with the flags it ships with (taken from
 * deno.json's `compile` task, which the binaries are built with; the `start` task must equal it), wait on
 * events with deadlines, run commands, and make loopback clients (one at a time, or many with the
 * C load generator tests/testdata/knock.c).
 */
import net from "node:net";
import { fileURLToPath } from "node:url";
import { compileFlags } from "../scripts/compile_all.ts";

/** The project root (absolute path). */
export const ROOT: string = fileURLToPath(new URL("..", import.meta.url));
/** Absolute path to main.ts. */
export const MAIN: string = `${ROOT}main.ts`;
/** Default deadline for waiting on an event, in milliseconds. */
export const DEADLINE_MS = 10_000;
/**
 * The listeners the integration tests run against (`--listener`): the native one exists on
 * Linux only; the portable one everywhere.
 */
export const LISTENERS: readonly ("native" | "portable")[] = Deno.build.os === "linux"
  ? ["native", "portable"]
  : ["portable"];
/** Whether this run is under CI (a missing tool is a failure there, never a skip). */
export const IN_CI: boolean = Deno.env.get("CI") === "true";

/**
 * `run` and the flags the program ships with: the `compile` task's (one source of truth, read by
 * the benchmarks too), without its `--output` and entry point.
 */
export function productionRunArgs(): string[] {
  return ["run", ...compileFlags().flags];
}

/** The full command line that runs the program as production does: `[deno, ...flags, main.ts]`. */
export function programCommand(args: string[] = []): string[] {
  return [Deno.execPath(), ...productionRunArgs(), MAIN, ...args];
}

/**
 * A `deno task start` of this checkout run from another directory, as a user types it: the
 * command's arguments and its environment. `INIT_CWD` is left out: Deno keeps an inherited one,
 * so the outer `deno task test` would otherwise stand in for the caller's directory.
 */
export function startTask(
  args: string[],
): { args: string[]; env: Record<string, string>; clearEnv: true } {
  const env = Deno.env.toObject();
  delete env.INIT_CWD;
  const taskArgs = ["task", "--quiet", "--config", `${ROOT}deno.json`, "start", ...args];
  return { args: taskArgs, env, clearEnv: true };
}

/** The loopback addresses of both families, the clients most tests connect from. */
export const LOOPBACK_CLIENTS: readonly string[] = ["127.0.0.1", "::1"];

/**
 * A TCP port that was free a moment ago, for a server whose port must be known before it starts
 * (a config file for crowdsec, a command line that has no port 0). Prefer `-p 0` and
 * {@linkcode Program.port} for net-bouncer itself: the system picks its port, and nothing races.
 *
 * The probe binds port 0 the way net-bouncer binds by default, on the dual-stack wildcard `[::]`
 * (on a host without IPv6, on `0.0.0.0`): a wildcard bind conflicts with every socket on that port
 * and any local address, including TIME-WAIT sockets of clients bound to 127.0.0.x, which a probe
 * on 127.0.0.1 alone does not see. A race remains: the port is released when this returns, and
 * another socket may take it before the server binds it (the server then fails with "address
 * already in use"). Ports come from the ephemeral range, so that race needs a connect or bind of
 * another process to pick the same port in that gap.
 */
export function freePort(): number {
  let listener: Deno.Listener;
  try {
    listener = Deno.listen({ hostname: "::", port: 0 });
  } catch {
    listener = Deno.listen({ hostname: "0.0.0.0", port: 0 });
  }
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Resolves when `check` returns a truthy value; rejects with `what` after the deadline. */
export async function waitFor<T>(
  what: string,
  check: () => T | Promise<T>,
  { timeoutMs = DEADLINE_MS }: { timeoutMs?: number } = {},
): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  while (true) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > end) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    // Polling interval of a check, not synchronisation: the deadline above bounds it.
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** What `promise` resolves to, or a rejection naming `what` after `timeoutMs`. */
export async function withDeadline<T>(
  what: string,
  promise: Promise<T>,
  { timeoutMs = DEADLINE_MS }: { timeoutMs?: number } = {},
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Reads a file as text, or "" if it does not exist. */
export function readOrEmpty(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return "";
    throw error;
  }
}

/** The lines of `text` that match `pattern`. */
export function linesMatching(text: string, pattern: RegExp): string[] {
  return text.split("\n").filter((line) => pattern.test(line));
}

/** A running net-bouncer subprocess. */
export interface Program {
  /** The child process. */
  child: Deno.ChildProcess;
  /** The first port it listens on, from its Listening lines (0 when started with `listening: 0`). */
  port: number;
  /** Every port it listens on, in the order of its Listening lines. */
  ports: number[];
  /** Log file path as the test reads it (when started with one). */
  logFile: string;
  /** The log's text now: the log file's, or what was written to stderr when there is no file. */
  log(): string;
  /** Waits until the log holds at least `count` lines matching `pattern`; returns them. */
  waitForLines(pattern: RegExp, count?: number, timeoutMs?: number): Promise<string[]>;
  /** Sends a signal. */
  kill(signal?: Deno.Signal): void;
  /** Sends SIGTERM (unless already exited) and returns the exit code, stdout and stderr. */
  stop(): Promise<{ code: number; stdout: string; stderr: string }>;
}

/** Pattern of a connection line in the classic text format; captures the address and the port. */
export const CONNECTION_LINE =
  /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \[INFO\] Connection from (\S+) on port (\d+)$/;

/** The client addresses of the connection lines (text format) in `log`, in order. */
export function connectionAddresses(log: string): string[] {
  return log.split("\n").flatMap((line) => CONNECTION_LINE.exec(line)?.[1] ?? []);
}

/** A Listening line in either format; captures the port of a text line. */
const LISTENING_LINE = /\[INFO\] Listening on port (\d+) |"event":"listening"/;

/** The distinct ports of the Listening lines in `log`, in order. */
function listeningPorts(log: string): number[] {
  const ports = linesMatching(log, LISTENING_LINE).map((line) =>
    line.startsWith("{") ? Number(JSON.parse(line).port) : Number(LISTENING_LINE.exec(line)![1])
  );
  return [...new Set(ports)];
}

/**
 * Starts the program with `args` (add `-l` yourself or pass `logFile`, which adds `-l FILE`) and
 * waits until `listening` Listening lines are in its log (default 1; one per listener, e.g. 2 for
 * `-b A -b B`), in the log file or, without one, on stderr. Give `-p 0` to let the system pick the
 * port and read it from {@linkcode Program.port}. Give `listening: 0` to not wait.
 */
export async function startProgram(
  args: string[],
  options: {
    logFile?: string;
    listening?: number;
    env?: Record<string, string>;
    wrapper?: string[];
    /** Where the test reads the log, if not at `logFile` (e.g. inside a mount namespace). */
    readPath?: (pid: number) => string;
  } = {},
): Promise<Program> {
  const logFile = options.logFile ?? "";
  const full = logFile ? [...args, "-l", logFile] : args;
  const [cmd, ...rest] = [...(options.wrapper ?? []), ...programCommand(full)];
  const child = new Deno.Command(cmd, {
    args: rest,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: options.env,
  }).spawn();
  const stdout = new Response(child.stdout).text();
  // stderr is read as it comes: without a log file it is the log.
  let stderrText = "";
  const stderr = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      stderrText += chunk;
    }
    return stderrText;
  })();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const readPath = options.readPath?.(child.pid) ?? logFile;
  const log = () => readPath ? readOrEmpty(readPath) : stderrText;
  const where = readPath || "stderr";
  const program: Program = {
    child,
    port: 0,
    ports: [],
    logFile: readPath,
    log,
    waitForLines: (pattern, count = 1, timeoutMs = DEADLINE_MS) =>
      waitFor(`${count} line(s) matching ${pattern} in ${where}`, () => {
        if (exited) throw new Error(`net-bouncer exited early; log:\n${log()}`);
        const lines = linesMatching(log(), pattern);
        return lines.length >= count ? lines : null;
      }, { timeoutMs }),
    kill: (signal = "SIGTERM") => {
      if (!exited) child.kill(signal);
    },
    stop: async () => {
      if (!exited) child.kill("SIGTERM");
      const { code } = await status;
      return { code, stdout: await stdout, stderr: await stderr };
    },
  };
  const expected = options.listening ?? 1;
  if (expected > 0) {
    try {
      await program.waitForLines(LISTENING_LINE, expected);
    } catch (error) {
      const result = await program.stop();
      throw new Error(`${(error as Error).message}\nstderr: ${result.stderr}`);
    }
    program.ports = listeningPorts(log());
    program.port = program.ports[0];
  }
  return program;
}

/** What a command that ran to completion gave. */
export interface RunResult {
  /** Exit code (128 + N when killed by signal N). */
  code: number;
  /** The signal that ended it (e.g. SIGTERM at `timeoutMs`), or null. */
  signal: Deno.Signal | null;
  /** Its standard output, decoded. */
  stdout: string;
  /** Its standard error, decoded. */
  stderr: string;
}

/**
 * Runs `cmd` with `args` to completion and decodes its output. `stdin` is written to its standard
 * input (none otherwise); after `timeoutMs` it is sent SIGTERM.
 */
export async function run(
  cmd: string,
  args: string[],
  options: {
    cwd?: string;
    env?: Record<string, string>;
    /** Start from `env` alone, not this process's environment. */
    clearEnv?: boolean;
    stdin?: string;
    timeoutMs?: number;
  } = {},
): Promise<RunResult> {
  const child = new Deno.Command(cmd, {
    args,
    cwd: options.cwd,
    env: options.env,
    clearEnv: options.clearEnv,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    signal: options.timeoutMs === undefined ? undefined : AbortSignal.timeout(options.timeoutMs),
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const out = await child.output();
  const decoder = new TextDecoder();
  return {
    code: out.code,
    signal: out.signal,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
}

/**
 * A `sh(script)` over an `exec` that runs a command somewhere (a container, a namespace): resolves
 * to the script's standard output, throws with its output unless it exits 0.
 */
export function shellRunner(
  exec: (args: string[], options?: { timeoutMs?: number }) => Promise<RunResult>,
): (script: string, options?: { timeoutMs?: number }) => Promise<string> {
  return async (script, options) => {
    const result = await exec(["sh", "-c", script], options);
    if (result.code !== 0) {
      throw new Error(
        `Script failed (exit ${result.code}): ${script}\n${result.stdout}${result.stderr}`,
      );
    }
    return result.stdout;
  };
}

/** Runs the program to completion (for bad input); returns code, stdout and stderr. */
export async function runProgram(
  args: string[],
  options: { wrapper?: string[] } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const [cmd, ...rest] = [...(options.wrapper ?? []), ...programCommand(args)];
  const { code, stdout, stderr } = await run(cmd, rest);
  return { code, stdout, stderr };
}

/** Connects to host:port, reads until the server closes, returns the number of bytes received. */
export async function knock(hostname: string, port: number): Promise<number> {
  return await readUntilClosed(await Deno.connect({ hostname, port }));
}

/** Reads from `conn` until the server closes it, closes it; returns the bytes received. */
export async function readUntilClosed(conn: Deno.Conn): Promise<number> {
  let received = 0;
  const buffer = new Uint8Array(1024);
  try {
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) break;
      received += n;
    }
  } catch (error) {
    // A reset is also "closed at once" (the server closed without reading).
    if (!(error instanceof Deno.errors.ConnectionReset)) throw error;
  } finally {
    conn.close();
  }
  return received;
}

/** One connection made by {@linkcode knockFrom}. */
export interface Knock {
  /** Bytes received before the server closed the connection. */
  bytes: number;
  /** The client's own address and port, as the server's connection line names them. */
  address: string;
  port: number;
}

/**
 * Connects from the loopback address `source` (bound before connecting: 127.0.0.2 is logged as
 * 127.0.0.2, where a connection *to* 127.0.0.2 comes from 127.0.0.1) to the loopback address of
 * its family on `port`, reads until the server closes it, and says what it got.
 */
export function knockFrom(source: string, port: number): Promise<Knock> {
  const host = net.isIPv6(source) ? "::1" : "127.0.0.1";
  return new Promise((resolve, reject) => {
    let bytes = 0;
    let local = { address: "", port: 0 };
    const socket = net.connect({ host, port, localAddress: source });
    socket.on("connect", () => {
      local = { address: socket.localAddress ?? "", port: socket.localPort ?? 0 };
    });
    socket.on("data", (chunk: Uint8Array) => bytes += chunk.length);
    socket.on("error", (error: NodeJS.ErrnoException) => {
      // A reset after the handshake is also the server closing without reading.
      if (error.code !== "ECONNRESET" || local.port === 0) reject(error);
    });
    socket.on("close", () => resolve({ bytes, ...local }));
  });
}

/** What tests/testdata/knock.c reports. */
export interface KnockSummary {
  /** Connections that completed (in `wait` mode: that the server closed). */
  connections: number;
  /** Connections refused, timed out or unfinished at the time limit. */
  failed: number;
  /** Bytes received from the server. */
  bytes: number;
  /** How long the run took, in seconds. */
  seconds: number;
}

/** The load generator's source, carried by the repository. */
const KNOCK_SOURCE = `${ROOT}tests/testdata/knock.c`;
/** The binary built from it, once per test process (`deno test` runs each file in one process). */
let knockBuild: Promise<string> | undefined;

/**
 * Compiles tests/testdata/knock.c with `cc -O2` into a temporary directory, once per test run
 * (later calls return the same path); the directory is removed when the process unloads.
 */
export function buildKnock(): Promise<string> {
  knockBuild ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "net-bouncer-knock-" });
    globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
    const binary = `${dir}/knock`;
    const result = await run("cc", ["-O2", "-o", binary, KNOCK_SOURCE]);
    if (result.code !== 0) throw new Error(`Cannot compile ${KNOCK_SOURCE}:\n${result.stderr}`);
    return binary;
  })();
  return knockBuild;
}

/**
 * Runs the load generator against `host` (default 127.0.0.1) on `port`: `total` connections,
 * `concurrency` in flight (default 64), from 127.0.0.1..127.0.0.`sources` (IPv4 only), each reset
 * by the client right after the handshake with `reset` (SO_LINGER 0, as nmap -sT does) or else
 * held until the server closes it; stops after `seconds` (default 60). Needs `cc`.
 */
export async function runKnock(
  port: number,
  { total, concurrency = 64, sources = 1, host = "127.0.0.1", reset = false, seconds = 60 }: {
    total: number;
    concurrency?: number;
    sources?: number;
    host?: string;
    reset?: boolean;
    seconds?: number;
  },
): Promise<KnockSummary> {
  const args = [
    ...["-n", String(total), "-c", String(concurrency), "-s", String(sources)],
    ...["-m", reset ? "reset" : "wait", "-t", String(seconds), host, String(port)],
  ];
  const result = await run(await buildKnock(), args);
  const summary = /^connections=(\d+) failed=(\d+) bytes=(\d+) seconds=([\d.]+)$/m.exec(
    result.stdout,
  );
  if (!summary) {
    throw new Error(`knock ${args.join(" ")} exited ${result.code}: ${result.stderr}`);
  }
  const [connections, failed, bytes, elapsed] = summary.slice(1).map(Number);
  return { connections, failed, bytes, seconds: elapsed };
}

/** Whether an executable is on PATH. */
export function hasCommand(name: string): boolean {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      if (Deno.statSync(`${dir}/${name}`).isFile) return true;
    } catch {
      // Not in this directory.
    }
  }
  return false;
}

/**
 * `ignore` option for a Deno.test that needs external tools: ignored with a reason on a
 * developer's machine, never under CI (where the test then fails on the missing tool).
 */
export function needsTools(...tools: string[]): boolean {
  const missing = tools.filter((tool) => !hasCommand(tool));
  if (missing.length === 0) return false;
  if (IN_CI) return false;
  console.warn(`ignored: missing ${missing.join(", ")}`);
  return true;
}

/** Runs `fn` with a new temporary directory, removed afterwards. */
export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "net-bouncer-test-" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Whether `path` is a regular file now. */
export function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/**
 * Runs `fn` with the wall clock (`Date.now`) and the monotonic clock (`performance.now`)
 * replaced, and restores both afterwards: for code that reads the clocks itself.
 */
export function withFakeClocks<T>(
  clocks: { wall: () => number; monotonic: () => number },
  fn: () => T,
): T {
  const dateNow = Date.now;
  const own = Object.getOwnPropertyDescriptor(performance, "now");
  Date.now = clocks.wall;
  performance.now = clocks.monotonic;
  try {
    return fn();
  } finally {
    Date.now = dateNow;
    if (own === undefined) delete (performance as { now?: unknown }).now;
    else Object.defineProperty(performance, "now", own);
  }
}

/** Runs `fn` with the process's local time zone set to `zone` (the daemon writes local time). */
export function withTimeZone(zone: string, fn: () => void): void {
  const before = Deno.env.get("TZ");
  Deno.env.set("TZ", zone);
  try {
    fn();
  } finally {
    if (before === undefined) Deno.env.delete("TZ");
    else Deno.env.set("TZ", before);
  }
}

/** The 16 bytes of an IPv6 address written in full or with "::" (no dotted IPv4 tail). */
export function ipv6Bytes(text: string): Uint8Array {
  const [head, tail] = text.includes("::") ? text.split("::") : [text, null];
  const groups = (part: string) => part === "" ? [] : part.split(":").map((g) => parseInt(g, 16));
  const first = groups(head);
  const last = tail === null ? [] : groups(tail);
  const all = [...first, ...Array(8 - first.length - last.length).fill(0), ...last];
  return Uint8Array.from(all.flatMap((group) => [group >> 8, group & 0xff]));
}
