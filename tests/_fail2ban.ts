/**
 * Test harness: a real fail2ban-server from a config of the test's own, built as an admin's: the
 * Debian package's /etc/fail2ban (jail.conf, paths, action.d, filter.d; not its jail.d, whose
 * sshd jail would need an sshd log), the contrib/fail2ban files on top, and the test's settings in
 * jail.d/net-bouncer.local (read after the shipped .conf, as an admin overrides it). The server
 * runs in a sandbox (tests/_netns.ts), so its firewall actions change the sandbox's firewall only.
 */
import { DEADLINE_MS, linesMatching, readOrEmpty, ROOT, run, waitFor } from "./_util.ts";
import type { Sandbox } from "./_netns.ts";

/** The Debian package's fail2ban configuration. */
export const SYSTEM_CONF = "/etc/fail2ban";
/** The shipped files: path under contrib/fail2ban, the same under the config directory. */
export const CONTRIB_FILES: readonly string[] = [
  "filter.d/net-bouncer.conf",
  "jail.d/net-bouncer.conf",
  "action.d/net-bouncer-nftables-subnet.conf",
  "action.d/net-bouncer-iptables-subnet.conf",
  "action.d/net-bouncer-webhook.conf",
];
/**
 * An action of the tests' own, action.d/record.conf: appends each banned address to `file`. Listed
 * after a jail's shipped actions, it is a barrier: fail2ban runs a ban's actions in order, so once
 * an address is in the file, the actions before it have run for it.
 */
const RECORD_ACTION = [
  "[Definition]",
  "actionban = printf '%%s\\n' '<ip>' >> '<file>'",
  "actionunban =",
  "[Init]",
  "file =",
  "",
].join("\n");
/** How long fail2ban-server may take to start its jails. */
const START_TIMEOUT_MS = DEADLINE_MS * 3;

/** A running fail2ban-server. */
export interface Fail2ban {
  /** Its config directory. */
  conf: string;
  /** Its log's text now. */
  log(): string;
  /** Waits until its log holds `count` lines matching `pattern`; returns them. */
  waitForLog(pattern: RegExp, count?: number, timeoutMs?: number): Promise<string[]>;
  /** Runs fail2ban-client against it; returns stdout, throws unless it exits 0. */
  client(...args: string[]): Promise<string>;
  /** Stops it (fail2ban-client stop, then SIGKILL after a deadline). */
  stop(): Promise<void>;
}

/**
 * The admin's jail.local of a test: the plain `net-bouncer` jail off, each of `jails` on and
 * reading `logFile` (pyinotify, what backend = auto picks with python3-pyinotify), with its lines.
 */
export function jailLocal(logFile: string, jails: Record<string, string[]>): string {
  const sections = Object.entries(jails).map((
    [jail, lines],
  ) => [`[${jail}]`, "enabled = true", `logpath = ${logFile}`, "backend = pyinotify", ...lines]);
  const plain = "net-bouncer" in jails ? [] : [["[net-bouncer]", "enabled = false"]];
  return [...plain, ...sections].flat().join("\n") + "\n";
}

/**
 * Writes the config into `dir`/conf: the system's, the contrib files, the test action record.conf,
 * `local` as jail.d/net-bouncer.local; fail2ban's own log, socket, pid file and database under `dir`.
 */
export function writeFail2banConf(dir: string, local: string): string {
  const conf = `${dir}/conf`;
  Deno.mkdirSync(`${conf}/jail.d`, { recursive: true });
  for (const sub of ["action.d", "filter.d"]) {
    Deno.mkdirSync(`${conf}/${sub}`, { recursive: true });
    for (const entry of Deno.readDirSync(`${SYSTEM_CONF}/${sub}`)) {
      if (entry.isFile) {
        Deno.copyFileSync(`${SYSTEM_CONF}/${sub}/${entry.name}`, `${conf}/${sub}/${entry.name}`);
      }
    }
  }
  for (const entry of Deno.readDirSync(SYSTEM_CONF)) {
    if (entry.isFile && entry.name.endsWith(".conf")) {
      Deno.copyFileSync(`${SYSTEM_CONF}/${entry.name}`, `${conf}/${entry.name}`);
    }
  }
  for (const file of CONTRIB_FILES) {
    Deno.copyFileSync(`${ROOT}contrib/fail2ban/${file}`, `${conf}/${file}`);
  }
  Deno.writeTextFileSync(
    `${conf}/fail2ban.local`,
    [
      "[Definition]",
      "loglevel = INFO",
      `logtarget = ${dir}/fail2ban.log`,
      `socket = ${dir}/fail2ban.sock`,
      `pidfile = ${dir}/fail2ban.pid`,
      `dbfile = ${dir}/fail2ban.sqlite3`,
      "",
    ].join("\n"),
  );
  Deno.writeTextFileSync(`${conf}/action.d/record.conf`, RECORD_ACTION);
  Deno.writeTextFileSync(`${conf}/jail.d/net-bouncer.local`, local);
  return conf;
}

