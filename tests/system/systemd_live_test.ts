/**
 * The shipped systemd units under a real systemd (PID 1 in a container of this machine's own
 * image, tests/_container.ts), run as an admin runs them: started, connected to over IPv4 and
 * IPv6, reloaded, rotated, restarted, stopped, scored by `systemd-analyze security` on the
 * running unit, and (the journal unit) watched by fail2ban with its systemd backend. One boot
 * serves every step.
 */
import assert from "node:assert/strict";
import { gunzipSync } from "node:zlib";
import {
  bootContainer,
  type Container,
  installFiles,
  installProgram,
  PROGRAM_PATH,
} from "../_container.ts";
import type { LoopSummary } from "../_netns_client.ts";
import {
  CONNECTION_LINE,
  linesMatching,
  needsTools,
  readOrEmpty,
  ROOT,
  waitFor,
} from "../_util.ts";

/** The log file of the file and socket-activated units. */
const LOG_FILE = "/var/log/net-bouncer/net-bouncer.log";
/** The port the shipped units listen on. */
const PORT = 22;
/** The port of the metrics socket in the README's example. */
const METRICS_PORT = 9100;
/** The port the README's drop-in adds to the socket. */
const EXTRA_PORT = 2323;
/** Highest acceptable exposure (systemd-analyze security) of the file and journal units. */
const MAX_EXPOSURE = 1.5;
/** Highest acceptable exposure of the socket-activated service. */
const MAX_EXPOSURE_ACTIVATED = 0.5;
/** Addresses the clients connect from, put on the container's loopback (not "self" to fail2ban). */
const CLIENT_V4 = "192.0.2.7";
const CLIENT_V6 = "2001:db8::7";
/** How often `systemctl reload` is sent right after `systemctl start --no-block`. */
const RELOAD_RACE_ROUNDS = 5;
/** How many restarts happen while a client connects in a loop. */
const RESTARTS = 5;
/** A connection that took this long waited in the socket's backlog for the next process. */
const MIN_BACKLOG_WAIT_MS = 50;
/** The first line of a log the program writes once its ports are bound. */
const LISTENING_LINE = /\[INFO\] Listening on /;
/** How long a unit state change may take (Deno starts in well under a second). */
const UNIT_DEADLINE_MS = 30_000;

/** One property of a unit (`systemctl show -p NAME --value`). */
async function property(c: Container, unit: string, name: string): Promise<string> {
  return (await c.sh(`systemctl show -p ${name} --value ${unit}`)).trim();
}

/**
 * Forgets `unit`'s recent starts: systemd refuses a sixth start within 10 s (StartLimitBurst=5,
 * StartLimitIntervalSec=10s by default), and these tests start and restart faster than an admin.
 */
async function resetStartLimit(c: Container, unit: string): Promise<void> {
  // Fails only for a unit that is not loaded (nothing to reset).
  await c.exec(["systemctl", "reset-failed", unit]);
}

/** The overall exposure level `systemd-analyze security` gives the loaded unit. */
async function exposure(c: Container, unit: string): Promise<number> {
  const out = await c.sh(`systemd-analyze security --no-pager ${unit}`);
  const match = out.match(/Overall exposure level for \S+: (\d+\.\d+)/);
  assert.ok(match, out);
  return Number(match[1]);
}

