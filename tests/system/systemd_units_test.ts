/**
 * The systemd units in contrib/systemd, checked with the real systemd-analyze (offline: no
 * systemd as PID 1 needed): `verify` accepts them without a warning, `security` scores them at
 * 1.5 or lower, and their settings agree with the fail2ban jail and the logrotate config.
 */
import assert from "node:assert/strict";
import {
  CONNECTION_LINE,
  freePort,
  isFile,
  knock,
  needsTools,
  readOrEmpty,
  ROOT,
  run,
  runKnock,
  startProgram,
  waitFor,
  withTempDir,
} from "../_util.ts";

/** The services that bind their own ports (with one capability), relative to the project root. */
const PORT_UNITS = [
  "contrib/systemd/net-bouncer.service",
  "contrib/systemd/net-bouncer-journal.service",
];
/** The socket-activated pair: systemd binds the ports and passes them to the service. */
const ACTIVATED_SERVICE = "contrib/systemd/net-bouncer-activated.service";
const ACTIVATED_SOCKET = "contrib/systemd/net-bouncer-activated.socket";
/** Every service under test. */
const UNITS = [...PORT_UNITS, ACTIVATED_SERVICE];
/** Where the units expect the compiled binary. */
const BINARY = "/usr/local/bin/net-bouncer";
/** Highest acceptable overall exposure level (systemd-analyze's 0.0 = safe .. 10.0 = unsafe). */
const MAX_EXPOSURE = 1.5;
/** The same for the socket-activated service: no capability, network or internet socket. */
const MAX_EXPOSURE_ACTIVATED = 0.5;
/** The log file the file variant writes, the fail2ban jail reads and logrotate rotates. */
const LOG_FILE = "/var/log/net-bouncer/net-bouncer.log";

/**
 * System calls the program makes under `deno run` as root that the unit's filter denies, and
 * why that is harmless (SystemCallErrorNumber=EPERM turns a denied call into an error, not a
 * kill). Every other call must pass the filter.
 */
const DENIED_BUT_HARMLESS: Record<string, string> = {
  // SQLite (Deno's code cache under DENO_DIR, used by `deno run`) calls fchown only when
  // geteuid() == 0 and ignores its result; the unit runs a non-root DynamicUser.
  fchown: "SQLite's root-only fchown of its cache files",
};

/**
 * Copies a unit into `dir` with ExecStart's binary replaced by an executable stub there:
 * `systemd-analyze verify` checks that the binary exists, and the compiled net-bouncer is not
 * installed on a test machine. Nothing else in the unit changes.
 */
function unitWithStubBinary(unit: string, dir: string): string {
  const stub = `${dir}/net-bouncer`;
  Deno.writeTextFileSync(stub, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
  const text = Deno.readTextFileSync(`${ROOT}${unit}`);
  assert.ok(text.includes(`ExecStart=${BINARY} `), `${unit}: ExecStart runs ${BINARY}`);
  const path = `${dir}/${unit.split("/").pop()}`;
  Deno.writeTextFileSync(path, text.replaceAll(BINARY, stub));
  // The socket-activated service requires its socket: verify looks for it beside the service.
  Deno.copyFileSync(`${ROOT}${ACTIVATED_SOCKET}`, `${dir}/${ACTIVATED_SOCKET.split("/").pop()}`);
  return path;
}

/** The `Key=value` settings of a unit file (comments dropped), in order. */
function settings(unit: string): [string, string][] {
  return Deno.readTextFileSync(`${ROOT}${unit}`).split("\n")
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith("#") && !line.startsWith("[") && line.includes("="))
    .map((line) => {
      const at = line.indexOf("=");
      return [line.slice(0, at), line.slice(at + 1)];
    });
}

/** The overall exposure level printed by `systemd-analyze security`. */
function exposureLevel(stdout: string): number {
  const match = stdout.match(/Overall exposure level for \S+: (\d+\.\d+)/);
  assert.ok(match, `no overall exposure level in:\n${stdout}`);
  return Number(match[1]);
}

for (const unit of UNITS) {
  Deno.test({
    name: `systemd: ${unit} passes systemd-analyze verify without any message`,
    ignore: needsTools("systemd-analyze"),
    async fn() {
      await withTempDir(async (dir) => {
        const path = unitWithStubBinary(unit, dir);
        const result = await run("systemd-analyze", ["verify", "--man=no", path]);
        assert.equal(result.stderr, "", `verify printed:\n${result.stderr}`);
        assert.equal(result.code, 0);
      });
    },
  });

  const maxExposure = unit === ACTIVATED_SERVICE ? MAX_EXPOSURE_ACTIVATED : MAX_EXPOSURE;
  Deno.test({
    name: `systemd: ${unit} has an exposure level of at most ${maxExposure}`,
    ignore: needsTools("systemd-analyze"),
    async fn() {
      await withTempDir(async (dir) => {
        const path = unitWithStubBinary(unit, dir);
        const result = await run("systemd-analyze", [
          "security",
          "--no-pager",
          "--offline=true",
          // --threshold counts tenths of the printed level (threshold 15 = level 1.5).
          `--threshold=${Math.round(maxExposure * 10)}`,
          path,
        ]);
        const level = exposureLevel(result.stdout);
        console.log(`${unit}: overall exposure level ${level}`);
        assert.ok(level <= maxExposure, `exposure ${level} > ${maxExposure}:\n${result.stdout}`);
        // The exit code says the same (the threshold's unit is checked by the next test).
        assert.equal(result.code, 0, result.stderr);
      });
    },
  });
}

