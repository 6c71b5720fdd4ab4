/**
 * Test helpers: start the real program as a subprocess with the production permission flags
 * (taken from deno.json's `start` task, the same definition the compile task uses), wait on
 * events with deadlines, and make loopback clients.
 */
import { fileURLToPath } from "node:url";

/** The project root (absolute path). */
export const ROOT: string = fileURLToPath(new URL("..", import.meta.url));
/** Absolute path to main.ts. */
export const MAIN: string = `${ROOT}main.ts`;
/** Default deadline for waiting on an event, in milliseconds. */
export const DEADLINE_MS = 10_000;
/** Whether this run is under CI (a missing tool is a failure there, never a skip). */
export const IN_CI: boolean = Deno.env.get("CI") === "true";

/** The `deno run` arguments that the `start` task uses, without `main.ts` (one source of truth). */
export function productionRunArgs(): string[] {
  const config = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`));
  const words = String(config.tasks.start).trim().split(/\s+/);
  // "deno run <flags...> main.ts": keep the flags.
  const index = words.indexOf("main.ts");
  return words.slice(1, index);
}

/** The full command line that runs the program as production does: `[deno, ...flags, main.ts]`. */
export function programCommand(args: string[] = []): string[] {
  return [Deno.execPath(), ...productionRunArgs(), MAIN, ...args];
}

/** A free TCP port on loopback, found by binding port 0 (the port is released again). */
export function freePort(hostname = "127.0.0.1"): number {
  const listener = Deno.listen({ hostname, port: 0 });
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
  /** Log file path as the test reads it (when started with one). */
  logFile: string;
  /** The log file's text now. */
  log(): string;
  /** Waits until the log holds at least `count` lines matching `pattern`; returns them. */
  waitForLines(pattern: RegExp, count?: number, timeoutMs?: number): Promise<string[]>;
  /** Sends a signal. */
  kill(signal?: Deno.Signal): void;
  /** Sends SIGTERM (unless already exited) and returns the exit code, stdout and stderr. */
  stop(): Promise<{ code: number; stdout: string; stderr: string }>;
}

/** Pattern of a connection line in the classic text format. */
export const CONNECTION_LINE =
  /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \[INFO\] Connection from (\S+) on port (\d+)$/;

/**
 * Starts the program with `args` (add `-l` yourself or pass `logFile`, which adds `-l FILE`) and
 * waits until `listening` lines appear (one per listener; default: one per `-p` value that is a
 * single port). Give `listening: 0` to not wait.
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
  const stderr = new Response(child.stderr).text();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const readPath = options.readPath?.(child.pid) ?? logFile;
  const program: Program = {
    child,
    logFile: readPath,
    log: () => readOrEmpty(readPath),
    waitForLines: (pattern, count = 1, timeoutMs = DEADLINE_MS) =>
      waitFor(`${count} line(s) matching ${pattern} in ${readPath}`, () => {
        if (exited) throw new Error(`net-bouncer exited early; log:\n${readOrEmpty(readPath)}`);
        const lines = linesMatching(readOrEmpty(readPath), pattern);
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
  if (expected > 0 && logFile) {
    try {
      await program.waitForLines(/\[INFO\] Listening on|"event":"listening"/, expected);
    } catch (error) {
      const result = await program.stop();
      throw new Error(`${(error as Error).message}\nstderr: ${result.stderr}`);
    }
  }
  return program;
}

/** Runs the program to completion (for bad input); returns code, stdout and stderr. */
export async function runProgram(
  args: string[],
  options: { wrapper?: string[] } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const [cmd, ...rest] = [...(options.wrapper ?? []), ...programCommand(args)];
  const out = await new Deno.Command(cmd, { args: rest, stdin: "null" }).output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** Connects to host:port, reads until the server closes, returns the number of bytes received. */
export async function knock(hostname: string, port: number): Promise<number> {
  const conn = await Deno.connect({ hostname, port });
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