/**
 * Starts fail2ban-server on `conf` (in `sandbox`, else in this machine's network) and waits until
 * each of `jails` has started.
 */
export async function startFail2ban(
  conf: string,
  jails: string[],
  { sandbox }: { sandbox?: Sandbox } = {},
): Promise<Fail2ban> {
  const dir = conf.replace(/\/conf$/, "");
  const socket = `${dir}/fail2ban.sock`;
  const spawn = sandbox?.spawn ?? ((args: string[]) =>
    new Deno.Command(args[0], {
      args: args.slice(1),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn());
  const child = spawn([
    "fail2ban-server",
    "-f",
    "-x",
    "-c",
    conf,
    "-s",
    socket,
    "-p",
    `${dir}/fail2ban.pid`,
  ]);
  const output = Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]);
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const log = () => readOrEmpty(`${dir}/fail2ban.log`);
  const waitForLog: Fail2ban["waitForLog"] = (pattern, count = 1, timeoutMs = DEADLINE_MS) =>
    waitFor(`${count} line(s) matching ${pattern} in fail2ban's log`, async () => {
      if (exited) throw new Error(`fail2ban-server exited:\n${log()}\n${(await output).join("")}`);
      const lines = linesMatching(log(), pattern);
      return lines.length >= count ? lines : null;
    }, { timeoutMs });
  const fail2ban: Fail2ban = {
    conf,
    log,
    waitForLog,
    client: async (...args) => {
      const result = await run("fail2ban-client", ["-c", conf, "-s", socket, ...args], {
        timeoutMs: DEADLINE_MS,
      });
      if (result.code !== 0) {
        throw new Error(
          `fail2ban-client ${
            args.join(" ")
          }: exit ${result.code}\n${result.stdout}${result.stderr}`,
        );
      }
      return result.stdout;
    },
    stop: async () => {
      if (exited) return;
      await run("fail2ban-client", ["-c", conf, "-s", socket, "stop"], { timeoutMs: DEADLINE_MS });
      const timer = setTimeout(() => {
        if (!exited) child.kill("SIGKILL");
      }, DEADLINE_MS);
      await status;
      clearTimeout(timer);
      await output;
    },
  };
  try {
    for (const jail of jails) {
      await waitForLog(new RegExp(`Jail '${jail}' started`), 1, START_TIMEOUT_MS);
    }
  } catch (error) {
    if (!exited) child.kill("SIGKILL");
    await status;
    throw error;
  }
  return fail2ban;
}

/** A classic log line's own time (local time, ms), in ms since the epoch. */
export function lineTime(line: string): number {
  const match = line.match(/^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d\.\d{3}) /);
  if (!match) throw new Error(`No time in "${line}"`);
  // Without an offset, Date reads it as local time, as net-bouncer wrote it.
  return new Date(`${match[1]}T${match[2]}`).getTime();
}

/** The addresses the record action wrote to `file` so far, in order. */
export function recorded(file: string): string[] {
  return readOrEmpty(file).split("\n").filter(Boolean);
}

/**
 * The length in seconds of `ip`'s ban in the output of `fail2ban-client get JAIL banip
 * --with-time` ("2001:db8:1:2::a \t2026-12-02 16:10:00 + 2 = 2026-12-02 16:10:02").
 */
export function banSeconds(output: string, ip: string): number {
  const line = output.split("\n").find((l) => l.startsWith(`${ip} `) || l.startsWith(`${ip}\t`));
  const match = line?.match(/ \+ (\d+) = /);
  if (!match) throw new Error(`No ban of "${ip}" in: ${output}`);
  return Number(match[1]);
}
