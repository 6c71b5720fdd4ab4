/**
 * What the net-bouncer-abuseipdb and net-bouncer-alert jails send, end to end with the real
 * fail2ban in a sandbox of the test's own (tests/_netns.ts): there api.abuseipdb.com resolves
 * (the sandbox's own /etc/hosts) to a local HTTPS receiver whose certificate a test CA signed,
 * which curl trusts inside the sandbox only (its own CA bundle); the webhook goes to a receiver
 * that hangs, while the bans keep their latency.
 */
import assert from "node:assert/strict";
import {
  type Fail2ban,
  jailLocal,
  lineTime,
  recorded,
  startFail2ban,
  writeFail2banConf,
} from "../_fail2ban.ts";
import { type Sandbox, startSandbox } from "../_netns.ts";
import { type Receiver, startReceiver } from "../_receiver.ts";
import { needsTools, type Program, run, startProgram, waitFor, withTempDir } from "../_util.ts";

/** A ban must follow a connection within this time (connection line → firewall rule). */
const BAN_DEADLINE_MS = 3_000;
/** The CA bundle curl reads (Debian's ca-certificates), replaced inside the sandbox. */
const CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt";
/** The API key the test's jail sends. */
const API_KEY = "test-key-0123456789";

const IGNORE = needsTools("fail2ban-server", "nft", "curl", "openssl", "unshare", "nsenter");

/** Runs openssl; throws with its output on failure. */
async function openssl(...args: string[]): Promise<void> {
  const result = await run("openssl", args, { timeoutMs: 30_000 });
  if (result.code !== 0) throw new Error(`openssl ${args.join(" ")}: ${result.stderr}`);
}

/** A test CA and a certificate it signed for `host`; returns the paths. */
async function makeCertificate(dir: string, host: string) {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await openssl(
    "req",
    "-x509",
    ...ec,
    "-keyout",
    `${dir}/ca.key`,
    "-out",
    `${dir}/ca.crt`,
    "-days",
    "1",
    "-subj",
    "/CN=net-bouncer test CA",
  );
  await openssl(
    "req",
    ...ec,
    "-keyout",
    `${dir}/server.key`,
    "-out",
    `${dir}/server.csr`,
    "-subj",
    `/CN=${host}`,
  );
  await Deno.writeTextFile(`${dir}/server.ext`, `subjectAltName=DNS:${host}\n`);
  await openssl(
    "x509",
    "-req",
    "-in",
    `${dir}/server.csr`,
    "-CA",
    `${dir}/ca.crt`,
    "-CAkey",
    `${dir}/ca.key`,
    "-CAcreateserial",
    "-out",
    `${dir}/server.crt`,
    "-days",
    "1",
    "-extfile",
    `${dir}/server.ext`,
  );
  return { ca: `${dir}/ca.crt`, cert: `${dir}/server.crt`, key: `${dir}/server.key` };
}

/** Connects from `source`, asserts it was made and logged; returns its (latest) line. */
async function connectLogged(sandbox: Sandbox, program: Program, source: string, count = 1) {
  assert.equal(await sandbox.connect(source, program.port), true, `${source} connects`);
  const lines = await program.waitForLines(new RegExp(`Connection from ${source} on port`), count);
  return lines[count - 1];
}

Deno.test({
  name:
    "fail2ban reports: net-bouncer-abuseipdb reports a source once per 15 min, category 14, port and time only",
  ignore: IGNORE,
  fn: async () => {
    await withTempDir(async (dir) => {
      const tls = await makeCertificate(dir, "api.abuseipdb.com");
      await Deno.writeTextFile(
        `${dir}/hosts`,
        "127.0.0.1 localhost\n::1 localhost\n127.0.0.1 api.abuseipdb.com\n",
      );
      await Deno.writeTextFile(
        `${dir}/ca-bundle.crt`,
        (await Deno.readTextFile(CA_BUNDLE)) + (await Deno.readTextFile(tls.ca)),
      );
      const [first, second, third] = ["192.0.2.30", "2001:db8:1:2::a", "192.0.2.31"];
      const sandbox = await startSandbox({
        addresses: [first, second, third],
        binds: [[`${dir}/hosts`, "/etc/hosts"], [`${dir}/ca-bundle.crt`, CA_BUNDLE]],
      });
      let program: Program | undefined;
      let fail2ban: Fail2ban | undefined;
      let receiver: Receiver | undefined;
      try {
        receiver = await startReceiver(443, { tls, wrap: sandbox.wrap });
        const logFile = `${dir}/net-bouncer.log`;
        program = await startProgram(["-p", "0"], { logFile, wrapper: sandbox.wrap([]) });
        const record = `${dir}/recorded`;
        const quota = `${dir}/abuseipdb.quota`;
        const conf = writeFail2banConf(
          dir,
          jailLocal(logFile, {
            "net-bouncer-abuseipdb": [
              `abuseipdb_apikey = ${API_KEY}`,
              `abuseipdb_quota_file = ${quota}`,
              // The daily limit, lowered from 1,000 so that the test reaches it.
              "abuseipdb_daily_limit = 2",
              // The shipped action, then the test's barrier: once it ran, the report was sent.
              "action = %(known/action)s",
              `         record[file="${record}"]`,
            ],
          }),
        );
        fail2ban = await startFail2ban(conf, ["net-bouncer-abuseipdb"], { sandbox });

        const line = await connectLogged(sandbox, program, first);
        const [report] = await receiver.waitForRequests(1);
        assert.equal(report.method, "POST");
        assert.equal(report.path, "/api/v2/report");
        assert.equal(report.headers["key"], API_KEY);
        assert.equal(report.headers["accept"], "application/json");
        assert.equal(report.headers["content-type"], "application/x-www-form-urlencoded");
        const fields = new URLSearchParams(report.body);
        assert.deepEqual([...fields.keys()].sort(), ["categories", "comment", "ip"]);
        assert.equal(fields.get("ip"), first);
        assert.equal(fields.get("categories"), "14");
        // The port and the line's time (UTC, seconds); nothing else.
        const time = new Date(lineTime(line)).toISOString().slice(0, 19) + "+00:00";
        assert.equal(fields.get("comment"), `Port scan: TCP port ${program.port}, ${time}`);

        // The same source again within 15 minutes: logged, not banned again in this jail, so not
        // reported. A new source is (the jail handles them in order: the barrier after it shows
        // that the repeat gave no ban, and so no report, before it).
        await connectLogged(sandbox, program, first, 2);
        await connectLogged(sandbox, program, second);
        await waitFor(`${second} recorded`, () => recorded(record).includes(second));
        assert.deepEqual(recorded(record), [first, second]);
        const reports = await receiver.waitForRequests(2);
        assert.deepEqual(reports.map((r) => new URLSearchParams(r.body).get("ip")), [
          first,
          second,
        ]);

        // The daily limit (2 here): a third source is banned by the jail but not reported.
        await connectLogged(sandbox, program, third);
        await waitFor(`${third} recorded`, () => recorded(record).includes(third));
        assert.equal(receiver.requests().length, 2);
        const today = new Date().toISOString().slice(0, 10);
        assert.equal((await Deno.readTextFile(quota)).trim(), `${today} 2`);
      } finally {
        await fail2ban?.stop();
        await program?.stop();
        await receiver?.stop();
        sandbox.stop();
      }
    });
  },
});