/** Runs the netns client (tests/_netns_client.ts) to completion; returns its JSON. */
async function client<T>(c: Container, args: string[]): Promise<T> {
  const child = c.spawnInNetwork([
    Deno.execPath(),
    "run",
    "-A",
    `${ROOT}tests/_netns_client.ts`,
    ...args,
  ]);
  await child.stdin.close();
  const out = await child.output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, `${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  return JSON.parse(text);
}

/** One connection from `source` to the container's own loopback on PORT. */
function knock(c: Container, source: string): Promise<{ port: number }> {
  return client(c, ["knock", source, String(PORT)]);
}

/**
 * A client connecting in a loop from both addresses until `finish()`, which returns its counts.
 * Call `finish()` in `finally`: it also ends a loop whose test failed.
 */
function startLoop(c: Container): { finish(): Promise<LoopSummary> } {
  const child = c.spawnInNetwork([
    Deno.execPath(),
    "run",
    "-A",
    `${ROOT}tests/_netns_client.ts`,
    "loop",
    String(PORT),
    CLIENT_V4,
    CLIENT_V6,
  ]);
  let finished: Promise<LoopSummary> | null = null;
  return {
    finish: () => finished ??= end(),
  };
  async function end(): Promise<LoopSummary> {
    await child.stdin.close();
    const out = await child.output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    return JSON.parse(new TextDecoder().decode(out.stdout));
  }
}

/** The text of every log file: the current one and the rotated ones (compressed or not). */
function fileLog(c: Container): string {
  const dir = c.path("/var/log/net-bouncer");
  let text = "";
  try {
    for (const entry of Deno.readDirSync(dir)) {
      if (!entry.isFile) continue;
      const bytes = Deno.readFileSync(`${dir}/${entry.name}`);
      if (!entry.name.endsWith(".gz")) text += new TextDecoder().decode(bytes);
      else {
        try {
          text += new TextDecoder().decode(gunzipSync(bytes));
        } catch {
          // Being written by logrotate right now: the caller retries.
        }
      }
    }
  } catch (error) {
    // Rotation renames and compresses files between listing and reading: the caller retries.
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return text;
}

/** The journal's messages about `unit`: the program's and systemd's. */
async function journal(c: Container, unit: string): Promise<string> {
  return await c.sh(`journalctl --no-pager -o cat -u ${unit}`);
}

/** The lines the program wrote to the journal: the unit's, under the identifier net-bouncer. */
async function programJournal(c: Container, unit: string): Promise<string> {
  return await c.sh(
    `journalctl --no-pager -o cat _SYSTEMD_UNIT=${unit} SYSLOG_IDENTIFIER=net-bouncer`,
  );
}

/** The program's lines of a unit: the log file, or the journal (identifier net-bouncer). */
type LogReader = () => Promise<string>;

function connectionCount(text: string, address?: string): number {
  return linesMatching(text, CONNECTION_LINE).filter((line) =>
    address === undefined || line.includes(`Connection from ${address} on port ${PORT}`)
  ).length;
}

/** Starts `unit` and waits until the program's Listening line is in its log. */
async function startUnit(c: Container, unit: string, log: LogReader): Promise<number> {
  const before = linesMatching(await log(), LISTENING_LINE).length;
  try {
    await c.sh(`systemctl start ${unit}`, { timeoutMs: UNIT_DEADLINE_MS });
    await waitFor(
      `${unit} listening`,
      async () => linesMatching(await log(), LISTENING_LINE).length > before,
      { timeoutMs: UNIT_DEADLINE_MS },
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}\n${await journal(c, unit)}`, { cause: error });
  }
  const pid = Number(await property(c, unit, "MainPID"));
  assert.ok(pid > 0, `${unit} has a main process`);
  return pid;
}

/** Asserts the process runs as a dynamic user (uid in systemd's 61184..65519 range). */
async function assertDynamicUser(c: Container, unit: string, pid: number): Promise<void> {
  const status = await c.sh(`cat /proc/${pid}/status`);
  const uid = Number(status.match(/^Uid:\s+(\d+)/m)?.[1]);
  assert.ok(uid >= 61184 && uid <= 65519, `${unit}: uid ${uid} is not a dynamic user`);
  assert.equal(await property(c, unit, "DynamicUser"), "yes");
  // The name systemd gives it (nss-systemd resolves it while the unit runs).
  assert.match(await c.sh(`getent passwd ${uid}`), new RegExp(`^${unit.replace(".service", "")}:`));
}

/** Asserts IPv4 and IPv6 clients' lines reach the log. */
async function assertClientsLogged(c: Container, log: LogReader): Promise<void> {
  const before = await log();
  for (const source of [CLIENT_V4, CLIENT_V6]) {
    const { port } = await knock(c, source);
    assert.ok(port > 0, `${source}: handshake completed`);
  }
  await waitFor("the IPv4 and IPv6 connection lines", async () => {
    const text = await log();
    return [CLIENT_V4, CLIENT_V6].every((a) =>
      connectionCount(text, a) > connectionCount(before, a)
    );
  });
}

