/**
 * CrowdSec bans beyond one address, with the real crowdsec (Debian 12, 1.4.x): the IPv6 /64
 * postoverflow (decision Range:2001:db8:1:2::/64), the multi-port scenario (a longer decision),
 * and the webhook notification (one message per new source; decisions not delayed while the
 * receiver hangs). net-bouncer runs in a sandbox (tests/_netns.ts) whose loopback holds the
 * documentation addresses the clients connect from; crowdsec reads its log file and runs on this
 * machine's loopback, as in tests/system/crowdsec_test.ts.
 */
import assert from "node:assert/strict";
import {
  addBouncer,
  addMachine,
  type Alert,
  bouncerDecisions,
  type Crowdsec,
  cscli,
  type DecisionAlert,
  jsonList,
  REPLAY_TIMEOUT_MS,
  startCrowdsec,
  waitForLapi,
  waitForOutput,
  warmUp,
  writeConfig,
} from "../_crowdsec.ts";
import { lineTime } from "../_fail2ban.ts";
import { type Sandbox, startSandbox } from "../_netns.ts";
import { type Receiver, startReceiver } from "../_receiver.ts";
import {
  freePort,
  needsTools,
  type Program,
  run,
  startProgram,
  waitFor,
  withTempDir,
} from "../_util.ts";

const IGNORE = needsTools("crowdsec", "cscli", "curl", "unshare", "nsenter");
/** The scenarios' names. */
const TOUCH = "net-bouncer/net-bouncer-touch";
const MULTIPORT = "net-bouncer/net-bouncer-multiport";
/** Sources: one /64 (its first address and a neighbour), another /64, an IPv4 address. */
const SOURCE = "2001:db8:1:2::a";
const NEIGHBOUR = "2001:db8:1:2::b";
const OTHER = "2001:db8:1:3::a";
const SOURCE4 = "192.0.2.10";
/** The source of the live test's warm-up connections (the agent's tail may start after its first lines). */
const WARMUP_SOURCE = "192.0.2.99";
/** A connection must show up as a LAPI decision within this time, in milliseconds. */
const DECISION_DEADLINE_MS = 5_000;
/** The decoy ports (the sandbox's own network: nothing else binds them). */
const DECOY_PORTS = [22, 3389];
/** Time zone of the replay (see tests/system/crowdsec_test.ts: east of UTC, no DST). */
const REPLAY_TZ = "Asia/Tokyo";

/** Hours of a Go duration as cscli prints it ("23h59m58.9s", "3h59m"). */
function hours(duration: string): number {
  const match = duration.match(/^(?:(\d+)h)?(?:(\d+)m)?/);
  assert.ok(match, duration);
  return Number(match[1] ?? 0) + Number(match[2] ?? 0) / 60;
}

/** The decisions the LAPI lists (cscli decisions list -o json), flattened. */
async function decisions(config: string) {
  return jsonList<DecisionAlert>(await cscli(config, "decisions", "list", "-o", "json"))
    .flatMap((alert) => alert.decisions);
}

/** Connects from `source` to `port` in the sandbox; asserts it was made and logged. */
async function connectLogged(
  sandbox: Sandbox,
  program: Program,
  source: string,
  port: number,
  count = 1,
) {
  assert.equal(await sandbox.connect(source, port), true, `${source} connects to ${port}`);
  const lines = await program.waitForLines(
    new RegExp(`Connection from ${source} on port ${port}$`),
    count,
  );
  return lines[count - 1];
}

