/**
 * bantime.increment of the shipped net-bouncer-journal jail, live: a real systemd (PID 1 in a
 * container, tests/_container.ts) runs the shipped net-bouncer-journal.service, Debian's
 * fail2ban.service reads the journal (backend systemd) with the shipped filter and jail, and bans
 * with Debian's default firewall action (iptables-allports). A source that comes back after its
 * first ban is banned longer the second time.
 */
import assert from "node:assert/strict";
import { bootContainer, type Container, installFiles, installProgram } from "../_container.ts";
import { banSeconds } from "../_fail2ban.ts";
import { connectFrom } from "../_netns.ts";
import { needsTools, waitFor } from "../_util.ts";

/** The jail under test. */
const JAIL = "net-bouncer-journal";
/** The source (on the container's loopback; the unit listens on port 22). */
const SOURCE = "192.0.2.50";
const PORT = 22;
/** The shipped bantime, shortened by the test's .local so that the first ban ends in the test. */
const SHORT_BANTIME_S = 2;
/** How long a unit or fail2ban may take to start. */
const START_DEADLINE_MS = 30_000;
/** A ban must follow a connection within this time (journal, fail2ban, iptables). */
const BAN_DEADLINE_MS = 5_000;

/** The iptables rule of the jail's ban of SOURCE is in place. */
async function ruleFor(c: Container): Promise<boolean> {
  const rules = await c.exec(["iptables", "-S", `f2b-${JAIL}`]);
  return rules.stdout.includes(`-s ${SOURCE}/32 -j REJECT`);
}

Deno.test({
  name: "fail2ban journal: net-bouncer-journal (backend systemd) bans a returning source longer",
  ignore: needsTools("systemd-nspawn", "nsenter", "fail2ban-server", "iptables", "curl"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const c = await bootContainer();
    try {
      await installProgram(c);
      await installFiles(c, [
        [
          "contrib/systemd/net-bouncer-journal.service",
          "/etc/systemd/system/net-bouncer-journal.service",
        ],
        ["contrib/fail2ban/filter.d/net-bouncer.conf", "/etc/fail2ban/filter.d/net-bouncer.conf"],
        ["contrib/fail2ban/jail.d/net-bouncer.conf", "/etc/fail2ban/jail.d/net-bouncer.conf"],
      ]);
      // The admin's .local: the journal jail instead of the file one (Debian's sshd jail off: the
      // image has no sshd log); only bantime shortened.
      await c.sh(
        `set -eu
        ip addr add ${SOURCE}/32 dev lo
        cat > /etc/fail2ban/jail.d/zz-test.local <<'EOF'
[sshd]
enabled = false
[net-bouncer]
enabled = false
[${JAIL}]
enabled = true
bantime = ${SHORT_BANTIME_S}
EOF
        systemctl daemon-reload
        systemctl start net-bouncer-journal.service`,
        { timeoutMs: START_DEADLINE_MS },
      );
      await waitFor("the unit's Listening line", async () => {
        const journal = await c.exec([
          "journalctl",
          "--no-pager",
          "-o",
          "cat",
          "_SYSTEMD_UNIT=net-bouncer-journal.service",
        ]);
        return journal.stdout.includes("Listening on port 22");
      }, { timeoutMs: START_DEADLINE_MS });
      await c.sh("systemctl start fail2ban.service", { timeoutMs: START_DEADLINE_MS });
      await waitFor(
        `the ${JAIL} jail`,
        async () => (await c.exec(["fail2ban-client", "status", JAIL])).code === 0,
        { timeoutMs: START_DEADLINE_MS },
      );
      assert.equal((await c.sh(`fail2ban-client get ${JAIL} bantime.increment`)).trim(), "True");
      assert.equal(
        (await c.sh(`fail2ban-client get ${JAIL} bantime.maxtime`)).trim(),
        String(28 * 86400),
      );
      const banned = async () =>
        banSeconds(await c.sh(`fail2ban-client get ${JAIL} banip --with-time`), SOURCE);

      // First ban: the bantime itself, as a firewall rule.
      let start = Date.now();
      assert.equal(await connectFrom(c.exec, SOURCE, PORT), true);
      await waitFor("the first ban's rule", () => ruleFor(c), { timeoutMs: BAN_DEADLINE_MS });
      const firstLatency = Date.now() - start;
      assert.equal(await banned(), SHORT_BANTIME_S);
      // It ends; the source comes back and is banned again, longer.
      await waitFor("the first ban's end", async () => !(await ruleFor(c)), {
        timeoutMs: SHORT_BANTIME_S * 1000 + BAN_DEADLINE_MS,
      });
      start = Date.now();
      assert.equal(await connectFrom(c.exec, SOURCE, PORT), true);
      await waitFor("the second ban's rule", () => ruleFor(c), { timeoutMs: BAN_DEADLINE_MS });
      const secondLatency = Date.now() - start;
      const second = await banned();
      assert.ok(second > SHORT_BANTIME_S, `second ban ${second} s`);
      assert.match(
        await c.sh("cat /var/log/fail2ban.log"),
        new RegExp(`\\[${JAIL}\\] Increase Ban ${SOURCE.replaceAll(".", "\\.")} \\(2 # `),
      );
      console.log(
        `${JAIL}: first ban ${SHORT_BANTIME_S} s, second ban ${second} s; ban latency ` +
          `(curl start → iptables rule) ${firstLatency} ms, ${secondLatency} ms`,
      );
    } finally {
      await c.stop();
    }
  },
});