/** Reload and a forced logrotate while a client connects: every connection logged once. */
async function assertRotationLosesNothing(c: Container, unit: string): Promise<void> {
  const before = connectionCount(fileLog(c));
  const loop = startLoop(c);
  try {
    await waitFor("the first loop connection", () => connectionCount(fileLog(c)) > before);
    await c.sh(`systemctl reload ${unit}`);
    // -f: rotate now whatever the date; the shipped postrotate reloads whichever unit runs.
    // The test adds seconds to the rotated file's name (a second rotation on the same day
    // would find the name taken).
    const config = "/etc/logrotate.d/net-bouncer";
    await c.sh(`set -eu
      sed -i -e 's/^\\( *\\)dateext$/\\1dateext\\n\\1dateformat -%Y%m%d-%s/' ${config}
      logrotate -f ${config}`);
    await waitFor(
      "a line in the new log file",
      () => connectionCount(readOrEmpty(c.path(LOG_FILE))) > 0,
    );
  } finally {
    await loop.finish();
  }
  const summary = await loop.finish();
  assert.ok(summary.made > 0, JSON.stringify(summary));
  await waitFor(
    `${summary.made} new connection lines`,
    () => connectionCount(fileLog(c)) - before >= summary.made,
  );
  assert.equal(connectionCount(fileLog(c)) - before, summary.made, "every connection once");
  assert.deepEqual(summary.errors, {});
  assert.equal(summary.refused, 0);
  console.log(`${unit}: reload + logrotate -f during ${summary.made} connections, none lost`);
}

/** Stops `unit`: result success, the Stopped line, no process killed by the syscall filter. */
async function assertCleanStop(c: Container, unit: string, log: LogReader): Promise<void> {
  const stopsBefore = linesMatching(await log(), /\[INFO\] Stopped after /).length;
  const journalBefore = (await journal(c, unit)).length;
  await c.sh(`systemctl stop ${unit}`, { timeoutMs: UNIT_DEADLINE_MS });
  assert.equal(await property(c, unit, "Result"), "success");
  await waitFor(
    "the Stopped line",
    async () =>
      linesMatching(await log(), /\[INFO\] Stopped after \d+ connections?/).length > stopsBefore,
  );
  // systemd's messages about this stop: the process exited by itself (status 0), no signal
  // ended it (a seccomp kill would be SIGSYS, status=31/SYS).
  const messages = (await journal(c, unit)).slice(journalBefore);
  assert.match(messages, /Deactivated successfully/, messages);
  assert.doesNotMatch(messages, /code=killed|code=dumped|SIGSYS|31\/SYS/, messages);
  assert.doesNotMatch(await journal(c, unit), /SIGSYS|31\/SYS/);
}

/** `systemctl reload` right after `systemctl start --no-block` must never kill the service. */
async function assertReloadAfterStartSurvives(c: Container, unit: string): Promise<void> {
  for (let round = 0; round < RELOAD_RACE_ROUNDS; round++) {
    await resetStartLimit(c, unit);
    const restarts = await property(c, unit, "NRestarts");
    await c.sh(`systemctl start --no-block ${unit} && systemctl reload ${unit}`, {
      timeoutMs: UNIT_DEADLINE_MS,
    });
    const pid = await waitFor(
      `${unit} active`,
      async () =>
        (await property(c, unit, "ActiveState")) === "active" &&
        Number(await property(c, unit, "MainPID")),
      { timeoutMs: UNIT_DEADLINE_MS },
    );
    // Still the same process a moment later, alive and not restarted.
    assert.equal(await property(c, unit, "NRestarts"), restarts, `round ${round}`);
    assert.equal(Number(await property(c, unit, "MainPID")), pid, `round ${round}`);
    assert.equal(await property(c, unit, "ActiveState"), "active", `round ${round}`);
    await c.sh(`systemctl stop ${unit}`, { timeoutMs: UNIT_DEADLINE_MS });
    assert.equal(await property(c, unit, "Result"), "success", `round ${round}`);
  }
}

/** Writes the fail2ban config: the shipped filter and jail, the journal jail enabled. */
async function setUpFail2ban(c: Container): Promise<void> {
  await installFiles(c, [
    ["contrib/fail2ban/filter.d/net-bouncer.conf", "/etc/fail2ban/filter.d/net-bouncer.conf"],
    ["contrib/fail2ban/jail.d/net-bouncer.conf", "/etc/fail2ban/jail.d/net-bouncer.conf"],
  ]);
  // The admin's override: the journal jail instead of the file one, and instead of the firewall
  // (the container has none) an action that records the banned address.
  await c.sh(`set -eu
    cat > /etc/fail2ban/action.d/record.conf <<'EOF'
[Definition]
actionban = printf '%%s\\n' '<ip>' >> /run/fail2ban-banned
actionunban =
EOF
    cat > /etc/fail2ban/jail.d/zz-test.local <<'EOF'
[sshd]
enabled = false
[net-bouncer]
enabled = false
[net-bouncer-journal]
enabled = true
action = record
EOF
  `);
}

