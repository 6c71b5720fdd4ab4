/**
 * Test harness: a sandbox of the test's own, a new network namespace (only its loopback, up, with
 * the documentation addresses the test gives it: 2001:db8::/32, 192.0.2.0/24) and a new mount
 * namespace (private: bind mounts made in it, such as a test /etc/hosts, stay in it). A process
 * that sleeps holds both; commands enter them with nsenter. Firewall rules made inside (nftables,
 * iptables) are the sandbox's own and vanish with it.
 */
import { DEADLINE_MS, run, type RunResult, shellRunner } from "./_util.ts";

/** How long the sandbox lives at most (its holder sleeps this long), in seconds. */
export const SANDBOX_LIFETIME_S = 900;
/** How long one client connection may take before it counts as failed, in seconds. */
export const CONNECT_TIMEOUT_S = 2;

/** A running sandbox. */
export interface Sandbox {
  /** The holder process (its namespaces are the sandbox's). */
  readonly pid: number;
  /** `args` prefixed so that they run inside (network and mount namespaces). */
  wrap(args: string[]): string[];
  /** Runs a command inside to completion. */
  exec(args: string[], options?: { timeoutMs?: number; stdin?: string }): Promise<RunResult>;
  /** Runs a shell script inside; throws with its output unless it exits 0. */
  sh(script: string, options?: { timeoutMs?: number }): Promise<string>;
  /** Starts a long-running command inside (stdout and stderr piped, stdin null). */
  spawn(args: string[], options?: { env?: Record<string, string> }): Deno.ChildProcess;
  /**
   * Connects from `source` (an address of the sandbox) to `destination` on `port` with curl and
   * waits until the server closes; true when the connection was made, false when it was refused
   * or timed out (a firewall's reject or drop).
   */
  connect(source: string, port: number, destination?: string): Promise<boolean>;
  /** Kills the holder; the namespaces go with the last process inside. */
  stop(): void;
}

/** Runs a command to completion somewhere (a sandbox's or a container's exec). */
export type Exec = (
  args: string[],
  options?: { timeoutMs?: number; stdin?: string },
) => Promise<RunResult>;

/**
 * Connects with curl, run by `exec`, from `source` to `destination` (default: the loopback
 * address of the source's family) on `port`, and waits until the server closes; true when the
 * connection was made, false when it was refused or timed out (a firewall's reject or drop).
 */
export async function connectFrom(
  exec: Exec,
  source: string,
  port: number,
  destination?: string,
): Promise<boolean> {
  const target = destination ?? (isIPv6(source) ? "::1" : "127.0.0.1");
  const host = isIPv6(target) ? `[${target}]` : target;
  // telnet:// opens a plain TCP connection; stdin at EOF, curl ends when the server closes.
  const result = await exec([
    "curl",
    "-sS",
    "--interface",
    source,
    "--connect-timeout",
    String(CONNECT_TIMEOUT_S),
    "-m",
    String(CONNECT_TIMEOUT_S * 2),
    `telnet://${host}:${port}`,
  ], { stdin: "" });
  // 7: connection refused (a reject rule); 28: timed out (a drop rule).
  if (result.code === 0) return true;
  if (result.code === 7 || result.code === 28) return false;
  throw new Error(`curl from ${source} to ${host}:${port} exited ${result.code}: ${result.stderr}`);
}

/** Whether `address` is IPv6 (written with colons). */
function isIPv6(address: string): boolean {
  return address.includes(":");
}

/**
 * Creates the sandbox: loopback up with `addresses` on it (each as a host address, /128 or /32),
 * then `binds` (host path → path inside) bind-mounted. Resolves once all of that is in place.
 */
export async function startSandbox(
  { addresses = [], binds = [] }: { addresses?: string[]; binds?: [string, string][] } = {},
): Promise<Sandbox> {
  const quote = (word: string) => `'${word.replaceAll("'", "'\\''")}'`;
  const setup = [
    "set -e",
    "ip link set lo up",
    ...addresses.map((address) =>
      isIPv6(address)
        ? `ip -6 addr add ${address}/128 dev lo nodad`
        : `ip addr add ${address}/32 dev lo`
    ),
    ...binds.map(([source, target]) => `mount --bind ${quote(source)} ${quote(target)}`),
    "echo ready",
    `exec sleep ${SANDBOX_LIFETIME_S}`,
  ].join("\n");
  // unshare execs sh in place (no --fork), and sh execs sleep: one pid holds the namespaces.
  const holder = new Deno.Command("unshare", {
    args: ["--net", "--mount", "--propagation", "private", "--", "sh", "-c", setup],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const pid = holder.pid;
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    globalThis.removeEventListener("unload", stop);
    try {
      holder.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  };
  globalThis.addEventListener("unload", stop);
  const stderr = new Response(holder.stderr).text();
  const reader = holder.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  const timer = setTimeout(stop, DEADLINE_MS);
  try {
    while (!out.includes("ready\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`The sandbox did not start: ${await stderr}`);
      out += value;
    }
  } catch (error) {
    stop();
    throw error;
  } finally {
    clearTimeout(timer);
  }
  // Keep draining stdout (nothing more is written) so the holder never blocks on it.
  reader.read().catch(() => {});

  const wrap = (args: string[]) => ["nsenter", "-t", String(pid), "-n", "-m", "--", ...args];
  const exec: Sandbox["exec"] = (args, { timeoutMs = DEADLINE_MS * 3, stdin } = {}) => {
    const [cmd, ...rest] = wrap(args);
    return run(cmd, rest, { timeoutMs, stdin });
  };
  return {
    pid,
    wrap,
    exec,
    sh: shellRunner(exec),
    spawn: (args, { env } = {}) => {
      const [cmd, ...rest] = wrap(args);
      return new Deno.Command(cmd, {
        args: rest,
        env,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    },
    connect: (source, port, destination) => connectFrom(exec, source, port, destination),
    stop,
  };
}