Deno.test({
  name: `systemd: ${ACTIVATED_SOCKET} passes systemd-analyze verify without any message`,
  ignore: needsTools("systemd-analyze"),
  async fn() {
    await withTempDir(async (dir) => {
      // Its service beside it (verify loads it), with the stub binary.
      unitWithStubBinary(ACTIVATED_SERVICE, dir);
      const path = `${dir}/${ACTIVATED_SOCKET.split("/").pop()}`;
      const result = await run("systemd-analyze", ["verify", "--man=no", path]);
      assert.equal(result.stderr, "", `verify printed:\n${result.stderr}`);
      assert.equal(result.code, 0);
    });
  },
});

Deno.test({
  name: "systemd: --threshold counts tenths of the exposure level and fails above it",
  ignore: needsTools("systemd-analyze"),
  async fn() {
    // Guards the test above: a threshold just under the real score must fail, so a passing
    // exit code there means something.
    await withTempDir(async (dir) => {
      const path = unitWithStubBinary(UNITS[0], dir);
      const security = (threshold: number) =>
        run("systemd-analyze", [
          "security",
          "--no-pager",
          "--offline=true",
          `--threshold=${threshold}`,
          path,
        ]);
      const level = exposureLevel((await security(100)).stdout);
      const tenths = Math.round(level * 10);
      assert.equal((await security(tenths)).code, 0, `threshold ${tenths} passes ${level}`);
      assert.notEqual((await security(tenths - 1)).code, 0, `threshold ${tenths - 1} fails`);
    });
  },
});

Deno.test({
  name: "systemd: verify reports a broken unit on stderr (the empty-stderr check can fail)",
  ignore: needsTools("systemd-analyze"),
  async fn() {
    await withTempDir(async (dir) => {
      const path = unitWithStubBinary(UNITS[0], dir);
      const text = Deno.readTextFileSync(path);
      Deno.writeTextFileSync(path, text.replace("ProtectHome=yes", "ProtectHomeTypo=yes"));
      const result = await run("systemd-analyze", ["verify", "--man=no", path]);
      assert.match(result.stderr, /ProtectHomeTypo/);
    });
  },
});

/** The values of `key` in a unit's settings, in order. */
function values(unit: string, key: string): string[] {
  return settings(unit).filter(([k]) => k === key).map(([, v]) => v);
}