Deno.test({
  name: "systemd live: the shipped units under a real systemd (PID 1 in a container)",
  ignore: needsTools("systemd-nspawn", "nsenter", "fail2ban-server", "logrotate"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const c = await bootContainer();
    try {
      await installProgram(c);
      await installFiles(c, [
        ["contrib/systemd/net-bouncer.service", "/etc/systemd/system/net-bouncer.service"],
        [
          "contrib/systemd/net-bouncer-journal.service",
          "/etc/systemd/system/net-bouncer-journal.service",
        ],
        [
          "contrib/systemd/net-bouncer-activated.socket",
          "/etc/systemd/system/net-bouncer-activated.socket",
        ],
        [
          "contrib/systemd/net-bouncer-activated.service",
          "/etc/systemd/system/net-bouncer-activated.service",
        ],
        ["contrib/logrotate/net-bouncer", "/etc/logrotate.d/net-bouncer"],
      ]);
      await c.sh(`set -eu
        systemctl daemon-reload
        ip addr add ${CLIENT_V4}/32 dev lo
        ip addr add ${CLIENT_V6}/128 dev lo nodad
        test -x ${PROGRAM_PATH}`);
      const fileReader: LogReader = () => Promise.resolve(readOrEmpty(c.path(LOG_FILE)));

      await t.step("file unit: dynamic user, IPv4 and IPv6 lines, exposure", async () => {
        const unit = "net-bouncer.service";
        const pid = await startUnit(c, unit, fileReader);
        await assertDynamicUser(c, unit, pid);
        await assertClientsLogged(c, fileReader);
        const level = await exposure(c, unit);
        console.log(`${unit}: live exposure ${level}`);
        assert.ok(level <= MAX_EXPOSURE, `${unit}: exposure ${level} > ${MAX_EXPOSURE}`);
      });

      await t.step("file unit: reload and a forced logrotate lose nothing", async () => {
        await assertRotationLosesNothing(c, "net-bouncer.service");
      });

      await t.step("file unit: stop ends with success and the Stopped line", async () => {
        await assertCleanStop(c, "net-bouncer.service", fileReader);
      });

      await t.step("file unit: reload right after start --no-block never kills it", async () => {
        await assertReloadAfterStartSurvives(c, "net-bouncer.service");
      });

      const journalUnit = "net-bouncer-journal.service";
      const journalReader: LogReader = () => programJournal(c, journalUnit);

      await t.step("journal unit: lines under the identifier net-bouncer, exposure", async () => {
        const pid = await startUnit(c, journalUnit, journalReader);
        await assertDynamicUser(c, journalUnit, pid);
        await assertClientsLogged(c, journalReader);
        const level = await exposure(c, journalUnit);
        console.log(`${journalUnit}: live exposure ${level}`);
        assert.ok(level <= MAX_EXPOSURE, `${journalUnit}: exposure ${level} > ${MAX_EXPOSURE}`);
      });

      await t.step("journal unit: fail2ban (backend systemd) bans a client", async () => {
        await setUpFail2ban(c);
        await c.sh("systemctl start fail2ban.service", { timeoutMs: UNIT_DEADLINE_MS });
        try {
          await waitFor(
            "the net-bouncer-journal jail",
            async () =>
              (await c.exec(["fail2ban-client", "status", "net-bouncer-journal"])).code === 0,
            {
              timeoutMs: UNIT_DEADLINE_MS,
            },
          );
          const started = Date.now();
          await knock(c, CLIENT_V4);
          await waitFor(
            `${CLIENT_V4} banned`,
            () => readOrEmpty(c.path("/run/fail2ban-banned")).split("\n").includes(CLIENT_V4),
            {
              timeoutMs: UNIT_DEADLINE_MS,
            },
          );
          console.log(`fail2ban: ban ${Date.now() - started} ms after the connection`);
          assert.match(
            await c.sh("fail2ban-client status net-bouncer-journal"),
            new RegExp(`Banned IP list:\\s+${CLIENT_V4.replaceAll(".", "\\.")}`),
          );
        } finally {
          await c.sh("systemctl stop fail2ban.service", { timeoutMs: UNIT_DEADLINE_MS });
        }
      });

      await t.step("journal unit: stop ends with success and the Stopped line", async () => {
        await assertCleanStop(c, journalUnit, journalReader);
      });

      // The journal unit has no reload (no file to reopen): systemctl refuses it.

      const socket = "net-bouncer-activated.socket";
      const activated = "net-bouncer-activated.service";

      await t.step("socket pair: systemd binds port 22; the service has no privilege", async () => {
        await c.sh(`systemctl start ${socket}`, { timeoutMs: UNIT_DEADLINE_MS });
        // Bound by PID 1 before any service runs.
        const listening = await c.sh(`ss -ltnpH 'sport = :${PORT}'`);
        assert.match(listening, /\("systemd",pid=1,/, listening);
        assert.equal(await property(c, activated, "ActiveState"), "inactive");
        // The first connection starts the service, which logs it.
        const before = connectionCount(fileLog(c), CLIENT_V4);
        await knock(c, CLIENT_V4);
        await waitFor(
          "the activating connection's line",
          () => connectionCount(fileLog(c), CLIENT_V4) > before,
          { timeoutMs: UNIT_DEADLINE_MS },
        );
        const pid = Number(await property(c, activated, "MainPID"));
        assert.ok(pid > 0);
        await assertDynamicUser(c, activated, pid);
        const status = await c.sh(`cat /proc/${pid}/status`);
        for (const set of ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]) {
          assert.match(status, new RegExp(`^${set}:\\s+0{16}$`, "m"), `${set} is empty`);
        }
        const [own, host] = (await c.sh(`readlink /proc/${pid}/ns/net /proc/1/ns/net`))
          .trim().split("\n");
        assert.notEqual(own, host, "a network namespace of its own");
        await assertClientsLogged(c, fileReader);
        // Without a JIT, Deno cannot compile its fast FFI calls and warns once per symbol; the
        // log level of the start task (--quiet) keeps that out of stderr and so the journal.
        assert.doesNotMatch(await journal(c, activated), /turbocall|Warning/);
        const level = await exposure(c, activated);
        console.log(`${activated}: live exposure ${level}`);
        assert.ok(level <= MAX_EXPOSURE_ACTIVATED, `exposure ${level} > ${MAX_EXPOSURE_ACTIVATED}`);
      });

      await t.step("socket pair: restarts while a client connects lose nothing", async () => {
        const before = connectionCount(fileLog(c));
        await resetStartLimit(c, activated);
        const restartsBefore = Number(await property(c, activated, "NRestarts"));
        const loop = startLoop(c);
        const pids = new Set<string>();
        try {
          for (let i = 0; i < RESTARTS; i++) {
            // Each restart while connections arrive: wait for a new one first.
            const seen = connectionCount(fileLog(c));
            await waitFor(
              "a connection before the restart",
              () => connectionCount(fileLog(c)) > seen,
            );
            await c.sh(`systemctl restart ${activated}`, { timeoutMs: UNIT_DEADLINE_MS });
            pids.add(await property(c, activated, "MainPID"));
          }
        } finally {
          await loop.finish();
        }
        const summary = await loop.finish();
        await waitFor(
          `${summary.made} connection lines`,
          () => connectionCount(fileLog(c)) - before >= summary.made,
        );
        const logged = connectionCount(fileLog(c)) - before;
        console.log(
          `${activated}: ${summary.made} connections made, ${logged} logged, ` +
            `${summary.refused} refused, during ${RESTARTS} restarts; the slowest waited ` +
            `${summary.slowestMs} ms in the backlog`,
        );
        assert.equal(pids.size, RESTARTS, "every restart made a new process");
        // Connections did arrive while no process served the socket (a served one closes in
        // about a millisecond; starting a process takes far longer).
        assert.ok(summary.slowestMs >= MIN_BACKLOG_WAIT_MS, `slowest ${summary.slowestMs} ms`);
        assert.equal(logged, summary.made, "every connection logged exactly once");
        assert.equal(summary.refused, 0);
        assert.deepEqual(summary.errors, {});
        // Restarts asked for, not failures.
        assert.equal(Number(await property(c, activated, "NRestarts")), restartsBefore);
      });

      await t.step("socket pair: reload and a forced logrotate lose nothing", async () => {
        await assertRotationLosesNothing(c, activated);
      });

      await t.step("socket pair: the watchdog restarts a stuck event loop", async () => {
        const pid = await property(c, activated, "MainPID");
        // "kill -STOP 0" would stop the test's own process group.
        assert.ok(Number(pid) > 0, "the service runs");
        await resetStartLimit(c, activated);
        const restarts = Number(await property(c, activated, "NRestarts"));
        // A stopped process sends no WATCHDOG=1: as stuck as a loop can be.
        await c.sh(`kill -STOP ${pid}`);
        const started = Date.now();
        await waitFor(
          "a restart by the watchdog",
          async () =>
            Number(await property(c, activated, "NRestarts")) > restarts &&
            (await property(c, activated, "ActiveState")) === "active",
          { timeoutMs: 60_000 },
        );
        console.log(`${activated}: restarted ${Date.now() - started} ms after SIGSTOP`);
        assert.notEqual(await property(c, activated, "MainPID"), pid);
        assert.match(await journal(c, activated), /Watchdog timeout/);
        // And it serves again.
        await assertClientsLogged(c, fileReader);
      });

      await t.step("socket pair: a drop-in adds a port (as the README shows)", async () => {
        await resetStartLimit(c, activated);
        await c.sh(
          `set -eu
          mkdir -p /etc/systemd/system/${socket}.d
          printf '[Socket]\\nListenStream=${EXTRA_PORT}\\n' > /etc/systemd/system/${socket}.d/ports.conf
          systemctl daemon-reload
          systemctl restart ${socket}`,
          { timeoutMs: UNIT_DEADLINE_MS },
        );
        const listening = await c.sh(`ss -ltnpH 'sport = :${EXTRA_PORT}'`);
        assert.match(listening, /\("systemd",pid=1,/, listening);
        const before = fileLog(c);
        const { port } = await client<{ port: number }>(c, [
          "knock",
          CLIENT_V6,
          String(EXTRA_PORT),
        ]);
        assert.ok(port > 0);
        await waitFor(
          "the line of the drop-in's port",
          () =>
            linesMatching(
              fileLog(c),
              new RegExp(`Connection from ${CLIENT_V6} on port ${EXTRA_PORT}$`),
            )
              .length > linesMatching(before, new RegExp(`on port ${EXTRA_PORT}$`)).length,
          {
            timeoutMs: UNIT_DEADLINE_MS,
          },
        );
        // Port 22 still served by the same service.
        await assertClientsLogged(c, fileReader);
      });

      await t.step(
        "socket pair: a metrics socket from systemd serves /metrics (as the README shows)",
        async () => {
          await resetStartLimit(c, activated);
          const metricsSocket = "net-bouncer-metrics.socket";
          await c.sh(
            `set -eu
          printf '[Socket]\\nListenStream=127.0.0.1:${METRICS_PORT}\\nFileDescriptorName=metrics\\nService=${activated}\\n\\n[Install]\\nWantedBy=sockets.target\\n' > /etc/systemd/system/${metricsSocket}
          mkdir -p /etc/systemd/system/${activated}.d
          printf '[Service]\\nSockets=${socket} ${metricsSocket}\\n' > /etc/systemd/system/${activated}.d/metrics.conf
          systemctl daemon-reload
          # systemd refuses to start a socket whose service runs: stop it first.
          systemctl stop ${activated}
          systemctl start ${metricsSocket} ${activated}`,
            { timeoutMs: UNIT_DEADLINE_MS },
          );
          await assertClientsLogged(c, fileReader);
          const text = await waitFor("a scrape of the metrics socket", async () => {
            const scrape = await c.sh(
              `curl -sf --max-time 5 http://127.0.0.1:${METRICS_PORT}/metrics || true`,
            );
            return /net_bouncer_connections_total\{port="22",family="ipv4"\} [1-9]/.test(scrape)
              ? scrape
              : null;
          }, { timeoutMs: UNIT_DEADLINE_MS });
          assert.match(text, /net_bouncer_build_info\{version="/);
          // Still no network of its own: the sockets came from systemd.
          assert.equal(await property(c, activated, "PrivateNetwork"), "yes");
          await c.sh(
            `set -eu
          systemctl stop ${metricsSocket}
          rm /etc/systemd/system/${metricsSocket} /etc/systemd/system/${activated}.d/metrics.conf
          systemctl daemon-reload
          systemctl restart ${activated}`,
            { timeoutMs: UNIT_DEADLINE_MS },
          );
        },
      );

      await t.step("socket pair: stop ends with success and the Stopped line", async () => {
        await assertCleanStop(c, activated, fileReader);
      });

      await t.step("socket pair: reload right after start --no-block never kills it", async () => {
        await assertReloadAfterStartSurvives(c, activated);
      });
    } finally {
      await c.stop();
    }
  },
});