Deno.test({
  name:
    "fail2ban reports: net-bouncer-alert sends one webhook per new source per window; bans keep their latency while it hangs",
  ignore: IGNORE,
  fn: async () => {
    await withTempDir(async (dir) => {
      const [first, neighbour, second] = ["2001:db8:7:1::a", "2001:db8:7:1::b", "192.0.2.40"];
      const sandbox = await startSandbox({ addresses: [first, neighbour, second] });
      let program: Program | undefined;
      let fail2ban: Fail2ban | undefined;
      let receiver: Receiver | undefined;
      try {
        // A receiver that reads each message and never answers.
        receiver = await startReceiver(8080, { hang: true, wrap: sandbox.wrap });
        const logFile = `${dir}/net-bouncer.log`;
        program = await startProgram(["-p", "0"], { logFile, wrapper: sandbox.wrap([]) });
        const jails = ["net-bouncer-subnet", "net-bouncer-alert"];
        const conf = writeFail2banConf(
          dir,
          jailLocal(logFile, {
            "net-bouncer-subnet": [],
            "net-bouncer-alert": [
              "webhook_url = http://127.0.0.1:8080/",
              "action = %(known/action)s",
              `         record[file="${dir}/recorded"]`,
            ],
          }),
        );
        fail2ban = await startFail2ban(conf, jails, { sandbox });
        const rules = async () =>
          (await sandbox.exec(["nft", "list", "table", "inet", "f2b-table"])).stdout;
        const latencies: number[] = [];
        const banned = async (line: string, element: string) => {
          await waitFor(`the rule for ${element}`, async () => (await rules()).includes(element), {
            timeoutMs: BAN_DEADLINE_MS,
          });
          latencies.push(Date.now() - lineTime(line));
        };

        await banned(await connectLogged(sandbox, program, first), "2001:db8:7:1::/64");
        const [message] = await receiver.waitForRequests(1);
        assert.equal(message.method, "POST");
        assert.equal(message.headers["content-type"], "application/json");
        const text =
          `net-bouncer: new source ${first} (port ${program.port}, jail net-bouncer-alert)`;
        // ntfy (topic, message), Slack (text), Discord (content).
        assert.deepEqual(JSON.parse(message.body), {
          topic: "net-bouncer",
          message: text,
          text,
          content: text,
        });
        // The prefix is banned: its neighbour cannot even connect.
        assert.equal(await sandbox.connect(neighbour, program.port), false);
        // The firewall ban of the first source is lifted; it comes back within the alert's
        // window: banned again at once, no second message.
        await fail2ban.client("set", "net-bouncer-subnet", "unbanip", first);
        await waitFor(
          "the /64 rule removed",
          async () => !(await rules()).includes("2001:db8:7:1::/64"),
        );
        await banned(await connectLogged(sandbox, program, first, 2), "2001:db8:7:1::/64");
        // A new source: a message (after none for the repeat: the alert jail did not ban the
        // repeat, as its barrier action shows), and its ban.
        const secondLine = await connectLogged(sandbox, program, second);
        await banned(secondLine, second);
        await waitFor(`${second} recorded`, () => recorded(`${dir}/recorded`).includes(second));
        assert.deepEqual(recorded(`${dir}/recorded`), [first, second]);
        const messages = await receiver.waitForRequests(2);
        // Its message was not held up by the first one, which still hangs.
        const messageLatency = Date.now() - lineTime(secondLine);
        assert.ok(messageLatency < BAN_DEADLINE_MS, `second message after ${messageLatency} ms`);
        assert.deepEqual(messages.map((m) => JSON.parse(m.body).message.split(" ")[3]), [
          first,
          second,
        ]);
        assert.doesNotMatch(program.log(), new RegExp(`Connection from ${neighbour} `));
        console.log(
          `ban latency with a hanging webhook receiver (connection line → nft rule), ms: ${
            JSON.stringify(latencies)
          }`,
        );
        for (const ms of latencies) assert.ok(ms < BAN_DEADLINE_MS, JSON.stringify(latencies));
      } finally {
        await fail2ban?.stop();
        await program?.stop();
        await receiver?.stop();
        sandbox.stop();
      }
    });
  },
});
