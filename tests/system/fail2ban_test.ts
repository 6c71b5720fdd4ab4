/**
 * The fail2ban filter and jail in contrib/fail2ban, run by the real fail2ban against the log the
 * real program writes: fail2ban-regex matches exactly the connection lines, the journal form of
 * the same lines also matches, and a real fail2ban-server bans 127.0.0.1 and ::1 within
 * BAN_DEADLINE_MS of the connection.
 */
import assert from "node:assert/strict";
import { type Fail2ban, recorded, startFail2ban, writeFail2banConf } from "../_fail2ban.ts";
import {
  CONNECTION_LINE,
  connectionAddresses,
  knock,
  LOOPBACK_CLIENTS,
  needsTools,
  readOrEmpty,
  ROOT,
  run,
  startProgram,
  waitFor,
  withTempDir,
} from "../_util.ts";

/** The filter under test. */
const FILTER = `${ROOT}contrib/fail2ban/filter.d/net-bouncer.conf`;
/** Connections made per client address in the fail2ban-regex test. */
const KNOCKS_PER_ADDRESS = 3;
/** The client addresses (IPv4 and IPv6, both to one dual-stack listener). */
const CLIENTS = LOOPBACK_CLIENTS;
/** A ban must follow a connection within this time (connection → address in the action file). */
const BAN_DEADLINE_MS = 3_000;

/** fail2ban-regex's summary counts ("Lines: 8 lines, 0 ignored, 6 matched, 2 missed"). */
function regexCounts(
  stdout: string,
): { lines: number; ignored: number; matched: number; missed: number } {
  const match = stdout.match(/^Lines: (\d+) lines, (\d+) ignored, (\d+) matched, (\d+) missed/m);
  assert.ok(match, `no summary in fail2ban-regex output:\n${stdout}`);
  const [lines, ignored, matched, missed] = match.slice(1).map(Number);
  return { lines, ignored, matched, missed };
}

/** Starts the real program on a dual-stack listener, knocks from each client, stops it. */
async function writeRealLog(logFile: string): Promise<string> {
  const program = await startProgram(["-p", "0"], { logFile });
  try {
    for (let i = 0; i < KNOCKS_PER_ADDRESS; i++) {
      for (const client of CLIENTS) await knock(client, program.port);
    }
    await program.waitForLines(CONNECTION_LINE, KNOCKS_PER_ADDRESS * CLIENTS.length);
  } finally {
    const { code, stderr } = await program.stop();
    assert.equal(code, 0, stderr);
  }
  return Deno.readTextFileSync(logFile);
}