Deno.test({
  name: "crowdsec bans: replay, an IPv6 source's decision is its /64, two ports give a longer one",
  ignore: IGNORE,
  fn: async () => {
    await withTempDir(async (dir) => {
      const env = { TZ: REPLAY_TZ };
      const sandbox = await startSandbox({ addresses: [SOURCE, OTHER, SOURCE4] });
      const processes: Crowdsec[] = [];
      try {
        // The log: SOURCE on two ports, OTHER and SOURCE4 on one.
        const logFile = `${dir}/net-bouncer.log`;
        const program = await startProgram([
          "-p",
          String(DECOY_PORTS[0]),
          "-p",
          String(DECOY_PORTS[1]),
        ], {
          logFile,
          env,
          listening: 2,
          wrapper: sandbox.wrap([]),
        });
        const [port1, port2] = program.ports;
        try {
          await connectLogged(sandbox, program, SOURCE, port1);
          await connectLogged(sandbox, program, SOURCE, port2);
          await connectLogged(sandbox, program, OTHER, port1);
          await connectLogged(sandbox, program, SOURCE4, port1);
        } finally {
          await program.stop();
        }

        const lapi = await writeConfig(`${dir}/cs`, { port: freePort(), bans: true });
        await addMachine(lapi, "replay", `${lapi.dir}/local_api_credentials.yaml`);
        const server = startCrowdsec(lapi.config, ["-no-cs"], env);
        processes.push(server);
        await waitForLapi(lapi.url, server);

        // cscli explain: the line goes through the parsers into both scenarios.
        const explain = await run(
          "cscli",
          ["-c", lapi.config, "explain", "--file", logFile, "--type", "net-bouncer"],
          { env, timeoutMs: REPLAY_TIMEOUT_MS },
        );
        assert.equal(explain.code, 0, explain.stderr);
        for (const name of ["net-bouncer/net-bouncer-logs", TOUCH, MULTIPORT]) {
          assert.match(explain.stdout, new RegExp(name), explain.stdout);
        }

        const replay = await run(
          "crowdsec",
          ["-c", lapi.config, "-dsn", `file://${logFile}`, "-type", "net-bouncer", "-no-api"],
          { env, timeoutMs: REPLAY_TIMEOUT_MS },
        );
        assert.equal(replay.code, 0, replay.stdout + replay.stderr);

        const alerts = jsonList<Alert>(await cscli(lapi.config, "alerts", "list", "-o", "json"));
        const seen = new Set(
          alerts.map((a) => `${a.scenario} ${a.source.scope}:${a.source.value}`),
        );
        assert.deepEqual([...seen].sort(), [
          `${MULTIPORT} Range:2001:db8:1:2::/64`,
          `${TOUCH} Ip:${SOURCE4}`,
          `${TOUCH} Range:2001:db8:1:2::/64`,
          `${TOUCH} Range:2001:db8:1:3::/64`,
        ]);
        // Each alert's decision: the touch scenario's 4h, the multi-port scenario's 24h.
        const decisionOf = (scenario: string, value: string) =>
          alerts.find((a) => a.scenario === scenario && a.source.value === value)?.decisions[0];
        const touch = decisionOf(TOUCH, "2001:db8:1:2::/64");
        const multiport = decisionOf(MULTIPORT, "2001:db8:1:2::/64");
        assert.ok(touch && multiport, JSON.stringify(alerts.map((a) => a.decisions)));
        assert.equal(`${multiport.scope}:${multiport.value}`, "Range:2001:db8:1:2::/64");
        assert.ok(hours(multiport.duration) > 23, multiport.duration);
        assert.ok(hours(touch.duration) > 3 && hours(touch.duration) <= 4, touch.duration);
        // The LAPI lists the longest decision per value: the multi-port one.
        const listed = await decisions(lapi.config);
        const current = listed.find((d) => d.value === "2001:db8:1:2::/64");
        assert.equal(current?.scenario, MULTIPORT, JSON.stringify(listed));
        assert.ok(hours(current.duration) > 23, current.duration);
        // As an admin reads it.
        const table = await cscli(lapi.config, "decisions", "list");
        assert.match(table, /Range:2001:db8:1:2::\/64/);
        assert.match(table, /Range:2001:db8:1:3::\/64/);
        assert.match(table, new RegExp(`Ip:${SOURCE4.replaceAll(".", "\\.")}`));
      } finally {
        for (const process of processes) await process.stop();
        sandbox.stop();
      }
    });
  },
});