Deno.test("systemd: the units keep the settings the daemon depends on", () => {
  for (const unit of UNITS) {
    const get = (key: string) => values(unit, key);
    assert.deepEqual(get("DynamicUser"), ["yes"], unit);
    assert.deepEqual(get("Restart"), ["on-failure"], unit);
    // READY=1 once the ports are served (a reload before it is queued, not fatal), and the
    // watchdog pings from the event loop; sent by the main process only.
    assert.deepEqual(get("Type"), ["notify"], unit);
    assert.deepEqual(get("NotifyAccess"), ["main"], unit);
    assert.equal(get("WatchdogSec").length, 1, unit);
    const [execStart] = get("ExecStart");
    assert.ok(execStart.startsWith(`${BINARY} $NET_BOUNCER_ARGS`), `${unit}: ${execStart}`);
  }
  for (const unit of PORT_UNITS) {
    const get = (key: string) => values(unit, key);
    assert.deepEqual(get("AmbientCapabilities"), ["CAP_NET_BIND_SERVICE"], unit);
    assert.deepEqual(get("CapabilityBoundingSet"), ["CAP_NET_BIND_SERVICE"], unit);
    // AF_UNIX for the sd_notify datagram.
    assert.deepEqual(get("RestrictAddressFamilies"), ["AF_UNIX AF_INET AF_INET6"], unit);
    // PrivateUsers= would make the capability useless for the host's port 22, and V8 needs
    // writable+executable memory unless --jitless: both stay off where the program binds.
    assert.deepEqual(get("PrivateUsers"), [], unit);
    assert.deepEqual(get("MemoryDenyWriteExecute"), [], unit);
    assert.deepEqual(get("EnvironmentFile"), ["-/etc/default/net-bouncer"], unit);
  }
  // The file variant and the socket-activated service write the same file, reopened on reload.
  for (const unit of [PORT_UNITS[0], ACTIVATED_SERVICE]) {
    const [execStart] = values(unit, "ExecStart");
    assert.ok(execStart.endsWith(` -l ${LOG_FILE}`), execStart);
    assert.deepEqual(values(unit, "LogsDirectory"), ["net-bouncer"], unit);
    assert.deepEqual(values(unit, "ExecReload"), ["/bin/kill -HUP $MAINPID"], unit);
  }
  // The journal variant must not log to a file: fail2ban's systemd backend reads stderr.
  const [journalExec] = values(PORT_UNITS[1], "ExecStart");
  assert.doesNotMatch(journalExec, / -l /);
  // The same path in the fail2ban jail and the logrotate config.
  const jail = Deno.readTextFileSync(`${ROOT}contrib/fail2ban/jail.d/net-bouncer.conf`);
  assert.match(jail, new RegExp(`^logpath\\s*=\\s*${LOG_FILE}$`, "m"));
  const logrotate = Deno.readTextFileSync(`${ROOT}contrib/logrotate/net-bouncer`);
  assert.match(logrotate, /^\/var\/log\/net-bouncer\/\*\.log \{$/m);
  const filter = Deno.readTextFileSync(`${ROOT}contrib/fail2ban/filter.d/net-bouncer.conf`);
  assert.match(filter, /^journalmatch = _SYSTEMD_UNIT=net-bouncer-journal\.service$/m);
});

Deno.test("systemd: the socket-activated pair has no privilege and takes no port itself", () => {
  const get = (key: string) => values(ACTIVATED_SERVICE, key);
  // No capability at all, a user and a network namespace of its own, no IP traffic of its own.
  assert.deepEqual(get("CapabilityBoundingSet"), [""]);
  assert.deepEqual(get("AmbientCapabilities"), [""]);
  assert.deepEqual(get("PrivateUsers"), ["yes"]);
  assert.deepEqual(get("PrivateNetwork"), ["yes"]);
  assert.deepEqual(get("IPAddressDeny"), ["any"]);
  // AF_UNIX only, for sd_notify: the passed sockets are open already.
  assert.deepEqual(get("RestrictAddressFamilies"), ["AF_UNIX"]);
  assert.deepEqual(get("ProcSubset"), ["pid"]);
  assert.deepEqual(get("MemoryDenyWriteExecute"), ["yes"]);
  assert.deepEqual(get("Requires"), ["net-bouncer-activated.socket"]);
  // Ports come from the socket, never from -p.
  assert.doesNotMatch(get("ExecStart")[0], / -p /);
  assert.deepEqual(get("EnvironmentFile"), ["-/etc/default/net-bouncer-activated"]);

  const socket = (key: string) => values(ACTIVATED_SOCKET, key);
  assert.deepEqual(socket("ListenStream"), ["22"]);
  assert.deepEqual(socket("BindIPv6Only"), ["both"]);
  assert.deepEqual(socket("Accept"), ["no"]);
  // Deep enough for the connections that arrive while the service restarts.
  assert.ok(Number(socket("Backlog")[0]) >= 1024, socket("Backlog")[0]);
});

Deno.test("systemd: MemoryDenyWriteExecute= comes with V8's --jitless in every way it runs", () => {
  // V8's JIT needs writable+executable memory: under MemoryDenyWriteExecute=yes it aborts at
  // start unless --jitless. A compiled Deno binary takes V8 flags only from `deno compile
  // --v8-flags` (denort ignores DENO_V8_FLAGS), `deno run` also from DENO_V8_FLAGS.
  const config = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`));
  const v8Flags = (task: string) =>
    String(config.tasks[task]).split(/\s+/)
      .filter((word) => word.startsWith("--v8-flags="))
      .flatMap((word) => word.slice("--v8-flags=".length).split(","));
  for (const unit of UNITS) {
    if (values(unit, "MemoryDenyWriteExecute")[0] !== "yes") continue;
    const environment = values(unit, "Environment").join(" ");
    assert.match(environment, /DENO_V8_FLAGS=--jitless/, `${unit}: for deno run`);
    assert.ok(v8Flags("compile").includes("--jitless"), `deno.json compile task: ${unit}`);
  }
});

/** Every system call name in each @group, from `systemd-analyze syscall-filter` (expanded). */
async function syscallGroups(): Promise<Map<string, Set<string>>> {
  const result = await run("systemd-analyze", ["syscall-filter", "--no-pager"]);
  assert.equal(result.code, 0, result.stderr);
  const direct = new Map<string, string[]>();
  let current: string[] | null = null;
  for (const raw of result.stdout.split("\n")) {
    const line = raw.trim();
    if (raw.startsWith("@")) direct.set(line, current = []);
    else if (line && !line.startsWith("#") && current) current.push(line);
  }
  const expand = (name: string, seen = new Set<string>()): Set<string> => {
    const out = new Set<string>();
    if (seen.has(name)) return out;
    seen.add(name);
    for (const member of direct.get(name) ?? []) {
      if (member.startsWith("@")) { for (const call of expand(member, seen)) out.add(call); }
      else out.add(member);
    }
    return out;
  };
  return new Map([...direct.keys()].map((group) => [group, expand(group)]));
}

/** The system calls a unit's SystemCallFilter= lines allow (allow lists minus `~` deny lists). */
function allowedSyscalls(unit: string, groups: Map<string, Set<string>>): Set<string> {
  const resolve = (word: string): string[] => {
    if (!word.startsWith("@")) return [word];
    const calls = groups.get(word);
    assert.ok(calls, `unknown group ${word}`);
    return [...calls];
  };
  const allowed = new Set<string>();
  const denied = new Set<string>();
  for (const [key, value] of settings(unit)) {
    if (key !== "SystemCallFilter") continue;
    const deny = value.startsWith("~");
    for (const word of value.replace(/^~/, "").split(/\s+/)) {
      for (const call of resolve(word)) (deny ? denied : allowed).add(call);
    }
  }
  assert.ok(allowed.size > 0, `${unit} has an allow list`);
  return new Set([...allowed].filter((call) => !denied.has(call)));
}

/** Connections of the burst in the traced run. */
const BURST = 200;

Deno.test({
  name: "systemd: every system call of the running program passes the unit's SystemCallFilter",
  ignore: needsTools("systemd-analyze", "strace", "cc"),
  async fn() {
    await withTempDir(async (dir) => {
      const trace = `${dir}/trace`;
      const logFile = `${dir}/net-bouncer.log`;
      const port = freePort();
      // -f: all threads (V8 and Tokio workers); -qq: no attach/exit notes in the trace.
      const program = await startProgram(["-p", String(port)], {
        logFile,
        wrapper: ["strace", "-f", "-qq", "-o", trace],
      });
      let pid = 0;
      try {
        // child.pid is strace here; the program is its only child.
        const straced = program.child.pid;
        pid = Number(
          await waitFor(
            "the traced program's pid",
            () => readOrEmpty(`/proc/${straced}/task/${straced}/children`).trim(),
          ),
        );
        // Everything the service does: accept IPv4 and IPv6, reopen the log on SIGHUP, stop.
        await knock("127.0.0.1", port);
        await knock("::1", port);
        await program.waitForLines(CONNECTION_LINE, 2);
        // A burst: rounds of more than one connection, so the coalescing wait runs.
        const burst = await runKnock(port, { total: BURST, concurrency: 32 });
        assert.equal(burst.connections, BURST);
        await program.waitForLines(CONNECTION_LINE, BURST + 2);
        Deno.renameSync(logFile, `${logFile}.1`);
        Deno.kill(pid, "SIGHUP");
        // The handler runs some time after the signal: once it has made the new file, the
        // reopened file gets the next connection's line.
        await waitFor("the reopened log file", () => isFile(logFile));
        await knock("127.0.0.1", port);
        await program.waitForLines(CONNECTION_LINE, 1);
        Deno.kill(pid, "SIGTERM");
        // strace exits with the program's exit code.
        const result = await program.stop();
        pid = 0;
        assert.equal(result.code, 0, result.stderr);
        assert.match(readOrEmpty(logFile), new RegExp(`Stopped after ${BURST + 3} connections`));

        const used = new Set<string>();
        for (const line of Deno.readTextFileSync(trace).split("\n")) {
          // "1234 name(args...) = result" or "1234 <... name resumed>": the name after the pid.
          const match = line.match(/^\d+ +(?:<\.\.\. )?([a-z0-9_]+)[( ]/);
          if (match) used.add(match[1]);
        }
        assert.ok(used.has("accept4") || used.has("accept"), [...used].join(" "));
        assert.ok(used.has("clock_nanosleep") || used.has("nanosleep"), [...used].join(" "));
        const groups = await syscallGroups();
        for (const unit of UNITS) {
          const allowed = allowedSyscalls(unit, groups);
          const rejected = [...used].filter((call) => !allowed.has(call)).sort();
          const unexplained = rejected.filter((call) => !(call in DENIED_BUT_HARMLESS));
          console.log(
            `${unit}: ${used.size} system calls used; denied: ${rejected.join(" ") || "none"}`,
          );
          assert.deepEqual(unexplained, [], `${unit} would deny: ${unexplained.join(" ")}`);
        }
      } finally {
        // strace outlives a SIGTERM of its own; end the traced program directly.
        if (pid) Deno.kill(pid, "SIGKILL");
        await program.stop();
      }
    });
  },
});