/** The Python interpreter fail2ban runs on (its scripts' shebang), to use its modules. */
function fail2banPython(): string {
  const script = (Deno.env.get("PATH") ?? "").split(":").map((dir) => `${dir}/fail2ban-regex`)
    .find((path) => readOrEmpty(path) !== "");
  assert.ok(script, "fail2ban-regex not found on PATH");
  const shebang = readOrEmpty(script).split("\n")[0];
  const match = shebang.match(/^#!\s*(\S+)(?:\s+(\S+))?/);
  assert.ok(match, `no shebang in ${script}`);
  // "#!/usr/bin/env python3" → python3; "#!/usr/bin/python3" → /usr/bin/python3.
  return match[1].endsWith("/env") && match[2] ? match[2] : match[1];
}

/**
 * Python run with fail2ban's interpreter: turns each log line (stdin) into the line fail2ban's
 * systemd backend hands to the filter, using fail2ban's own FilterSystemd.formatJournalEntry on
 * the journal fields that systemd stores for a service's stderr line.
 */
const JOURNAL_FORMAT_PY = `
import datetime, sys
from fail2ban.server.filtersystemd import FilterSystemd
class Jail:
    jailName = "net-bouncer-journal"
    def getLogEncoding(self): return "UTF-8"
    def getJrnEntTime(self, entry): return FilterSystemd.getJrnEntTime(self, entry)
for message in sys.stdin.read().splitlines():
    entry = {"_HOSTNAME": "honeypot", "SYSLOG_IDENTIFIER": "net-bouncer", "_PID": 4242,
             "_SYSTEMD_UNIT": "net-bouncer-journal.service", "MESSAGE": message,
             "__REALTIME_TIMESTAMP": datetime.datetime.now()}
    (prefix, _date, line), _time = FilterSystemd.formatJournalEntry(Jail(), entry)
    print(prefix + line)
`;

Deno.test({
  name: "fail2ban: fail2ban-regex matches exactly one line per connection of the real program",
  ignore: needsTools("fail2ban-regex"),
  async fn() {
    await withTempDir(async (dir) => {
      const logFile = `${dir}/net-bouncer.log`;
      const log = await writeRealLog(logFile);
      const lines = log.split("\n").filter((line) => line !== "");
      const connections = KNOCKS_PER_ADDRESS * CLIENTS.length;
      // Listening, the connections, Stopped: the other lines are there to be missed.
      assert.ok(lines.length > connections, log);

      const summary = await run("fail2ban-regex", ["--raw", logFile, FILTER]);
      assert.equal(summary.code, 0, summary.stderr);
      assert.deepEqual(regexCounts(summary.stdout), {
        lines: lines.length,
        ignored: 0,
        matched: connections,
        missed: lines.length - connections,
      });
      // The date pattern found the time on every line the program wrote.
      assert.match(summary.stdout, new RegExp(`\\[${lines.length}\\] \\^Year-Month-Day`));

      // The address of each match: one per connection, in order, IPv4 plain, IPv6 as ::1.
      const ips = await run("fail2ban-regex", ["--raw", "--out", "ip", logFile, FILTER]);
      assert.equal(ips.code, 0, ips.stderr);
      const expected = connectionAddresses(log);
      assert.equal(expected.length, connections);
      assert.deepEqual(ips.stdout.trim().split("\n"), expected);
      for (const client of CLIENTS) {
        assert.equal(expected.filter((ip) => ip === client).length, KNOCKS_PER_ADDRESS, client);
      }
    });
  },
});

Deno.test({
  name: "fail2ban: the filter matches the same lines as they come from the journal",
  ignore: needsTools("fail2ban-regex"),
  async fn() {
    await withTempDir(async (dir) => {
      const log = await writeRealLog(`${dir}/net-bouncer.log`);
      const lines = log.split("\n").filter((line) => line !== "");
      const out = await run(fail2banPython(), ["-c", JOURNAL_FORMAT_PY], { stdin: log });
      assert.equal(out.code, 0, out.stderr);
      const journalLines = out.stdout.trim().split("\n");
      assert.equal(journalLines.length, lines.length);
      assert.match(journalLines[0], /^honeypot net-bouncer\[4242\]: \d{4}-/);
      const journalLog = `${dir}/journal.txt`;
      Deno.writeTextFileSync(journalLog, journalLines.join("\n") + "\n");

      // The systemd backend takes the time from the journal, not from the line: no date pattern.
      const result = await run("fail2ban-regex", [
        "--raw",
        "--datepattern",
        "{NONE}",
        "--out",
        "ip",
        journalLog,
        FILTER,
      ]);
      assert.equal(result.code, 0, result.stderr);
      const expected = connectionAddresses(log);
      assert.equal(expected.length, KNOCKS_PER_ADDRESS * CLIENTS.length);
      assert.deepEqual(result.stdout.trim().split("\n"), expected);
    });
  },
});

Deno.test({
  name: "fail2ban: a real fail2ban-server bans 127.0.0.1 and ::1 within 3 s of a connection",
  ignore: needsTools("fail2ban-server"),
  async fn() {
    await withTempDir(async (dir) => {
      const logFile = `${dir}/net-bouncer.log`;
      const bannedFile = `${dir}/banned`;
      // First the program, so that the log file exists when fail2ban opens it.
      const program = await startProgram(["-p", "0"], { logFile });
      let fail2ban: Fail2ban | undefined;
      try {
        // The admin's .local over the shipped jail; instead of the firewall, the test's record
        // action appends the banned address to a file.
        const conf = writeFail2banConf(
          dir,
          [
            "[net-bouncer]",
            `logpath = ${logFile}`,
            // What backend = auto picks when python3-pyinotify is installed (see .ci/install_ops.sh).
            "backend = pyinotify",
            // Loopback is ignored by default (ignoreself, and often ignoreip): the test bans it.
            "ignoreself = false",
            "ignoreip =",
            `action = record[file="${bannedFile}"]`,
            "",
          ].join("\n"),
        );
        fail2ban = await startFail2ban(conf, ["net-bouncer"]);

        const latencies: Record<string, number> = {};
        for (const client of CLIENTS) {
          const start = performance.now();
          await knock(client, program.port);
          await waitFor(`${client} in ${bannedFile}`, () => recorded(bannedFile).includes(client), {
            timeoutMs: BAN_DEADLINE_MS,
          });
          latencies[client] = Math.round(performance.now() - start);
        }
        console.log(`ban latency (connection → action), ms: ${JSON.stringify(latencies)}`);
        // Each address banned once, nothing else.
        assert.deepEqual(recorded(bannedFile), CLIENTS);
        assert.match(fail2ban.log(), /\[net-bouncer\] Ban 127\.0\.0\.1/);
        assert.match(fail2ban.log(), /\[net-bouncer\] Ban ::1/);
      } finally {
        await fail2ban?.stop();
        await program.stop();
      }
    });
  },
});