Deno.test({
  name:
    "crowdsec bans: live, Range:2001:db8:1:2::/64 covers the neighbour; one webhook per new source while the receiver hangs",
  ignore: IGNORE,
  fn: async () => {
    await withTempDir(async (dir) => {
      const sandbox = await startSandbox({
        addresses: [SOURCE, NEIGHBOUR, SOURCE4, WARMUP_SOURCE],
      });
      const processes: Crowdsec[] = [];
      let program: Program | undefined;
      let receiver: Receiver | undefined;
      try {
        // The webhook receiver reads each message and never answers.
        receiver = await startReceiver(0, { hang: true });
        const logFile = `${dir}/net-bouncer.log`;
        program = await startProgram(["-p", String(DECOY_PORTS[0]), "-p", String(DECOY_PORTS[1])], {
          logFile,
          listening: 2,
          wrapper: sandbox.wrap([]),
        });
        const [port1, port2] = program.ports;
        const cs = await writeConfig(`${dir}/cs`, {
          port: freePort(),
          files: [logFile],
          bans: true,
          webhook: `http://127.0.0.1:${receiver.port}/`,
        });
        await addMachine(cs, "live", `${cs.dir}/local_api_credentials.yaml`);
        const key = await addBouncer(cs, "live-bouncer");
        const crowdsec = startCrowdsec(cs.config);
        processes.push(crowdsec);
        await waitForLapi(cs.url, crowdsec);
        await waitForOutput(crowdsec, /Starting processing data/, "agent processing");
        await warmUp(cs.url, key, WARMUP_SOURCE, async () => {
          assert.equal(await sandbox.connect(WARMUP_SOURCE, port1), true);
        });

        const latencies: Record<string, number> = {};
        const decided = async (source: string, line: string, query = source) => {
          const [decision] = await waitFor(
            `a decision covering ${query}\n${crowdsec.output()}`,
            async () => {
              const found = await bouncerDecisions(cs.url, key, query);
              return found.length ? found : null;
            },
            { timeoutMs: DECISION_DEADLINE_MS },
          );
          latencies[source] = Date.now() - lineTime(line);
          return decision;
        };
        // The /64: a bouncer asking about the neighbour gets the range.
        assert.deepEqual(await bouncerDecisions(cs.url, key, NEIGHBOUR), []);
        const range = await decided(
          SOURCE,
          await connectLogged(sandbox, program, SOURCE, port1),
          NEIGHBOUR,
        );
        assert.equal(range.value, "2001:db8:1:2::/64");
        assert.equal(range.scenario, TOUCH);
        // The same source on a second port: the multi-port decision, 24h.
        await connectLogged(sandbox, program, SOURCE, port2);
        await waitFor(
          "the multi-port decision",
          async () => (await decisions(cs.config)).some((d) => d.scenario === MULTIPORT),
          {
            timeoutMs: DECISION_DEADLINE_MS,
          },
        );
        // And once more on the first port, within the touch scenario's blackhole: no new alert.
        await connectLogged(sandbox, program, SOURCE, port1, 2);
        // A new IPv4 source: its own address.
        const ip = await decided(SOURCE4, await connectLogged(sandbox, program, SOURCE4, port1));
        assert.equal(ip.value, SOURCE4);

        const listed = await decisions(cs.config);
        const multiport = listed.find((d) => d.scenario === MULTIPORT);
        assert.ok(multiport, JSON.stringify(listed));
        assert.equal(`${multiport.scope}:${multiport.value}`, "Range:2001:db8:1:2::/64");
        assert.ok(hours(multiport.duration) > 23, multiport.duration);
        assert.match(await cscli(cs.config, "decisions", "list"), /Range:2001:db8:1:2::\/64/);

        // One message per new source (the warm-up's, the /64's, the IPv4 address's): none for
        // the multi-port alert nor for the repeat, though the receiver answered none of them.
        const expected = [WARMUP_SOURCE, "2001:db8:1:2::/64", SOURCE4];
        const messages = await receiver.waitForRequests(expected.length, DECISION_DEADLINE_MS);
        const bodies = messages.map((m) => JSON.parse(m.body));
        assert.deepEqual(bodies.map((b) => b.message.split(" ")[3]).sort(), [...expected].sort());
        for (const body of bodies) {
          assert.deepEqual(Object.keys(body).sort(), ["content", "message", "text", "topic"]);
          assert.equal(body.text, body.message);
          assert.equal(body.content, body.message);
        }
        assert.match(
          bodies.find((b) => b.message.includes(SOURCE4))!.message,
          new RegExp(`\\(${TOUCH}\\)$`),
        );
        const alerts = jsonList<Alert>(await cscli(cs.config, "alerts", "list", "-o", "json"));
        assert.equal(
          alerts.filter((a) => a.scenario === TOUCH && a.source.value === "2001:db8:1:2::/64")
            .length,
          1,
        );
        console.log(
          `live decision latency (connection line → LAPI decision), ms: ${
            JSON.stringify(latencies)
          }`,
        );
        assert.equal(receiver.requests().length, expected.length);
      } finally {
        await program?.stop();
        for (const process of processes) await process.stop();
        await receiver?.stop();
        sandbox.stop();
      }
    });
  },
});
