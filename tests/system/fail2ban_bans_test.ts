/**
 * Bans beyond one address, with the real fail2ban and the real firewall (nftables, ip6tables) in
 * a sandbox of the test's own (tests/_netns.ts: its own network namespace, documentation
 * addresses on its loopback): the net-bouncer-subnet jail bans an IPv6 source's /64 and an IPv4
 * source's address, and bantime.increment bans a returning source longer, in the net-bouncer and
 * net-bouncer-subnet jails. Ban latency: the connection line's own time (net-bouncer's accept) to
 * the rule listed by the firewall.
 */
import assert from "node:assert/strict";
import {
  banSeconds,
  type Fail2ban,
  jailLocal,
  lineTime,
  startFail2ban,
  writeFail2banConf,
} from "../_fail2ban.ts";
import { type Sandbox, startSandbox } from "../_netns.ts";
import { needsTools, type Program, startProgram, waitFor, withTempDir } from "../_util.ts";

/** A ban must follow a connection within this time (connection line → firewall rule). */
const BAN_DEADLINE_MS = 3_000;
/** The first /64, its second address, an address in another /64; IPv4 sources. */
const SOURCE = "2001:db8:1:2::a";
const NEIGHBOUR = "2001:db8:1:2::b";
const OTHER_PREFIX = "2001:db8:1:3::a";
const SOURCE4 = "192.0.2.10";
const NEIGHBOUR4 = "192.0.2.11";
const ADDRESSES = [SOURCE, NEIGHBOUR, OTHER_PREFIX, SOURCE4, NEIGHBOUR4];

const IGNORE = needsTools("fail2ban-server", "nft", "ip6tables", "curl", "unshare", "nsenter");

/** The firewall's listing of the subnet jail's bans, per banaction. */
const FIREWALLS = {
  "net-bouncer-nftables-subnet": {
    list: ["nft", "list", "table", "inet", "f2b-table"],
    // nft lists an IPv4 /32 element as the bare address.
    rule: (prefix: string) =>
      new RegExp(`[{ ,]${prefix.replace(/\/32$/, "").replaceAll(".", "\\.")}[ ,}\n]`),
  },
  "net-bouncer-iptables-subnet": {
    list: ["sh", "-c", "iptables -S f2b-net-bouncer-subnet; ip6tables -S f2b-net-bouncer-subnet"],
    rule: (prefix: string) => new RegExp(`-s ${prefix.replaceAll(".", "\\.")} -j REJECT`),
  },
} as const;

/** The one connection line from `source` (waits for it). */
async function lineFrom(program: Program, source: string): Promise<string> {
  const [line] = await program.waitForLines(new RegExp(`Connection from ${source} on port`));
  return line;
}

/** Connects from `source` and asserts that the connection was made and logged; returns the line. */
async function connectLogged(sandbox: Sandbox, program: Program, source: string): Promise<string> {
  assert.equal(await sandbox.connect(source, program.port), true, `${source} connects`);
  return await lineFrom(program, source);
}

/**
 * Runs the subnet jail with `banaction` in a sandbox: the /64 of SOURCE is banned (NEIGHBOUR
 * cannot connect, OTHER_PREFIX can), SOURCE4 alone is banned (NEIGHBOUR4 can connect), unban
 * removes the prefix rule. Returns the ban latencies in ms.
 */
async function subnetTest(banaction: keyof typeof FIREWALLS): Promise<Record<string, number>> {
  const firewall = FIREWALLS[banaction];
  return await withTempDir(async (dir) => {
    const sandbox = await startSandbox({ addresses: ADDRESSES });
    let program: Program | undefined;
    let fail2ban: Fail2ban | undefined;
    try {
      const logFile = `${dir}/net-bouncer.log`;
      program = await startProgram(["-p", "0"], { logFile, wrapper: sandbox.wrap([]) });
      const conf = writeFail2banConf(
        dir,
        // The admin's .local: the subnet jail instead of the plain one.
        jailLocal(logFile, { "net-bouncer-subnet": [`banaction_subnet = ${banaction}`] }),
      );
      fail2ban = await startFail2ban(conf, ["net-bouncer-subnet"], { sandbox });
      const rules = async () => (await sandbox.exec([...firewall.list])).stdout;
      const waitForRule = async (prefix: string, line: string) => {
        await waitFor(
          `the rule for ${prefix}`,
          async () => firewall.rule(prefix).test(await rules()),
          {
            timeoutMs: BAN_DEADLINE_MS,
          },
        );
        return Date.now() - lineTime(line);
      };
      const latencies: Record<string, number> = {};

      // IPv6: the source's /64 is banned.
      assert.doesNotMatch(await rules(), firewall.rule("2001:db8:1:2::/64"));
      latencies[SOURCE] = await waitForRule(
        "2001:db8:1:2::/64",
        await connectLogged(sandbox, program, SOURCE),
      );
      // Its neighbour cannot connect; an address of another /64 can (and its line, after the
      // attempt, shows that the neighbour's attempt left none).
      assert.equal(
        await sandbox.connect(NEIGHBOUR, program.port),
        false,
        `${NEIGHBOUR} is refused`,
      );
      const other = await connectLogged(sandbox, program, OTHER_PREFIX);
      assert.doesNotMatch(program.log(), new RegExp(`Connection from ${NEIGHBOUR} `));
      latencies[OTHER_PREFIX] = await waitForRule("2001:db8:1:3::/64", other);

      // IPv4: prefix4 = 32, the address alone.
      latencies[SOURCE4] = await waitForRule(
        `${SOURCE4}/32`,
        await connectLogged(sandbox, program, SOURCE4),
      );
      await connectLogged(sandbox, program, NEIGHBOUR4);
      await waitForRule(`${NEIGHBOUR4}/32`, await lineFrom(program, NEIGHBOUR4));

      // fail2ban tracks the addresses; the firewall holds the prefixes.
      const status = await fail2ban.client("status", "net-bouncer-subnet");
      for (const address of [SOURCE, OTHER_PREFIX, SOURCE4, NEIGHBOUR4]) {
        assert.match(status, new RegExp(`Banned IP list:.*${address.replaceAll(".", "\\.")}`));
      }
      assert.doesNotMatch(status, new RegExp(NEIGHBOUR));

      // Unban: the prefix rule goes, the neighbour connects again.
      await fail2ban.client("set", "net-bouncer-subnet", "unbanip", SOURCE);
      await waitFor(
        "the /64 rule removed",
        async () => !firewall.rule("2001:db8:1:2::/64").test(await rules()),
      );
      assert.match(await rules(), firewall.rule("2001:db8:1:3::/64"));
      await connectLogged(sandbox, program, NEIGHBOUR);
      console.log(
        `${banaction}: ban latency (connection line → firewall rule), ms: ${
          JSON.stringify(latencies)
        }`,
      );
      return latencies;
    } finally {
      await fail2ban?.stop();
      await program?.stop();
      sandbox.stop();
    }
  });
}

Deno.test({
  name:
    "fail2ban bans: net-bouncer-subnet bans an IPv6 source's /64 and an IPv4 address (nftables)",
  ignore: IGNORE,
  fn: async () => {
    const latencies = await subnetTest("net-bouncer-nftables-subnet");
    for (const ms of Object.values(latencies)) {
      assert.ok(ms < BAN_DEADLINE_MS, JSON.stringify(latencies));
    }
  },
});

Deno.test({
  name:
    "fail2ban bans: net-bouncer-subnet bans an IPv6 source's /64 and an IPv4 address (ip6tables)",
  ignore: IGNORE,
  fn: async () => {
    const latencies = await subnetTest("net-bouncer-iptables-subnet");
    for (const ms of Object.values(latencies)) {
      assert.ok(ms < BAN_DEADLINE_MS, JSON.stringify(latencies));
    }
  },
});

/** The ban's length in seconds for `ip` in `jail`. */
async function jailBanSeconds(fail2ban: Fail2ban, jail: string, ip: string): Promise<number> {
  return banSeconds(await fail2ban.client("get", jail, "banip", "--with-time"), ip);
}

/** The shipped bantime, shortened by the test's .local so that the first ban ends in the test. */
const SHORT_BANTIME_S = 2;

Deno.test({
  name:
    "fail2ban bans: bantime.increment bans a returning source longer (net-bouncer, net-bouncer-subnet)",
  ignore: IGNORE,
  fn: async () => {
    await withTempDir(async (dir) => {
      const source = "2001:db8:5:6::a";
      const sandbox = await startSandbox({ addresses: [source] });
      let program: Program | undefined;
      let fail2ban: Fail2ban | undefined;
      try {
        const logFile = `${dir}/net-bouncer.log`;
        program = await startProgram(["-p", "0"], { logFile, wrapper: sandbox.wrap([]) });
        const jails = ["net-bouncer", "net-bouncer-subnet"];
        // Only bantime is shortened: bantime.increment and bantime.maxtime are the shipped ones.
        const conf = writeFail2banConf(
          dir,
          jailLocal(
            logFile,
            Object.fromEntries(jails.map((jail) => [jail, [`bantime = ${SHORT_BANTIME_S}`]])),
          ),
        );
        fail2ban = await startFail2ban(conf, jails, { sandbox });
        for (const jail of jails) {
          assert.equal((await fail2ban.client("get", jail, "bantime.increment")).trim(), "True");
          assert.equal(
            (await fail2ban.client("get", jail, "bantime.maxtime")).trim(),
            String(28 * 86400),
          );
        }

        // First ban: the bantime itself.
        await connectLogged(sandbox, program, source);
        for (const jail of jails) {
          await fail2ban.waitForLog(new RegExp(`\\[${jail}\\] Ban ${source}$`));
          assert.equal(await jailBanSeconds(fail2ban, jail, source), SHORT_BANTIME_S, jail);
        }
        // Both bans end; the source comes back.
        for (const jail of jails) {
          await fail2ban.waitForLog(
            new RegExp(`\\[${jail}\\] Unban ${source}$`),
            1,
            SHORT_BANTIME_S * 1000 + 5_000,
          );
        }
        assert.equal(
          await sandbox.connect(source, program.port),
          true,
          "the source connects again",
        );
        await program.waitForLines(new RegExp(`Connection from ${source} `), 2);
        // Second ban: longer (fail2ban's default formula doubles it per earlier ban).
        for (const jail of jails) {
          await fail2ban.waitForLog(new RegExp(`\\[${jail}\\] Ban ${source}$`), 2);
          const seconds = await jailBanSeconds(fail2ban, jail, source);
          assert.ok(seconds > SHORT_BANTIME_S, `${jail}: second ban ${seconds} s`);
          assert.match(fail2ban.log(), new RegExp(`\\[${jail}\\] Increase Ban ${source} \\(2 # `));
          console.log(`${jail}: first ban ${SHORT_BANTIME_S} s, second ban ${seconds} s`);
        }
      } finally {
        await fail2ban?.stop();
        await program?.stop();
        sandbox.stop();
      }
    });
  },
});
